//! What the server's answers do, and what its refusals or silence do to
//! the request they were about.

use heapless::Vec;

use crate::time::{Instant, Millis};
use crate::wire::reply::Change;
use crate::wire::{ErrorCode, IdBuf, PeerKind, Reply};

use super::event::{Failure, Rec, Undelivered, What};
use super::path::Kind;
use super::registration::RegState;
use super::request::{Pending, Req};
use super::{Client, MAX_REQUESTS};

impl Client {
    pub(super) fn on_reply(&mut self, now: Instant, reply: Reply<'_>) {
        match reply {
            Reply::Punch {
                id,
                addr,
                kind,
                local,
            } => {
                self.server_answered();
                if self.cfg.id.is_some_and(|me| me.eq_id(id)) {
                    return;
                }
                if let Some(p) = self.peer_index(now, id) {
                    self.learn_kind(p, kind);
                    self.add_candidate(p, addr);
                    // Its local addresses: a LAN path if we share a network.
                    // (One that is the address the server sees is no LAN.)
                    for a in local.as_slice().iter().filter(|a| **a != addr) {
                        if !self.peers[p].lan.contains(a) {
                            let _ = self.peers[p].lan.push(*a);
                        }
                        self.add_candidate(p, *a);
                    }
                    // Tell it ours the same way (an INTRO of our own, which
                    // reaches it as a PUNCH), unless we asked lately: two
                    // introductions, and no loop.
                    let asked = self.peers[p].resolving
                        || self.peers[p]
                            .resolved
                            .is_some_and(|t| now.since(t) < super::path::RESOLVE_AGAIN.0);
                    if !self.cfg.local.is_empty()
                        && !asked
                        && self.peers[p].kind != Kind::Seed
                        && !self.has_session(now, p)
                    {
                        self.resolve(now, self.peers[p].id);
                    }
                    if self.peers[p].kind != Kind::Seed {
                        self.want(now, p);
                    }
                    // The peer wants to talk: open our side of the path
                    // (the initiation is the hole punch) unless a session
                    // already exists.
                    if self.peers[p].kind != Kind::Seed && !self.has_session(now, p) {
                        self.start_handshake(now, p);
                    }
                }
                return;
            }
            Reply::Events {
                first,
                last,
                changes,
            } => {
                if self
                    .presence_seq
                    .is_some_and(|s| last.wrapping_sub(s) as i32 <= 0)
                {
                    return;
                }
                // EVENTS are never repeated: a first number that does not
                // follow the last one seen means a datagram was lost.
                if self
                    .presence_seq
                    .is_some_and(|s| first.wrapping_sub(s) as i32 > 1)
                {
                    self.push_event(Rec::Resync);
                }
                self.presence_seq = Some(last);
                for c in changes.iter() {
                    let (id, join) = match c {
                        Change::Join(id) => (id, true),
                        Change::Leave(id) => (id, false),
                    };
                    if self.cfg.id.is_some_and(|me| me.eq_id(id)) {
                        continue;
                    }
                    let b = IdBuf::from_id(id);
                    self.push_event(if join { Rec::Joined(b) } else { Rec::Left(b) });
                }
                return;
            }
            Reply::Resync { seq } => {
                self.presence_seq = Some(seq);
                self.push_event(Rec::Resync);
                return;
            }
            _ => {}
        }
        let tx = match reply {
            Reply::Cookie { tx, .. }
            | Reply::Registered { tx, .. }
            | Reply::Alive { tx, .. }
            | Reply::At { tx, .. }
            | Reply::Page { tx, .. }
            | Reply::Subscribed { tx, .. }
            | Reply::Unsubscribed { tx }
            | Reply::Bye { tx, .. }
            | Reply::Stats { tx, .. } => tx,
            Reply::Error { tx: Some(tx), .. } => tx,
            _ => return,
        };
        // A page arriving while the last one is still being read, or while
        // the event queue has no room for it, is left unanswered: the
        // retransmission asks again.
        if matches!(reply, Reply::Page { .. }) && (self.page_busy || !self.event_room()) {
            return;
        }
        let Some(p) = self.take_pending(tx) else {
            return;
        };
        self.server_answered();
        match (p.req, reply) {
            (Req::Hello { ping }, Reply::Cookie { cookie, addr, .. }) => {
                self.cookie = Some((cookie, now));
                self.observed = Some(addr);
                if ping {
                    self.push_event(Rec::Pong {
                        addr,
                        rtt: Millis(now.since(p.first)),
                    });
                }
            }
            (
                Req::Register,
                Reply::Registered {
                    lease, addr, token, ..
                },
            ) => {
                let again = matches!(self.reg, RegState::Registering { again: true });
                self.reg = RegState::Registered { token };
                self.token = Some(token);
                self.lease = Some(lease);
                self.observed = Some(addr);
                self.schedule_keepalive(now);
                self.push_event(Rec::Registered { addr, lease, again });
                if self.cfg.subscribe {
                    self.request(now, Req::Subscribe);
                }
            }
            (Req::Keep, Reply::Alive { lease, addr, .. }) => {
                self.lease = Some(lease);
                self.observed = Some(addr);
                self.schedule_keepalive(now);
            }
            (Req::Subscribe, Reply::Subscribed { seq, .. }) => {
                self.presence_seq = Some(seq);
            }
            (Req::Quit, Reply::Bye { .. }) => {
                self.token = None;
                self.push_event(Rec::Bye);
            }
            (Req::Resolve { peer, .. }, Reply::At { id, addr, kind, .. }) if peer.eq_id(id) => {
                if let Some(i) = self.find_peer(&peer) {
                    self.learn_kind(i, kind);
                    self.peers[i].resolving = false;
                    self.peers[i].resolved = Some(now);
                    self.add_candidate(i, addr);
                    let moved = self.peers[i].path.is_some_and(|p| p != addr);
                    if moved && self.peers[i].kind != Kind::Seed {
                        // The peer may have moved: find out which address
                        // answers (the path itself moves only on an
                        // authenticated datagram).
                        self.start_handshake(now, i);
                    }
                    self.drive_peer(now, i);
                }
            }
            (Req::Lookup(want), Reply::At { id, addr, .. }) if want.eq_id(id) => {
                self.push_event(Rec::Found { id: want, addr });
            }
            (Req::List(_), Reply::Page { next, ids, .. }) => {
                self.page.clear();
                let _ = self.page.push_str(ids.as_str());
                self.page_busy = true;
                self.push_event(Rec::Page { next });
            }
            (req, Reply::Error { code, .. }) => self.on_error(now, p, req, code),
            _ => {}
        }
    }

