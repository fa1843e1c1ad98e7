//! Test support: a real `parley-server` on an ephemeral loopback port (in
//! this process, on a thread), real `parley` processes, and a lossy relay.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use testkit::rng::XorShift;

pub const PARLEY: &str = env!("CARGO_BIN_EXE_parley");

/// How long a test waits for any one thing.
pub const T: Duration = Duration::from_secs(30);

/// A `parley-server` running in this process; stopped when dropped.
pub use testkit::server::InProcess as Server;

/// A server on an ephemeral loopback port.
pub fn server() -> Server {
    server_on(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A server on `bind` (to restart one where it was).
pub fn server_on(bind: SocketAddr) -> Server {
    Server::start(parley_server::Options {
        bind,
        ..Server::options(1024)
    })
}

/// A running `parley`; killed when dropped. Its output lines arrive on channels.
pub struct Parley {
    pub child: Child,
    /// Its configuration directory (identity, known peers), when the test
    /// did not give one: a fresh one per process, removed when dropped.
    pub home: Option<tempfile::TempDir>,
    pub stdin: Option<ChildStdin>,
    pub out: Receiver<String>,
    pub err: Receiver<String>,
    /// Every line so far, for assertions after the fact.
    pub out_seen: Arc<Mutex<Vec<String>>>,
    pub err_seen: Arc<Mutex<Vec<String>>>,
}

fn pump(r: impl std::io::Read + Send + 'static) -> (Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            s.lock().unwrap().push(line.clone());
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (rx, seen)
}

impl Parley {
    /// Start `parley args...` with piped stdin, stdout and stderr, and a
    /// configuration directory of its own (`$XDG_CONFIG_HOME`), so that
    /// each process has its own identity and none touches the user's.
    pub fn spawn(args: &[&str]) -> Parley {
        let home = tempfile::tempdir().expect("a temporary directory");
        let mut p = Parley::spawn_at(home.path(), args);
        p.home = Some(home);
        p
    }

    /// Start `parley args...` with `$XDG_CONFIG_HOME` set to `config`: the
    /// same directory for several processes is the same person.
    pub fn spawn_at(config: &Path, args: &[&str]) -> Parley {
        let mut child = Command::new(PARLEY)
            .args(args)
            .env("XDG_CONFIG_HOME", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parley");
        let (out, out_seen) = pump(child.stdout.take().unwrap());
        let (err, err_seen) = pump(child.stderr.take().unwrap());
        Parley {
            stdin: child.stdin.take(),
            home: None,
            child,
            out,
            err,
            out_seen,
            err_seen,
        }
    }

    /// `parley listen --server S --id ID [extra]`, once it is registered.
    pub fn listen(server: SocketAddr, id: &str, extra: &[&str]) -> (Parley, SocketAddr) {
        Parley::listen_in(None, server, id, extra)
    }

    /// `listen`, with `$XDG_CONFIG_HOME` set to `config` if given.
    pub fn listen_in(
        config: Option<&Path>,
        server: SocketAddr,
        id: &str,
        extra: &[&str],
    ) -> (Parley, SocketAddr) {
        let s = server.to_string();
        let mut args = vec!["listen", "--server", &s, "--id", id];
        args.extend_from_slice(extra);
        let p = match config {
            Some(dir) => Parley::spawn_at(dir, &args),
            None => Parley::spawn(&args),
        };
        let line = wait_line(&p.err, "listening as", Duration::from_secs(20));
        let addr = line
            .split("the server sees ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("address in {line:?}"));
        (p, addr)
    }

    /// Type a line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Type a line, and wait for the next line of output containing
    /// `needle`: the answer.
    pub fn ask(&mut self, line: &str, needle: &str) -> String {
        self.type_line(line);
        wait_line(&self.out, needle, T)
    }

    /// Wait for the process to end, at most `limit`; kill it otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
    }
}

impl Drop for Parley {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next line containing `needle`, within `limit`.
pub fn wait_line(rx: &Receiver<String>, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line containing {needle:?} within {limit:?}"),
        }
    }
}

/// The result of a one-shot `parley` command.
pub struct Done {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// Asserts that it succeeded (showing stderr if not); itself, for
    /// more checks.
    #[track_caller]
    pub fn ok(self) -> Done {
        assert_eq!(self.code, Some(0), "{}", self.stderr);
        self
    }

    /// Asserts that it exited with `code` and said `needle` on stderr.
    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "{}", self.stderr);
        assert!(self.stderr.contains(needle), "{}", self.stderr);
    }
}

/// `send --server SERVER --id FROM --to TO`, then `rest`: options and the
/// words of the text.
pub fn send_args<'a>(
    server: &'a str,
    from: &'a str,
    to: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["send", "--server", server, "--id", from, "--to", to];
    args.extend_from_slice(rest);
    args
}

/// Run `parley send` ([`send_args`]) to the end.
pub fn send(server: &str, from: &str, to: &str, rest: &[&str]) -> Done {
    parley(&send_args(server, from, to, rest), T)
}

