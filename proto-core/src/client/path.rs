//! Peers and the paths to them: the peer table, asking the server where a
//! peer is (`INTRO`/`LOOKUP`, and the `PUNCH` it sends the other side),
//! handshaking with every candidate address until one answers (the Noise
//! initiation is the probe, see `tunnel`), and the guess that a peer that
//! never answers, and has no key, runs the seed's client.

use core::net::SocketAddr;

use heapless::Vec;

use crate::secure::PublicKey;
use crate::time::{Instant, Millis};
use crate::wire::{Id, IdBuf};

use super::Client;
use super::chat::{OutState, Window};
use super::event::Undelivered;
use super::relay::RelayLink;
use super::request::Req;
use super::tunnel::{Initiating, Link};

/// How a datagram came, or is to go: straight between the peers, or
/// inside the server's relay session with that peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Via {
    Direct(SocketAddr),
    /// The relay session on this channel.
    Relay(u64),
}

/// The path chat with a peer takes, for the application (`/path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Straight to one of the local addresses the peer announced (both
    /// hosts on one network).
    Lan(SocketAddr),
    /// Straight to this address, proven both ways.
    Direct(SocketAddr),
    /// Through the server's relay (the server sees only ciphertext).
    Relayed,
    /// Straight to this address, not yet proven both ways (the relay, if
    /// any, carries copies meanwhile).
    Trying(SocketAddr),
}

impl core::fmt::Display for Route {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Route::Lan(a) => write!(f, "LAN ({a})"),
            Route::Direct(a) => write!(f, "direct ({a})"),
            Route::Relayed => f.write_str("relayed"),
            Route::Trying(a) => write!(f, "direct, unconfirmed ({a})"),
        }
    }
}

impl Route {
    /// One word for scripts: `lan`, `direct` or `relayed`.
    pub fn word(&self) -> &'static str {
        match self {
            Route::Lan(_) => "lan",
            Route::Direct(_) | Route::Trying(_) => "direct",
            Route::Relayed => "relayed",
        }
    }
}

/// A peer the server placed this recently is not asked about again
/// (unless its path goes silent).
pub(super) const RESOLVE_AGAIN: Millis = Millis(10_000);
/// A conversation counts as live this long after its last chat text: its
/// direct path is kept open meanwhile, and let go after.
pub(super) const TALK_LASTS: Millis = Millis(120_000);
/// How long a keyless peer that never answered a handshake is taken for a
/// seed client.
const SEED_GUESS_FOR: Millis = Millis(60_000);
/// The datagrams that set off a hole punch go this many times, back to
/// back: the introduction (its `AT` and `PUNCH` start both sides at
/// once) and the first initiation to each candidate (it opens our NAT
/// before the peer's arrives). One side punching alone because a single
/// datagram was lost lets its probe reach the other NAT first, and a
/// Linux NAT then maps the other side's answer to a new port, spoiling
/// the path for as long as the NAT remembers it.
pub(super) const PUNCH_COPIES: usize = 3;
/// Candidate addresses tried for one peer.
pub(super) const MAX_CANDIDATES: usize = 6;

/// Which client a peer runs, as far as we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Not heard from yet.
    Unknown,
    /// Answered a handshake: a session carries its chat.
    Parley,
    /// The seed's client: gets `Message <text>`.
    Seed,
}

/// Handshaking with a peer's candidate addresses (the probe).
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub(super) sent: u8,
    pub(super) next: Instant,
    pub(super) started: Instant,
}

/// What we know of one peer.
pub(super) struct Peer {
    pub(super) id: IdBuf,
    pub(super) kind: Kind,
    /// The direct address an authenticated datagram last came from.
    pub(super) path: Option<SocketAddr>,
    /// A round trip over `path` is proven (an answer to our handshake or
    /// probe came back from it): the relay, if any, is no longer used.
    pub(super) confirmed: bool,
    /// The peer's local addresses, as it announced them (LAN paths).
    pub(super) lan: Vec<SocketAddr, { crate::wire::MAX_LOCAL }>,
    /// Where the server last said it sees the peer.
    pub(super) seen: Option<SocketAddr>,
    /// The relay session with the peer.
    pub(super) relay: RelayLink,
    /// When we began wanting to reach the peer (see `relay`).
    pub(super) want: Option<Instant>,
    pub(super) cands: Vec<SocketAddr, MAX_CANDIDATES>,
    pub(super) probe: Option<Probe>,
    pub(super) resolving: bool,
    /// When probes last went unanswered and the peer was taken for a seed
    /// client (`None` if it never was, or [`Client::mark_seed`] said so).
    pub(super) assumed_seed: Option<Instant>,
    /// When the server last said where the peer is.
    pub(super) resolved: Option<Instant>,
    pub(super) srtt: Option<u64>,
    pub(super) rx: Window,
    pub(super) used: Instant,
    /// When chat text last went to or came from the peer: its direct path
    /// is kept open for [`TALK_LASTS`] after.
    pub(super) talked: Option<Instant>,
    /// When the direct path is next due a keepalive (nothing sent on it
    /// since [`super::Config::path_keepalive`] before).
    pub(super) keep_path: Option<Instant>,
    /// The server says the peer runs Parley (with a key or without):
    /// it never gets plain text.
    pub(super) extended: bool,
    /// The key the server reports for the peer.
    pub(super) server_key: Option<PublicKey>,
    /// Our handshake in flight.
    pub(super) hs: Option<Initiating>,
    /// The session we send on, and the one before it (kept to open
    /// datagrams still in flight).
    pub(super) cur: Option<Link>,
    pub(super) prev: Option<Link>,
    /// The last initiation (session, counter) taken from the peer: one
    /// not newer within the same session is a replay.
    pub(super) last_hello: Option<(u64, u64)>,
    /// A key offered other than the pinned one: nothing goes to the peer
    /// until the application accepts it.
    pub(super) held: Option<PublicKey>,
}

