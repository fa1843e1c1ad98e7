//! Relay fallback: when no direct path to a peer is proven soon after
//! we start trying to reach it (or it starts trying to reach us, with a
//! `PUNCH`), both sides ask the server for a relay session with each
//! other (`RELAY`; the server pairs only when both ask), and the same
//! sealed datagrams travel inside relay frames: the server sees only
//! ciphertext. Direct candidates keep being probed (a sealed `PROBE`
//! to each; the `PROBED` that comes back directly proves the round
//! trip) and the path upgrades to direct as soon as one answers
//! (Tailscale's DERP-then-direct). The relay session is refreshed while
//! it is used, well inside the server's idle timeout.

use crate::time::{Instant, Millis};
use crate::wire::IdBuf;
use crate::wire::relay::{Frame, RelayReply};

use super::Client;
use super::path::Via;
use super::request::Req;

/// Without a proven direct path this long after we began trying, ask
/// for a relay.
pub(super) const RELAY_AFTER: Millis = Millis(2_000);
/// A `waiting` relay is asked about again this often (the server does
/// not say when the other side joins; a frame from it does).
const WAITING_AGAIN: Millis = Millis(400);
/// A waiting relay is given up after this long (the peer never asked).
const WAITING_FOR: Millis = Millis(10_000);
/// While the relay waits for the peer, it is introduced again this often
/// (its `PUNCH` may have been lost).
const INTRO_AGAIN: Millis = Millis(1_500);
/// A ready relay is refreshed this often while it is used (the server
/// ends a session a minute after the last `RELAY`).
const REFRESH_EVERY: Millis = Millis(20_000);
/// A relay unused this long is let go (not refreshed).
const UNUSED_FOR: Millis = Millis(50_000);
/// Direct candidates are probed this often while the relay carries the
/// traffic...
const UPGRADE_FAST: Millis = Millis(500);
/// ...for this many probes. If none is answered, nothing goes straight
/// to the peer for
const UPGRADE_FAST_COUNT: u8 = 10;
/// this long (doubling each time, up to [`QUIET_MAX`]), and then both
/// sides are introduced again and punch together. Probing on would keep
/// alive what spoiled the path: a Linux NAT that took the peer's early
/// probe for a flow of its own maps our answers to another port for as
/// long as that flow is remembered (30 s unanswered, by default).
const QUIET: Millis = Millis(40_000);
const QUIET_MAX: Millis = Millis(320_000);
/// Copies of one introduction (its `AT`s and `PUNCH`es) start one round.
const ROUND_APART: Millis = Millis(1_000);
/// Interest in a peer (from a message to it or a `PUNCH` from it) lapses
/// after this long without a session.
const WANT_FOR: Millis = Millis(30_000);

/// Where a relay session with one peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RelayState {
    /// Not asked for.
    Off,
    /// `RELAY` sent (or to be sent again at `next`).
    Asking,
    /// The server holds the session; the peer has not asked yet.
    Waiting,
    /// Both asked: frames on `channel` reach the peer.
    Ready,
    /// The server refused; not asked again for this want.
    Refused,
}

/// A peer's relay session, as this client sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct RelayLink {
    pub(super) state: RelayState,
    pub(super) channel: u64,
    /// When to send `RELAY` (again).
    pub(super) next: Option<Instant>,
    /// When the relay was first asked for in this round.
    pub(super) asked: Option<Instant>,
    /// When a datagram last went or came through it.
    pub(super) used: Instant,
    /// Direct probes sent while relayed, and when the next is due.
    pub(super) upgrade_sent: u8,
    pub(super) upgrade_next: Option<Instant>,
    /// Quiet spells so far (each twice as long as the one before).
    pub(super) quiet_spells: u8,
    /// When the last round of probes began.
    pub(super) round: Option<Instant>,
}