/// Run `parley args...` to the end, killing it after `limit`.
pub fn parley(args: &[&str], limit: Duration) -> Done {
    finish(Parley::spawn(args), limit)
}

/// Run `parley args...` with `$XDG_CONFIG_HOME` set to `config`.
pub fn parley_at(config: &Path, args: &[&str], limit: Duration) -> Done {
    finish(Parley::spawn_at(config, args), limit)
}

fn finish(mut p: Parley, limit: Duration) -> Done {
    drop(p.stdin.take());
    let code = p.wait_exit(limit);
    // Let the reader threads catch the last lines.
    thread::sleep(Duration::from_millis(50));
    let stdout = p.out_seen.lock().unwrap().join("\n");
    let stderr = p.err_seen.lock().unwrap().join("\n");
    Done {
        code,
        stdout,
        stderr,
    }
}

/// What the relay does to each datagram.
#[derive(Clone, Copy)]
pub struct Faults {
    /// Percent dropped.
    pub loss: u64,
    /// Percent sent twice.
    pub dup: u64,
    /// Up to this many ms of extra delay (reorders).
    pub delay_ms: u64,
    /// Seed of the fault generator.
    pub seed: u64,
}

/// Counters of what the relay did.
#[derive(Default, Debug, Clone, Copy)]
pub struct RelayStats {
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

/// A lossy loopback relay that every party talks through, like a
/// full-cone NAT in front of everyone: each real address gets a public
/// face (a socket of the relay), and a datagram that arrives at X's face
/// from Y is passed on to X from Y's face. Give clients `front()` as their
/// server: the server then sees each client at its face, peers learn faces
/// from the server, and so every datagram crosses the relay once.
pub struct Relay {
    front: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<RelayStats>>,
    thread: Option<JoinHandle<()>>,
}

/// A change the relay makes to what the server sends: the new bytes, or
/// `None` to pass the datagram on as it is.
pub type Rewrite = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

impl Relay {
    pub fn start(server: SocketAddr, f: Faults) -> Relay {
        Relay::start_rewriting(server, f, None)
    }

    /// A relay that also passes every datagram from the server through
    /// `rewrite`: a rogue server's stand-in.
    pub fn start_rewriting(server: SocketAddr, f: Faults, rewrite: Option<Rewrite>) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let first = UdpSocket::bind("127.0.0.1:0").unwrap();
        first.set_nonblocking(true).unwrap();
        let front = first.local_addr().unwrap();
        let (s2, st2) = (stop.clone(), stats.clone());
        let thread = thread::spawn(move || relay_loop(first, server, f, rewrite, s2, st2));
        Relay {
            front,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    /// The server's face: give this to clients as `--server`.
    pub fn front(&self) -> SocketAddr {
        self.front
    }

    pub fn stats(&self) -> RelayStats {
        *self.stats.lock().unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay_loop(
    first: UdpSocket,
    server: SocketAddr,
    f: Faults,
    rewrite: Option<Rewrite>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<RelayStats>>,
) {
    // faces[i] fronts fronted[i].
    let mut faces = vec![first];
    let mut fronted = vec![server];
    let mut face_of: HashMap<SocketAddr, usize> = HashMap::from([(server, 0)]);
    let mut dice = XorShift::new(f.seed | 1);
    let mut queue: Vec<(Instant, usize, SocketAddr, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    // Bounded: the relay lives at most as long as a test may.
    let end = Instant::now() + Duration::from_secs(300);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let mut busy = false;
        let mut i = 0;
        while i < faces.len() {
            while let Ok((n, from)) = faces[i].recv_from(&mut buf) {
                busy = true;
                let to = fronted[i];
                let out = match face_of.get(&from) {
                    Some(&j) => j,
                    None => {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        faces.push(s);
                        fronted.push(from);
                        face_of.insert(from, faces.len() - 1);
                        faces.len() - 1
                    }
                };
                let bytes = match &rewrite {
                    Some(r) if from == server => r(&buf[..n]).unwrap_or_else(|| buf[..n].to_vec()),
                    _ => buf[..n].to_vec(),
                };
                let mut st = stats.lock().unwrap();
                if dice.percent(f.loss) {
                    st.dropped += 1;
                    continue;
                }
                let copies = if dice.percent(f.dup) {
                    st.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let delay = if f.delay_ms > 0 {
                        dice.below(f.delay_ms)
                    } else {
                        0
                    };
                    queue.push((
                        Instant::now() + Duration::from_millis(delay),
                        out,
                        to,
                        bytes.clone(),
                    ));
                }
            }
            i += 1;
        }
        let now = Instant::now();
        let mut k = 0;
        while k < queue.len() {
            if queue[k].0 <= now {
                let (_, out, to, bytes) = queue.swap_remove(k);
                let _ = faces[out].send_to(&bytes, to);
                stats.lock().unwrap().forwarded += 1;
                busy = true;
            } else {
                k += 1;
            }
        }
        if !busy {
            thread::sleep(Duration::from_millis(1));
        }
    }
}
