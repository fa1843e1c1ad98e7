//! Requests of the extended protocol (client to server).
//!
//! ```text
//! request = hello / reg / keep / lookup / intro / list / sub / unsub / quit / stats
//! hello   = "HELLO" SP txid [SP padding]           ; padding = 1*%x21-7E
//! reg     = "REG" SP txid SP cookie SP id [SP (lease / "-") [SP (token / "-") [SP pubkey]]]
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
//! leading zeros; a `REG` writes `-` for a missing lease or token only to
//! hold its place before a field that follows (`-` as the last field is
//! refused).

use super::addr::Locals;
use super::fields::{Cookie, Id, PublicKey, Token, TxId, parse_hex64};
use super::text::{Fields, Writer, parse_u32, verb_and_rest};
use super::{EmitError, ParseError};
use crate::MAX_DATAGRAM;

/// The longest lease the grammar allows, in seconds (one day).
pub const MAX_LEASE_SECS: u32 = 86_400;

fn parse_lease(w: &[u8]) -> Result<u32, ParseError> {
    let v = parse_u32(w)?;
    if v > MAX_LEASE_SECS {
        return Err(ParseError::Malformed);
    }
    Ok(v)
}

/// Write `VERB tx cookie`.
pub(super) fn header<'w, 'b>(
    w: &'w mut Writer<'b>,
    verb: &[u8],
    h: Header<'_>,
) -> Result<&'w mut Writer<'b>, EmitError> {
    w.put(verb)?.field(h.tx.as_bytes())?;
    match h.cookie {
        Some(c) => w.hex(c.0),
        None => w.field(b"-"),
    }
}

/// The parts every request but `HELLO` starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Echoed in the reply.
    pub tx: TxId<'a>,
    /// The cookie from a `COOKIE` reply, or `None` (`-` on the wire).
    pub cookie: Option<Cookie>,
}

impl<'a> Header<'a> {
    /// Read `tx cookie`, the fields after the verb.
    pub(super) fn read(f: &mut Fields<'a>) -> Result<Self, ParseError> {
        Ok(Header {
            tx: f.tx()?,
            cookie: f.cookie()?,
        })
    }
}

/// What every request reserved to the owner of a registration starts
/// with: the header, the registered id and the token that proves it is
/// the owner's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owned<'a> {
    /// Transaction id and cookie.
    pub h: Header<'a>,
    /// The requester's registered id.
    pub id: Id<'a>,
    /// Its owner token.
    pub token: Token,
}

impl<'a> Owned<'a> {
    /// Read `id token`, the fields after header `h`.
    fn read(h: Header<'a>, f: &mut Fields<'a>) -> Result<Self, ParseError> {
        Ok(Owned {
            h,
            id: f.id()?,
            token: f.token()?,
        })
    }

