//! Replies of the extended protocol, and the unsolicited messages the server
//! sends (introductions and presence events).
//!
//! ```text
//! reply   = cookie-r / regd / alive / at / page / subd / unsubd / bye
//!         / stats-r / err / punch / events / resync
//! cookie-r = "COOKIE" SP txid SP cookie SP addr
//! regd    = "REGD" SP txid SP id SP lease SP addr SP token
//! alive   = "ALIVE" SP txid SP lease SP addr SP seq
//! at      = "AT" SP txid SP id SP addr                 ; LOOKUP and INTRO
//! page    = "PAGE" SP txid SP cursor *(SP id)          ; cursor 0: last page
//! subd    = "SUBD" SP txid SP seq
//! unsubd  = "UNSUBD" SP txid
//! bye     = "BYE" SP txid SP id
//! stats-r = "STATS" SP txid *(SP key "=" 1*20DIGIT)    ; key = 1*32(ALPHA / DIGIT / "_" / ".")
//! err     = "ERR" SP (txid / "-") SP code
//! code    = "malformed" / "unknown-verb" / "bad-id" / "table-full" / "id-taken"
//!         / "not-owner" / "rate-limited" / "bad-cookie" / "no-such-id"
//!         / "over-quota" / "forbidden"
//! punch   = "PUNCH" SP id SP addr                      ; id wants to reach you at addr
//! events  = "EVENTS" SP seq SP seq 1*(SP ("+" / "-") id) ; first and last change included
//! resync  = "RESYNC" SP seq                            ; events were lost: LIST again
//! addr    = IPv4 ":" port / "[" IPv6 "]" ":" port      ; as Rust's SocketAddr prints it
//! seq     = 1*10DIGIT                                  ; u32, wraps
//! ```

use core::fmt;
use core::net::SocketAddr;

use super::fields::{Cookie, Id, Token, TxId, parse_hex64};
use super::text::{Fields, Writer, verb_and_rest};
use super::{EmitError, ParseError};
use crate::MAX_DATAGRAM;

/// A typed error, sent as `ERR <tx> <code>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request could not be parsed.
    Malformed,
    /// The request's verb is unknown.
    UnknownVerb,
    /// An id in the request is not a valid id.
    BadId,
    /// The table is full of live registrations.
    TableFull,
    /// The id is registered by someone else.
    IdTaken,
    /// The token does not own the id.
    NotOwner,
    /// The source sent too many requests.
    RateLimited,
    /// The cookie is missing, stale, or not this source's.
    BadCookie,
    /// No live registration has that id.
    NoSuchId,
    /// The source address holds as many ids as it may.
    OverQuota,
    /// The request needs loopback or the admin token.
    Forbidden,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Malformed,
        ErrorCode::UnknownVerb,
        ErrorCode::BadId,
        ErrorCode::TableFull,
        ErrorCode::IdTaken,
        ErrorCode::NotOwner,
        ErrorCode::RateLimited,
        ErrorCode::BadCookie,
        ErrorCode::NoSuchId,
        ErrorCode::OverQuota,
        ErrorCode::Forbidden,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownVerb => "unknown-verb",
            ErrorCode::BadId => "bad-id",
            ErrorCode::TableFull => "table-full",
            ErrorCode::IdTaken => "id-taken",
            ErrorCode::NotOwner => "not-owner",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::BadCookie => "bad-cookie",
            ErrorCode::NoSuchId => "no-such-id",
            ErrorCode::OverQuota => "over-quota",
            ErrorCode::Forbidden => "forbidden",
        }
    }

    /// Parse a wire code.
    pub fn from_wire(s: &[u8]) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == s)
    }
}