impl Client {
    pub(super) fn find_peer(&self, id: &IdBuf) -> Option<usize> {
        self.peers.iter().position(|p| p.id == *id)
    }

    /// The peer entry for `id`, made (evicting the least recently used
    /// idle one if the table is full) if needed.
    pub(super) fn peer_index(&mut self, now: Instant, id: Id<'_>) -> Option<usize> {
        let b = IdBuf::from_id(id);
        if let Some(i) = self.find_peer(&b) {
            return Some(i);
        }
        let peer = Peer {
            id: b,
            kind: Kind::Unknown,
            path: None,
            confirmed: false,
            lan: Vec::new(),
            seen: None,
            relay: RelayLink::new(now),
            want: None,
            cands: Vec::new(),
            probe: None,
            resolving: false,
            assumed_seed: None,
            resolved: None,
            srtt: None,
            rx: Window::default(),
            used: now,
            talked: None,
            keep_path: None,
            extended: false,
            server_key: None,
            hs: None,
            cur: None,
            prev: None,
            last_hello: None,
            held: None,
        };
        if self.peers.is_full() {
            let busy = |p: &Peer| self.outs.iter().any(|o| o.to == p.id);
            let victim = self
                .peers
                .iter()
                .enumerate()
                .filter(|(_, p)| !busy(p))
                .min_by_key(|(_, p)| p.used)
                .map(|(i, _)| i)?;
            self.peers.swap_remove(victim);
        }
        self.peers.push(peer).ok()?;
        Some(self.peers.len() - 1)
    }

    /// Whether the direct path `a` to peer `p` is a LAN path: an address
    /// the peer announced, or, before its announcement arrives (the LAN
    /// answers first), one on the network of one of our own local
    /// addresses (the same /24, or /64) at another address than the
    /// server sees the peer at.
    pub(super) fn is_lan(&self, p: usize, a: SocketAddr) -> bool {
        let peer = &self.peers[p];
        if peer.lan.contains(&a) {
            return true;
        }
        let elsewhere = peer.seen.is_some_and(|s| s.ip() != a.ip());
        elsewhere
            && self
                .cfg
                .local
                .as_slice()
                .iter()
                .any(|l| same_network(l.ip(), a.ip()))
    }

    /// What the server says of where peer `p` is: a candidate, and the
    /// address a LAN path is told apart from.
    pub(super) fn server_sees(&mut self, p: usize, addr: SocketAddr) {
        self.peers[p].seen = Some(addr);
        self.add_candidate(p, addr);
    }

    pub(super) fn add_candidate(&mut self, p: usize, addr: SocketAddr) {
        let c = &mut self.peers[p].cands;
        if !c.contains(&addr) {
            if c.is_full() {
                c.remove(0);
            }
            let _ = c.push(addr);
        }
    }

    /// Ask the server where `peer` is, unless that is under way.
    pub(super) fn resolve(&mut self, now: Instant, peer: IdBuf) {
        if let Some(i) = self.find_peer(&peer) {
            if self.peers[i].resolving {
                return;
            }
            self.peers[i].resolving = true;
        }
        self.request(
            now,
            Req::Resolve {
                peer,
                plain: false,
                intro: false,
            },
        );
    }

    /// Move the messages queued for peer `p` along: resolve, handshake or send.
    pub(super) fn drive_peer(&mut self, now: Instant, p: usize) {
        let id = self.peers[p].id;
        if !self.outs.iter().any(|o| o.to == id) || self.peers[p].held.is_some() {
            return;
        }
        // A guess that a silent peer runs the seed's client is tried again
        // after a while: it may have been a Parley client out of reach.
        let peer = &mut self.peers[p];
        if peer
            .assumed_seed
            .is_some_and(|t| now.since(t) >= SEED_GUESS_FOR.0)
        {
            peer.kind = Kind::Unknown;
            peer.assumed_seed = None;
            peer.path = None;
        }
        if self.peers[p].kind == Kind::Seed && !self.keyed(p) {
            match self.peers[p].path.or(self.peers[p].cands.first().copied()) {
                Some(addr) => {
                    self.peers[p].path = Some(addr);
                    self.send_seed(p, addr);
                }
                None => self.resolve(now, id),
            }
            return;
        }
        if self.has_session(now, p) {
            for i in 0..self.outs.len() {
                if self.outs[i].to == id && self.outs[i].state == OutState::Waiting {
                    self.send_fragments(now, i);
                }
            }
            return;
        }
        // Ask the server even when a PUNCH already named an address: it
        // may be stale, and handshaking with every candidate finds
        // whichever answers first.
        let asked_lately = self.peers[p]
            .resolved
            .is_some_and(|t| now.since(t) < RESOLVE_AGAIN.0);
        if !self.peers[p].resolving && self.peers[p].path.is_none() && !asked_lately {
            self.resolve(now, id);
        }
        self.want(now, p);
        if (!self.peers[p].cands.is_empty() || self.peers[p].relay.ready())
            && self.peers[p].probe.is_none()
        {
            self.start_handshake(now, p);
        }
    }