    /// What the server says peer `p` runs: a key (never sent plain text
    /// after this), the seed's client (sent `Message` lines at once), or
    /// an extended client without a key (handshakes tried, and the seed
    /// guessed only if none is answered).
    fn learn_kind(&mut self, p: usize, kind: PeerKind) {
        let peer = &mut self.peers[p];
        match kind {
            PeerKind::Key(k) => {
                peer.server_key = Some(k);
                peer.extended = true;
                if peer.kind == Kind::Seed {
                    peer.kind = Kind::Unknown;
                    peer.assumed_seed = None;
                    peer.path = None;
                }
            }
            PeerKind::Seed => {
                peer.server_key = None;
                peer.extended = false;
                if !self.keyed(p) {
                    let peer = &mut self.peers[p];
                    peer.kind = Kind::Seed;
                    peer.assumed_seed = None;
                    peer.probe = None;
                    peer.hs = None;
                }
            }
            PeerKind::Keyless => {
                peer.server_key = None;
                peer.extended = true;
                if peer.kind == Kind::Seed {
                    peer.kind = Kind::Unknown;
                    peer.assumed_seed = None;
                    peer.path = None;
                }
            }
        }
    }

    fn on_error(&mut self, now: Instant, p: Pending, req: Req, code: ErrorCode) {
        match (req, code) {
            (_, ErrorCode::BadCookie) => {
                // The server restarted or the cookie aged out: fetch a new
                // one, then send the request again (a bounded number of times).
                self.cookie = None;
                if p.attempts < self.cfg.request_attempts
                    && self.pending.push(Pending { next: None, ..p }).is_ok()
                {
                    return;
                }
                self.request_failed(now, req, Failure::Server(code));
            }
            (_, ErrorCode::RateLimited) if p.attempts < self.cfg.request_attempts => {
                let mut p = p;
                p.next = Some(now + Millis(p.rto));
                let _ = self.pending.push(p);
            }
            (Req::Keep, ErrorCode::NoSuchId | ErrorCode::NotOwner) => self.reregister(now),
            (Req::Subscribe, ErrorCode::NoSuchId | ErrorCode::NotOwner) => self.reregister(now),
            (
                Req::Resolve {
                    peer, intro: true, ..
                },
                ErrorCode::NoSuchId | ErrorCode::NotOwner,
            ) => {
                // INTRO also fails when *we* are unknown (the server
                // restarted): ask plainly where the peer is, and check our
                // own registration.
                self.request(
                    now,
                    Req::Resolve {
                        peer,
                        plain: true,
                        intro: false,
                    },
                );
                if !self.has_pending(|r| matches!(r, Req::Keep | Req::Register)) {
                    self.request(now, Req::Keep);
                }
            }
            (req, code) => self.request_failed(now, req, Failure::Server(code)),
        }
    }

