//! The Noise sessions with peers: handshakes as initiator (the initiation
//! is also the probe: it goes to every address known for the peer) and as
//! responder, sealing peer messages into transport datagrams and opening
//! them. Only what opens under a session's keys reaches the chat, and the
//! sender is the peer whose key it is, never an id inside.

use crate::MAX_DATAGRAM;
use crate::secure::{Handshake, Pattern, Session};
use crate::time::{Instant, Millis};
use crate::wire::peer::{self, PeerMsg};
use crate::wire::sealed::{
    HELLO_MAX, Hello, MAX_INITIATION_NOISE, MAX_PLAINTEXT, Sealed, TRANSPORT_HEADER, hex_decode,
    hex_encode, transport_header,
};
use crate::wire::{Id, IdBuf};

use super::Client;
use super::event::Undelivered;
use super::path::{Kind, Probe, Via};

/// Half-open handshakes as responder, held at once.
pub const MAX_RESPONDING: usize = 8;
/// Of those, from one address.
const RESPONDING_PER_SOURCE: usize = 2;
/// A half-open handshake as responder is dropped after this long.
const RESPONDING_FOR: Millis = Millis(10_000);

/// An established session with a peer.
pub(super) struct Link {
    pub(super) session: Session,
    /// Our index: transport datagrams to us name it.
    pub(super) local: u32,
    /// The peer's index: ours to it name that.
    pub(super) remote: u32,
    pub(super) born: Instant,
}

impl Link {
    fn new(session: Session, local: u32, remote: u32, born: Instant) -> Link {
        Link {
            session,
            local,
            remote,
            born,
        }
    }
}

/// A handshake we started.
pub(super) struct Initiating {
    pub(super) hs: Handshake,
    pub(super) local: u32,
}

/// A handshake a peer started, not yet confirmed.
pub(super) struct Responding {
    pub(super) local: u32,
    pub(super) remote: u32,
    pub(super) src: Via,
    pub(super) created: Instant,
    pub(super) state: RespState,
}

// No allocator to box the handshake into; the table holds a few of these.
#[allow(clippy::large_enum_variant)]
pub(super) enum RespState {
    /// XX: waiting for the initiator's third message.
    Xx(Handshake),
    /// IK: keys in hand, waiting for the first transport datagram, which
    /// proves the initiation was not a replay.
    Ik {
        id: IdBuf,
        hello: (u64, u64),
        session: Session,
    },
}

/// Where a local index leads.
enum Found {
    Peer(usize),
    Responding(usize),
}

