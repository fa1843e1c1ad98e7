//! What the server's answers do, and what its refusals or silence do to
//! the request they were about.

use core::net::SocketAddr;

use heapless::Vec;

use crate::time::{Instant, Millis};
use crate::wire::reply::{Change, ChangeSeq};
use crate::wire::{ErrorCode, Id, IdBuf, Locals, PeerKind, Reply, Token};

use super::event::{Event, Failure, Rec, Undelivered, What};
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
            } => self.on_punch(now, id, addr, kind, local),
            Reply::Events {
                first,
                last,
                changes,
            } => self.on_presence(first, last, changes),
            Reply::Resync { seq } => {
                self.presence_seq = Some(seq);
                self.push_event(Event::Resync);
            }
            _ => self.on_answer(now, reply),
        }
    }

    /// An introduction: peer `id` wants to reach us, seen by the server
    /// at `addr` (and announcing its own `local` addresses).
    fn on_punch(
        &mut self,
        now: Instant,
        id: Id<'_>,
        addr: SocketAddr,
        kind: PeerKind,
        local: Locals,
    ) {
        self.server_answered();
        if self.cfg.id.is_some_and(|me| me.eq_id(id)) {
            return;
        }
        if let Some(p) = self.peer_index(now, id) {
            self.learn_kind(p, kind);
            self.server_sees(p, addr);
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
            self.punch_again(now, p);
        }
    }

    /// Presence changes `first..=last`.
    fn on_presence(&mut self, first: u32, last: u32, changes: ChangeSeq<'_>) {
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
            self.push_event(Event::Resync);
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
    }

    /// The answer to a pending request, or a refusal of it.
    fn on_answer(&mut self, now: Instant, reply: Reply<'_>) {
        let Some(tx) = reply.tx() else {
            return;
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
                    self.push_event(Event::Pong {
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
            ) => self.on_registered(now, lease, addr, token),
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
                self.push_event(Event::Bye);
            }
            (Req::Resolve { peer, .. }, Reply::At { id, addr, kind, .. }) if peer.eq_id(id) => {
                self.on_resolved(now, &peer, addr, kind);
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

    fn on_registered(&mut self, now: Instant, lease: u32, addr: SocketAddr, token: Token) {
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

    /// The server says where `peer` is, and what it runs.
    fn on_resolved(&mut self, now: Instant, peer: &IdBuf, addr: SocketAddr, kind: PeerKind) {
        let Some(i) = self.find_peer(peer) else {
            return;
        };
        self.learn_kind(i, kind);
        self.peers[i].resolving = false;
        self.peers[i].resolved = Some(now);
        self.server_sees(i, addr);
        let moved = self.peers[i].path.is_some_and(|p| p != addr);
        if moved && self.peers[i].kind != Kind::Seed {
            // The peer may have moved: find out which address answers
            // (the path itself moves only on an authenticated datagram).
            self.start_handshake(now, i);
        }
        self.punch_again(now, i);
        self.drive_peer(now, i);
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
            self.push_event(Event::ServerUnreachable);
        }
        match req {
            Req::Hello { ping } => {
                if ping {
                    self.command_failed(What::Ping, None, why);
                }
                self.fail_waiting(now, why);
            }
            Req::Register => {
                if let RegState::Registering { again } = self.reg {
                    if again && why == Failure::NoAnswer {
                        // Keep trying at the keepalive pace: the server may come back.
                        self.schedule_keepalive(now);
                    } else {
                        self.reg = RegState::Failed;
                        self.push_event(Event::RegistrationFailed(why));
                    }
                }
            }
            Req::Keep => {
                if matches!(
                    self.reg,
                    RegState::Registered { .. } | RegState::Registering { .. }
                ) {
                    self.schedule_keepalive(now);
                }
            }
            Req::Subscribe => self.command_failed(What::Subscribe, None, why),
            Req::Quit => self.command_failed(What::Quit, None, why),
            Req::Resolve { peer, .. } => self.resolve_failed(peer, why),
            Req::Lookup(id) => self.command_failed(What::Lookup, Some(id), why),
            Req::List(_) => self.command_failed(What::List, None, why),
            Req::Relay(peer) => self.relay_failed(now, peer),
        }
    }

    fn command_failed(&mut self, what: What, id: Option<IdBuf>, reason: Failure) {
        self.push_event(Rec::Failed { what, id, reason });
    }

    /// The cookie could not be had: everything waiting for it fails with it.
    fn fail_waiting(&mut self, now: Instant, why: Failure) {
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

    /// Where `peer` is could not be found out: the messages to it fail,
    /// unless a path to it exists or is being tried.
    fn resolve_failed(&mut self, peer: IdBuf, why: Failure) {
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
}