impl fmt::Display for ErrorCode {
    /// A sentence for people; the wire form is [`ErrorCode::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorCode::Malformed => "the server could not parse the request",
            ErrorCode::UnknownVerb => "the server does not know that request",
            ErrorCode::BadId => {
                "that id is not valid: use 1 to 32 printable characters without spaces, quotes or backslashes"
            }
            ErrorCode::TableFull => "the server's table is full; try again later",
            ErrorCode::IdTaken => "that id is already taken by someone else",
            ErrorCode::NotOwner => "that id belongs to someone else",
            ErrorCode::RateLimited => "too many requests; slow down",
            ErrorCode::BadCookie => "the server asks for a fresh cookie",
            ErrorCode::NoSuchId => "nobody with that id is online",
            ErrorCode::OverQuota => "this address already holds as many ids as the server allows",
            ErrorCode::Forbidden => "that request needs the admin token",
        })
    }
}

/// A space-separated run of validated ids inside a `PAGE`, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdSeq<'a>(pub(crate) &'a str);

impl<'a> IdSeq<'a> {
    /// The ids in order.
    pub fn iter(&self) -> impl Iterator<Item = Id<'a>> + 'a {
        self.0
            .split(' ')
            .filter(|s| !s.is_empty())
            .filter_map(|s| Id::new(s).ok())
    }
}

/// A run of presence changes inside an `EVENTS`, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeSeq<'a>(pub(crate) &'a str);

/// One presence change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// The id came online.
    Join(Id<'a>),
    /// The id went offline.
    Leave(Id<'a>),
}

impl<'a> ChangeSeq<'a> {
    /// The changes in order.
    pub fn iter(&self) -> impl Iterator<Item = Change<'a>> + 'a {
        self.0.split(' ').filter_map(|w| {
            let (sign, rest) = w.split_at_checked(1)?;
            let id = Id::new(rest).ok()?;
            match sign {
                "+" => Some(Change::Join(id)),
                "-" => Some(Change::Leave(id)),
                _ => None,
            }
        })
    }
}

/// A space-separated run of `key=value` counters inside a `STATS` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatSeq<'a>(pub(crate) &'a str);

impl<'a> StatSeq<'a> {
    /// The counters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.0.split(' ').filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
    }
}

/// An extended-protocol reply or unsolicited server message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The answer to `HELLO`.
    Cookie {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// Echo this in later requests.
        cookie: Cookie,
        /// The source address the server saw.
        addr: SocketAddr,
    },
    /// The answer to `REG`.
    Registered {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The registered id.
        id: Id<'a>,
        /// The lease granted, in seconds.
        lease: u32,
        /// The source address the server saw and stored.
        addr: SocketAddr,
        /// Proves ownership in later requests; keep it secret.
        token: Token,
    },
    /// The answer to `KEEP`.
    Alive {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The lease granted from now, in seconds.
        lease: u32,
        /// The source address the server saw and stored.
        addr: SocketAddr,
        /// The latest presence sequence number (a subscriber behind it lost events).
        seq: u32,
    },
    /// The answer to `LOOKUP` and `INTRO`.
    At {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The id looked up.
        id: Id<'a>,
        /// Where it is.
        addr: SocketAddr,
    },
    /// The answer to `LIST`.
    Page {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// Where the next page starts; 0 when this is the last.
        next: u32,
        /// The ids on this page.
        ids: IdSeq<'a>,
    },
    /// The answer to `SUB`.
    Subscribed {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The latest presence sequence number.
        seq: u32,
    },
    /// The answer to `UNSUB`.
    Unsubscribed {
        /// Echoed from the request.
        tx: TxId<'a>,
    },
    /// The answer to `QUIT`.
    Bye {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The id removed.
        id: Id<'a>,
    },
    /// The answer to `STATS`.
    Stats {
        /// Echoed from the request.
        tx: TxId<'a>,
        /// The counters.
        stats: StatSeq<'a>,
    },
    /// A refusal.
    Error {
        /// Echoed from the request, if it could be read.
        tx: Option<TxId<'a>>,
        /// What was wrong.
        code: ErrorCode,
    },
    /// Unsolicited: `id` asked to be introduced and is at `addr`; send to it now.
    Punch {
        /// Who wants to talk.
        id: Id<'a>,
        /// Where it is.
        addr: SocketAddr,
    },
    /// Unsolicited: presence changes `first..=last` for a subscriber.
    Events {
        /// Sequence number of the first change here.
        first: u32,
        /// Sequence number of the last change here.
        last: u32,
        /// The changes.
        changes: ChangeSeq<'a>,
    },
    /// Unsolicited: changes were lost; list again. `seq` is the latest.
    Resync {
        /// The latest presence sequence number.
        seq: u32,
    },
}

