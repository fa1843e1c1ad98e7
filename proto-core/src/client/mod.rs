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
//! - **Keepalive** every 15 to 25 s (jittered; well inside common NAT
//!   timeouts and a third of the lease at most). When the server restarts
//!   or forgets the id (`ERR bad-cookie` -> a new `HELLO`; `ERR no-such-id`
//!   or `not-owner` on `KEEP` -> `REG` again), the client recovers by itself
//!   and says so with [`Event::Registered`] `{ again: true }`.
//! - **Introductions.** Sending to a peer without a path asks the server
//!   to introduce both sides (`INTRO`: `AT` to us, `PUNCH` to the peer; a
//!   `LOOKUP` when not registered). Both sides then send `PROBE`s, and the
//!   first address that answers becomes the path.
//! - **Reliable chat.** Every message has a number in this client's
//!   session; each fragment is acknowledged and retransmitted with
//!   exponential backoff and jitter; a message never acknowledged ends in
//!   [`Event::NotDelivered`]. Incoming messages are reassembled in order and
//!   shown exactly once ([`chat::Window`] suppresses duplicates).
//! - **The seed's client.** A peer that never answers a probe is taken for
//!   the seed's client and sent `Message <text>` ([`Event::SentUnconfirmed`]:
//!   the seed cannot acknowledge); [`Client::mark_seed`] says so up front.
//!   A seed `Message` that arrives is shown with the sender's id when its
//!   address is known.

pub mod chat;
mod rng;
#[cfg(test)]
mod tests;

use core::fmt;
use core::net::SocketAddr;

use heapless::{Deque, String, Vec};

use crate::MAX_DATAGRAM;
use crate::time::{Instant, Millis};
use crate::wire::peer::{Chat, MAX_FRAGMENT_TEXT, MAX_SEED_TEXT, PeerMsg, Text, split_at_boundary};
use crate::wire::reply::{Change, IdSeq};
use crate::wire::request::Header;
use crate::wire::{Cookie, EmitError, ErrorCode, Id, IdBuf, Reply, Request, Token, TxId};

use chat::{MAX_TEXT, OutState, Outgoing, Reassembly, SlotState, Window};
use rng::Rng;

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
/// A peer the server placed this recently is not asked about again
/// (unless its path goes silent).
const RESOLVE_AGAIN: Millis = Millis(10_000);
/// How long a peer that never answered a probe is taken for a seed client.
const SEED_GUESS_FOR: Millis = Millis(60_000);
/// Candidate addresses tried for one peer.
const MAX_CANDIDATES: usize = 4;
/// `HELLO` is padded to this length so the `COOKIE` reply (at most 99
/// bytes with an IPv6 address) is never larger than the request.
const HELLO_LEN: usize = 128;
/// A cookie older than this is refreshed before use (servers keep one
/// valid for at least one 120 s window).
const COOKIE_FRESH: Millis = Millis(100_000);
/// A partial incoming message that got no new fragment for this long is
/// dropped (its sender retransmits far more often, or gave up).
const REASSEMBLY_TIMEOUT: Millis = Millis(15_000);

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
    /// The lease to ask for, in seconds (`None`: the server's default).
    pub lease: Option<u32>,
    /// Shortest interval between keepalives.
    pub keepalive_min: Millis,
    /// Longest interval between keepalives.
    pub keepalive_max: Millis,
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
    /// Interval between the first probes of a path (it doubles, up to 1 s).
    pub probe_interval: Millis,
    /// Probes sent before a peer is taken for the seed's client.
    pub probe_attempts: u8,
    /// Longest text in one `CHAT` fragment.
    pub fragment_text: usize,
}

impl Config {
    /// Defaults for a client of `server` with id `id`, registering it if there is one.
    pub fn new(server: SocketAddr, id: Option<Id<'_>>) -> Config {
        Config {
            server,
            id: id.map(IdBuf::from_id),
            register: id.is_some(),
            subscribe: false,
            lease: None,
            keepalive_min: Millis::from_secs(15),
            keepalive_max: Millis::from_secs(25),
            request_rto: Millis(400),
            request_attempts: 6,
            chat_rto: Millis(300),
            chat_rto_max: Millis(2000),
            chat_attempts: 14,
            probe_interval: Millis(200),
            probe_attempts: 7,
            fragment_text: MAX_FRAGMENT_TEXT,
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

/// Why a request to the server failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server refused it.
    Server(ErrorCode),
    /// The server never answered.
    NoAnswer,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Server(code) => fmt::Display::fmt(code, f),
            Failure::NoAnswer => f.write_str("the server did not answer"),
        }
    }
}