impl RelayLink {
    pub(super) fn new(now: Instant) -> Self {
        RelayLink {
            state: RelayState::Off,
            channel: 0,
            next: None,
            asked: None,
            used: now,
            upgrade_sent: 0,
            upgrade_next: None,
            quiet_spells: 0,
            round: None,
        }
    }

    pub(super) fn ready(&self) -> bool {
        self.state == RelayState::Ready
    }

    /// The next time the relay needs attention.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match (self.next, self.upgrade_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Client {
    /// Peer `p` is wanted (a message to it, or a `PUNCH` from it): if no
    /// direct path is proven within [`RELAY_AFTER`], a relay is asked for.
    pub(super) fn want(&mut self, now: Instant, p: usize) {
        let peer = &mut self.peers[p];
        if peer.want.is_none_or(|t| now.since(t) >= WANT_FOR.0) {
            peer.want = Some(now);
            if peer.relay.state == RelayState::Refused {
                peer.relay.state = RelayState::Off;
            }
        }
        if peer.relay.state == RelayState::Off && peer.relay.next.is_none() {
            peer.relay.next = Some(now + RELAY_AFTER);
        }
    }

    /// Whether peer `p`'s direct path is proven both ways.
    pub(super) fn direct_proven(&self, p: usize) -> bool {
        self.peers[p].path.is_some() && self.peers[p].confirmed
    }