impl Client {
    fn new_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if i != 0 && self.find_index(i).is_none() {
                return i;
            }
        }
    }

    fn find_index(&self, local: u32) -> Option<Found> {
        for (p, peer) in self.peers.iter().enumerate() {
            if peer.cur.as_ref().is_some_and(|l| l.local == local) {
                return Some(Found::Peer(p));
            }
            if peer.prev.as_ref().is_some_and(|l| l.local == local) {
                return Some(Found::Peer(p));
            }
            if peer.hs.as_ref().is_some_and(|h| h.local == local) {
                return Some(Found::Peer(p));
            }
        }
        self.responding
            .iter()
            .position(|r| r.local == local)
            .map(Found::Responding)
    }

    /// Whether peer `p` has a session to send on now.
    pub(super) fn has_session(&self, now: Instant, p: usize) -> bool {
        let peer = &self.peers[p];
        peer.held.is_none()
            && (peer.path.is_some() || peer.relay.ready())
            && peer
                .cur
                .as_ref()
                .is_some_and(|l| now.since(l.born) < self.cfg.reject_after.0)
    }

    /// Whether peer `p`'s session is due for a new handshake.
    fn rekey_due(&self, now: Instant, p: usize) -> bool {
        self.peers[p].cur.as_ref().is_some_and(|l| {
            now.since(l.born) >= self.cfg.rekey_after.0
                || l.session.sent() >= self.cfg.rekey_after_messages
        })
    }

    /// Start handshaking with peer `p` (unless under way): the initiation
    /// goes to every candidate address and is sent again, as a new
    /// handshake, with backoff until one is answered.
    pub(super) fn start_handshake(&mut self, now: Instant, p: usize) {
        if self.peers[p].probe.is_some() || self.peers[p].held.is_some() {
            return;
        }
        self.peers[p].probe = Some(Probe {
            sent: 0,
            next: now,
            started: now,
        });
        self.send_initiation(now, p);
    }

    /// Send a fresh initiation to peer `p`'s candidates and schedule the next.
    pub(super) fn send_initiation(&mut self, now: Instant, p: usize) {
        let Some(mut pr) = self.peers[p].probe else {
            return;
        };
        let Some(me) = self.cfg.id else {
            self.peers[p].probe = None;
            return;
        };
        let Ok(expect) = self.expected_key(p) else {
            self.peers[p].probe = None;
            return;
        };
        let eph = self.rng.keypair();
        let mut hs = Handshake::initiator(&self.identity, &eph, expect);
        self.hs_counter += 1;
        let mut hello = [0u8; HELLO_MAX];
        let Some(hello_len) = me.as_id().and_then(|id| {
            Hello {
                id,
                session: self.session,
                counter: self.hs_counter,
            }
            .emit(&mut hello)
            .ok()
        }) else {
            return;
        };
        // IK carries the hello in message 1 (encrypted to the responder);
        // XX in message 3, once it can be encrypted.
        let payload: &[u8] = if hs.pattern() == Pattern::IK {
            &hello[..hello_len]
        } else {
            &[]
        };
        let mut noise = [0u8; 256];
        let Ok(n) = hs.write(payload, &mut noise) else {
            return;
        };
        let local = self.new_index();
        let mut hex = [0u8; 2 * MAX_INITIATION_NOISE];
        let Ok(hex) = hex_encode(&noise[..n], &mut hex) else {
            return;
        };
        let d = Sealed::Initiation {
            pattern: hs.pattern().code(),
            sender: local,
            hex,
        };
        let mut targets = self.peers[p].cands.clone();
        if let Some(path) = self.peers[p].path {
            if !targets.contains(&path) {
                let _ = targets.push(path);
            }
        }
        let copies = if pr.sent == 0 && !self.has_session(now, p) {
            super::path::PUNCH_COPIES
        } else {
            1
        };
        // One initiation, written once, to every candidate and the relay.
        let mut buf = [0u8; MAX_DATAGRAM];
        if let Ok(n) = d.emit(&mut buf) {
            for a in targets {
                for _ in 0..copies {
                    self.push_out(a, &buf[..n]);
                }
            }
            self.push_relayed(now, p, &buf[..n]);
        }
        self.stats.handshakes_started += 1;
        self.peers[p].hs = Some(Initiating { hs, local });
        let step = self.cfg.probe_interval.0 << pr.sent.min(3);
        pr.sent += 1;
        pr.next = now + Millis(self.rng.jitter(step.min(1000)));
        self.peers[p].probe = Some(pr);
    }

    /// A sealed datagram from `src`.
    pub(super) fn on_sealed(&mut self, now: Instant, src: Via, d: &[u8]) {
        let Ok(s) = Sealed::parse(d) else {
            self.stats.unauthenticated += 1;
            return;
        };
        let ok = match s {
            Sealed::Initiation {
                pattern,
                sender,
                hex,
            } => {
                let mut noise = [0u8; MAX_INITIATION_NOISE];
                match hex_decode(hex, &mut noise) {
                    Ok(n) => self.on_initiation(now, src, pattern, sender, &noise[..n]),
                    Err(_) => false,
                }
            }
            Sealed::Response {
                sender,
                receiver,
                noise,
            } => self.on_response(now, src, sender, receiver, noise),
            Sealed::Confirm { receiver, noise } => self.on_confirm(now, src, receiver, noise),
            Sealed::Transport {
                receiver,
                counter,
                ciphertext,
            } => self.on_transport(
                now,
                src,
                receiver,
                counter,
                &d[..TRANSPORT_HEADER],
                ciphertext,
            ),
        };
        if !ok {
            self.stats.unauthenticated += 1;
        }
    }

    fn on_initiation(
        &mut self,
        now: Instant,
        src: Via,
        pattern: u8,
        sender: u32,
        noise: &[u8],
    ) -> bool {
        let Some(pattern) = Pattern::from_code(pattern) else {
            return false;
        };
        if self.cfg.id.is_none() {
            return false;
        }
        // A copy of an initiation we are answering (the network, or the
        // peer's punch, sent it twice) is answered once: a second answer
        // would start a second session.
        if self
            .responding
            .iter()
            .any(|r| r.remote == sender && r.src == src)
        {
            self.stats.replayed += 1;
            return true;
        }
        let eph = self.rng.keypair();
        let mut hs = Handshake::responder(&self.identity, &eph, pattern);
        let mut payload = [0u8; 256];
        let Ok(n) = hs.read(noise, &mut payload) else {
            return false;
        };
        let mut state = None;
        if pattern == Pattern::IK {
            // The initiator proved its key: check it, and the hello's counter.
            let hello = match self.checked_hello(now, &hs, &payload[..n]) {
                Ok(hello) => hello,
                Err(done) => return done,
            };
            // The peer's key proved this initiation: the address it came
            // from is a candidate of ours too (a NAT may have given the
            // peer another port toward us than toward the server), so
            // our own initiations go there as well (Tailscale's disco).
            if let Via::Direct(a) = src {
                let b = IdBuf::from_id(hello.id);
                if let Some(p) = self.find_peer(&b) {
                    self.add_candidate(p, a);
                }
            }
            state = Some((IdBuf::from_id(hello.id), (hello.session, hello.counter)));
        }
        let mut noise_out = [0u8; 256];
        let Ok(m) = hs.write(&[], &mut noise_out) else {
            return false;
        };
        let local = self.new_index();
        let resp = Sealed::Response {
            sender: local,
            receiver: sender,
            noise: &noise_out[..m],
        };
        let state = match state {
            Some((id, hello)) => {
                let Ok(session) = hs.into_session() else {
                    return false;
                };
                RespState::Ik { id, hello, session }
            }
            None => RespState::Xx(hs),
        };
        let kept = self.keep_responding(
            now,
            Responding {
                local,
                remote: sender,
                src,
                created: now,
                state,
            },
        );
        if kept {
            self.emit_via(src, |b| resp.emit(b));
        }
        true
    }

    /// Hold a half-open handshake: at most a few per source address and
    /// [`MAX_RESPONDING`] in all, the oldest making room. An XX one (its
    /// initiator proved nothing yet) makes room only among XX ones, and
    /// goes first: a flood of initiations from anywhere cannot push out an
    /// IK handshake, whose initiator proved its key. `false` if there was
    /// no room (then nothing is answered).
    pub(super) fn keep_responding(&mut self, now: Instant, r: Responding) -> bool {
        self.responding
            .retain(|x| now.since(x.created) < RESPONDING_FOR.0);
        let xx = |x: &Responding| matches!(x.state, RespState::Xx(_));
        let newcomer_xx = xx(&r);
        let from_src = self.responding.iter().filter(|x| x.src == r.src).count();
        let over_src = from_src >= RESPONDING_PER_SOURCE;
        if over_src || self.responding.is_full() {
            let victim = self
                .responding
                .iter()
                .enumerate()
                .filter(|(_, x)| !over_src || x.src == r.src)
                .filter(|(_, x)| !newcomer_xx || xx(x))
                .min_by_key(|(_, x)| (!xx(x), x.created))
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.responding.swap_remove(i);
                }
                None => return false,
            }
        }
        self.responding.push(r).is_ok()
    }

    /// The hello a handshake's initiator sent (IK: in its initiation; XX:
    /// in its confirmation), checked: not our own id, not a replay, and
    /// under a key taken for that id. `Err` ends the datagram, with what
    /// the caller returns: `true` if it authenticated but was refused.
    fn checked_hello<'p>(
        &mut self,
        now: Instant,
        hs: &Handshake,
        payload: &'p [u8],
    ) -> Result<Hello<'p>, bool> {
        let Ok(hello) = Hello::parse(payload) else {
            return Err(false);
        };
        let Some(key) = hs.remote_static() else {
            return Err(false);
        };
        if self.cfg.id.is_some_and(|me| me.eq_id(hello.id)) {
            return Err(false);
        }
        if self.hello_replayed(hello.id, hello.session, hello.counter) {
            self.stats.replayed += 1;
            return Err(true);
        }
        if !self.key_ok(now, hello.id, key) {
            return Err(true);
        }
        Ok(hello)
    }

    fn hello_replayed(&self, id: Id<'_>, session: u64, counter: u64) -> bool {
        let b = IdBuf::from_id(id);
        self.find_peer(&b)
            .and_then(|p| self.peers[p].last_hello)
            .is_some_and(|(s, c)| s == session && counter <= c)
    }

    fn on_response(
        &mut self,
        now: Instant,
        src: Via,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> bool {
        let Some(p) = self
            .peers
            .iter()
            .position(|x| x.hs.as_ref().is_some_and(|h| h.local == receiver))
        else {
            return false;
        };
        let Some(mut ini) = self.peers[p].hs.take() else {
            return false;
        };
        let first_try = self.peers[p].probe.filter(|pr| pr.sent == 1);
        let mut payload = [0u8; 64];
        if ini.hs.read(noise, &mut payload).is_err() {
            // Not from the peer: the handshake we sent stays open for
            // the real answer (clatter leaves a failed one unusable, so
            // the next retransmission starts afresh).
            return false;
        }
        let Some(key) = ini.hs.remote_static() else {
            return false;
        };
        let id = self.peers[p].id;
        let Some(idr) = id.as_id() else { return false };
        if !self.key_ok(now, idr, key) {
            self.peers[p].probe = None;
            // A changed pin holds the messages for the person to decide;
            // a key the server contradicts ends them.
            if self.peers[p].held.is_none() {
                self.fail_outgoing(&id, Undelivered::NoAnswer);
            }
            return true;
        }
        if ini.hs.pattern() == Pattern::XX && !self.send_confirm(&mut ini.hs, src, sender) {
            return false;
        }
        let Ok(session) = ini.hs.into_session() else {
            return false;
        };
        let link = Link::new(session, ini.local, sender, now);
        self.stats.handshakes_done += 1;
        if let Some(pr) = first_try {
            self.peers[p].srtt = Some(now.since(pr.started));
        }
        self.install(now, p, link, src, true);
        // Say something at once, so an IK responder learns the handshake
        // was live (and takes the path) even with nothing queued.
        if !self.outs.iter().any(|o| o.to == id) {
            let msg = PeerMsg::Probe(peer::Probe {
                from: idr,
                nonce: 0,
            });
            self.send_sealed(now, p, &msg);
        }
        true
    }

    /// XX's third message: our hello, to the responder `receiver` at `src`.
    fn send_confirm(&mut self, hs: &mut Handshake, src: Via, receiver: u32) -> bool {
        let Some(me) = self.cfg.id else { return false };
        let mut hello = [0u8; HELLO_MAX];
        let Some(hl) = me.as_id().and_then(|me| {
            Hello {
                id: me,
                session: self.session,
                counter: self.hs_counter,
            }
            .emit(&mut hello)
            .ok()
        }) else {
            return false;
        };
        let mut out = [0u8; 256];
        let Ok(n) = hs.write(&hello[..hl], &mut out) else {
            return false;
        };
        let c = Sealed::Confirm {
            receiver,
            noise: &out[..n],
        };
        self.emit_via(src, |b| c.emit(b));
        true
    }

    fn on_confirm(&mut self, now: Instant, src: Via, receiver: u32, noise: &[u8]) -> bool {
        let Some(r) = self.responding.iter().position(|x| x.local == receiver) else {
            return false;
        };
        let RespState::Xx(_) = self.responding[r].state else {
            return false;
        };
        let resp = self.responding.swap_remove(r);
        let RespState::Xx(mut hs) = resp.state else {
            return false;
        };
        let mut payload = [0u8; 256];
        let Ok(n) = hs.read(noise, &mut payload) else {
            return false;
        };
        let hello = match self.checked_hello(now, &hs, &payload[..n]) {
            Ok(hello) => hello,
            Err(done) => return done,
        };
        let Ok(session) = hs.into_session() else {
            return false;
        };
        let Some(p) = self.peer_index(now, hello.id) else {
            return true;
        };
        let link = Link::new(session, resp.local, resp.remote, now);
        self.responded(now, p, (hello.session, hello.counter), link, src);
        true
    }

    /// A handshake a peer started is done: `link` becomes peer `p`'s
    /// session, `src` its path, and `hello` the last hello seen from it.
    fn responded(&mut self, now: Instant, p: usize, hello: (u64, u64), link: Link, src: Via) {
        self.peers[p].last_hello = Some(hello);
        self.stats.handshakes_done += 1;
        self.install(now, p, link, src, false);
    }

    fn on_transport(
        &mut self,
        now: Instant,
        src: Via,
        receiver: u32,
        counter: u64,
        header: &[u8],
        ciphertext: &[u8],
    ) -> bool {
        let mut plain = [0u8; MAX_DATAGRAM];
        let reject = self.cfg.reject_after.0;
        let (p, n) = match self.find_index(receiver) {
            Some(Found::Peer(p)) => {
                let peer = &mut self.peers[p];
                let link = [peer.cur.as_mut(), peer.prev.as_mut()]
                    .into_iter()
                    .flatten()
                    .find(|l| l.local == receiver);
                let Some(link) = link else { return false };
                if now.since(link.born) >= reject {
                    return false;
                }
                match link.session.open(counter, header, ciphertext, &mut plain) {
                    Ok(n) => (p, n),
                    Err(crate::secure::SecureError::Replayed) => {
                        self.stats.replayed += 1;
                        return true;
                    }
                    Err(_) => return false,
                }
            }
            Some(Found::Responding(r)) => {
                let RespState::Ik { session, .. } = &mut self.responding[r].state else {
                    return false;
                };
                let Ok(n) = session.open(counter, header, ciphertext, &mut plain) else {
                    return false;
                };
                match self.ik_used(now, r, src) {
                    Ok(p) => (p, n),
                    Err(done) => return done,
                }
            }
            None => return false,
        };
        self.on_opened(now, p, src, &plain[..n]);
        true
    }

    /// The initiator of IK handshake `r` sent on its keys: the handshake
    /// was live, and its session becomes the peer's. `Err` ends the
    /// datagram with what the caller returns.
    fn ik_used(&mut self, now: Instant, r: usize, src: Via) -> Result<usize, bool> {
        let resp = self.responding.swap_remove(r);
        let RespState::Ik { id, hello, session } = resp.state else {
            return Err(false);
        };
        let Some(idr) = id.as_id() else {
            return Err(false);
        };
        let Some(p) = self.peer_index(now, idr) else {
            return Err(false);
        };
        if self.peers[p].held.is_some() {
            return Err(true);
        }
        let link = Link::new(session, resp.local, resp.remote, now);
        self.responded(now, p, hello, link, src);
        Ok(p)
    }

    /// A transport datagram from peer `p` opened to `plain`.
    fn on_opened(&mut self, now: Instant, p: usize, src: Via, plain: &[u8]) {
        // Authenticated: this is where the peer is now (WireGuard
        // roaming), and a candidate; a round trip proves it.
        if let Via::Relay(channel) = src {
            self.relay_seen(now, p, channel);
        }
        if let Via::Direct(a) = src {
            if self.peers[p].path != Some(a) {
                self.peers[p].path = Some(a);
                self.peers[p].confirmed = false;
                self.prove_path(now, p, a);
            }
            self.add_candidate(p, a);
        }
        self.peers[p].kind = Kind::Parley;
        self.peers[p].used = now;
        let Ok(msg) = PeerMsg::parse(plain) else {
            return;
        };
        match msg {
            // Answered the way it came, so the answer proves that way.
            PeerMsg::Probe(probe) => {
                let Some(me) = self.cfg.id else { return };
                let Some(me) = me.as_id() else { return };
                let reply = PeerMsg::Probed(peer::Probe { from: me, ..probe });
                self.send_sealed_via(now, p, &reply, Some(src));
            }
            PeerMsg::Probed(_) => {
                if let Via::Direct(_) = src {
                    self.peers[p].confirmed = true;
                    self.drive_peer(now, p);
                }
            }
            msg => self.on_peer(now, p, msg),
        }
    }

    /// A handshake with peer `p` finished: its session becomes the one we
    /// send on (the last one stays, to open datagrams still in flight),
    /// and `src`, which answered, the path.
    fn install(&mut self, now: Instant, p: usize, link: Link, src: Via, proven: bool) {
        let peer = &mut self.peers[p];
        if peer.cur.as_ref().is_some_and(|c| c.local != link.local) {
            peer.prev = peer.cur.take();
        }
        peer.cur = Some(link);
        peer.kind = Kind::Parley;
        peer.probe = None;
        peer.hs = None;
        peer.assumed_seed = None;
        peer.used = now;
        match src {
            Via::Direct(a) => {
                peer.path = Some(a);
                peer.confirmed = proven;
                self.add_candidate(p, a);
            }
            // Through the relay: a direct path known before is tried
            // again (copies go both ways until a probe proves it).
            Via::Relay(channel) => {
                peer.confirmed = false;
                self.relay_seen(now, p, channel);
            }
        }
        // Our answer may not get through where the peer's datagram did
        // (a NAT that filters): prove the way back.
        if let (Via::Direct(a), false) = (src, proven) {
            self.prove_path(now, p, a);
        }
        self.drive_peer(now, p);
    }

    /// Seal `msg` for peer `p` and send it on its path. `false` if there is
    /// no session or path to do it with.
    pub(super) fn send_sealed(&mut self, now: Instant, p: usize, msg: &PeerMsg<'_>) -> bool {
        let mut inner = [0u8; MAX_PLAINTEXT];
        let Ok(n) = msg.emit(&mut inner) else {
            return false;
        };
        self.send_sealed_bytes(now, p, &inner[..n])
    }

    /// Seal `msg` for peer `p` and send it along `only`, or (`None`)
    /// its path: direct when proven; otherwise direct if known and through
    /// the relay if ready (the replay window drops whichever copy comes
    /// second).
    pub(super) fn send_sealed_via(
        &mut self,
        now: Instant,
        p: usize,
        msg: &PeerMsg<'_>,
        only: Option<Via>,
    ) -> bool {
        let mut inner = [0u8; MAX_PLAINTEXT];
        let Ok(n) = msg.emit(&mut inner) else {
            return false;
        };
        let mut buf = [0u8; MAX_DATAGRAM];
        let Some(len) = self.seal(now, p, &inner[..n], &mut buf, only.is_none()) else {
            return false;
        };
        let bytes = &buf[..len];
        match only {
            Some(via) => {
                self.push_via(via, bytes);
                if matches!(via, Via::Direct(a) if Some(a) == self.peers[p].path) {
                    self.path_used(now, p);
                }
            }
            None => self.push_routed(now, p, bytes),
        }
        true
    }

    fn push_routed(&mut self, now: Instant, p: usize, bytes: &[u8]) {
        let direct = self.peers[p].path.filter(|_| !self.quiet(now, p));
        if let Some(a) = direct {
            self.push_out(a, bytes);
            self.path_used(now, p);
        }
        if !self.direct_proven(p) {
            self.push_relayed(now, p, bytes);
        }
    }

    /// Seal an emitted peer message for peer `p`, as [`Client::send_sealed`].
    pub(super) fn send_sealed_bytes(&mut self, now: Instant, p: usize, inner: &[u8]) -> bool {
        let mut buf = [0u8; MAX_DATAGRAM];
        let Some(len) = self.seal(now, p, inner, &mut buf, true) else {
            return false;
        };
        self.push_routed(now, p, &buf[..len]);
        true
    }

    /// Seal `inner` for peer `p` into `buf`; the datagram's length. A
    /// path probe (`rekey` false) never starts a new handshake itself.
    fn seal(
        &mut self,
        now: Instant,
        p: usize,
        inner: &[u8],
        buf: &mut [u8; MAX_DATAGRAM],
        rekey: bool,
    ) -> Option<usize> {
        if !self.has_session(now, p) || inner.len() > MAX_PLAINTEXT {
            return None;
        }
        if rekey && self.rekey_due(now, p) && self.peers[p].probe.is_none() {
            self.start_handshake(now, p);
        }
        let peer = &mut self.peers[p];
        let link = peer.cur.as_mut()?;
        let header = transport_header(link.remote, link.session.next_counter());
        buf[..TRANSPORT_HEADER].copy_from_slice(&header);
        let Ok((_, len)) = link
            .session
            .seal(&header, inner, &mut buf[TRANSPORT_HEADER..])
        else {
            peer.cur = None;
            return None;
        };
        #[cfg(test)]
        super::tests::tap(&buf[..TRANSPORT_HEADER + len], inner);
        Some(TRANSPORT_HEADER + len)
    }

    /// Drop the responder handshakes that were never confirmed.
    pub(super) fn responding_due(&mut self, now: Instant) {
        self.responding
            .retain(|x| now.since(x.created) < RESPONDING_FOR.0);
    }
}
