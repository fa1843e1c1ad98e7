//! Replies of the extended protocol, and the unsolicited messages the server
//! sends (introductions and presence events).
//!
//! ```text
//! reply   = cookie-r / regd / alive / at / page / subd / unsubd / bye
//!         / stats-r / err / punch / events / resync
//! cookie-r = "COOKIE" SP txid SP cookie SP addr
//! regd    = "REGD" SP txid SP id SP lease SP addr SP token
//! alive   = "ALIVE" SP txid SP lease SP addr SP seq
//! at      = "AT" SP txid SP id SP addr SP kind         ; LOOKUP and INTRO
//! page    = "PAGE" SP txid SP cursor *(SP id)          ; cursor 0: last page
//! subd    = "SUBD" SP txid SP seq
//! unsubd  = "UNSUBD" SP txid
//! bye     = "BYE" SP txid SP id
//! stats-r = "STATS" SP txid *(SP key "=" 1*20DIGIT)    ; key = 1*32(ALPHA / DIGIT / "_" / ".")
//! err     = "ERR" SP (txid / "-") SP code
//! code    = "malformed" / "unknown-verb" / "bad-id" / "table-full" / "id-taken"
//!         / "not-owner" / "rate-limited" / "bad-cookie" / "no-such-id"
//!         / "over-quota" / "forbidden" / "key-taken"
//! punch   = "PUNCH" SP id SP addr SP kind locals       ; id wants to reach you at addr
//!                                                      ; (or at its own local addresses)
//! events  = "EVENTS" SP seq SP seq 1*(SP ("+" / "-") id) ; first and last change included
//! resync  = "RESYNC" SP seq                            ; events were lost: LIST again
//! addr    = IPv4 ":" port / "[" IPv6 "]" ":" port      ; as Rust's SocketAddr prints it
//! seq     = 1*10DIGIT                                  ; u32, wraps
//! kind    = pubkey / "seed" / "-"                      ; the peer's key, a seed client, no key
//! ```

use core::fmt;
use core::net::SocketAddr;

use super::addr::{Locals, MAX_ADDR_LEN};
use super::fields::{Cookie, Id, MAX_TXID_LEN, PeerKind, Token, TxId, parse_hex64};
use super::text::{Fields, Writer, check_run, verb_and_rest};
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
    /// The id is live under another public key; it keeps that key until its lease ends.
    KeyTaken,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 12] = [
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
        ErrorCode::KeyTaken,
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
            ErrorCode::KeyTaken => "key-taken",
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
            ErrorCode::KeyTaken => {
                "that id is registered under another key until its lease ends"
            }
        })
    }
}

/// A space-separated run of validated ids inside a `PAGE`, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdSeq<'a>(pub(crate) &'a str);

impl<'a> IdSeq<'a> {
    /// The ids in order.
    pub fn iter(&self) -> impl Iterator<Item = Id<'a>> + 'a {
        // An empty word (the run of no ids) is no id: `Id::new` refuses it.
        self.0.split(' ').filter_map(|s| Id::new(s).ok())
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
        /// Its public key, or that it is a seed client or has no key.
        kind: PeerKind,
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
        /// Its public key, or that it has none.
        kind: PeerKind,
        /// The local addresses it announced in its `INTRO`.
        local: Locals,
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
                kind: PeerKind::parse(f.raw()?)?,
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
                kind: PeerKind::parse(f.raw()?)?,
                local: Locals::parse_rest(&mut f)?,
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

    /// The transaction id this reply answers; `None` for what the server
    /// sends unasked (`PUNCH`, `EVENTS`, `RESYNC`) and for an `ERR` to a
    /// request it could not read.
    pub fn tx(&self) -> Option<TxId<'a>> {
        match *self {
            Reply::Cookie { tx, .. }
            | Reply::Registered { tx, .. }
            | Reply::Alive { tx, .. }
            | Reply::At { tx, .. }
            | Reply::Page { tx, .. }
            | Reply::Subscribed { tx, .. }
            | Reply::Unsubscribed { tx }
            | Reply::Bye { tx, .. }
            | Reply::Stats { tx, .. } => Some(tx),
            Reply::Error { tx, .. } => tx,
            Reply::Punch { .. } | Reply::Events { .. } | Reply::Resync { .. } => None,
        }
    }

