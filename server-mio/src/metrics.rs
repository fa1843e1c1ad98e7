//! A Prometheus text endpoint on a TCP listener in the same `Poll`.
//!
//! Deliberately tiny: any request on a connection gets the whole metrics
//! page and the connection closes (HTTP/1.0 style). Connections are few and
//! bounded, their buffers fixed; a slow or silent client is dropped on a
//! timer (the loop calls [`Metrics::expire`] at least once a second) rather
//! than allowed to hold a slot for long, so idle connections cannot keep
//! the scraper out.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use proto_core::server::Stats;

use crate::IoStats;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNS: usize = 16;
/// Bytes of request read before answering regardless.
const MAX_REQUEST: usize = 4096;
/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    written: usize,
    since: Instant,
}

pub(crate) struct Metrics {
    listener: TcpListener,
    token: Token,
    first_conn: usize,
    conns: Vec<Option<Conn>>,
}

impl Metrics {
    pub fn bind(
        addr: SocketAddr,
        poll: &Poll,
        token: Token,
        first_conn: usize,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind metrics {addr}: {e}")))?;
        poll.registry()
            .register(&mut listener, token, Interest::READABLE)?;
        log::info!("metrics on http://{}/metrics", listener.local_addr()?);
        Ok(Metrics {
            listener,
            token,
            first_conn,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
        })
    }

    pub fn accept(&mut self, poll: &Poll) {
        self.reap_stale(poll);
        self.accept_waiting(poll);
    }

    /// Close connections that have had their time, and let in those that
    /// wait in the backlog: a full table of connections hears no more
    /// events from the listener, so nothing else would.
    pub fn expire(&mut self, poll: &Poll) {
        if self.reap_stale(poll) > 0 {
            self.accept_waiting(poll);
        }
    }

    fn accept_waiting(&mut self, poll: &Poll) {
        loop {
            let Some(free) = self.conns.iter().position(Option::is_none) else {
                // Full: leave the rest in the backlog; they are accepted
                // when a slot frees and the next connection arrives.
                return;
            };
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let token = Token(self.first_conn + free);
                    if poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns[free] = Some(Conn {
                            stream,
                            request: Vec::with_capacity(512),
                            response: Vec::new(),
                            written: 0,
                            since: Instant::now(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("metrics accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Close every connection older than [`REQUEST_TIMEOUT`]; returns how many.
    fn reap_stale(&mut self, poll: &Poll) -> usize {
        let mut reaped = 0;
        for slot in &mut self.conns {
            if slot
                .as_ref()
                .is_some_and(|c| c.since.elapsed() > REQUEST_TIMEOUT)
            {
                if let Some(mut c) = slot.take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                    reaped += 1;
                }
            }
        }
        reaped
    }

    pub fn event(
        &mut self,
        poll: &Poll,
        token: Token,
        readable: bool,
        writable: bool,
        stats: &Stats,
        io_stats: &IoStats,
    ) {
        let Some(i) = token.0.checked_sub(self.first_conn) else {
            return;
        };
        let Some(slot) = self.conns.get_mut(i) else {
            return;
        };
        let Some(conn) = slot.as_mut() else {
            return;
        };
        let done = serve(conn, readable, writable, stats, io_stats);
        if done {
            if let Some(mut c) = slot.take() {
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
        let _ = self.token;
    }
}

/// Move one connection along; `true` when it is finished.
fn serve(
    conn: &mut Conn,
    readable: bool,
    writable: bool,
    stats: &Stats,
    io_stats: &IoStats,
) -> bool {
    if conn.response.is_empty() && readable {
        let mut buf = [0u8; 1024];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    conn.request.extend_from_slice(&buf[..n]);
                    if conn.request.len() >= MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        let complete = conn.request.windows(4).any(|w| w == b"\r\n\r\n")
            || conn.request.windows(2).any(|w| w == b"\n\n")
            || conn.request.len() >= MAX_REQUEST;
        if complete {
            conn.response = response(&conn.request, stats, io_stats);
        }
    }
    if !conn.response.is_empty() && (writable || readable) {
        loop {
            match conn.stream.write(&conn.response[conn.written..]) {
                Ok(n) => {
                    conn.written += n;
                    if conn.written == conn.response.len() {
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
    false
}

fn response(request: &[u8], stats: &Stats, io_stats: &IoStats) -> Vec<u8> {
    let path_ok = request.starts_with(b"GET /metrics ") || request.starts_with(b"GET / ");
    if !path_ok {
        return b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\ntry /metrics\n"
            .to_vec();
    }
    let body = render(stats, io_stats);
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The counters in Prometheus's text format.
pub(crate) fn render(stats: &Stats, io_stats: &IoStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(4096);
    stats.for_each(|name, value| {
        let kind = match name {
            "occupancy" | "capacity" | "subscribers" => "gauge",
            _ => "counter",
        };
        let _ = writeln!(out, "# TYPE parley_{name} {kind}\nparley_{name} {value}");
    });
    for (name, value) in [
        ("drop_oversized", io_stats.drop_oversized),
        ("send_failed", io_stats.send_failed),
        ("send_blocked", io_stats.send_blocked),
    ] {
        let _ = writeln!(out, "# TYPE parley_{name} counter\nparley_{name} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_in_prometheus_text() {
        let s = Stats {
            datagrams_in: 5,
            capacity: 1024,
            ..Stats::default()
        };
        let text = render(&s, &IoStats::default());
        assert!(text.contains("# TYPE parley_datagrams_in counter\nparley_datagrams_in 5\n"));
        assert!(text.contains("# TYPE parley_capacity gauge\nparley_capacity 1024\n"));
        assert!(text.contains("parley_drop_oversized 0"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').unwrap();
            assert!(name.starts_with("parley_"));
            value.parse::<u64>().unwrap();
        }
    }
}
