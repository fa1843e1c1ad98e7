//! The socket and the clock around the sans-IO [`Client`]: a std UDP
//! socket with a read timeout set to the client's next deadline.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use proto_core::Instant;
use proto_core::client::{Client, Config, Event};
use proto_core::secure::PublicKey;
use proto_core::wire::Id;

use crate::identity::Identity;
use crate::known_peers::KnownPeers;

/// A client session on a real socket.
pub struct Session {
    /// `PARLEY_TRACE` set: every datagram, in and out, on stderr (the
    /// NAT lab shows it for a try that missed).
    trace: bool,
    sock: UdpSocket,
    client: Box<Client>,
    epoch: StdInstant,
    buf: Box<[u8; 2048]>,
}

/// 32 bytes from the operating system's random source, for the client's
/// session number, nonces, transaction ids and jitter.
fn entropy() -> io::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out)
        .map_err(|e| io::Error::other(format!("the operating system gave no random bytes: {e}")))?;
    Ok(out)
}

/// `--no-local`: announce no local address (peers then reach us only at
/// the address the server sees, or through the relay), so that peers do
/// not learn the host's address on its LAN. Set once, at startup.
pub static NO_LOCAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// This host's address toward `server` with `sock`'s port: the local
/// (host) candidate a peer on the same network reaches us at. The kernel
/// picks the source address for a connected socket; nothing is sent.
fn host_candidate(sock: &UdpSocket, server: SocketAddr) -> Option<SocketAddr> {
    let port = sock.local_addr().ok()?.port();
    let bound = sock.local_addr().ok()?.ip();
    let ip = if bound.is_unspecified() {
        let any: SocketAddr = match server {
            SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            SocketAddr::V6(_) => ([0u16; 8], 0).into(),
        };
        let probe = UdpSocket::bind(any).ok()?;
        probe.connect(server).ok()?;
        probe.local_addr().ok()?.ip()
    } else {
        bound
    };
    (!ip.is_unspecified()).then_some(SocketAddr::new(ip, port))
}

impl Session {
    /// Bind a socket (on `bind`, or an ephemeral port of the server's
    /// family) and start a client with `cfg`, as `me` (with the peers'
    /// keys in `known` pinned), or with a throwaway key for commands that
    /// only ask the server.
    pub fn open(
        mut cfg: Config,
        bind: Option<SocketAddr>,
        me: Option<(&Identity, &KnownPeers)>,
    ) -> io::Result<Session> {
        let local = bind.unwrap_or_else(|| match cfg.server {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        });
        let sock = UdpSocket::bind(local)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {local}: {e}")))?;
        if cfg.local.is_empty() && !NO_LOCAL.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(a) = host_candidate(&sock, cfg.server) {
                cfg.local = proto_core::wire::Locals::new(&[a]);
            }
        }
        let epoch = StdInstant::now();
        let throwaway;
        let ident = match me {
            Some((i, _)) => i,
            None => {
                throwaway = Identity::generate().map_err(|e| io::Error::other(e.to_string()))?;
                &throwaway
            }
        };
        let mut client = Box::new(Client::new(cfg, Instant(0), entropy()?, ident.keypair()));
        for (id, key) in me.map(|(_, k)| k.iter()).into_iter().flatten() {
            // The file's ids were checked when it was read.
            let Ok(id) = Id::new(id) else { continue };
            client.pin(id, PublicKey(*key)).map_err(|e| {
                io::Error::other(format!(
                    "cannot load the known peers ({} of them; at most {}): {e}",
                    me.map_or(0, |(_, k)| k.len()),
                    proto_core::client::MAX_PINS
                ))
            })?;
        }
        let mut s = Session {
            trace: std::env::var_os("PARLEY_TRACE").is_some_and(|v| !v.is_empty()),
            sock,
            client,
            epoch,
            buf: Box::new([0; 2048]),
        };
        s.flush();
        Ok(s)
    }

    fn show(&self, dir: &str, peer: SocketAddr, d: &[u8], failed: bool) {
        let head: String = match d.first() {
            Some(0xB7) => format!("[frame {}]", d.len()),
            Some(0xF9) => "[resp]".into(),
            Some(0xFA) => format!("[data {}]", d.len()),
            Some(0xFB) => "[confirm]".into(),
            _ => String::from_utf8_lossy(&d[..d.len().min(48)]).into_owned(),
        };
        eprintln!(
            "trace {:>6} {dir} {peer} {head}{}",
            self.now().0,
            if failed { " (send failed)" } else { "" }
        );
    }

    /// Now, on the client's clock.
    pub fn now(&self) -> Instant {
        Instant(self.epoch.elapsed().as_millis() as u64)
    }

    /// The client, for commands and events.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Run a command that takes the time, then send what it queued.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Client, Instant) -> R) -> R {
        let now = self.now();
        let r = f(&mut self.client, now);
        self.flush();
        r
    }

    /// Send every queued datagram. A datagram the kernel refuses is as
    /// good as lost; the client's timers deal with that.
    pub fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let r = self.sock.send_to(&t.payload, t.dst);
            if self.trace {
                self.show(">", t.dst, &t.payload, r.is_err());
            }
        }
    }

    /// Wait for a datagram or the client's next deadline, at most `max`,
    /// and handle whatever happened.
    pub fn step(&mut self, max: Duration) {
        let now = self.now();
        let wait = match self.client.poll_timeout() {
            Some(t) => Duration::from_millis(t.since(now)).min(max),
            None => max,
        };
        if wait.is_zero() {
            self.client.handle_timeout(now);
        } else {
            let _ = self.sock.set_read_timeout(Some(wait));
            if let Ok((n, src)) = self.sock.recv_from(&mut self.buf[..]) {
                let now = self.now();
                if self.trace {
                    self.show("<", src, &self.buf[..n], false);
                }
                self.client.handle(now, src, &self.buf[..n]);
                // Take whatever else is already there without waiting.
                let _ = self.sock.set_nonblocking(true);
                for _ in 0..64 {
                    match self.sock.recv_from(&mut self.buf[..]) {
                        Ok((n, src)) => {
                            if self.trace {
                                self.show("<", src, &self.buf[..n], false);
                            }
                            self.client.handle(now, src, &self.buf[..n])
                        }
                        Err(_) => break,
                    }
                }
                let _ = self.sock.set_nonblocking(false);
            }
            let now = self.now();
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// Run the session until `f` makes something of an event, for at most
    /// `limit`; `None` if nothing came of it in time.
    pub fn wait<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&Event<'_>) -> Option<T>,
    ) -> Option<T> {
        let deadline = StdInstant::now() + limit;
        loop {
            while let Some(e) = self.client.poll_event() {
                if let Some(r) = f(&e) {
                    return Some(r);
                }
            }
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return None;
            }
            self.step(left.min(WAIT_STEP));
        }
    }

    /// Sign off: QUIT and wait briefly for BYE (the lease would expire
    /// anyway, so a lost BYE is no failure).
    pub fn sign_off(&mut self) {
        if self.with(|c, now| c.quit(now)).is_ok() {
            self.wait(Duration::from_secs(2), |e| {
                matches!(e, Event::Bye | Event::Failed { .. }).then_some(())
            });
        }
    }
}

/// The longest one step of [`Session::wait`] blocks, so that its deadline
/// is kept to within this.
const WAIT_STEP: Duration = Duration::from_millis(200);
