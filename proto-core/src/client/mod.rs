//! The sans-IO client session: everything `parley` does on the wire, with
//! no socket, clock or random number generator inside (quinn-proto style).
//!
//! The caller feeds datagrams in with [`Client::handle`], drains the ones
//! to send with [`Client::poll_transmit`], reads what happened with
//! [`Client::poll_event`], and calls [`Client::handle_timeout`] when
//! [`Client::poll_timeout`] says. Commands ([`Client::send_message`],
//! [`Client::lookup`], [`Client::list`], [`Client::ping`],
//! [`Client::quit`]) queue work. Time comes in as [`Instant`]; entropy once,
//! at [`Client::new`].
//!
//! What it does:
//! - **Registration.** A padded `HELLO` fetches a cookie (the server never
//!   answers with more bytes than it got); `REG` registers the id; every
//!   request is retransmitted with exponential backoff until it is answered
//!   or given up ([`Config::request_attempts`]).
//! - **Keepalive** every 9 to 12 s (jittered; inside a NAT that forgets
//!   idle UDP mappings after 15 s, and a third of the lease at most); a
//!   live conversation's direct path gets its own ([`Config::path_keepalive`]).
//!   When the server restarts
//!   or forgets the id (`ERR bad-cookie` -> a new `HELLO`; `ERR no-such-id`
//!   or `not-owner` on `KEEP` -> `REG` again), the client recovers by itself
//!   and says so with [`Event::Registered`] `{ again: true }`.
//! - **Introductions.** Sending to a peer without a session asks the
//!   server to introduce both sides (`INTRO`: `AT` to us, `PUNCH` to the
//!   peer; a `LOOKUP` when not registered). Both sides then handshake with
//!   every candidate address; the address an authenticated answer comes
//!   from becomes the path.
//! - **End-to-end sessions** (`tunnel`, over [`crate::secure`]). Every
//!   datagram between Parley clients is sealed ([`crate::wire::sealed`]):
//!   a Noise IK handshake when the peer's key is known (pinned, or reported
//!   by the server), XX otherwise; then ChaCha20-Poly1305 transport
//!   datagrams with explicit counters and a 2048-bit replay window. The
//!   sender of a message is the peer whose key opened it, never an id in
//!   the text; a peer's path moves only on an authenticated datagram.
//!   Plain `CHAT`/`ACK`/`PROBE`/`PROBED` and anything that does not
//!   authenticate is dropped and counted ([`Stats`]), never answered with
//!   more bytes than came in. Sessions are replaced by a new handshake
//!   after [`Config::rekey_after`] or [`Config::rekey_after_messages`]; the
//!   previous one stays to open datagrams in flight.
//! - **Keys** (`keys`). The application loads the keys it knows with
//!   [`Client::pin`]; a first key seen is pinned and reported
//!   ([`Event::KeyFirstSeen`], to store); a key other than the pinned one
//!   is never taken silently: [`Event::KeyChanged`], and messages to that
//!   peer wait until [`Client::accept_key`]. [`Client::peer_key`] and
//!   [`crate::secure::safety_number`] make the number people compare.
//! - **Reliable chat.** Every message has a number in this client's
//!   session; each fragment is acknowledged and retransmitted with
//!   exponential backoff and jitter; a message never acknowledged ends in
//!   [`Outcome::NotDelivered`]. Incoming messages are reassembled in order and
//!   shown exactly once ([`chat::Window`] suppresses duplicates); one
//!   sender holds at most half the reassembly slots.
//! - **The seed's client.** A peer with no key that never answers a
//!   handshake is taken for the seed's client and sent `Message <text>`
//!   ([`Outcome::Unconfirmed`]: the seed cannot acknowledge);
//!   [`Client::mark_seed`] says so up front. A peer with a key never gets
//!   plain text. A seed `Message` that arrives is shown with
//!   `verified: false`, with the sender's id only when its address is that
//!   of a peer taken for a seed client.
//!
//! The API for applications, beyond the commands: [`Client::new`] takes
//! the 32 bytes of OS entropy that seed the client's CSPRNG (ChaCha20:
//! session ids, transaction ids, indices, ephemeral keys, jitter) and the
//! long-term [`Keypair`]; [`Client::public_key`]; [`Client::pin`],
//! [`Client::pinned`], [`Client::accept_key`], [`Client::peer_key`];
//! [`Client::stats`]; the events [`Event::KeyFirstSeen`] and
//! [`Event::KeyChanged`], and `verified` in [`Event::Message`].
//!
//! Where it is: this module holds the [`Client`] and its plumbing (the
//! `poll_*` and `handle*` calls); `command` the commands; `event` what
//! the application hears; `request` the server requests and their
//! retransmission; `reply` what the server's answers do; `registration`
//! the registration and keepalives; `path` the peers, introductions and
//! handshakes' retries; `tunnel` the Noise sessions; `keys` pins and key
//! changes; `send` and `receive` chat on the wire; [`chat`] the send and
//! receive windows; `rng` the CSPRNG.