impl<'a> Reply<'a> {
    /// Parse one datagram.
    ///
    /// ```
    /// use proto_core::wire::{ErrorCode, Reply};
    /// let r = Reply::parse(b"ERR 7 no-such-id").unwrap();
    /// assert!(matches!(r, Reply::Error { code: ErrorCode::NoSuchId, .. }));
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let (verb, rest) = verb_and_rest(datagram, MAX_DATAGRAM)?;
        let mut f = Fields::new(rest);
        let reply = match verb {
            b"COOKIE" => Reply::Cookie {
                tx: f.tx()?,
                cookie: Cookie(parse_hex64(f.raw()?)?),
                addr: f.addr()?,
            },
            b"REGD" => Reply::Registered {
                tx: f.tx()?,
                id: f.id()?,
                lease: f.u32()?,
                addr: f.addr()?,
                token: f.token()?,
            },
            b"ALIVE" => Reply::Alive {
                tx: f.tx()?,
                lease: f.u32()?,
                addr: f.addr()?,
                seq: f.u32()?,
            },
            b"AT" => Reply::At {
                tx: f.tx()?,
                id: f.id()?,
                addr: f.addr()?,
            },
            b"PAGE" => Reply::Page {
                tx: f.tx()?,
                next: f.u32()?,
                ids: IdSeq::new(utf8(f.tail()?)?)?,
            },
            b"SUBD" => Reply::Subscribed {
                tx: f.tx()?,
                seq: f.u32()?,
            },
            b"UNSUBD" => Reply::Unsubscribed { tx: f.tx()? },
            b"BYE" => Reply::Bye {
                tx: f.tx()?,
                id: f.id()?,
            },
            b"STATS" => Reply::Stats {
                tx: f.tx()?,
                stats: StatSeq::new(utf8(f.tail()?)?)?,
            },
            b"ERR" => Reply::Error {
                tx: match f.raw()? {
                    b"-" => None,
                    w => Some(TxId::from_bytes(w)?),
                },
                code: ErrorCode::from_wire(f.raw()?).ok_or(ParseError::Malformed)?,
            },
            b"PUNCH" => Reply::Punch {
                id: f.id()?,
                addr: f.addr()?,
            },
            b"EVENTS" => {
                let first = f.u32()?;
                let last = f.u32()?;
                let changes = ChangeSeq::new(utf8(f.tail()?)?)?;
                if changes.0.is_empty() {
                    return Err(ParseError::Malformed);
                }
                Reply::Events {
                    first,
                    last,
                    changes,
                }
            }
            b"RESYNC" => Reply::Resync { seq: f.u32()? },
            _ => return Err(ParseError::UnknownVerb),
        };
        f.end()?;
        Ok(reply)
    }

    /// Write this reply into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        match *self {
            Reply::Cookie {
                tx: t,
                cookie,
                addr,
            } => {
                w.put(b"COOKIE")?.field(tx(t))?.hex(cookie.0)?.addr(addr)?;
            }
            Reply::Registered {
                tx: t,
                id,
                lease,
                addr,
                token,
            } => {
                w.put(b"REGD")?
                    .field(tx(t))?
                    .field(id.as_bytes())?
                    .num(lease)?
                    .addr(addr)?
                    .hex(token.0)?;
            }
            Reply::Alive {
                tx: t,
                lease,
                addr,
                seq,
            } => {
                w.put(b"ALIVE")?
                    .field(tx(t))?
                    .num(lease)?
                    .addr(addr)?
                    .num(seq)?;
            }
            Reply::At { tx: t, id, addr } => {
                w.put(b"AT")?
                    .field(tx(t))?
                    .field(id.as_bytes())?
                    .addr(addr)?;
            }
            Reply::Page { tx: t, next, ids } => {
                w.put(b"PAGE")?.field(tx(t))?.num(next)?;
                if !ids.0.is_empty() {
                    w.field(ids.0.as_bytes())?;
                }
            }
            Reply::Subscribed { tx: t, seq } => {
                w.put(b"SUBD")?.field(tx(t))?.num(seq)?;
            }
            Reply::Unsubscribed { tx: t } => {
                w.put(b"UNSUBD")?.field(tx(t))?;
            }
            Reply::Bye { tx: t, id } => {
                w.put(b"BYE")?.field(tx(t))?.field(id.as_bytes())?;
            }
            Reply::Stats { tx: t, stats } => {
                w.put(b"STATS")?.field(tx(t))?;
                if !stats.0.is_empty() {
                    w.field(stats.0.as_bytes())?;
                }
            }
            Reply::Error { tx: t, code } => {
                w.put(b"ERR")?
                    .field(t.map_or(&b"-"[..], tx))?
                    .field(code.as_str().as_bytes())?;
            }
            Reply::Punch { id, addr } => {
                w.put(b"PUNCH")?.field(id.as_bytes())?.addr(addr)?;
            }
            Reply::Events {
                first,
                last,
                changes,
            } => {
                w.put(b"EVENTS")?
                    .num(first)?
                    .num(last)?
                    .field(changes.0.as_bytes())?;
            }
            Reply::Resync { seq } => {
                w.put(b"RESYNC")?.num(seq)?;
            }
        }
        if w.finish() > MAX_DATAGRAM {
            return Err(EmitError::TooLong);
        }
        Ok(w.finish())
    }
}