    /// Send `bytes` (a sealed datagram for peer `p`) through its relay.
    pub(super) fn push_relayed(&mut self, now: Instant, p: usize, bytes: &[u8]) -> bool {
        let r = &mut self.peers[p].relay;
        if !r.ready() {
            return false;
        }
        r.used = now;
        let f = Frame {
            channel: r.channel,
            payload: bytes,
        };
        let server = self.cfg.server;
        let mut buf = [0u8; crate::MAX_DATAGRAM];
        match f.emit(&mut buf) {
            Ok(n) => {
                self.push_out(server, &buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// Send `bytes` along `via` (a relay frame on its channel).
    pub(super) fn push_via(&mut self, via: Via, bytes: &[u8]) {
        match via {
            Via::Direct(a) => self.push_out(a, bytes),
            Via::Relay(channel) => {
                let f = Frame {
                    channel,
                    payload: bytes,
                };
                let server = self.cfg.server;
                self.emit(server, |b| f.emit(b));
            }
        }
    }

    /// Emit a datagram along `via`.
    pub(super) fn emit_via(
        &mut self,
        via: Via,
        f: impl FnOnce(&mut [u8]) -> Result<usize, crate::wire::EmitError>,
    ) {
        let mut buf = [0u8; crate::MAX_DATAGRAM];
        if let Ok(n) = f(&mut buf) {
            self.push_via(via, &buf[..n]);
        }
    }

    /// A frame from the server: the datagram inside came from the peer
    /// whose relay session has this channel (the server forwards only
    /// between the two ends that asked).
    pub(super) fn on_frame(&mut self, now: Instant, d: &[u8]) {
        let Ok(f) = Frame::parse(d) else { return };
        if let Some(p) = self.peers.iter().position(|x| {
            matches!(x.relay.state, RelayState::Ready | RelayState::Waiting)
                && x.relay.channel == f.channel
        }) {
            // A frame means the other side joined.
            if self.peers[p].relay.state == RelayState::Waiting {
                self.relay_ready(now, p);
            }
            self.peers[p].relay.used = now;
        }
        // Who sent it is what the Noise session says, not the channel: a
        // frame may come before our `RELAYD` does (or instead of a lost
        // one); the session it opens names the channel (`relay_seen`).
        if crate::wire::sealed::is_sealed(f.payload) {
            self.on_sealed(now, Via::Relay(f.channel), f.payload);
        }
    }

    /// `RELAYD`: the session's channel, and whether the peer joined.
    pub(super) fn on_relayd(&mut self, now: Instant, r: RelayReply<'_>) {
        let Some(pending) = self.take_pending(r.tx) else {
            return;
        };
        self.server_answered();
        let Req::Relay(peer) = pending.req else {
            return;
        };
        if !peer.eq_id(r.peer) {
            return;
        }
        let Some(p) = self.find_peer(&peer) else {
            return;
        };
        let link = &mut self.peers[p].relay;
        link.channel = r.channel;
        if r.ready {
            if link.state == RelayState::Ready {
                link.next = Some(now + REFRESH_EVERY);
            } else {
                self.relay_ready(now, p);
            }
        } else {
            link.state = RelayState::Waiting;
            link.next = Some(now + WAITING_AGAIN);
        }
    }

    /// The server refused or never answered a `RELAY`.
    pub(super) fn relay_failed(&mut self, now: Instant, peer: IdBuf) {
        let Some(p) = self.find_peer(&peer) else {
            return;
        };
        let r = &mut self.peers[p].relay;
        if r.state == RelayState::Ready {
            // A refresh failed: the session may still be there; try again later.
            r.next = Some(now + REFRESH_EVERY);
            return;
        }
        r.state = RelayState::Refused;
        r.next = None;
        self.relay_gave_up(now, p);
    }

    /// The relay just became usable: handshake through it if there is no
    /// session yet, and send what waits.
    fn relay_ready(&mut self, now: Instant, p: usize) {
        let r = &mut self.peers[p].relay;
        r.state = RelayState::Ready;
        r.used = now;
        r.next = Some(now + REFRESH_EVERY);
        r.upgrade_sent = 0;
        r.upgrade_next = Some(now + UPGRADE_FAST);
        r.round = Some(now);
        if self.peers[p].held.is_some() {
            return;
        }
        if self.peers[p].cur.is_none() || !self.has_session(now, p) {
            // Start over so the next initiation goes through the relay at once.
            self.peers[p].probe = None;
            self.start_handshake(now, p);
        } else {
            self.drive_peer(now, p);
        }
    }

    /// An authenticated datagram from peer `p` came through the relay on
    /// `channel`: the session is paired, whatever `RELAYD` said or did
    /// not say.
    pub(super) fn relay_seen(&mut self, now: Instant, p: usize, channel: u64) {
        let r = &mut self.peers[p].relay;
        r.used = now;
        if r.ready() && r.channel == channel {
            return;
        }
        r.channel = channel;
        if !r.ready() {
            r.state = RelayState::Ready;
            r.asked.get_or_insert(now);
            r.next = Some(now + REFRESH_EVERY);
            r.upgrade_sent = 0;
            r.upgrade_next = Some(now + UPGRADE_FAST);
            r.round = Some(now);
        }
    }

    /// Whether a handshake unanswered through a ready relay is worth
    /// trying again (the peer may still be waiting for its `RELAYD`).
    pub(super) fn relay_young(&self, now: Instant, p: usize) -> bool {
        let r = &self.peers[p].relay;
        r.ready()
            && r.asked
                .is_some_and(|a| now.since(a) < WAITING_FOR.0 + RELAY_AFTER.0)
    }

    /// Probing and relaying have both failed for peer `p`.
    fn relay_gave_up(&mut self, now: Instant, p: usize) {
        if self.peers[p].probe.is_none() && !self.has_session(now, p) {
            let id = self.peers[p].id;
            if self.outs.iter().any(|o| o.to == id) {
                self.unreachable(now, p);
            }
        }
    }

    /// Send peer `p` a sealed `PROBE` straight to `a`: the `PROBED` that
    /// comes back proves the direct path both ways.
    pub(super) fn ping_direct(&mut self, now: Instant, p: usize, a: core::net::SocketAddr) {
        let Some(me) = self.cfg.id else { return };
        let Some(me) = me.as_id() else { return };
        let nonce = self.rng.next_u64();
        let probe = crate::wire::peer::Probe { from: me, nonce };
        let msg = crate::wire::peer::PeerMsg::Probe(probe);
        self.send_sealed_via(now, p, &msg, Some(Via::Direct(a)));
    }

    /// Whether peer `p` still waits on a relay that may come.
    pub(super) fn relay_pending(&self, p: usize) -> bool {
        let r = &self.peers[p].relay;
        match r.state {
            RelayState::Asking | RelayState::Waiting | RelayState::Ready => true,
            RelayState::Off => r.next.is_some(),
            RelayState::Refused => false,
        }
    }

    /// The relay timers: ask, ask again, refresh, let go, probe direct.
    pub(super) fn relays_due(&mut self, now: Instant) {
        for p in 0..self.peers.len() {
            if let Some(t) = self.peers[p].relay.upgrade_next {
                if t <= now {
                    self.upgrade_probe(now, p);
                }
            }
            let Some(t) = self.peers[p].relay.next else {
                continue;
            };
            if t > now {
                continue;
            }
            let id = self.peers[p].id;
            let r = self.peers[p].relay;
            self.peers[p].relay.next = None;
            match r.state {
                RelayState::Off => {
                    // Time to decide: a proven direct path needs no relay.
                    let wanted = self.peers[p]
                        .want
                        .is_some_and(|w| now.since(w) < WANT_FOR.0);
                    if wanted && !self.direct_proven(p) && self.cfg.id.is_some() {
                        self.ask_relay(now, p, id);
                    }
                }
                RelayState::Asking => {
                    // `RELAY` retransmits itself; meanwhile the peer may
                    // never have heard of us.
                    self.reintroduce(now, p, id);
                    self.peers[p].relay.next = Some(now + WAITING_AGAIN);
                }
                RelayState::Waiting => {
                    if r.asked.is_some_and(|a| now.since(a) >= WAITING_FOR.0) {
                        self.peers[p].relay.state = RelayState::Refused;
                        self.relay_gave_up(now, p);
                    } else {
                        self.ask_relay(now, p, id);
                        self.reintroduce(now, p, id);
                    }
                }
                RelayState::Ready => {
                    if now.since(r.used) >= UNUSED_FOR.0 || self.direct_proven(p) {
                        // Unused, or direct now: the server lets it lapse.
                        self.peers[p].relay = super::relay::RelayLink::new(now);
                    } else {
                        self.ask_relay(now, p, id);
                    }
                }
                RelayState::Refused => {}
            }
        }
    }

    /// The peer may never have heard of us (its `PUNCH` lost, with loss
    /// on the way): introduce us again, now and then, until a session is
    /// up (relayed or direct).
    fn reintroduce(&mut self, now: Instant, p: usize, id: IdBuf) {
        let peer = &self.peers[p];
        if !peer.resolving
            && peer.resolved.is_none_or(|t| now.since(t) >= INTRO_AGAIN.0)
            && !self.has_session(now, p)
        {
            self.resolve(now, id);
        }
    }

    fn ask_relay(&mut self, now: Instant, p: usize, id: IdBuf) {
        if self.has_pending(|r| *r == Req::Relay(id)) {
            self.peers[p].relay.next = Some(now + WAITING_AGAIN);
            return;
        }
        let r = &mut self.peers[p].relay;
        if r.state == RelayState::Off {
            r.state = RelayState::Asking;
            r.asked = Some(now);
            r.next = Some(now + WAITING_AGAIN);
        }
        self.request(now, Req::Relay(id));
    }

    /// While relayed (or not yet proven direct), probe the direct
    /// candidates inside the session: a `PROBED` that comes back directly
    /// moves the path. After a round of [`UPGRADE_FAST_COUNT`] probes, a
    /// quiet spell, then an introduction that starts the next round on
    /// both sides at once.
    fn upgrade_probe(&mut self, now: Instant, p: usize) {
        let r = self.peers[p].relay;
        let unproven_path = self.peers[p].path.is_some() && !self.peers[p].confirmed;
        if !(r.ready() || unproven_path) || self.direct_proven(p) {
            self.peers[p].relay.upgrade_next = None;
            return;
        }
        if r.upgrade_sent >= UPGRADE_FAST_COUNT {
            // The quiet spell is over. Should the introduction go
            // unanswered, the next spell ends in another.
            self.quiet_spell(now, p);
            let id = self.peers[p].id;
            self.resolve(now, id);
            return;
        }
        self.peers[p].relay.upgrade_sent = r.upgrade_sent + 1;
        if r.upgrade_sent + 1 >= UPGRADE_FAST_COUNT {
            self.quiet_spell(now, p);
        } else {
            let step = self.rng.jitter(UPGRADE_FAST.0);
            self.peers[p].relay.upgrade_next = Some(now + Millis(step));
        }
        if !self.has_session(now, p) {
            return;
        }
        let mut targets = self.peers[p].cands.clone();
        if let Some(path) = self.peers[p].path {
            if !targets.contains(&path) {
                let _ = targets.push(path);
            }
        }
        let copies = if r.upgrade_sent == 0 {
            super::path::PUNCH_COPIES
        } else {
            1
        };
        for a in targets {
            for _ in 0..copies {
                self.ping_direct(now, p, a);
            }
        }
    }

    /// A direct path `a` to peer `p` that the peer's datagrams came by is
    /// not proven until a round trip over it is: probe it now, and then in
    /// rounds (unless a round or a quiet spell is under way), whether or
    /// not a relay carries the chat meanwhile (the peer, its own side
    /// proven, may never ask for one).
    pub(super) fn prove_path(&mut self, now: Instant, p: usize, a: core::net::SocketAddr) {
        self.ping_direct(now, p, a);
        let r = &mut self.peers[p].relay;
        if r.upgrade_next.is_none() {
            r.upgrade_sent = 0;
            r.round = Some(now);
            r.upgrade_next = Some(now + UPGRADE_FAST);
        }
    }

    /// Whether peer `p` is in a quiet spell: its direct path unproven and
    /// the relay carrying the chat, so that nothing goes straight to it.
    pub(super) fn quiet(&self, now: Instant, p: usize) -> bool {
        let r = &self.peers[p].relay;
        r.ready()
            && !self.direct_proven(p)
            && r.upgrade_sent >= UPGRADE_FAST_COUNT
            && r.upgrade_next.is_some_and(|t| t > now)
    }

    /// Nothing straight to peer `p` until the next round is due.
    fn quiet_spell(&mut self, now: Instant, p: usize) {
        let r = &mut self.peers[p].relay;
        let spell = (QUIET.0 << r.quiet_spells.min(8)).min(QUIET_MAX.0);
        r.quiet_spells = r.quiet_spells.saturating_add(1);
        r.upgrade_next = Some(now + Millis(spell));
    }

    /// The server just said where peer `p` is (an `AT` for us, a `PUNCH`
    /// for it, sent together): if our session with it is relayed, start a
    /// round of direct probes now, as the peer does.
    pub(super) fn punch_again(&mut self, now: Instant, p: usize) {
        let r = self.peers[p].relay;
        if !r.ready() || self.direct_proven(p) || !self.has_session(now, p) {
            return;
        }
        if r.round.is_some_and(|t| now.since(t) < ROUND_APART.0) {
            return;
        }
        let r = &mut self.peers[p].relay;
        r.round = Some(now);
        r.upgrade_sent = 0;
        self.upgrade_probe(now, p);
    }
}

impl Client {
    /// The path chat with `peer` takes now, if a session with it exists.
    pub fn route(&self, now: Instant, peer: crate::wire::Id<'_>) -> Option<super::Route> {
        use super::Route;
        let p = self.find_peer(&IdBuf::from_id(peer))?;
        if !self.has_session(now, p) {
            return None;
        }
        let peer = &self.peers[p];
        Some(match peer.path {
            Some(a) if peer.confirmed && self.is_lan(p, a) => Route::Lan(a),
            Some(a) if peer.confirmed => Route::Direct(a),
            _ if peer.relay.ready() => Route::Relayed,
            Some(a) => Route::Trying(a),
            None => return None,
        })
    }
}
