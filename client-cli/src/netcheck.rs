//! `parley netcheck [PORT2]`: what the network between this host and the
//! server does to UDP, found with STUN Binding requests (like `tailscale
//! netcheck`).
//!
//! It asks the server's port and, given PORT2 (the server's
//! `--stun-port2`), a second port of the same server, all from one socket,
//! and reports the public address, whether a NAT is in the way, whether it
//! keeps one mapping for every destination (endpoint-independent, which
//! hole punching needs) or makes one per destination (endpoint-dependent,
//! "symmetric", which needs a relay against another such NAT), and the
//! round trip. It says what STUN to one server cannot tell.

use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use proto_core::wire::stun::{BindingRequest, BindingSuccess, TransactionId};

use crate::{Common, Fail};

/// Each destination gets this many tries...
const TRIES: u32 = 8;
/// ...this far apart at first, doubling up to [`MAX_WAIT`]: on a link that
/// loses a fifth each way, 8 tries all fail 3 times in 10000.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(1);

/// What one destination answered.
struct Answer {
    mapped: SocketAddr,
    rtt: Duration,
}

/// Ask `to` for our mapped address: up to [`TRIES`] requests, each with
/// its own transaction id; the first answer to any of them counts, its
/// round trip measured from the request it answers.
fn ask(sock: &UdpSocket, to: SocketAddr, deadline: Instant) -> Result<Option<Answer>, Fail> {
    let mut sent: Vec<(TransactionId, Instant)> = Vec::new();
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 2048];
    for _ in 0..TRIES {
        let tx = transaction_id()?;
        let mut req = [0u8; 20];
        let n = BindingRequest { transaction: tx }
            .emit(&mut req)
            .map_err(|e| Fail::run(e.to_string()))?;
        sent.push((tx, Instant::now()));
        sock.send_to(&req[..n], to)
            .map_err(|e| Fail::run(format!("cannot send to {to}: {e}")))?;
        let until = (Instant::now() + wait).min(deadline);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| Fail::run(e.to_string()))?;
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if from != to {
                continue;
            }
            let Ok(r) = BindingSuccess::parse(&buf[..n]) else {
                continue;
            };
            if let Some((_, at)) = sent.iter().find(|(t, _)| *t == r.transaction) {
                return Ok(Some(Answer {
                    mapped: r.mapped,
                    rtt: at.elapsed(),
                }));
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
    Ok(None)
}

fn transaction_id() -> Result<TransactionId, Fail> {
    let mut t = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut t))
        .map_err(|e| Fail::run(format!("no randomness for a STUN transaction id: {e}")))?;
    Ok(t)
}

/// The address this host sends to `server` from: the routing table's
/// choice, learned by connecting a socket (nothing is sent).
fn local_ip(server: SocketAddr) -> Option<IpAddr> {
    let any = if server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(server).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// How the NAT maps, as far as two ports of one server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// No NAT: the server sees our own address.
    None,
    /// One public address for both destinations.
    EndpointIndependent,
    /// A different public address per destination ("symmetric").
    EndpointDependent,
    /// Only one port answered (or none was given): cannot say.
    Unknown,
}

impl Mapping {
    fn as_str(self) -> &'static str {
        match self {
            Mapping::None => "none",
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::EndpointDependent => "endpoint-dependent",
            Mapping::Unknown => "unknown",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Mapping::None => "no NAT: the server sees this host's own address",
            Mapping::EndpointIndependent => {
                "one public address for every destination: peers can punch through to it"
            }
            Mapping::EndpointDependent => {
                "a new public port for each destination (\"symmetric\"): a peer behind another such NAT needs a relay"
            }
            Mapping::Unknown => {
                "unknown: ask a second server port (parley netcheck PORT2, the server's --stun-port2)"
            }
        }
    }
}

/// Judge the mapping from the local address and the two answers.
fn judge(local: Option<SocketAddr>, first: SocketAddr, second: Option<SocketAddr>) -> Mapping {
    match second {
        _ if local == Some(first) => Mapping::None,
        Some(s) if s == first => Mapping::EndpointIndependent,
        Some(_) => Mapping::EndpointDependent,
        None => Mapping::Unknown,
    }
}

