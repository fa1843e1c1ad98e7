//! Requests of the extended protocol (client to server).
//!
//! ```text
//! request = hello / reg / keep / lookup / intro / list / sub / unsub / quit / stats
//! hello   = "HELLO" SP txid [SP padding]           ; padding = 1*%x21-7E
//! reg     = "REG" SP txid SP cookie SP id [SP lease [SP token]]
//! keep    = "KEEP" SP txid SP cookie SP id SP token
//! lookup  = "LOOKUP" SP txid SP cookie SP id
//! intro   = "INTRO" SP txid SP cookie SP id SP token SP id   ; me, my token, target
//! list    = "LIST" SP txid SP cookie SP cursor
//! sub     = "SUB" SP txid SP cookie SP id SP token
//! unsub   = "UNSUB" SP txid SP cookie SP id SP token
//! quit    = "QUIT" SP txid SP cookie SP id SP token
//! stats   = "STATS" SP txid SP cookie [SP token]   ; token: the admin token
//! cookie  = 16LOWHEX / "-"                         ; "-": none yet
//! lease   = 1*5DIGIT                               ; seconds, 0 to 86400
//! cursor  = 1*10DIGIT                              ; u32, 0 starts a listing
//! ```
//!
//! Fields are separated by exactly one space. Verbs are upper case, which
//! keeps them apart from the seed's mixed-case verbs (`Quit` vs `QUIT`).
//! Canonical form: `HELLO` padding is emitted as `pad` dots; numbers have no
//! leading zeros.

use super::fields::{Cookie, Id, Token, TxId};
use super::{EmitError, ParseError};

/// The parts every request but `HELLO` starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Echoed in the reply.
    pub tx: TxId<'a>,
    /// The cookie from a `COOKIE` reply, or `None` (`-` on the wire).
    pub cookie: Option<Cookie>,
}

/// An extended-protocol request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Ask for a cookie. The reply is sent only if it is no longer than the
    /// request, so clients pad `HELLO` (see `docs/PROTOCOL.md`).
    Hello {
        /// Echoed in the reply.
        tx: TxId<'a>,
        /// Length of the padding field (0: none).
        pad: u16,
    },
    /// Register `id` for `lease` seconds (server default if absent). With
    /// `token`, renew a live registration that this token owns.
    Register {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The id to register.
        id: Id<'a>,
        /// Requested lease in seconds; the server clamps it.
        lease: Option<u32>,
        /// The owner token of an earlier registration of `id`.
        token: Option<Token>,
    },
    /// Refresh the lease of `id` and learn the observed address.
    Keepalive {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The registered id.
        id: Id<'a>,
        /// Its owner token.
        token: Token,
    },
    /// Where is `id`?
    Lookup {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The id to find.
        id: Id<'a>,
    },
    /// Tell `target` where `id` is and tell `id` where `target` is.
    Introduce {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The requester's registered id.
        id: Id<'a>,
        /// The requester's owner token.
        token: Token,
        /// The id to be introduced to.
        target: Id<'a>,
    },
    /// One page of online ids, starting at `cursor` (0 for the first page).
    List {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// Where to resume, from the previous `PAGE`.
        cursor: u32,
    },
    /// Send presence events for the whole table to `id`.
    Subscribe {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The subscriber's registered id.
        id: Id<'a>,
        /// Its owner token.
        token: Token,
    },
    /// Stop presence events to `id`.
    Unsubscribe {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The subscriber's registered id.
        id: Id<'a>,
        /// Its owner token.
        token: Token,
    },
    /// Remove the registration of `id`.
    Quit {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The registered id.
        id: Id<'a>,
        /// Its owner token.
        token: Token,
    },
    /// Counters, for loopback or for the holder of the admin token.
    Stats {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The admin token, if the caller is not on loopback.
        admin: Option<Token>,
    },
}

impl<'a> Request<'a> {
    /// Parse one datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let _ = datagram;
        todo!("codec: request parse")
    }

    /// Write this request into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let _ = buf;
        todo!("codec: request emit")
    }

    /// The transaction id, which every request carries.
    pub fn tx(&self) -> TxId<'a> {
        match self {
            Request::Hello { tx, .. } => *tx,
            Request::Register { h, .. }
            | Request::Keepalive { h, .. }
            | Request::Lookup { h, .. }
            | Request::Introduce { h, .. }
            | Request::List { h, .. }
            | Request::Subscribe { h, .. }
            | Request::Unsubscribe { h, .. }
            | Request::Quit { h, .. }
            | Request::Stats { h, .. } => h.tx,
        }
    }
}