    /// Whether peer `p` is known to hold a key (pinned, or reported by the
    /// server): such a peer is never sent plain text.
    pub(super) fn keyed(&self, p: usize) -> bool {
        let id = self.peers[p].id;
        self.peers[p].server_key.is_some()
            || self.peers[p].extended
            || self.peers[p].cur.is_some()
            || self.pins.iter().any(|(i, _)| *i == id)
    }

    /// Nobody answered at any candidate: a seed client (or gone). Messages
    /// waiting for it go as seed `Message`s.
    fn probes_unanswered(&mut self, now: Instant, p: usize) {
        // A new handshake on a live session (a rekey) went unanswered:
        // the session still carries chat, and chat's own timers decide.
        if self.has_session(now, p) {
            return;
        }
        let id = self.peers[p].id;
        self.peers[p].hs = None;
        if !self.outs.iter().any(|o| o.to == id) {
            return;
        }
        // A relay on its way starts the handshake again when it is ready;
        // through a relay just made, the peer may not be listening yet.
        let relay = &self.peers[p].relay;
        let held = self.peers[p].held.is_some();
        if !held && !relay.ready() && self.relay_pending(p) {
            return;
        }
        if !held && self.relay_young(now, p) {
            self.start_handshake(now, p);
            return;
        }
        self.unreachable(now, p);
    }

    /// Neither probes nor the relay reached peer `p`: messages waiting
    /// for a Parley peer fail; a peer nobody said runs Parley is taken
    /// for a seed client.
    pub(super) fn unreachable(&mut self, now: Instant, p: usize) {
        let id = self.peers[p].id;
        if self.keyed(p) {
            // A Parley peer (a key, or the server says so) is never
            // downgraded to plain text.
            self.fail_outgoing(&id, Undelivered::NoAnswer);
            return;
        }
        self.peers[p].kind = Kind::Seed;
        self.peers[p].assumed_seed = Some(now);
        self.drive_peer(now, p);
    }

    /// Send the handshakes that are due again; a peer that answered none
    /// is taken for a seed client (unless it has a key).
    pub(super) fn probes_due(&mut self, now: Instant) {
        for p in 0..self.peers.len() {
            let Some(pr) = self.peers[p].probe else {
                continue;
            };
            if pr.next > now {
                continue;
            }
            if pr.sent >= self.cfg.probe_attempts {
                self.peers[p].probe = None;
                self.probes_unanswered(now, p);
            } else {
                self.send_initiation(now, p);
            }
        }
    }

    /// Whether the conversation with peer `p` is live (see [`TALK_LASTS`]).
    fn talking(&self, now: Instant, p: usize) -> bool {
        self.peers[p]
            .talked
            .is_some_and(|t| now.since(t) < TALK_LASTS.0)
    }

    /// A datagram went to peer `p` straight on its path: while the
    /// conversation is live, the next path keepalive is due an interval
    /// from now.
    pub(super) fn path_used(&mut self, now: Instant, p: usize) {
        let due = self.talking(now, p) && self.peers[p].path.is_some();
        self.peers[p].keep_path = due.then(|| now + self.cfg.path_keepalive);
    }

    /// Probe the direct paths that carried nothing for a keepalive
    /// interval; the `PROBED` answer keeps the way back open too.
    pub(super) fn paths_due(&mut self, now: Instant) {
        for p in 0..self.peers.len() {
            if self.peers[p].keep_path.is_none_or(|k| k > now) {
                continue;
            }
            self.peers[p].keep_path = None;
            if let (true, true, Some(a)) = (
                self.talking(now, p),
                self.peers[p].confirmed,
                self.peers[p].path,
            ) {
                self.ping_direct(now, p, a);
            }
        }
    }
}

/// The same /24 (IPv4) or /64 (IPv6): what a home network usually is.
fn same_network(x: core::net::IpAddr, y: core::net::IpAddr) -> bool {
    use core::net::IpAddr::{V4, V6};
    match (x, y) {
        (V4(x), V4(y)) => x.octets()[..3] == y.octets()[..3],
        (V6(x), V6(y)) => x.octets()[..8] == y.octets()[..8],
        _ => false,
    }
}