/// Which command a [`Event::Failed`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// [`Client::lookup`].
    Lookup,
    /// [`Client::list`].
    List,
    /// [`Client::ping`].
    Ping,
    /// [`Client::quit`].
    Quit,
    /// Presence subscription.
    Subscribe,
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// The server knows nobody with that id.
    NoSuchPeer,
    /// The peer never acknowledged it.
    NoAnswer,
    /// The server could not be asked where the peer is.
    Server(Failure),
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undelivered::NoSuchPeer => f.write_str("nobody with that id is online"),
            Undelivered::NoAnswer => f.write_str("the peer never acknowledged it"),
            Undelivered::Server(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Why a command was refused at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The text was empty or held a line break.
    BadText,
    /// The text was longer than [`chat::MAX_TEXT`] bytes or needs too many fragments.
    TooLong,
    /// This client has no id to send as.
    NoId,
    /// That is this client's own id.
    ToSelf,
    /// Too many messages or requests are in flight; try again shortly.
    Busy,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::BadText => "a message must be one non-empty line of text",
            CommandError::TooLong => "the message is longer than 4096 bytes",
            CommandError::NoId => "this client has no id to send as",
            CommandError::ToSelf => "that is your own id",
            CommandError::Busy => "too many messages are in flight; try again shortly",
        })
    }
}

/// Something that happened, for the application to show or act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The id is registered. `again`: after the server restarted or forgot it.
    Registered {
        /// The id.
        id: Id<'a>,
        /// The address the server sees.
        addr: SocketAddr,
        /// The lease, in seconds.
        lease: u32,
        /// A re-registration.
        again: bool,
    },
    /// The id could not be registered (taken, refused, or no server).
    RegistrationFailed(Failure),
    /// The server stopped answering (the client keeps trying).
    ServerUnreachable,
    /// The server answers again.
    ServerBack,
    /// The answer to [`Client::ping`].
    Pong {
        /// The address the server sees.
        addr: SocketAddr,
        /// The round-trip time.
        rtt: Millis,
    },
    /// The answer to [`Client::lookup`].
    Found {
        /// The id.
        id: Id<'a>,
        /// Where the server sees it.
        addr: SocketAddr,
    },
    /// A command failed.
    Failed {
        /// Which.
        what: What,
        /// The id it was about, if any.
        id: Option<Id<'a>>,
        /// Why.
        reason: Failure,
    },
    /// One page of online ids (the answer to [`Client::list`]).
    Page {
        /// The cursor of the next page; 0 if this is the last.
        next: u32,
        /// The ids.
        ids: IdSeq<'a>,
    },
    /// A peer came online (presence events).
    Joined(Id<'a>),
    /// A peer went offline (presence events).
    Left(Id<'a>),
    /// Presence events were lost; list again for the full picture.
    Resync,
    /// A chat message, whole, shown once.
    Message {
        /// The sender, if known (a seed `Message` has no id in it).
        from: Option<Id<'a>>,
        /// The text.
        text: &'a str,
        /// Whether it came as a seed `Message`.
        seed: bool,
    },
    /// A message was acknowledged by the peer.
    Delivered {
        /// The peer.
        to: Id<'a>,
        /// What [`Client::send_message`] returned.
        msg: u32,
    },
    /// A message was given up.
    NotDelivered {
        /// The peer.
        to: Id<'a>,
        /// What [`Client::send_message`] returned.
        msg: u32,
        /// Why.
        reason: Undelivered,
    },
    /// Sent as a seed `Message`, which cannot be acknowledged.
    SentUnconfirmed {
        /// The peer.
        to: Id<'a>,
        /// What [`Client::send_message`] returned.
        msg: u32,
    },
    /// The server removed the registration ([`Client::quit`]).
    Bye,
}

/// An event as queued: owned, small; [`Client::poll_event`] lends it out.
#[derive(Clone, Copy, Debug)]
enum Rec {
    Registered {
        addr: SocketAddr,
        lease: u32,
        again: bool,
    },
    RegistrationFailed(Failure),
    ServerUnreachable,
    ServerBack,
    Pong {
        addr: SocketAddr,
        rtt: Millis,
    },
    Found {
        id: IdBuf,
        addr: SocketAddr,
    },
    Failed {
        what: What,
        id: Option<IdBuf>,
        reason: Failure,
    },
    Page {
        next: u32,
    },
    Joined(IdBuf),
    Left(IdBuf),
    Resync,
    Message {
        slot: u8,
    },
    Delivered {
        to: IdBuf,
        msg: u32,
    },
    NotDelivered {
        to: IdBuf,
        msg: u32,
        reason: Undelivered,
    },
    SentUnconfirmed {
        to: IdBuf,
        msg: u32,
    },
    Bye,
}

/// What a pending request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    Hello {
        ping: bool,
    },
    Register,
    Keep,
    Subscribe,
    Quit,
    /// Where is this peer (to send to it)? `INTRO` when registered and
    /// not `plain`; `intro` says which was sent.
    Resolve {
        peer: IdBuf,
        plain: bool,
        intro: bool,
    },
    Lookup(IdBuf),
    List(u32),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    tx: u32,
    req: Req,
    /// `None`: waiting for a cookie or a registration before it can go.
    next: Option<Instant>,
    attempts: u8,
    rto: u64,
    first: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RegState {
    /// Not registering.
    Off,
    /// A `REG` is pending.
    Registering { again: bool },
    /// Registered.
    Registered { token: Token },
    /// Gave up (the reason was reported).
    Failed,
    /// Quit.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Not heard from yet.
    Unknown,
    /// Answers probes and acknowledges.
    Parley,
    /// The seed's client: gets `Message <text>`.
    Seed,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    nonce: u64,
    sent: u8,
    next: Instant,
    started: Instant,
}