    /// Write `VERB tx cookie id token`.
    fn emit<'w, 'b>(
        self,
        w: &'w mut Writer<'b>,
        verb: &[u8],
    ) -> Result<&'w mut Writer<'b>, EmitError> {
        header(w, verb, self.h)?
            .field(self.id.as_bytes())?
            .hex(self.token.0)
    }
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
    /// `token`, renew a live registration that this token owns. With `key`,
    /// bind the id to that public key for as long as the lease lives.
    Register {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The id to register.
        id: Id<'a>,
        /// Requested lease in seconds; the server clamps it.
        lease: Option<u32>,
        /// The owner token of an earlier registration of `id`.
        token: Option<Token>,
        /// The client's static public key.
        key: Option<PublicKey>,
    },
    /// Refresh the lease of the id and learn the observed address.
    Keepalive(Owned<'a>),
    /// Where is `id`?
    Lookup {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// The id to find.
        id: Id<'a>,
    },
    /// Tell `target` where the requester is and the requester where
    /// `target` is.
    Introduce {
        /// The requester.
        by: Owned<'a>,
        /// The id to be introduced to.
        target: Id<'a>,
        /// The requester's local addresses, passed to `target` in `PUNCH`
        /// (LAN paths); the server never sends to them.
        local: Locals,
    },
    /// One page of online ids, starting at `cursor` (0 for the first page).
    List {
        /// Transaction id and cookie.
        h: Header<'a>,
        /// Where to resume, from the previous `PAGE`.
        cursor: u32,
    },
    /// Send presence events for the whole table to the id.
    Subscribe(Owned<'a>),
    /// Stop presence events to the id.
    Unsubscribe(Owned<'a>),
    /// Remove the registration of the id.
    Quit(Owned<'a>),
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
    ///
    /// ```
    /// use proto_core::wire::{Id, Request};
    /// let r = Request::parse(b"LOOKUP 7 - alice").unwrap();
    /// assert!(matches!(r, Request::Lookup { id, .. } if id == Id::new("alice").unwrap()));
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let (verb, rest) = verb_and_rest(datagram, MAX_DATAGRAM)?;
        let mut f = Fields::new(rest);
        if verb == b"HELLO" {
            let tx = f.tx()?;
            let pad = match f.opt_raw()? {
                None => 0,
                Some(p) => u16::try_from(p.len()).map_err(|_| ParseError::TooLong)?,
            };
            f.end()?;
            return Ok(Request::Hello { tx, pad });
        }
        let known = matches!(
            verb,
            b"REG"
                | b"KEEP"
                | b"LOOKUP"
                | b"INTRO"
                | b"LIST"
                | b"SUB"
                | b"UNSUB"
                | b"QUIT"
                | b"STATS"
        );
        if !known {
            return Err(ParseError::UnknownVerb);
        }
        let h = Header::read(&mut f)?;
        let req = match verb {
            b"REG" => {
                let id = f.id()?;
                let lease_field = f.opt_raw()?;
                let lease = match lease_field {
                    None | Some(b"-") => None,
                    Some(w) => Some(parse_lease(w)?),
                };
                let token_field = f.opt_raw()?;
                let key = match f.opt_raw()? {
                    None => None,
                    Some(w) => Some(PublicKey::parse(w)?),
                };
                // `-` holds a place only when a field follows it.
                let dash_last = match (token_field, key) {
                    (None, _) => lease_field == Some(b"-"),
                    (Some(w), None) => w == b"-",
                    (Some(_), Some(_)) => false,
                };
                if dash_last {
                    return Err(ParseError::Malformed);
                }
                let token = match token_field {
                    None | Some(b"-") => None,
                    Some(w) => Some(Token(parse_hex64(w)?)),
                };
                Request::Register {
                    h,
                    id,
                    lease,
                    token,
                    key,
                }
            }
            b"KEEP" => Request::Keepalive(Owned::read(h, &mut f)?),
            b"LOOKUP" => Request::Lookup { h, id: f.id()? },
            b"INTRO" => Request::Introduce {
                by: Owned::read(h, &mut f)?,
                target: f.id()?,
                local: Locals::parse_rest(&mut f)?,
            },
            b"LIST" => Request::List {
                h,
                cursor: f.u32()?,
            },
            b"SUB" => Request::Subscribe(Owned::read(h, &mut f)?),
            b"UNSUB" => Request::Unsubscribe(Owned::read(h, &mut f)?),
            b"QUIT" => Request::Quit(Owned::read(h, &mut f)?),
            _ => Request::Stats {
                h,
                admin: match f.opt_raw()? {
                    None => None,
                    Some(w) => Some(Token(parse_hex64(w)?)),
                },
            },
        };
        f.end()?;
        Ok(req)
    }

    /// A `HELLO` with `tx`, padded to `len` bytes in all (or as short as
    /// it can be, if `len` is shorter): the server answers a `HELLO` only
    /// in as many bytes as it carried.
    pub fn padded_hello(tx: TxId<'a>, len: usize) -> Self {
        let bare = "HELLO".len() + 1 + tx.as_bytes().len();
        // The padding field takes a space before its dots.
        let pad = len.saturating_sub(bare + 1).min(usize::from(u16::MAX));
        Request::Hello {
            tx,
            pad: pad as u16,
        }
    }

    /// Write this request into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        match *self {
            Request::Hello { tx, pad } => {
                w.put(b"HELLO")?.field(tx.as_bytes())?;
                if pad > 0 {
                    w.put(b" ")?;
                    for _ in 0..pad {
                        w.put(b".")?;
                    }
                }
            }
            Request::Register {
                h,
                id,
                lease,
                token,
                key,
            } => {
                header(&mut w, b"REG", h)?.field(id.as_bytes())?;
                match (lease, token.is_some() || key.is_some()) {
                    (Some(l), _) => {
                        w.num(l)?;
                    }
                    (None, true) => {
                        w.field(b"-")?;
                    }
                    (None, false) => {}
                }
                match (token, key) {
                    (Some(t), _) => {
                        w.hex(t.0)?;
                    }
                    (None, Some(_)) => {
                        w.field(b"-")?;
                    }
                    (None, None) => {}
                }
                if let Some(k) = key {
                    w.field(&k.to_hex())?;
                }
            }
            Request::Keepalive(o) => {
                o.emit(&mut w, b"KEEP")?;
            }
            Request::Lookup { h, id } => {
                header(&mut w, b"LOOKUP", h)?.field(id.as_bytes())?;
            }
            Request::Introduce { by, target, local } => {
                by.emit(&mut w, b"INTRO")?.field(target.as_bytes())?;
                local.emit(&mut w)?;
            }
            Request::List { h, cursor } => {
                header(&mut w, b"LIST", h)?.num(cursor)?;
            }
            Request::Subscribe(o) => {
                o.emit(&mut w, b"SUB")?;
            }
            Request::Unsubscribe(o) => {
                o.emit(&mut w, b"UNSUB")?;
            }
            Request::Quit(o) => {
                o.emit(&mut w, b"QUIT")?;
            }
            Request::Stats { h, admin } => {
                header(&mut w, b"STATS", h)?;
                if let Some(t) = admin {
                    w.hex(t.0)?;
                }
            }
        }
        Ok(w.finish())
    }

    /// The transaction id and cookie that every request but `HELLO` starts
    /// with; `None` for `HELLO`, which is how a client asks for a cookie.
    pub fn header(&self) -> Option<Header<'a>> {
        self.header_or_hello().ok()
    }

