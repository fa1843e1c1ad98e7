//! Start the real `parley-server` on an ephemeral loopback port and talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_parley-server");

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Start with `args` (a `--bind` is added unless given).
    // If the server never says where it listens the test fails right
    // there, and the test process (the child's parent) reaps it on exit.
    #[allow(clippy::zombie_processes)]
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parley-server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("server printed `listening on`");
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split(' ').next().unwrap().parse().unwrap();
                return Server {
                    child,
                    addr,
                    log: rx,
                };
            }
        }
    }

    /// Wait for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.log.recv_timeout(left).expect("log line");
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use testkit::udp::{ask, client, client_on, cookie, recv, register, with_cookie};