#[derive(Clone, Debug)]
struct Peer {
    id: IdBuf,
    kind: Kind,
    path: Option<SocketAddr>,
    cands: Vec<SocketAddr, MAX_CANDIDATES>,
    probe: Option<Probe>,
    resolving: bool,
    /// When probes last went unanswered and the peer was taken for a seed
    /// client (`None` if it never was, or [`Client::mark_seed`] said so).
    assumed_seed: Option<Instant>,
    /// When the server last said where the peer is.
    resolved: Option<Instant>,
    srtt: Option<u64>,
    rx: Window,
    used: Instant,
}

/// The client session.
pub struct Client {
    cfg: Config,
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

fn tx_text(tx: u32, buf: &mut [u8; 10]) -> Option<TxId<'_>> {
    let mut i = buf.len();
    let mut v = tx;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    TxId::from_bytes(&buf[i..]).ok()
}

fn parse_tx(tx: TxId<'_>) -> Option<u32> {
    tx.as_str().parse().ok()
}

impl Client {
    /// A client for `cfg`, starting at `now`. `entropy` (32 random bytes)
    /// seeds the session number, nonces, transaction ids and jitter.
    pub fn new(cfg: Config, now: Instant, entropy: [u8; 32]) -> Client {
        let mut rng = Rng::new(entropy);
        let session = rng.next_u64();
        let next_tx = (rng.next_u64() % 1_000_000) as u32 + 1;
        let mut c = Client {
            reg: RegState::Off,
            cfg,
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

    fn event_of<'s>(&'s self, rec: &'s Rec) -> Event<'s> {
        let id = |b: &'s IdBuf| b.as_id();
        match rec {
            Rec::Registered { addr, lease, again } => match self.id() {
                Some(me) => Event::Registered {
                    id: me,
                    addr: *addr,
                    lease: *lease,
                    again: *again,
                },
                None => Event::ServerBack,
            },
            Rec::RegistrationFailed(f) => Event::RegistrationFailed(*f),
            Rec::ServerUnreachable => Event::ServerUnreachable,
            Rec::ServerBack => Event::ServerBack,
            Rec::Pong { addr, rtt } => Event::Pong {
                addr: *addr,
                rtt: *rtt,
            },
            Rec::Found { id: i, addr } => match id(i) {
                Some(i) => Event::Found { id: i, addr: *addr },
                None => Event::Resync,
            },
            Rec::Failed {
                what,
                id: i,
                reason,
            } => Event::Failed {
                what: *what,
                id: i.as_ref().and_then(id),
                reason: *reason,
            },
            Rec::Page { next } => Event::Page {
                next: *next,
                ids: IdSeq(&self.page),
            },
            Rec::Joined(i) => id(i).map_or(Event::Resync, Event::Joined),
            Rec::Left(i) => id(i).map_or(Event::Resync, Event::Left),
            Rec::Resync => Event::Resync,
            Rec::Message { slot } => {
                let s = &self.slots[usize::from(*slot) % MAX_INCOMING];
                Event::Message {
                    from: s.from.as_ref().and_then(id),
                    text: &self.lend,
                    seed: s.seed,
                }
            }
            Rec::Delivered { to, msg } => match id(to) {
                Some(to) => Event::Delivered { to, msg: *msg },
                None => Event::Resync,
            },
            Rec::NotDelivered { to, msg, reason } => match id(to) {
                Some(to) => Event::NotDelivered {
                    to,
                    msg: *msg,
                    reason: *reason,
                },
                None => Event::Resync,
            },
            Rec::SentUnconfirmed { to, msg } => match id(to) {
                Some(to) => Event::SentUnconfirmed { to, msg: *msg },
                None => Event::Resync,
            },
            Rec::Bye => Event::Bye,
        }
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
        }
        for s in &self.slots {
            if s.state == SlotState::Partial {
                at(s.active + REASSEMBLY_TIMEOUT);
            }
        }
        t
    }

    /// Do the timed work due at `now`: retransmissions, keepalives, probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Server requests.
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            match p.next {
                Some(next) if next <= now => {
                    if p.attempts >= self.cfg.request_attempts {
                        self.pending.swap_remove(i);
                        self.request_failed(now, p.req, Failure::NoAnswer);
                        continue;
                    }
                    self.transmit_request(now, i);
                }
                _ => {}
            }
            i += 1;
        }
        // Keepalive.
        if self.next_keep.is_some_and(|k| k <= now) {
            self.next_keep = None;
            if !self.has_pending(|r| matches!(r, Req::Keep | Req::Register)) {
                match self.reg {
                    RegState::Registered { .. } => self.request(now, Req::Keep),
                    RegState::Registering { .. } => self.request(now, Req::Register),
                    _ => {}
                }
            }
        }
        // Chat retransmissions.
        let mut i = 0;
        while i < self.outs.len() {
            if let OutState::Sending { attempts, next, .. } = self.outs[i].state {
                if next <= now {
                    if attempts >= self.cfg.chat_attempts {
                        let o = self.outs.swap_remove(i);
                        self.push_event(Rec::NotDelivered {
                            to: o.to,
                            msg: o.seq,
                            reason: Undelivered::NoAnswer,
                        });
                        continue;
                    }
                    self.send_fragments(now, i);
                    // A path that never carried an acknowledgement may be
                    // stale (the peer moved): ask the server again.
                    if attempts == 3 && !self.outs[i].any_acked() {
                        let to = self.outs[i].to;
                        self.resolve(now, to);
                    }
                }
            }
            i += 1;
        }
        // Probes.
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
        // Abandoned partial messages.
        for s in &mut self.slots {
            if s.state == SlotState::Partial && s.active + REASSEMBLY_TIMEOUT <= now {
                s.clear();
            }
        }
        self.pump(now);
    }

    /// Handle a datagram that arrived at `now` from `src`.
    pub fn handle(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        if src == self.cfg.server {
            if let Ok(reply) = Reply::parse(datagram) {
                self.on_reply(now, reply);
            }
        } else if let Ok(msg) = PeerMsg::parse(datagram) {
            self.on_peer(now, src, msg);
        }
        self.pump(now);
    }

    // ---- commands -------------------------------------------------------

    /// Send `text` to `to`. Returns the message's number, which the
    /// [`Event::Delivered`], [`Event::NotDelivered`] or
    /// [`Event::SentUnconfirmed`] about it carries.
    pub fn send_message(
        &mut self,
        now: Instant,
        to: Id<'_>,
        text: &str,
    ) -> Result<u32, CommandError> {
        let me = self.cfg.id.ok_or(CommandError::NoId)?;
        if me.eq_id(to) {
            return Err(CommandError::ToSelf);
        }
        Text::new(text).ok_or(CommandError::BadText)?;
        if text.len() > MAX_TEXT {
            return Err(CommandError::TooLong);
        }
        if self.outs.is_full() {
            return Err(CommandError::Busy);
        }
        let seq = self.next_seq;
        let frag_len = self.cfg.fragment_text.clamp(4, MAX_FRAGMENT_TEXT);
        let out = Outgoing::new(IdBuf::from_id(to), seq, text, frag_len, now)
            .ok_or(CommandError::TooLong)?;
        let p = self.peer_index(now, to).ok_or(CommandError::Busy)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.peers[p].used = now;
        if self.outs.push(out).is_err() {
            return Err(CommandError::Busy);
        }
        self.drive_peer(now, p);
        self.pump(now);
        Ok(seq)
    }

    /// Say that `peer` runs the seed's client: messages to it go as
    /// `Message <text>` without waiting for probes.
    pub fn mark_seed(&mut self, now: Instant, peer: Id<'_>) {
        if let Some(p) = self.peer_index(now, peer) {
            self.peers[p].kind = Kind::Seed;
            self.peers[p].assumed_seed = None;
            self.peers[p].probe = None;
        }
    }

    /// Ask the server where `id` is ([`Event::Found`] or [`Event::Failed`]).
    pub fn lookup(&mut self, now: Instant, id: Id<'_>) -> Result<(), CommandError> {
        self.command(now, Req::Lookup(IdBuf::from_id(id)))
    }

    /// Ask for the page of online ids starting at `cursor` (0: the first).
    pub fn list(&mut self, now: Instant, cursor: u32) -> Result<(), CommandError> {
        self.command(now, Req::List(cursor))
    }

    /// Measure the round trip to the server ([`Event::Pong`]).
    pub fn ping(&mut self, now: Instant) -> Result<(), CommandError> {
        self.command(now, Req::Hello { ping: true })
    }

    /// Remove the registration ([`Event::Bye`]); keepalives stop.
    pub fn quit(&mut self, now: Instant) -> Result<(), CommandError> {
        self.next_keep = None;
        self.pending
            .retain(|p| !matches!(p.req, Req::Keep | Req::Register | Req::Subscribe));
        match self.reg {
            RegState::Registered { .. } => {
                self.reg = RegState::Gone;
                self.command(now, Req::Quit)
            }
            _ => {
                self.reg = RegState::Gone;
                self.push_event(Rec::Bye);
                Ok(())
            }
        }
    }

    fn command(&mut self, now: Instant, req: Req) -> Result<(), CommandError> {
        if self.pending.is_full() {
            return Err(CommandError::Busy);
        }
        self.request(now, req);
        self.pump(now);
        Ok(())
    }

    // ---- server requests --------------------------------------------

    fn has_pending(&self, f: impl Fn(&Req) -> bool) -> bool {
        self.pending.iter().any(|p| f(&p.req))
    }

    /// Queue a request; [`Client::pump`] sends it when it can go.
    fn request(&mut self, now: Instant, req: Req) {
        let tx = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1);
        let p = Pending {
            tx,
            req,
            next: None,
            attempts: 0,
            rto: self.cfg.request_rto.0,
            first: now,
        };
        if self.pending.push(p).is_err() {
            self.request_failed(now, req, Failure::NoAnswer);
        }
    }

    /// Send every waiting request that can go now; fetch a cookie if one is needed.
    fn pump(&mut self, now: Instant) {
        let fresh = self
            .cookie
            .is_some_and(|(_, at)| now.since(at) < COOKIE_FRESH.0);
        if !fresh {
            self.cookie = None;
        }
        let mut need_cookie = false;
        for i in 0..self.pending.len() {
            let p = self.pending[i];
            if p.next.is_some() {
                continue;
            }
            let ready = match p.req {
                Req::Hello { .. } => true,
                Req::Keep | Req::Subscribe | Req::Quit => {
                    self.cookie.is_some()
                        && (self.token.is_some()
                            || !matches!(self.reg, RegState::Registering { .. }))
                }
                Req::Resolve { .. } => {
                    self.cookie.is_some() && !matches!(self.reg, RegState::Registering { .. })
                }
                _ => self.cookie.is_some(),
            };
            if ready {
                self.transmit_request(now, i);
            } else if self.cookie.is_none() {
                need_cookie = true;
            }
        }
        if need_cookie && !self.has_pending(|r| matches!(r, Req::Hello { .. })) {
            self.request(now, Req::Hello { ping: false });
            if let Some(i) = self.pending.len().checked_sub(1) {
                self.transmit_request(now, i);
            }
        }
    }

    /// (Re)transmit pending request `i` and schedule its retransmission.
    fn transmit_request(&mut self, now: Instant, i: usize) {
        let p = self.pending[i];
        let mut tbuf = [0u8; 10];
        let Some(tx) = tx_text(p.tx, &mut tbuf) else {
            self.pending.swap_remove(i);
            return;
        };
        let h = Header {
            tx,
            cookie: self.cookie.map(|(c, _)| c),
        };
        let me = self.cfg.id;
        let me = me.as_ref().and_then(IdBuf::as_id);
        let token = self.token.unwrap_or(Token(0));
        let mut req_buf = [IdBuf::EMPTY; 1];
        let req = match p.req {
            Req::Hello { .. } => Some(Request::Hello {
                tx,
                pad: (HELLO_LEN - "HELLO  ".len() - tx.as_str().len()) as u16,
            }),
            Req::Register => me.map(|id| Request::Register {
                h,
                id,
                lease: self.cfg.lease,
                token: self.token,
            }),
            Req::Keep => me.map(|id| Request::Keepalive { h, id, token }),
            Req::Subscribe => me.map(|id| Request::Subscribe { h, id, token }),
            Req::Quit => me.map(|id| Request::Quit { h, id, token }),
            Req::Resolve { peer, plain, .. } => {
                req_buf[0] = peer;
                let target = req_buf[0].as_id();
                let intro = !plain && matches!(self.reg, RegState::Registered { .. });
                if let Req::Resolve {
                    intro: ref mut flag,
                    ..
                } = self.pending[i].req
                {
                    *flag = intro;
                }
                match (intro, me, target) {
                    (true, Some(id), Some(target)) => Some(Request::Introduce {
                        h,
                        id,
                        token,
                        target,
                    }),
                    (_, _, Some(target)) => Some(Request::Lookup { h, id: target }),
                    _ => None,
                }
            }
            Req::Lookup(id) => {
                req_buf[0] = id;
                req_buf[0].as_id().map(|id| Request::Lookup { h, id })
            }
            Req::List(cursor) => Some(Request::List { h, cursor }),
        };
        let Some(req) = req else {
            self.pending.swap_remove(i);
            return;
        };
        let server = self.cfg.server;
        self.emit(server, |b| req.emit(b));
        let jitter = self.rng.jitter(p.rto);
        let p = &mut self.pending[i];
        if p.attempts == 0 {
            p.first = now;
        }
        p.attempts = p.attempts.saturating_add(1);
        p.next = Some(now + Millis(jitter));
        p.rto = (p.rto * 2).min(4000);
    }

    fn take_pending(&mut self, tx: TxId<'_>) -> Option<Pending> {
        let tx = parse_tx(tx)?;
        let i = self.pending.iter().position(|p| p.tx == tx)?;
        Some(self.pending.swap_remove(i))
    }

    fn server_answered(&mut self) {
        if self.server_down {
            self.server_down = false;
            self.push_event(Rec::ServerBack);
        }
    }

    fn request_failed(&mut self, now: Instant, req: Req, why: Failure) {
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
        }
    }

    fn schedule_keepalive(&mut self, now: Instant) {
        let lo = self.cfg.keepalive_min.0;
        let hi = self.cfg.keepalive_max.0.max(lo);
        let mut wait = lo + self.rng.below(hi - lo + 1);
        if let (RegState::Registered { .. }, Some(lease)) = (self.reg, self.lease_ms()) {
            wait = wait.min((lease / 3).max(1000));
        }
        self.next_keep = Some(now + Millis(wait));
    }

    fn lease_ms(&self) -> Option<u64> {
        self.lease.map(|l| u64::from(l) * 1000)
    }

    fn on_reply(&mut self, now: Instant, reply: Reply<'_>) {
        match reply {
            Reply::Punch { id, addr } => {
                self.server_answered();
                if self.cfg.id.is_some_and(|me| me.eq_id(id)) {
                    return;
                }
                if let Some(p) = self.peer_index(now, id) {
                    self.add_candidate(p, addr);
                    if self.peers[p].kind != Kind::Seed && self.peers[p].probe.is_none() {
                        self.start_probe(now, p);
                    }
                }
                return;
            }
            Reply::Events {
                first: _,
                last,
                changes,
            } => {
                if self
                    .presence_seq
                    .is_some_and(|s| last.wrapping_sub(s) as i32 <= 0)
                {
                    return;
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
        // A page arriving while the last one is still being read is left
        // unanswered: the retransmission asks again.
        if matches!(reply, Reply::Page { .. }) && self.page_busy {
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
            (Req::Resolve { peer, .. }, Reply::At { id, addr, .. }) if peer.eq_id(id) => {
                if let Some(i) = self.find_peer(&peer) {
                    self.peers[i].resolving = false;
                    self.peers[i].resolved = Some(now);
                    self.add_candidate(i, addr);
                    let moved = self.peers[i].path.is_some_and(|p| p != addr);
                    if moved && self.peers[i].kind != Kind::Seed && self.peers[i].probe.is_none() {
                        // The peer may have moved: find out which address answers.
                        self.start_probe(now, i);
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

    /// The server forgot us: register again (with the old token, which
    /// renews if the server still has the id as ours).
    fn reregister(&mut self, now: Instant) {
        if matches!(self.reg, RegState::Gone | RegState::Off) {
            return;
        }
        self.reg = RegState::Registering { again: true };
        self.next_keep = None;
        if !self.has_pending(|r| matches!(r, Req::Register)) {
            self.request(now, Req::Register);
        }
    }

    // ---- peers --------------------------------------------------------

    fn find_peer(&self, id: &IdBuf) -> Option<usize> {
        self.peers.iter().position(|p| p.id == *id)
    }

    /// The peer entry for `id`, made (evicting the least recently used
    /// idle one if the table is full) if needed.
    fn peer_index(&mut self, now: Instant, id: Id<'_>) -> Option<usize> {
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

    fn add_candidate(&mut self, p: usize, addr: SocketAddr) {
        let c = &mut self.peers[p].cands;
        if !c.contains(&addr) {
            if c.is_full() {
                c.remove(0);
            }
            let _ = c.push(addr);
        }
    }

    /// Ask the server where `peer` is, unless that is under way.
    fn resolve(&mut self, now: Instant, peer: IdBuf) {
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
    fn drive_peer(&mut self, now: Instant, p: usize) {
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

    fn start_probe(&mut self, now: Instant, p: usize) {
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

    /// Send every message waiting for seed peer `p` as `Message` datagrams.
    fn send_seed(&mut self, p: usize, addr: SocketAddr) {
        let id = self.peers[p].id;
        let mut i = 0;
        while i < self.outs.len() {
            if self.outs[i].to != id {
                i += 1;
                continue;
            }
            let o = self.outs.swap_remove(i);
            let mut rest = o.text();
            while !rest.is_empty() {
                let (head, tail) = split_at_boundary(rest, MAX_SEED_TEXT);
                let msg = PeerMsg::Seed(head);
                self.emit(addr, |b| msg.emit(b));
                rest = tail;
            }
            self.push_event(Rec::SentUnconfirmed { to: id, msg: o.seq });
        }
    }

    /// Send the unacknowledged fragments of outgoing message `i` and
    /// schedule the next retransmission.
    /// The timer moves on even when nothing could be sent (no path right
    /// now), so a message always ends in an event.
    fn send_fragments(&mut self, now: Instant, i: usize) {
        let me = self.cfg.id;
        let from = me.as_ref().and_then(IdBuf::as_id);
        let to = self.outs[i].to;
        let p = self.find_peer(&to);
        let path = p.and_then(|p| self.peers[p].path);
        let srtt = p.and_then(|p| self.peers[p].srtt);
        let count = self.outs[i].count();
        let sendable = from.zip(path);
        for frag in 1..=count {
            let Some((from, path)) = sendable else { break };
            if self.outs[i].is_acked(frag) {
                continue;
            }
            let o = &self.outs[i];
            let Some(text) = Text::new(o.fragment(frag)) else {
                continue;
            };
            let msg = PeerMsg::Chat(Chat {
                from,
                session: self.session,
                seq: o.seq,
                frag,
                count,
                text,
            });
            let mut buf = [0u8; MAX_DATAGRAM];
            if let Ok(n) = msg.emit(&mut buf) {
                self.push_out(path, &buf[..n]);
            }
        }
        let base = srtt.map_or(self.cfg.chat_rto.0, |s| (2 * s + 50).max(200));
        let max = self.cfg.chat_rto_max.0.max(base);
        let (attempts, rto, first) = match self.outs[i].state {
            OutState::Waiting => (0, base, now),
            OutState::Sending {
                attempts,
                rto,
                first,
                ..
            } => (attempts, (rto * 2).min(max), first),
        };
        let wait = self.rng.jitter(rto);
        self.outs[i].state = OutState::Sending {
            attempts: attempts + 1,
            next: now + Millis(wait),
            rto,
            first,
        };
    }

    fn fail_outgoing(&mut self, peer: &IdBuf, reason: Undelivered) {
        let mut i = 0;
        while i < self.outs.len() {
            if self.outs[i].to == *peer {
                let o = self.outs.swap_remove(i);
                self.push_event(Rec::NotDelivered {
                    to: o.to,
                    msg: o.seq,
                    reason,
                });
            } else {
                i += 1;
            }
        }
    }

    /// A Parley datagram from `id` came from `src`: that is the path.
    fn heard_from(&mut self, now: Instant, id: Id<'_>, src: SocketAddr) -> Option<usize> {
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

    fn on_peer(&mut self, now: Instant, src: SocketAddr, msg: PeerMsg<'_>) {
        let Some(me) = self.cfg.id else {
            return;
        };
        let Some(my_id) = me.as_id() else { return };
        match msg {
            PeerMsg::Probe { from, nonce } => {
                if me.eq_id(from) {
                    return;
                }
                let reply = PeerMsg::Probed { from: my_id, nonce };
                self.emit(src, |b| reply.emit(b));
                self.heard_from(now, from, src);
            }
            PeerMsg::Probed { from, nonce } => {
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
            PeerMsg::Ack {
                from,
                session,
                seq,
                frag,
            } => {
                if session != self.session {
                    return;
                }
                let b = IdBuf::from_id(from);
                let Some(i) = self.outs.iter().position(|o| o.to == b && o.seq == seq) else {
                    return;
                };
                if let OutState::Sending {
                    attempts: 1, first, ..
                } = self.outs[i].state
                {
                    if let Some(p) = self.find_peer(&b) {
                        let sample = now.since(first);
                        let s = &mut self.peers[p].srtt;
                        *s = Some(s.map_or(sample, |s| (7 * s + sample) / 8));
                    }
                }
                if self.outs[i].ack(frag) {
                    let o = self.outs.swap_remove(i);
                    self.push_event(Rec::Delivered {
                        to: o.to,
                        msg: o.seq,
                    });
                }
                self.heard_from(now, from, src);
            }
            PeerMsg::Chat(c) => self.on_chat(now, src, my_id, c),
            PeerMsg::Seed(text) => {
                // The seed's client names nobody: the address may.
                let from = self
                    .peers
                    .iter()
                    .find(|p| p.path == Some(src) || p.cands.contains(&src))
                    .map(|p| p.id);
                let Some(text) = Text::new(text) else { return };
                let Some(s) = self.slots.iter().position(|s| s.state == SlotState::Free) else {
                    return;
                };
                self.slots[s].start(from, true, 0, 0, 1, now);
                if self.slots[s].add(1, 1, text.as_str()) == Ok(true) {
                    self.push_event(Rec::Message { slot: s as u8 });
                } else {
                    self.slots[s].clear();
                }
            }
        }
    }

    fn on_chat(&mut self, now: Instant, src: SocketAddr, me: Id<'_>, c: Chat<'_>) {
        if c.from == me {
            return;
        }
        let Some(p) = self.heard_from(now, c.from, src) else {
            return;
        };
        let from = IdBuf::from_id(c.from);
        let ack = PeerMsg::Ack {
            from: me,
            session: c.session,
            seq: c.seq,
            frag: c.frag,
        };
        if self.peers[p].rx.seen(c.session, c.seq) {
            self.emit(src, |b| ack.emit(b));
            return;
        }
        let slot = match self
            .slots
            .iter()
            .position(|s| s.is(&from, c.session, c.seq))
        {
            Some(s) => s,
            None => {
                // No room: say nothing, and the sender sends it again later.
                let Some(s) = self.slots.iter().position(|s| s.state == SlotState::Free) else {
                    return;
                };
                self.slots[s].start(Some(from), false, c.session, c.seq, c.count, now);
                s
            }
        };
        // An inconsistent or oversized fragment is ignored, not acknowledged.
        if let Ok(whole) = self.slots[slot].add(c.frag, c.count, c.text.as_str()) {
            self.slots[slot].active = now;
            self.emit(src, |b| ack.emit(b));
            if whole {
                self.peers[p].rx.mark(c.session, c.seq);
                self.push_event(Rec::Message { slot: slot as u8 });
            }
        }
    }

    // ---- output -------------------------------------------------------

    fn emit(&mut self, dst: SocketAddr, f: impl FnOnce(&mut [u8]) -> Result<usize, EmitError>) {
        let mut buf = [0u8; MAX_DATAGRAM];
        if let Ok(n) = f(&mut buf) {
            self.push_out(dst, &buf[..n]);
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

    fn push_event(&mut self, rec: Rec) {
        if self.events.push_back(rec).is_err() {
            // Presence is best effort; anything else must not be lost, so
            // make room by dropping the oldest presence notice if there is one.
            if let Some(i) = self
                .events
                .iter()
                .position(|r| matches!(r, Rec::Joined(_) | Rec::Left(_) | Rec::Resync))
            {
                let mut kept: Deque<Rec, EVENTS> = Deque::new();
                for (j, r) in self.events.iter().enumerate() {
                    if j != i {
                        let _ = kept.push_back(*r);
                    }
                }
                self.events = kept;
                let _ = self.events.push_back(rec);
            }
        }
    }
}
