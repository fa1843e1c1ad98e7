//! Running a program that is expected to stop by itself (a server that
//! refuses its arguments, say), without letting one that does not hang
//! the test.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` for at most `limit`, stopping it then; its exit status
/// (`None` if it had to be stopped) and what it wrote to stderr.
pub fn run_briefly(cmd: &mut Command, limit: Duration) -> (Option<ExitStatus>, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the program") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

/// A program that runs beside the test (a `parley listen`, an interactive
/// chat): its stdin to type into and every line it writes, stamped with
/// when it came. Dropping it stops the program: SIGTERM first, so that a
/// client signs off (`QUIT`) and its id does not hold a place in the
/// server's quotas for a lease; SIGKILL if it lingers.
pub struct Running {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<Line>,
}

/// One line a [`Running`] program wrote.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the test read it.
    pub at: Instant,
    /// The text, without its newline.
    pub text: String,
    /// Written to stdout (else stderr).
    pub stdout: bool,
}

impl Running {
    /// Start `cmd` with its three streams piped.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Running> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward(out, true, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(err, false, tx);
        }
        let stdin = child.stdin.take();
        Ok(Running {
            child,
            stdin,
            lines,
        })
    }

    /// Type `line` (and a newline) into the program.
    pub fn type_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// The next line, waiting at most until `deadline`.
    pub fn next_line(&self, deadline: Instant) -> Option<Line> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Wait at most `limit` for a line containing `needle` (on either
    /// stream); the lines read before it are in the error.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Result<Line, String> {
        let deadline = Instant::now() + limit;
        let mut before = Vec::new();
        while let Some(l) = self.next_line(deadline) {
            if l.text.contains(needle) {
                return Ok(l);
            }
            before.push(l.text);
        }
        Err(format!(
            "no line with {needle:?} within {limit:?}; before it: {}",
            before.join(" / ")
        ))
    }
}

fn forward(stream: impl Read + Send + 'static, stdout: bool, tx: std::sync::mpsc::Sender<Line>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for text in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            let line = Line {
                at: Instant::now(),
                text,
                stdout,
            };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which `wait` has not
        // reaped yet (so it cannot have been reused).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
