//! What the application hears: [`Event`] and the reasons inside it, and
//! the owned record ([`Rec`]) an event is queued as until
//! [`Client::poll_event`] lends it out.

use core::fmt;
use core::net::SocketAddr;

use heapless::Deque;

use crate::secure::PublicKey;
use crate::time::Millis;
use crate::wire::reply::IdSeq;
use crate::wire::{ErrorCode, Id, IdBuf};

use super::{Client, EVENTS, MAX_INCOMING};

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

/// What became of a sent message ([`Event::Sent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The peer acknowledged it.
    Delivered,
    /// Sent as a seed `Message`, which cannot be acknowledged.
    Unconfirmed,
    /// Given up.
    NotDelivered(Undelivered),
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
        /// Whether it came through an authenticated session, so `from` is
        /// the holder of that peer's key. A seed `Message` never is: its
        /// `from` is only a guess from the address.
        verified: bool,
    },
    /// The first key seen for a peer, now pinned: the application stores
    /// it (known-peers file) and loads it with [`Client::pin`] next time.
    KeyFirstSeen {
        /// The peer.
        id: Id<'a>,
        /// Its key.
        key: PublicKey,
    },
    /// A peer offered a key other than the pinned one. Nothing is sent to
    /// it (messages wait) until [`Client::accept_key`] accepts `offered`.
    KeyChanged {
        /// The peer.
        id: Id<'a>,
        /// The key pinned for it.
        pinned: PublicKey,
        /// The key it (or the server) offered instead.
        offered: PublicKey,
    },
    /// What became of a message [`Client::send_message`] took: every
    /// message ends in exactly one of these.
    Sent {
        /// The peer.
        to: Id<'a>,
        /// What [`Client::send_message`] returned.
        msg: u32,
        /// Acknowledged, sent the seed's way, or given up.
        outcome: Outcome,
    },
    /// The server removed the registration ([`Client::quit`]).
    Bye,
}

/// An event as queued: owned, small; [`Client::poll_event`] lends it out.
#[derive(Clone, Copy, Debug)]
pub(super) enum Rec {
    /// An event that borrows nothing, queued as it is.
    Plain(Event<'static>),
    /// The id is the client's own, read when the event is lent out.
    Registered {
        addr: SocketAddr,
        lease: u32,
        again: bool,
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
    /// The message waits in reassembly slot `slot` until it is lent out.
    Message {
        slot: u8,
    },
    Sent {
        to: IdBuf,
        msg: u32,
        outcome: Outcome,
    },
    KeyFirstSeen {
        id: IdBuf,
        key: PublicKey,
    },
    KeyChanged {
        id: IdBuf,
        pinned: PublicKey,
        offered: PublicKey,
    },
}

impl From<Event<'static>> for Rec {
    fn from(e: Event<'static>) -> Rec {
        Rec::Plain(e)
    }
}

impl Rec {
    /// A presence notice, which may be dropped to make room: presence is
    /// best effort, and a later list tells the whole truth.
    fn is_presence(&self) -> bool {
        matches!(
            self,
            Rec::Joined(_) | Rec::Left(_) | Rec::Plain(Event::Resync)
        )
    }
}

impl Client {
    /// The event `rec` stands for; [`Event::Resync`] if an id in it no
    /// longer reads as one.
    pub(super) fn event_of<'s>(&'s self, rec: &'s Rec) -> Event<'s> {
        self.try_event_of(rec).unwrap_or(Event::Resync)
    }

    fn try_event_of<'s>(&'s self, rec: &'s Rec) -> Option<Event<'s>> {
        let id = |b: &'s IdBuf| b.as_id();
        Some(match *rec {
            Rec::Plain(e) => e,
            Rec::Registered { addr, lease, again } => match self.id() {
                Some(id) => Event::Registered {
                    id,
                    addr,
                    lease,
                    again,
                },
                None => Event::ServerBack,
            },
            Rec::Found { ref id, addr } => Event::Found {
                id: id.as_id()?,
                addr,
            },
            Rec::Failed {
                what,
                ref id,
                reason,
            } => Event::Failed {
                what,
                id: id.as_ref().and_then(IdBuf::as_id),
                reason,
            },
            Rec::Page { next } => Event::Page {
                next,
                ids: IdSeq(&self.page),
            },
            Rec::Joined(ref i) => Event::Joined(id(i)?),
            Rec::Left(ref i) => Event::Left(id(i)?),
            Rec::Message { slot } => {
                let s = &self.slots[usize::from(slot) % MAX_INCOMING];
                Event::Message {
                    from: s.from.as_ref().and_then(id),
                    text: &self.lend,
                    seed: s.seed,
                    verified: !s.seed,
                }
            }
            Rec::Sent {
                ref to,
                msg,
                outcome,
            } => Event::Sent {
                to: id(to)?,
                msg,
                outcome,
            },
            Rec::KeyFirstSeen { ref id, key } => Event::KeyFirstSeen {
                id: id.as_id()?,
                key,
            },
            Rec::KeyChanged {
                ref id,
                pinned,
                offered,
            } => Event::KeyChanged {
                id: id.as_id()?,
                pinned,
                offered,
            },
        })
    }

    /// Whether one more event that must not be lost can be queued: there
    /// is room, or a presence notice that can make room.
    pub(super) fn event_room(&self) -> bool {
        !self.events.is_full() || self.events.iter().any(Rec::is_presence)
    }

    pub(super) fn push_event(&mut self, rec: impl Into<Rec>) {
        let rec = rec.into();
        if self.events.push_back(rec).is_err() {
            // Anything but presence must not be lost, so make room by
            // dropping the oldest presence notice if there is one.
            if let Some(i) = self.events.iter().position(Rec::is_presence) {
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