fn tx<'t>(t: TxId<'t>) -> &'t [u8] {
    t.as_str().as_bytes()
}

fn utf8(b: &[u8]) -> Result<&str, ParseError> {
    core::str::from_utf8(b).map_err(|_| ParseError::NotUtf8)
}

impl<'a> IdSeq<'a> {
    /// Validate a space-separated run of ids (possibly empty).
    pub fn new(s: &'a str) -> Result<Self, ParseError> {
        if !s.is_empty() {
            for w in s.split(' ') {
                Id::new(w)?;
            }
        }
        Ok(IdSeq(s))
    }

    /// The text, ids separated by single spaces.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl<'a> ChangeSeq<'a> {
    /// Validate a space-separated run of `+id` / `-id` (possibly empty).
    pub fn new(s: &'a str) -> Result<Self, ParseError> {
        if !s.is_empty() {
            for w in s.split(' ') {
                let id = w
                    .strip_prefix('+')
                    .or_else(|| w.strip_prefix('-'))
                    .ok_or(ParseError::Malformed)?;
                Id::new(id)?;
            }
        }
        Ok(ChangeSeq(s))
    }

    /// The text, changes separated by single spaces.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl<'a> StatSeq<'a> {
    /// Validate a space-separated run of `key=value` (possibly empty).
    pub fn new(s: &'a str) -> Result<Self, ParseError> {
        if !s.is_empty() {
            for w in s.split(' ') {
                let (k, v) = w.split_once('=').ok_or(ParseError::Malformed)?;
                let key_ok = !k.is_empty()
                    && k.len() <= 32
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                let digits_ok = !v.is_empty()
                    && v.len() <= 20
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && (v == "0" || !v.starts_with('0'))
                    && v.parse::<u64>().is_ok();
                if !key_ok || !digits_ok {
                    return Err(ParseError::Malformed);
                }
            }
        }
        Ok(StatSeq(s))
    }

    /// The text, counters separated by single spaces.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}
