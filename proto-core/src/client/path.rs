//! Peers and the paths to them: the peer table, asking the server where a
//! peer is (`INTRO`/`LOOKUP`, and the `PUNCH` it sends the other side),
//! probing every candidate address until one answers, and the guess that
//! a peer that never answers runs the seed's client.

use core::net::SocketAddr;

use heapless::Vec;

use crate::time::{Instant, Millis};
use crate::wire::peer::PeerMsg;
use crate::wire::{Id, IdBuf};

use super::Client;
use super::chat::{OutState, Window};
use super::request::Req;

/// A peer the server placed this recently is not asked about again
/// (unless its path goes silent).
const RESOLVE_AGAIN: Millis = Millis(10_000);
/// How long a peer that never answered a probe is taken for a seed client.
const SEED_GUESS_FOR: Millis = Millis(60_000);
/// Candidate addresses tried for one peer.
const MAX_CANDIDATES: usize = 4;

/// Which client a peer runs, as far as we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Not heard from yet.
    Unknown,
    /// Answers probes and acknowledges.
    Parley,
    /// The seed's client: gets `Message <text>`.
    Seed,
}

/// Probing a peer's candidate addresses.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub(super) nonce: u64,
    pub(super) sent: u8,
    pub(super) next: Instant,
    pub(super) started: Instant,
}

/// What we know of one peer.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    pub(super) id: IdBuf,
    pub(super) kind: Kind,
    pub(super) path: Option<SocketAddr>,
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
            cands: Vec::new(),
            probe: None,
            resolving: false,
            assumed_seed: None,
            resolved: None,
            srtt: None,
            rx: Window::default(),
            used: now,
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

    /// Move the messages queued for peer `p` along: resolve, probe or send.
    pub(super) fn drive_peer(&mut self, now: Instant, p: usize) {
        let id = self.peers[p].id;
        if !self.outs.iter().any(|o| o.to == id) {
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
        match (self.peers[p].kind, self.peers[p].path) {
            (Kind::Parley, Some(_)) => {
                for i in 0..self.outs.len() {
                    if self.outs[i].to == id && self.outs[i].state == OutState::Waiting {
                        self.send_fragments(now, i);
                    }
                }
            }
            (Kind::Seed, path) => match path.or(self.peers[p].cands.first().copied()) {
                Some(addr) => {
                    self.peers[p].path = Some(addr);
                    self.send_seed(p, addr);
                }
                None => self.resolve(now, id),
            },
            _ => {
                // Ask the server even when a PUNCH already named an
                // address: it may be stale, and probing every candidate
                // finds whichever answers first.
                let asked_lately = self.peers[p]
                    .resolved
                    .is_some_and(|t| now.since(t) < RESOLVE_AGAIN.0);
                if !self.peers[p].resolving && self.peers[p].path.is_none() && !asked_lately {
                    self.resolve(now, id);
                }
                if !self.peers[p].cands.is_empty() && self.peers[p].probe.is_none() {
                    self.start_probe(now, p);
                }
            }
        }
    }

    pub(super) fn start_probe(&mut self, now: Instant, p: usize) {
        self.peers[p].probe = Some(Probe {
            nonce: self.rng.next_u64(),
            sent: 0,
            next: now,
            started: now,
        });
        self.send_probes(now, p);
    }

    fn send_probes(&mut self, now: Instant, p: usize) {
        let Some(me) = self.cfg.id else {
            self.peers[p].probe = None;
            return;
        };
        let Some(mut pr) = self.peers[p].probe else {
            return;
        };
        let cands = self.peers[p].cands.clone();
        if let Some(from) = me.as_id() {
            let msg = PeerMsg::Probe {
                from,
                nonce: pr.nonce,
            };
            for a in cands {
                self.emit(a, |b| msg.emit(b));
            }
        }
        let step = self.cfg.probe_interval.0 << pr.sent.min(3);
        pr.sent += 1;
        pr.next = now + Millis(self.rng.jitter(step.min(1000)));
        self.peers[p].probe = Some(pr);
    }

    /// Nobody answered at any candidate: a seed client (or gone). Messages
    /// waiting for it go as seed `Message`s.
    fn probes_unanswered(&mut self, now: Instant, p: usize) {
        if self.peers[p].kind == Kind::Parley && self.peers[p].path.is_some() {
            return;
        }
        let id = self.peers[p].id;
        if !self.outs.iter().any(|o| o.to == id) {
            return;
        }
        self.peers[p].kind = Kind::Seed;
        self.peers[p].assumed_seed = Some(now);
        self.drive_peer(now, p);
    }

    /// A Parley datagram from `id` came from `src`: that is the path.
    pub(super) fn heard_from(
        &mut self,
        now: Instant,
        id: Id<'_>,
        src: SocketAddr,
    ) -> Option<usize> {
        let p = self.peer_index(now, id)?;
        let peer = &mut self.peers[p];
        peer.used = now;
        peer.kind = Kind::Parley;
        peer.path = Some(src);
        peer.probe = None;
        if !peer.cands.contains(&src) {
            self.add_candidate(p, src);
        }
        self.drive_peer(now, p);
        Some(p)
    }

    /// Send the probes that are due; a peer out of probes is taken for a
    /// seed client.
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
                self.send_probes(now, p);
            }
        }
    }

    /// A peer probes us: answer, and take the address it came from as
    /// the path.
    pub(super) fn on_probe(
        &mut self,
        now: Instant,
        src: SocketAddr,
        me: Id<'_>,
        from: Id<'_>,
        nonce: u64,
    ) {
        if from == me {
            return;
        }
        let reply = PeerMsg::Probed { from: me, nonce };
        self.emit(src, |b| reply.emit(b));
        self.heard_from(now, from, src);
    }

    /// The answer to one of our probes.
    pub(super) fn on_probed(&mut self, now: Instant, src: SocketAddr, from: Id<'_>, nonce: u64) {
        let b = IdBuf::from_id(from);
        let Some(p) = self.find_peer(&b) else { return };
        let Some(pr) = self.peers[p].probe else {
            return;
        };
        if pr.nonce != nonce {
            return;
        }
        if pr.sent == 1 {
            self.peers[p].srtt = Some(now.since(pr.started));
        }
        self.heard_from(now, from, src);
    }
}
