//! `parley-loadgen stats`: one `HELLO` and one `STATS`, for scripts that
//! sample the server's counters (the soak test).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::msg::{self, Answer, Req, Rx};

/// Send `req` and wait for the answer carrying `tx`, retrying a few times.
fn ask(sock: &UdpSocket, req: Req, tx: u64, cookie: u64, timeout: Duration) -> io::Result<Vec<u8>> {
    let mut out = [0u8; 256];
    let n = msg::write_req(&mut out, b"", req, tx, cookie)
        .ok_or_else(|| io::Error::other("request does not fit"))?;
    let mut buf = [0u8; 2048];
    for _ in 0..3 {
        sock.send(&out[..n])?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv(&mut buf) {
                Ok(len) => {
                    if let Rx::Answer { tx: t, .. } = msg::classify(&buf[..len]) {
                        if t == tx {
                            return Ok(buf[..len].to_vec());
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no answer from the server (3 tries)",
    ))
}

/// The server's counters, as `STATS` reports them.
pub fn fetch(target: SocketAddr, timeout: Duration) -> io::Result<Vec<(String, u64)>> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => "127.0.0.1:0".parse().expect("address"),
        SocketAddr::V6(_) => "[::1]:0".parse().expect("address"),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(target)?;
    let cookie = match msg::classify(&ask(&sock, Req::Hello, 1, 0, timeout)?) {
        Rx::Answer {
            what: Answer::Cookie(c),
            ..
        } => c,
        _ => return Err(io::Error::other("HELLO was not answered with COOKIE")),
    };
    let reply = ask(&sock, Req::Stats, 2, cookie, timeout)?;
    match msg::classify(&reply) {
        Rx::Answer {
            what: Answer::Stats(body),
            ..
        } => Ok(body.iter().map(|(k, v)| (k.to_string(), v)).collect()),
        _ => Err(io::Error::other(format!(
            "STATS was answered with {:?}",
            String::from_utf8_lossy(&reply)
        ))),
    }
}
