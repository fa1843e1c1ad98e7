//! `parley` and the seed report's own Python client, unmodified, in both
//! directions.
//!
//! The seed client talks to 127.0.0.1:9999, hard-coded, so this test
//! re-runs itself in a fresh network namespace (root and `unshare`), where
//! that port is free; without one it uses the host's 9999 if it is free,
//! and otherwise says why it cannot run.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const INNER: &str = "PARLEY_SEED_PYTHON_INNER";

#[test]
fn the_seed_python_client_and_parley_chat_both_ways() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed to run the seed client (CI installs it)");
    }
    let exe = std::env::current_exe().unwrap();
    let inner = format!(
        "ip link set lo up 2>/dev/null; exec {} --exact inner_session --ignored --nocapture",
        exe.display()
    );
    let in_namespace = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let out = if in_namespace {
        Command::new("unshare")
            .args(["-n", "sh", "-c", &inner])
            .env(INNER, "1")
            .output()
    } else {
        assert!(
            std::net::UdpSocket::bind("127.0.0.1:9999").is_ok(),
            "no network namespace and 127.0.0.1:9999 is taken: cannot run the seed client"
        );
        Command::new("sh")
            .args(["-c", &inner])
            .env(INNER, "1")
            .output()
    }
    .expect("run the inner session");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inner session failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the inner session ran:\n{stdout}"
    );
}

/// The seed client's console: what it printed, and its stdin.
struct Seed {
    child: Child,
    screen: Arc<Mutex<String>>,
    answered: usize,
}

impl Seed {
    fn start(id: &str) -> Seed {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server-mio/tests/seed");
        let mut child = Command::new("python3")
            .args(["-u", "client.py"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the seed client");
        let screen = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let s = screen.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    return;
                }
                s.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut seed = Seed {
            child,
            screen,
            answered: 0,
        };
        seed.wait_for("Enter ID:", 1);
        seed.type_line(id);
        seed
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn count(&self, needle: &str) -> usize {
        self.screen.lock().unwrap().matches(needle).count()
    }

    /// Wait until `needle` has been printed `n` times.
    fn wait_for(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + T;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "the seed client never printed {needle:?} x{n}:\n{}",
                self.screen.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Answer "n" to every pending "send a message?" question, so that
    /// its loop goes back to reading datagrams.
    fn decline_all(&mut self) {
        let asked = self.count("Do you want to send massege?");
        while self.answered < asked {
            self.type_line("n");
            self.answered += 1;
        }
    }

    /// Keep declining until `needle` shows up.
    fn wait_declining(&mut self, needle: &str) {
        let deadline = Instant::now() + T;
        while self.count(needle) == 0 {
            assert!(
                Instant::now() < deadline,
                "the seed client never printed {needle:?}:\n{}",
                self.screen.lock().unwrap()
            );
            self.decline_all();
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "run by the_seed_python_client_and_parley_chat_both_ways in its own network namespace"]
fn inner_session() {
    if std::env::var(INNER).is_err() {
        eprintln!("runs only inside the_seed_python_client_and_parley_chat_both_ways");
        return;
    }
    let addr: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    let _srv = server_on(addr);
    let (bob, _) = Parley::listen(addr, "bob", &[]);
    let mut carol = Seed::start("carol");
    carol.wait_for("Do you want to send massege?", 1);
    // Carol (seed) writes to bob (parley), the seed's way.
    carol.type_line("y");
    carol.answered += 1;
    carol.wait_for("Enter Peer ID:", 1);
    carol.type_line("bob");
    carol.wait_for("Enter Message to send", 1);
    carol.type_line("hello bob, from the seed client");
    assert_eq!(
        wait_line(&bob.out, "hello bob", T),
        "[someone (unverified, seed client)] hello bob, from the seed client"
    );
    // Alice (parley) writes to carol, known to run the seed client.
    let server = addr.to_string();
    send(&server, "alice", "carol", &["--seed", "hi carol"]).ok();
    carol.wait_declining("hi carol\n");
    // Without --seed: carol never answers a probe, so it goes as a seed
    // `Message` anyway, and the sender says it cannot be confirmed.
    send(&server, "alice", "carol", &["are you there?"])
        .fails_with(1, "carol did not answer as a Parley client");
    carol.wait_declining("are you there?\n");
    // Every message once.
    assert_eq!(carol.count("hi carol"), 1);
    assert_eq!(carol.count("are you there?"), 1);
}
