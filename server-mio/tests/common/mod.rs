//! Start the real `parley-server` on an ephemeral loopback port and talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
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

/// A client socket on `ip`, with a short read timeout.
pub fn client_on(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s
}

pub fn client() -> UdpSocket {
    client_on("127.0.0.1")
}

/// Send `req` and return the next datagram, as text.
pub fn ask(s: &UdpSocket, to: SocketAddr, req: &str) -> String {
    s.send_to(req.as_bytes(), to).unwrap();
    recv(s).unwrap_or_else(|| panic!("no reply to {req:?}"))
}

/// The next datagram, or `None` after the timeout.
pub fn recv(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// A cookie for this socket.
pub fn cookie(s: &UdpSocket, to: SocketAddr) -> String {
    let r = ask(s, to, &format!("HELLO h {}", ".".repeat(90)));
    assert!(r.starts_with("COOKIE h "), "{r}");
    r.split(' ').nth(2).unwrap().to_string()
}

/// Register `id` on the extended protocol; returns (cookie, token).
pub fn register(s: &UdpSocket, to: SocketAddr, id: &str) -> (String, String) {
    let c = cookie(s, to);
    let r = ask(s, to, &format!("REG r {c} {id}"));
    assert!(r.starts_with(&format!("REGD r {id} ")), "{r}");
    (c, r.rsplit(' ').next().unwrap().to_string())
}