    pub(super) fn request_failed(&mut self, now: Instant, req: Req, why: Failure) {
        if why == Failure::NoAnswer && !self.server_down {
            self.server_down = true;
            self.push_event(Rec::ServerUnreachable);
        }
        match req {
            Req::Hello { ping } => {
                // Everything waiting for the cookie fails with it.
                if ping {
                    self.push_event(Rec::Failed {
                        what: What::Ping,
                        id: None,
                        reason: why,
                    });
                }
                let waiting: Vec<Pending, MAX_REQUESTS> = self
                    .pending
                    .iter()
                    .filter(|p| p.next.is_none())
                    .copied()
                    .collect();
                self.pending.retain(|p| p.next.is_some());
                for p in waiting {
                    self.request_failed(now, p.req, why);
                }
            }
            Req::Register => {
                if let RegState::Registering { again } = self.reg {
                    if again && why == Failure::NoAnswer {
                        // Keep trying at the keepalive pace: the server may come back.
                        self.schedule_keepalive(now);
                    } else {
                        self.reg = RegState::Failed;
                        self.push_event(Rec::RegistrationFailed(why));
                    }
                }
            }
            Req::Keep => {
                if matches!(self.reg, RegState::Registered { .. }) {
                    self.schedule_keepalive(now);
                } else if let RegState::Registering { .. } = self.reg {
                    self.schedule_keepalive(now);
                }
            }
            Req::Subscribe => self.push_event(Rec::Failed {
                what: What::Subscribe,
                id: None,
                reason: why,
            }),
            Req::Quit => self.push_event(Rec::Failed {
                what: What::Quit,
                id: None,
                reason: why,
            }),
            Req::Resolve { peer, .. } => {
                let reason = match why {
                    Failure::Server(ErrorCode::NoSuchId) => Undelivered::NoSuchPeer,
                    other => Undelivered::Server(other),
                };
                if let Some(p) = self.find_peer(&peer) {
                    let peer = &mut self.peers[p];
                    peer.resolving = false;
                    if reason == Undelivered::NoSuchPeer {
                        // It left: whatever path we had leads nowhere now.
                        peer.path = None;
                        peer.probe = None;
                        peer.kind = Kind::Unknown;
                        peer.cands.clear();
                    } else if peer.path.is_some() || peer.probe.is_some() {
                        // The server is unreachable, but a path exists or
                        // is being tried: let it decide.
                        return;
                    }
                }
                self.fail_outgoing(&peer, reason);
            }
            Req::Lookup(id) => self.push_event(Rec::Failed {
                what: What::Lookup,
                id: Some(id),
                reason: why,
            }),
            Req::List(_) => self.push_event(Rec::Failed {
                what: What::List,
                id: None,
                reason: why,
            }),
            Req::Relay(peer) => self.relay_failed(now, peer),
        }
    }
}