    /// The longest `COOKIE` there is (a 16-digit transaction id and the
    /// longest address): a `HELLO` padded to this many bytes or more is
    /// always answered.
    pub const COOKIE_MAX: usize = "COOKIE".len() + 1 + MAX_TXID_LEN + 1 + 16 + 1 + MAX_ADDR_LEN;

    /// Bytes a `PAGE` answering `tx` has for its ids in one datagram,
    /// whatever its cursor: ids whose text (with the single spaces
    /// between them) is this long or shorter always fit.
    pub fn page_room(tx: TxId<'_>) -> usize {
        MAX_DATAGRAM - ("PAGE".len() + 1 + tx.as_bytes().len() + 1 + U32_DIGITS + 1)
    }

    /// Bytes a `STATS` reply answering `tx` has for its counters in one datagram.
    pub fn stats_room(tx: TxId<'_>) -> usize {
        MAX_DATAGRAM - ("STATS".len() + 1 + tx.as_bytes().len() + 1)
    }

    /// Bytes an `EVENTS` has for its changes in one datagram, whatever
    /// its sequence numbers.
    pub const EVENTS_ROOM: usize = MAX_DATAGRAM - ("EVENTS".len() + 2 * (1 + U32_DIGITS) + 1);

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
            Reply::At {
                tx: t,
                id,
                addr,
                kind,
            } => {
                w.put(b"AT")?
                    .field(tx(t))?
                    .field(id.as_bytes())?
                    .addr(addr)?;
                put_kind(&mut w, kind)?;
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
            Reply::Punch {
                id,
                addr,
                kind,
                local,
            } => {
                w.put(b"PUNCH")?.field(id.as_bytes())?.addr(addr)?;
                put_kind(&mut w, kind)?;
                local.emit(&mut w)?;
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

/// Digits of the longest decimal `u32`.
const U32_DIGITS: usize = 10;

/// A space, then a peer's kind.
fn put_kind(w: &mut Writer<'_>, kind: PeerKind) -> Result<(), EmitError> {
    match kind {
        PeerKind::Key(k) => w.field(&k.to_hex())?,
        PeerKind::Seed => w.field(b"seed")?,
        PeerKind::Keyless => w.field(b"-")?,
    };
    Ok(())
}

fn tx<'t>(t: TxId<'t>) -> &'t [u8] {
    t.as_bytes()
}

fn utf8(b: &[u8]) -> Result<&str, ParseError> {
    core::str::from_utf8(b).map_err(|_| ParseError::NotUtf8)
}

impl<'a> IdSeq<'a> {
    /// Validate a space-separated run of ids (possibly empty).
    pub fn new(s: &'a str) -> Result<Self, ParseError> {
        check_run(s, " ", |w| {
            Id::new(w)?;
            Ok(())
        })?;
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
        check_run(s, " ", |w| {
            let id = w
                .strip_prefix('+')
                .or_else(|| w.strip_prefix('-'))
                .ok_or(ParseError::Malformed)?;
            Id::new(id)?;
            Ok(())
        })?;
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
        check_run(s, " ", |w| {
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
            Ok(())
        })?;
        Ok(StatSeq(s))
    }

    /// The text, counters separated by single spaces.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::wire::testgen;
    use proptest::prelude::*;