pub mod chat;
mod command;
mod event;
mod keys;
mod path;
mod receive;
mod registration;
mod relay;
mod reply;
mod request;
mod rng;
mod send;
#[cfg(test)]
mod tests;
mod tunnel;

use core::net::SocketAddr;

use heapless::{Deque, String, Vec};

use crate::MAX_DATAGRAM;
use crate::secure::{Keypair, PublicKey};
use crate::time::{Instant, Millis};
use crate::wire::peer::MAX_FRAGMENT_TEXT;
use crate::wire::relay::{RelayReply, is_frame};
use crate::wire::sealed::is_sealed;
use crate::wire::{Cookie, EmitError, Id, IdBuf, Locals, Reply, Token};

use chat::{MAX_TEXT, OutState, Outgoing, Reassembly, SlotState};
use event::Rec;
use path::{Peer, Via};
use receive::REASSEMBLY_TIMEOUT;
use registration::RegState;
use request::{Pending, Req};
use rng::Rng;
use tunnel::Responding;

pub use command::CommandError;
pub use event::{Event, Failure, Outcome, Undelivered, What};
pub use keys::MAX_PINS;
pub use path::Route;
pub use tunnel::MAX_RESPONDING;

/// Messages one client may have in flight at once.
pub const MAX_OUTGOING: usize = 8;
/// Incoming messages being reassembled or waiting to be shown.
pub const MAX_INCOMING: usize = 4;
/// Peers remembered (paths, duplicate windows).
pub const MAX_PEERS: usize = 32;
/// Server requests outstanding at once.
pub const MAX_REQUESTS: usize = 16;
/// Datagrams waiting in the outbox.
pub const OUTBOX: usize = 24;
/// Events waiting to be read.
pub const EVENTS: usize = 64;

/// How a client behaves. [`Config::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// The rendezvous server.
    pub server: SocketAddr,
    /// This client's id; `None` for a client that only looks things up.
    pub id: Option<IdBuf>,
    /// Register `id` with the server (and keep it alive).
    pub register: bool,
    /// Ask for presence events once registered.
    pub subscribe: bool,
    /// Register the public key with the id (so peers handshake with IK and
    /// never fall back to plain text); `false` registers without one, as
    /// clients before keys did (peers then use XX and pin on first use).
    pub register_key: bool,
    /// The lease to ask for, in seconds (`None`: the server's default).
    pub lease: Option<u32>,
    /// Shortest interval between keepalives to the server.
    pub keepalive_min: Millis,
    /// Longest interval between keepalives to the server: below the
    /// shortest UDP mapping timeout of the NATs in the way, or the server's
    /// introductions stop reaching us.
    pub keepalive_max: Millis,
    /// While a conversation is live, a direct path to the peer that
    /// carried nothing for this long gets a sealed `PROBE`, which holds
    /// both NATs' mappings open (as Tailscale's disco heartbeat does).
    pub path_keepalive: Millis,
    /// First retransmission timeout of a server request.
    pub request_rto: Millis,
    /// Transmissions of a server request before giving up.
    pub request_attempts: u8,
    /// First retransmission timeout of a chat message (before any round-trip sample).
    pub chat_rto: Millis,
    /// Longest retransmission timeout of a chat message.
    pub chat_rto_max: Millis,
    /// Transmissions of a chat message before it is reported not delivered.
    pub chat_attempts: u8,
    /// Interval between the first handshake initiations toward a peer (the
    /// probes of its candidate addresses; it doubles, up to 1 s).
    pub probe_interval: Millis,
    /// Initiations sent before giving up: messages to a peer with a key are
    /// then not delivered; a peer without one is taken for the seed's client.
    pub probe_attempts: u8,
    /// Longest text in one `CHAT` fragment.
    pub fragment_text: usize,
    /// A session older than this is replaced by a new handshake when next used.
    pub rekey_after: Millis,
    /// A session that sealed this many datagrams is replaced likewise.
    pub rekey_after_messages: u64,
    /// A session older than this is not used at all (in either direction).
    pub reject_after: Millis,
    /// This client's local (host) addresses, announced in `INTRO` so
    /// that a peer on the same network reaches it over the LAN.
    pub local: Locals,
}