    /// The transaction id, which every request carries.
    pub fn tx(&self) -> TxId<'a> {
        match self.header_or_hello() {
            Ok(h) => h.tx,
            Err(tx) => tx,
        }
    }

    /// The header, or for `HELLO` its transaction id: the one match over
    /// the verbs that both accessors share.
    fn header_or_hello(&self) -> Result<Header<'a>, TxId<'a>> {
        match *self {
            Request::Hello { tx, .. } => Err(tx),
            Request::Register { h, .. }
            | Request::Lookup { h, .. }
            | Request::List { h, .. }
            | Request::Stats { h, .. }
            | Request::Keepalive(Owned { h, .. })
            | Request::Introduce {
                by: Owned { h, .. },
                ..
            }
            | Request::Subscribe(Owned { h, .. })
            | Request::Unsubscribe(Owned { h, .. })
            | Request::Quit(Owned { h, .. }) => Ok(h),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::wire::{FieldError, testgen};
    use proptest::prelude::*;

    fn id(s: &str) -> Id<'_> {
        Id::new(s).unwrap()
    }

    fn h(tx: &str, cookie: Option<u64>) -> Header<'_> {
        Header {
            tx: TxId::new(tx).unwrap(),
            cookie: cookie.map(Cookie),
        }
    }

    fn emitted(r: &Request<'_>) -> std::vec::Vec<u8> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = r.emit(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn a_padded_hello_is_as_long_as_asked() {
        let mut buf = [0u8; MAX_DATAGRAM];
        for t in ["1", "0123456789abcdef"] {
            let tx = TxId::new(t).unwrap();
            let bare = Request::Hello { tx, pad: 0 }.emit(&mut buf).unwrap();
            for len in [bare + 2, 100, MAX_DATAGRAM] {
                let n = Request::padded_hello(tx, len).emit(&mut buf).unwrap();
                assert_eq!(n, len, "{t} {len}");
            }
            // Too short to pad: no padding at all.
            for len in [0, bare, bare + 1] {
                assert_eq!(
                    Request::padded_hello(tx, len),
                    Request::Hello { tx, pad: 0 }
                );
            }
        }
    }

    #[test]
    fn every_verb_in_its_canonical_form() {
        let c = Some(0x5f0c_2a1b_9d8e_7f60);
        let t = Token(0x8c1d_2e3f_4a5b_6c7d);
        let k = PublicKey(core::array::from_fn(|i| i as u8));
        let alice = |tx| Owned {
            h: h(tx, c),
            id: id("alice"),
            token: t,
        };
        let cases: [(Request<'_>, &[u8]); 16] = [
            (
                Request::Hello {
                    tx: TxId::new("1").unwrap(),
                    pad: 3,
                },
                b"HELLO 1 ...",
            ),
            (
                Request::Hello {
                    tx: TxId::new("1").unwrap(),
                    pad: 0,
                },
                b"HELLO 1",
            ),
            (
                Request::Register {
                    h: h("2", c),
                    id: id("alice"),
                    lease: None,
                    token: None,
                    key: None,
                },
                b"REG 2 5f0c2a1b9d8e7f60 alice",
            ),
            (
                Request::Register {
                    h: h("2", c),
                    id: id("alice"),
                    lease: None,
                    token: None,
                    key: Some(k),
                },
                b"REG 2 5f0c2a1b9d8e7f60 alice - - 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            ),
            (
                Request::Register {
                    h: h("2", c),
                    id: id("alice"),
                    lease: Some(60),
                    token: Some(t),
                    key: Some(k),
                },
                b"REG 2 5f0c2a1b9d8e7f60 alice 60 8c1d2e3f4a5b6c7d 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            ),
            (
                Request::Register {
                    h: h("2", None),
                    id: id("alice"),
                    lease: None,
                    token: Some(t),
                    key: Some(k),
                },
                b"REG 2 - alice - 8c1d2e3f4a5b6c7d 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            ),
            (
                Request::Register {
                    h: h("2", None),
                    id: id("alice"),
                    lease: None,
                    token: Some(t),
                    key: None,
                },
                b"REG 2 - alice - 8c1d2e3f4a5b6c7d",
            ),
            (
                Request::Register {
                    h: h("2", c),
                    id: id("alice"),
                    lease: Some(60),
                    token: None,
                    key: None,
                },
                b"REG 2 5f0c2a1b9d8e7f60 alice 60",
            ),
            (
                Request::Keepalive(alice("k")),
                b"KEEP k 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d",
            ),
            (
                Request::Lookup {
                    h: h("3", None),
                    id: id("bob"),
                },
                b"LOOKUP 3 - bob",
            ),
            (
                Request::Introduce {
                    by: alice("4"),
                    target: id("bob"),
                    local: Locals::EMPTY,
                },
                b"INTRO 4 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d bob",
            ),
            (
                Request::Introduce {
                    by: alice("4"),
                    target: id("bob"),
                    local: Locals::new(&[
                        "192.168.1.20:40001".parse().unwrap(),
                        "[fd00::20]:40001".parse().unwrap(),
                    ]),
                },
                b"INTRO 4 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d bob 192.168.1.20:40001 [fd00::20]:40001",
            ),
            (
                Request::List {
                    h: h("5", c),
                    cursor: 0,
                },
                b"LIST 5 5f0c2a1b9d8e7f60 0",
            ),
            (
                Request::Quit(alice("6")),
                b"QUIT 6 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d",
            ),
            (
                Request::Stats {
                    h: h("7", c),
                    admin: None,
                },
                b"STATS 7 5f0c2a1b9d8e7f60",
            ),
            (
                Request::Stats {
                    h: h("7", c),
                    admin: Some(t),
                },
                b"STATS 7 5f0c2a1b9d8e7f60 8c1d2e3f4a5b6c7d",
            ),
        ];
        for (req, wire) in cases {
            assert_eq!(emitted(&req), wire, "{req:?}");
            assert_eq!(Request::parse(wire), Ok(req));
        }
    }

    #[test]
    fn a_trailing_newline_is_accepted_and_dropped() {
        let r = Request::parse(b"LOOKUP 3 - bob\r\n").unwrap();
        assert_eq!(emitted(&r), b"LOOKUP 3 - bob");
        assert_eq!(Request::parse(b"LOOKUP 3 - bob\n"), Ok(r));
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let bad: [(&[u8], ParseError); 16] = [
            (b"", ParseError::Empty),
            (b"FETCH 1 - x", ParseError::UnknownVerb),
            (b"lookup 1 - x", ParseError::UnknownVerb),
            (b"LOOKUP 1 - it's", ParseError::Field(FieldError::BadId)),
            (b"LOOKUP 1-2 - bob", ParseError::Field(FieldError::BadTxId)),
            (
                b"LOOKUP 1 5F0C2A1B9D8E7F60 bob",
                ParseError::Field(FieldError::BadHex),
            ),
            (b"LOOKUP 1 - bob extra", ParseError::Malformed),
            (b"LOOKUP 1  - bob", ParseError::Malformed),
            (b"LOOKUP 1 -", ParseError::Malformed),
            (b"REG 1 - alice 86401", ParseError::Malformed),
            (b"REG 1 - alice -", ParseError::Malformed),
            (b"REG 1 - alice - -", ParseError::Malformed),
            (b"REG 1 - alice 60 -", ParseError::Malformed),
            (
                b"REG 1 - alice - - 0123",
                ParseError::Field(FieldError::BadKey),
            ),
            (
                b"REG 1 - alice - - 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f x",
                ParseError::Malformed,
            ),
            (b"LIST 1 - 007", ParseError::Malformed),
        ];
        for (wire, err) in bad {
            assert_eq!(
                Request::parse(wire),
                Err(err),
                "{:?}",
                core::str::from_utf8(wire)
            );
        }
        let long = [b'.'; MAX_DATAGRAM + 1];
        assert_eq!(Request::parse(&long), Err(ParseError::TooLong));
    }

    /// The owned parts a request is built from.
    #[derive(Debug, Clone)]
    struct Parts {
        verb: u8,
        tx: std::string::String,
        cookie: Option<u64>,
        id: std::string::String,
        target: std::string::String,
        lease: Option<u32>,
        token: Option<u64>,
        key: Option<[u8; 32]>,
        cursor: u32,
        pad: u16,
        local: std::vec::Vec<core::net::SocketAddr>,
    }

    fn parts() -> impl Strategy<Value = Parts> {
        (
            0u8..10,
            testgen::txid(),
            any::<Option<u64>>(),
            testgen::id(),
            testgen::id(),
            proptest::option::of(0..=MAX_LEASE_SECS),
            any::<Option<u64>>(),
            any::<Option<[u8; 32]>>(),
            any::<u32>(),
            0u16..1100,
            proptest::collection::vec(testgen::addr(), 0..=crate::wire::MAX_LOCAL),
        )
            .prop_map(
                |(verb, tx, cookie, id, target, lease, token, key, cursor, pad, local)| Parts {
                    verb,
                    tx,
                    cookie,
                    id,
                    target,
                    lease,
                    token,
                    key,
                    cursor,
                    pad,
                    local,
                },
            )
    }

    fn build(p: &Parts) -> Request<'_> {
        let tx = TxId::new(&p.tx).unwrap();
        let h = Header {
            tx,
            cookie: p.cookie.map(Cookie),
        };
        let id = Id::new(&p.id).unwrap();
        let token = Token(p.token.unwrap_or(0));
        let by = Owned { h, id, token };
        match p.verb {
            0 => Request::Hello { tx, pad: p.pad },
            1 => Request::Register {
                h,
                id,
                lease: p.lease,
                token: p.token.map(Token),
                key: p.key.map(PublicKey),
            },
            2 => Request::Keepalive(by),
            3 => Request::Lookup { h, id },
            4 => Request::Introduce {
                by,
                target: Id::new(&p.target).unwrap(),
                local: Locals::new(&p.local),
            },
            5 => Request::List {
                h,
                cursor: p.cursor,
            },
            6 => Request::Subscribe(by),
            7 => Request::Unsubscribe(by),
            8 => Request::Quit(by),
            _ => Request::Stats {
                h,
                admin: p.token.map(Token),
            },
        }
    }

    testgen::round_trip_properties!(Request, parts(), build);
}