    fn emitted(r: &Reply<'_>) -> Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = r.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn the_rooms_are_exactly_what_one_datagram_leaves_for_the_body() {
        let mut buf = [0u8; MAX_DATAGRAM];
        for t in ["1", "0123456789abcdef"] {
            let room = Reply::page_room(tx(t));
            // Short ids fill the room to the byte, at the longest cursor.
            let ids = if room % 2 == 1 {
                "a ".repeat(room / 2) + "a"
            } else {
                "a ".repeat(room / 2 - 1) + "aa"
            };
            assert_eq!(ids.len(), room);
            let page = |ids| Reply::Page {
                tx: tx(t),
                next: u32::MAX,
                ids: IdSeq(ids),
            };
            assert_eq!(page(&ids).emit(&mut buf), Ok(MAX_DATAGRAM));
            let longer = format!("{ids}a");
            assert_eq!(page(&longer).emit(&mut buf), Err(EmitError::TooLong));
            let room = Reply::stats_room(tx(t));
            let stats = format!("k={}", "9".repeat(room - 2));
            let reply = |s| Reply::Stats {
                tx: tx(t),
                stats: StatSeq(s),
            };
            assert_eq!(reply(&stats).emit(&mut buf), Ok(MAX_DATAGRAM));
            let longer = format!("{stats}9");
            assert_eq!(reply(&longer).emit(&mut buf), Err(EmitError::TooLong));
        }
        let changes = format!("+{}", "a".repeat(Reply::EVENTS_ROOM - 1));
        let events = |c| Reply::Events {
            first: u32::MAX,
            last: u32::MAX,
            changes: ChangeSeq(c),
        };
        assert_eq!(events(&changes).emit(&mut buf), Ok(MAX_DATAGRAM));
        let longer = format!("{changes}a");
        assert_eq!(events(&longer).emit(&mut buf), Err(EmitError::TooLong));
    }

    #[test]
    fn the_longest_cookie_is_cookie_max_and_names_its_tx() {
        let longest_v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let cookie = Reply::Cookie {
            tx: tx("0123456789abcdef"),
            cookie: Cookie(u64::MAX),
            addr: SocketAddr::new(longest_v6, 65535),
        };
        assert!(emitted(&cookie).len() <= Reply::COOKIE_MAX);
        assert_eq!(cookie.tx(), Some(tx("0123456789abcdef")));
        assert_eq!(Reply::Resync { seq: 1 }.tx(), None);
    }

    fn tx(s: &str) -> TxId<'_> {
        TxId::new(s).unwrap()
    }