impl Config {
    /// Defaults for a client of `server` with id `id`, registering it if there is one.
    pub fn new(server: SocketAddr, id: Option<Id<'_>>) -> Config {
        Config {
            server,
            id: id.map(IdBuf::from_id),
            register: id.is_some(),
            subscribe: false,
            register_key: true,
            lease: None,
            // Inside a 15 s NAT mapping timeout, the shortest the NAT lab
            // holds open (ICE keeps its own at 15 s, RFC 8445 section 11).
            keepalive_min: Millis::from_secs(9),
            keepalive_max: Millis::from_secs(12),
            path_keepalive: Millis::from_secs(10),
            request_rto: Millis(400),
            // With 20% loss each way a round trip fails 36% of the time:
            // six tries lost about one exchange in 450 (and a registration
            // needs two); ten lose one in 27,000, and give up after 17 s
            // instead of 14 (the backoff stops at 2 s).
            request_attempts: 10,
            chat_rto: Millis(300),
            chat_rto_max: Millis(2000),
            chat_attempts: 14,
            probe_interval: Millis(200),
            probe_attempts: 7,
            fragment_text: MAX_FRAGMENT_TEXT - crate::wire::relay::FRAME_HEADER,
            // WireGuard's REKEY_AFTER_TIME, REKEY_AFTER_MESSAGES and
            // REJECT_AFTER_TIME.
            rekey_after: Millis::from_secs(120),
            rekey_after_messages: 1 << 60,
            reject_after: Millis::from_secs(180),
            local: Locals::EMPTY,
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Where to.
    pub dst: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8, MAX_DATAGRAM>,
}

/// What the client dropped or did, for the application's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sealed datagrams that did not authenticate (or parse), dropped.
    pub unauthenticated: u64,
    /// Sealed datagrams or initiations refused as replays.
    pub replayed: u64,
    /// Plain-text peer messages (`CHAT`, `ACK`, `PROBE`, ...) dropped:
    /// Parley peers only speak sealed.
    pub plain_refused: u64,
    /// Handshakes refused for a key other than the pinned or reported one.
    pub key_refused: u64,
    /// Initiations sent.
    pub handshakes_started: u64,
    /// Handshakes completed, either side.
    pub handshakes_done: u64,
    /// Datagrams dropped because the outbox was full.
    pub outbox_drops: u64,
}

/// The client session.
pub struct Client {
    cfg: Config,
    identity: Keypair,
    pins: Vec<(IdBuf, PublicKey), MAX_PINS>,
    responding: Vec<Responding, MAX_RESPONDING>,
    hs_counter: u64,
    stats: Stats,
    rng: Rng,
    session: u64,
    next_seq: u32,
    next_tx: u32,
    cookie: Option<(Cookie, Instant)>,
    reg: RegState,
    token: Option<Token>,
    next_keep: Option<Instant>,
    lease: Option<u32>,
    observed: Option<SocketAddr>,
    server_down: bool,
    presence_seq: Option<u32>,
    pending: Vec<Pending, MAX_REQUESTS>,
    peers: Vec<Peer, MAX_PEERS>,
    outs: Vec<Outgoing, MAX_OUTGOING>,
    slots: [Reassembly; MAX_INCOMING],
    outbox: Deque<Transmit, OUTBOX>,
    events: Deque<Rec, EVENTS>,
    /// The event last handed out, which [`Event`] borrows from.
    current: Option<Rec>,
    lend: String<MAX_TEXT>,
    page: String<MAX_DATAGRAM>,
    page_busy: bool,
    dropped: u64,
}

impl Client {
    /// A client for `cfg`, starting at `now`, with the long-term key pair
    /// `identity`. `entropy` (32 bytes from the operating system's random
    /// source) seeds the CSPRNG behind session numbers, transaction ids,
    /// handshake indices, ephemeral keys and jitter.
    pub fn new(cfg: Config, now: Instant, entropy: [u8; 32], identity: Keypair) -> Client {
        let mut rng = Rng::new(entropy);
        let session = rng.next_u64();
        let next_tx = (rng.next_u64() % 1_000_000) as u32 + 1;
        let mut c = Client {
            reg: RegState::Off,
            cfg,
            identity,
            pins: Vec::new(),
            responding: Vec::new(),
            hs_counter: 0,
            stats: Stats::default(),
            rng,
            session,
            next_seq: 1,
            next_tx,
            cookie: None,
            token: None,
            next_keep: None,
            lease: None,
            observed: None,
            server_down: false,
            presence_seq: None,
            pending: Vec::new(),
            peers: Vec::new(),
            outs: Vec::new(),
            slots: [const { Reassembly::EMPTY }; MAX_INCOMING],
            outbox: Deque::new(),
            events: Deque::new(),
            current: None,
            lend: String::new(),
            page: String::new(),
            page_busy: false,
            dropped: 0,
        };
        if c.cfg.register && c.cfg.id.is_some() {
            c.reg = RegState::Registering { again: false };
            c.request(now, Req::Register);
        }
        c.pump(now);
        c
    }