/// Run the check and print the report (`json`: one JSON object).
pub fn run(c: Common, rest: &[String], json: bool) -> Result<(), Fail> {
    let port2 = match rest {
        [] => None,
        [p] => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            Fail::usage(format!(
                "bad PORT2 {p:?}: want the server's second STUN port, 1 to 65535"
            ))
        })?),
        _ => return Err(Fail::usage("netcheck takes at most one argument, PORT2")),
    };
    let bind = c.bind.unwrap_or(if c.server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    });
    let sock = UdpSocket::bind(bind).map_err(|e| Fail::run(format!("cannot bind {bind}: {e}")))?;
    let port = sock
        .local_addr()
        .map_err(|e| Fail::run(e.to_string()))?
        .port();
    let local = match bind.ip() {
        ip if !ip.is_unspecified() => Some(SocketAddr::new(ip, port)),
        _ => local_ip(c.server).map(|ip| SocketAddr::new(ip, port)),
    };
    let deadline = Instant::now() + c.timeout.min(Duration::from_secs(20));
    let first = ask(&sock, c.server, deadline)?.ok_or_else(|| {
        Fail::run(format!(
            "no STUN answer from {} (is it a parley-server, and is UDP let through?)",
            c.server_text
        ))
    })?;
    let second_to = port2.map(|p| SocketAddr::new(c.server.ip(), p));
    let second = match second_to {
        Some(to) => ask(&sock, to, deadline)?,
        None => None,
    };
    let mapping = judge(local, first.mapped, second.as_ref().map(|a| a.mapped));
    let rtt = second
        .as_ref()
        .map_or(first.rtt, |s| s.rtt.min(first.rtt))
        .as_secs_f64()
        * 1000.0;
    let report = Report {
        server: c.server,
        server_text: &c.server_text,
        local,
        public: first.mapped,
        second_to,
        second: second.as_ref().map(|a| a.mapped),
        mapping,
        preserved: local.is_some_and(|l| l.port() == first.mapped.port()),
        rtt,
    };
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// What the check found.
struct Report<'a> {
    server: SocketAddr,
    server_text: &'a str,
    local: Option<SocketAddr>,
    public: SocketAddr,
    /// The server's second port, if asked, and what it saw.
    second_to: Option<SocketAddr>,
    second: Option<SocketAddr>,
    mapping: Mapping,
    preserved: bool,
    /// Milliseconds.
    rtt: f64,
}

impl Report<'_> {
    /// One JSON object.
    fn json(&self) -> String {
        let opt = |a: Option<SocketAddr>| a.map_or("null".to_string(), |a| format!("\"{a}\""));
        format!(
            "{{\"server\":\"{}\",\"local\":{},\"public\":\"{}\",\"second\":{},\"nat\":{},\"mapping\":\"{}\",\"port_preserved\":{},\"rtt_ms\":{:.3}}}",
            self.server,
            opt(self.local),
            self.public,
            opt(self.second),
            self.mapping != Mapping::None,
            self.mapping.as_str(),
            self.preserved,
            self.rtt,
        )
    }

    /// Lines for people.
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "server:          {}", self.server_text);
        if let Some(l) = self.local {
            let _ = writeln!(out, "local address:   {l}");
        }
        let _ = writeln!(
            out,
            "public address:  {} (seen by {})",
            self.public, self.server
        );
        match (self.second_to, self.second) {
            (Some(to), Some(a)) => {
                let _ = writeln!(out, "second port:     {a} (seen by {to})");
            }
            (Some(to), None) => {
                let _ = writeln!(out, "second port:     no answer from {to}");
            }
            (None, _) => {}
        }
        let _ = writeln!(out, "mapping:         {}", self.mapping.explain());
        if self.mapping != Mapping::None {
            let _ = writeln!(
                out,
                "port preserved:  {}",
                if self.preserved { "yes" } else { "no" }
            );
        }
        let _ = writeln!(out, "round trip:      {:.3} ms", self.rtt);
        let _ = writeln!(
            out,
            "cannot tell:     whether strangers can reach the mapping (filtering), whether the \
             router loops back to its own public address (hairpinning), how long an idle \
             mapping lives, or a mapping that depends on the destination address only (both \
             ports share one address)"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_mapping_is_judged_from_both_answers() {
        let local = Some(a("198.51.100.18:40000"));
        let pubx = a("203.0.113.11:40000");
        assert_eq!(judge(Some(pubx), pubx, Some(pubx)), Mapping::None);
        assert_eq!(judge(local, pubx, Some(pubx)), Mapping::EndpointIndependent);
        assert_eq!(
            judge(local, pubx, Some(a("203.0.113.11:51234"))),
            Mapping::EndpointDependent
        );
        assert_eq!(judge(local, pubx, None), Mapping::Unknown);
    }
}