    fn id(s: &str) -> Id<'_> {
        Id::new(s).unwrap()
    }

    #[test]
    fn every_reply_in_its_canonical_form() {
        let a: SocketAddr = "127.0.0.1:51234".parse().unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let k = crate::wire::PublicKey(core::array::from_fn(|i| 0xa0 + i as u8));
        let cases: [(Reply<'_>, &[u8]); 19] = [
            (
                Reply::Cookie {
                    tx: tx("1"),
                    cookie: Cookie(0x5f0c_2a1b_9d8e_7f60),
                    addr: a,
                },
                b"COOKIE 1 5f0c2a1b9d8e7f60 127.0.0.1:51234",
            ),
            (
                Reply::Registered {
                    tx: tx("2"),
                    id: id("alice"),
                    lease: 120,
                    addr: a,
                    token: Token(0x8c1d_2e3f_4a5b_6c7d),
                },
                b"REGD 2 alice 120 127.0.0.1:51234 8c1d2e3f4a5b6c7d",
            ),
            (
                Reply::Alive {
                    tx: tx("k"),
                    lease: 120,
                    addr: v6,
                    seq: 7,
                },
                b"ALIVE k 120 [::1]:9 7",
            ),
            (
                Reply::At {
                    tx: tx("3"),
                    id: id("bob"),
                    addr: a,
                    kind: PeerKind::Keyless,
                },
                b"AT 3 bob 127.0.0.1:51234 -",
            ),
            (
                Reply::At {
                    tx: tx("3"),
                    id: id("bob"),
                    addr: a,
                    kind: PeerKind::Seed,
                },
                b"AT 3 bob 127.0.0.1:51234 seed",
            ),
            (
                Reply::At {
                    tx: tx("3"),
                    id: id("bob"),
                    addr: v6,
                    kind: PeerKind::Key(k),
                },
                b"AT 3 bob [::1]:9 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
            ),
            (
                Reply::Page {
                    tx: tx("4"),
                    next: 2,
                    ids: IdSeq::new("alice bob").unwrap(),
                },
                b"PAGE 4 2 alice bob",
            ),
            (
                Reply::Page {
                    tx: tx("4"),
                    next: 0,
                    ids: IdSeq::new("").unwrap(),
                },
                b"PAGE 4 0",
            ),
            (
                Reply::Subscribed {
                    tx: tx("5"),
                    seq: 0,
                },
                b"SUBD 5 0",
            ),
            (Reply::Unsubscribed { tx: tx("6") }, b"UNSUBD 6"),
            (
                Reply::Bye {
                    tx: tx("7"),
                    id: id("alice"),
                },
                b"BYE 7 alice",
            ),
            (
                Reply::Stats {
                    tx: tx("8"),
                    stats: StatSeq::new("ids=2 in.reg=10").unwrap(),
                },
                b"STATS 8 ids=2 in.reg=10",
            ),
            (
                Reply::Error {
                    tx: Some(tx("9")),
                    code: ErrorCode::IdTaken,
                },
                b"ERR 9 id-taken",
            ),
            (
                Reply::Error {
                    tx: None,
                    code: ErrorCode::Malformed,
                },
                b"ERR - malformed",
            ),
            (
                Reply::Punch {
                    id: id("bob"),
                    addr: a,
                    kind: PeerKind::Keyless,
                    local: Locals::EMPTY,
                },
                b"PUNCH bob 127.0.0.1:51234 -",
            ),
            (
                Reply::Punch {
                    id: id("bob"),
                    addr: a,
                    kind: PeerKind::Keyless,
                    local: Locals::new(&["192.168.1.20:40001".parse().unwrap()]),
                },
                b"PUNCH bob 127.0.0.1:51234 - 192.168.1.20:40001",
            ),
            (
                Reply::Punch {
                    id: id("bob"),
                    addr: a,
                    kind: PeerKind::Key(k),
                    local: Locals::EMPTY,
                },
                b"PUNCH bob 127.0.0.1:51234 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
            ),
            (
                Reply::Events {
                    first: 4,
                    last: 5,
                    changes: ChangeSeq::new("+bob -carol").unwrap(),
                },
                b"EVENTS 4 5 +bob -carol",
            ),
            (Reply::Resync { seq: 9 }, b"RESYNC 9"),
        ];
        for (reply, wire) in cases {
            assert_eq!(emitted(&reply), wire, "{reply:?}");
            assert_eq!(Reply::parse(wire), Ok(reply));
        }
    }

    #[test]
    fn every_error_code_round_trips_and_reads_as_a_sentence() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str().as_bytes()), Some(code));
            let r = Reply::Error {
                tx: Some(tx("e")),
                code,
            };
            assert_eq!(Reply::parse(&emitted(&r)), Ok(r));
            let sentence = std::format!("{code}");
            assert!(sentence.len() > code.as_str().len(), "{sentence}");
        }
        assert_eq!(ErrorCode::from_wire(b"nope"), None);
    }

    #[test]
    fn malformed_replies_fail() {
        let bad: [&[u8]; 14] = [
            b"EVENTS 1 2",
            b"EVENTS 1 2 bob",
            b"PAGE 1 0 it's",
            b"STATS 1 ids=01",
            b"STATS 1 ids",
            b"AT 1 bob 127.0.0.01:5 -",
            b"AT 1 bob 127.0.0.1:5",
            b"AT 1 bob 127.0.0.1:5 SEED",
            b"AT 1 bob 127.0.0.1:5 - -",
            b"PUNCH bob 127.0.0.1:5",
            b"PUNCH bob 127.0.0.1:5 abcd",
            b"ERR 1 on-fire",
            b"COOKIE 1 xyz 127.0.0.1:5",
            b"BYE 1",
        ];
        for wire in bad {
            assert!(
                Reply::parse(wire).is_err(),
                "{:?}",
                core::str::from_utf8(wire)
            );
        }
        assert_eq!(Reply::parse(b"HELLO 1"), Err(ParseError::UnknownVerb));
    }

    /// The owned parts a reply is built from.
    #[derive(Debug, Clone)]
    struct Parts {
        kind: u8,
        tx: String,
        ids: Vec<String>,
        addr: SocketAddr,
        nums: (u32, u32, u64),
        code: usize,
        peer: (u8, [u8; 32]),
        /// The ids, changes and counters joined as the wire has them.
        runs: (String, String, String),
    }

    fn parts() -> impl Strategy<Value = Parts> {
        (
            0u8..13,
            testgen::txid(),
            proptest::collection::vec(testgen::id(), 1..20),
            proptest::collection::vec(any::<bool>(), 20),
            proptest::collection::vec(("[a-z0-9_.]{1,32}", any::<u64>()), 0..20),
            testgen::addr(),
            any::<(u32, u32, u64)>(),
            0..ErrorCode::ALL.len(),
            (0u8..3, any::<[u8; 32]>()),
        )
            .prop_map(|(kind, tx, ids, joins, stats, addr, nums, code, peer)| {
                let runs = runs(&ids, &joins, &stats);
                Parts {
                    kind,
                    tx,
                    ids,
                    addr,
                    nums,
                    code,
                    peer,
                    runs,
                }
            })
    }

    /// The texts of the run fields, joined as the wire has them.
    fn runs(ids: &[String], joins: &[bool], stats: &[(String, u64)]) -> (String, String, String) {
        let changes = ids
            .iter()
            .zip(joins)
            .map(|(id, &j)| std::format!("{}{id}", if j { '+' } else { '-' }))
            .collect::<Vec<_>>()
            .join(" ");
        let stats = stats
            .iter()
            .map(|(k, v)| std::format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        (ids.join(" "), changes, stats)
    }

    fn build(p: &Parts) -> Reply<'_> {
        let (ids, changes, stats) = &p.runs;
        let t = TxId::new(&p.tx).unwrap();
        let one = Id::new(&p.ids[0]).unwrap();
        let (a, b, c) = p.nums;
        let kind = match p.peer.0 {
            0 => PeerKind::Seed,
            1 => PeerKind::Keyless,
            _ => PeerKind::Key(crate::wire::PublicKey(p.peer.1)),
        };
        match p.kind {
            0 => Reply::Cookie {
                tx: t,
                cookie: Cookie(c),
                addr: p.addr,
            },
            1 => Reply::Registered {
                tx: t,
                id: one,
                lease: a,
                addr: p.addr,
                token: Token(c),
            },
            2 => Reply::Alive {
                tx: t,
                lease: a,
                addr: p.addr,
                seq: b,
            },
            3 => Reply::At {
                tx: t,
                id: one,
                addr: p.addr,
                kind,
            },
            4 => Reply::Page {
                tx: t,
                next: a,
                ids: IdSeq::new(ids).unwrap(),
            },
            5 => Reply::Subscribed { tx: t, seq: a },
            6 => Reply::Unsubscribed { tx: t },
            7 => Reply::Bye { tx: t, id: one },
            8 => Reply::Stats {
                tx: t,
                stats: StatSeq::new(stats).unwrap(),
            },
            9 => Reply::Error {
                tx: (a % 2 == 0).then_some(t),
                code: ErrorCode::ALL[p.code],
            },
            10 => Reply::Punch {
                id: one,
                addr: p.addr,
                kind,
                local: Locals::new(&[p.addr, p.addr]),
            },
            11 => Reply::Events {
                first: a,
                last: b,
                changes: ChangeSeq::new(changes).unwrap(),
            },
            _ => Reply::Resync { seq: a },
        }
    }

    testgen::round_trip_properties!(Reply, parts(), build);
}