    /// This client's id, if it has one.
    pub fn id(&self) -> Option<Id<'_>> {
        self.cfg.id.as_ref().and_then(IdBuf::as_id)
    }

    /// Whether the id is registered right now.
    pub fn is_registered(&self) -> bool {
        matches!(self.reg, RegState::Registered { .. })
    }

    /// Whether a `REG` is pending: requests that need the registration wait.
    fn is_registering(&self) -> bool {
        matches!(self.reg, RegState::Registering { .. })
    }

    /// The address the server last said it sees us at.
    pub fn observed_addr(&self) -> Option<SocketAddr> {
        self.observed
    }

    /// Messages still in flight (queued, unacknowledged).
    pub fn in_flight(&self) -> usize {
        self.outs.len()
    }

    /// Datagrams dropped because the outbox was full (the retransmission
    /// timers recover from it).
    pub fn outbox_drops(&self) -> u64 {
        self.dropped
    }

    /// This client's public key.
    pub fn public_key(&self) -> PublicKey {
        self.identity.public()
    }

    /// What was dropped, refused and done so far.
    pub fn stats(&self) -> Stats {
        Stats {
            outbox_drops: self.dropped,
            ..self.stats
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event. What it borrows is valid until the next call.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        // Release what the previous event lent out.
        match self.current.take() {
            Some(Rec::Message { slot }) => {
                if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                    s.clear();
                }
            }
            Some(Rec::Page { .. }) => self.page_busy = false,
            _ => {}
        }
        let rec = self.events.pop_front()?;
        if let Rec::Message { slot } = rec {
            if let Some(s) = self.slots.get(usize::from(slot)) {
                s.assemble(&mut self.lend);
            }
        }
        self.current = Some(rec);
        let rec = self.current.as_ref()?;
        Some(self.event_of(rec))
    }

    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for p in &self.pending {
            if let Some(n) = p.next {
                at(n);
            }
        }
        if let Some(k) = self.next_keep {
            at(k);
        }
        for o in &self.outs {
            if let OutState::Sending { next, .. } = o.state {
                at(next);
            }
        }
        for p in &self.peers {
            if let Some(pr) = p.probe {
                at(pr.next);
            }
            if let Some(r) = p.relay.deadline() {
                at(r);
            }
            if let Some(k) = p.keep_path {
                at(k);
            }
        }
        for s in &self.slots {
            if s.state == SlotState::Partial {
                at(s.active + REASSEMBLY_TIMEOUT);
            }
        }
        t
    }

    /// Do the timed work due at `now`: retransmissions, keepalives, handshakes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.requests_due(now);
        self.keepalive_due(now);
        self.paths_due(now);
        self.chat_due(now);
        self.probes_due(now);
        self.relays_due(now);
        self.reassembly_due(now);
        self.responding_due(now);
        self.pump(now);
    }

    /// Handle a datagram that arrived at `now` from `src`.
    pub fn handle(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        if src == self.cfg.server {
            if is_frame(datagram) {
                self.on_frame(now, datagram);
            } else if let Ok(r) = RelayReply::parse(datagram) {
                self.on_relayd(now, r);
            } else if let Ok(reply) = Reply::parse(datagram) {
                self.on_reply(now, reply);
            }
        } else if is_sealed(datagram) {
            self.on_sealed(now, Via::Direct(src), datagram);
        } else {
            self.on_plain(now, src, datagram);
        }
        self.pump(now);
    }

    // ---- output -------------------------------------------------------

    fn emit(&mut self, dst: SocketAddr, f: impl FnOnce(&mut [u8]) -> Result<usize, EmitError>) {
        self.emit_copies(dst, 1, f);
    }

    /// The datagram `f` writes, written once and sent `copies` times.
    fn emit_copies(
        &mut self,
        dst: SocketAddr,
        copies: usize,
        f: impl FnOnce(&mut [u8]) -> Result<usize, EmitError>,
    ) {
        let mut buf = [0u8; MAX_DATAGRAM];
        if let Ok(n) = f(&mut buf) {
            for _ in 0..copies {
                self.push_out(dst, &buf[..n]);
            }
        }
    }

    fn push_out(&mut self, dst: SocketAddr, bytes: &[u8]) {
        let Ok(payload) = Vec::from_slice(bytes) else {
            return;
        };
        if self.outbox.push_back(Transmit { dst, payload }).is_err() {
            self.dropped += 1;
        }
    }
}
