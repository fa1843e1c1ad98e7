//! Requests of the extended protocol (client to server).
//!
//! ```text
//! request = hello / reg / keep / lookup / intro / list / sub / unsub / quit / stats
//! hello   = "HELLO" SP txid [SP padding]           ; padding = 1*%x21-7E
//! reg     = "REG" SP txid SP cookie SP id [SP (lease / "-") [SP token]]
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
//! leading zeros; a `REG` with a token but no lease writes `-` for the lease.

use super::fields::{Cookie, Id, Token, TxId, parse_hex64};
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
fn header<'w, 'b>(
    w: &'w mut Writer<'b>,
    verb: &[u8],
    h: Header<'_>,
) -> Result<&'w mut Writer<'b>, EmitError> {
    w.put(verb)?.field(h.tx.as_str().as_bytes())?;
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
        let h = Header {
            tx: f.tx()?,
            cookie: f.cookie()?,
        };
        let req = match verb {
            b"REG" => {
                let id = f.id()?;
                let lease_field = f.opt_raw()?;
                let lease = match lease_field {
                    None | Some(b"-") => None,
                    Some(w) => Some(parse_lease(w)?),
                };
                // `-` holds the lease's place only when a token follows.
                let dash = lease_field == Some(b"-");
                let token = match f.opt_raw()? {
                    None if dash => return Err(ParseError::Malformed),
                    None => None,
                    Some(w) => Some(Token(parse_hex64(w)?)),
                };
                Request::Register {
                    h,
                    id,
                    lease,
                    token,
                }
            }
            b"KEEP" => Request::Keepalive {
                h,
                id: f.id()?,
                token: f.token()?,
            },
            b"LOOKUP" => Request::Lookup { h, id: f.id()? },
            b"INTRO" => Request::Introduce {
                h,
                id: f.id()?,
                token: f.token()?,
                target: f.id()?,
            },
            b"LIST" => Request::List {
                h,
                cursor: f.u32()?,
            },
            b"SUB" => Request::Subscribe {
                h,
                id: f.id()?,
                token: f.token()?,
            },
            b"UNSUB" => Request::Unsubscribe {
                h,
                id: f.id()?,
                token: f.token()?,
            },
            b"QUIT" => Request::Quit {
                h,
                id: f.id()?,
                token: f.token()?,
            },
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

    /// Write this request into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        match *self {
            Request::Hello { tx, pad } => {
                w.put(b"HELLO")?.field(tx.as_str().as_bytes())?;
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
            } => {
                header(&mut w, b"REG", h)?.field(id.as_bytes())?;
                match (lease, token) {
                    (Some(l), _) => {
                        w.num(l)?;
                    }
                    (None, Some(_)) => {
                        w.field(b"-")?;
                    }
                    (None, None) => {}
                }
                if let Some(t) = token {
                    w.hex(t.0)?;
                }
            }
            Request::Keepalive { h, id, token } => {
                header(&mut w, b"KEEP", h)?
                    .field(id.as_bytes())?
                    .hex(token.0)?;
            }
            Request::Lookup { h, id } => {
                header(&mut w, b"LOOKUP", h)?.field(id.as_bytes())?;
            }
            Request::Introduce {
                h,
                id,
                token,
                target,
            } => {
                header(&mut w, b"INTRO", h)?
                    .field(id.as_bytes())?
                    .hex(token.0)?
                    .field(target.as_bytes())?;
            }
            Request::List { h, cursor } => {
                header(&mut w, b"LIST", h)?.num(cursor)?;
            }
            Request::Subscribe { h, id, token } => {
                header(&mut w, b"SUB", h)?
                    .field(id.as_bytes())?
                    .hex(token.0)?;
            }
            Request::Unsubscribe { h, id, token } => {
                header(&mut w, b"UNSUB", h)?
                    .field(id.as_bytes())?
                    .hex(token.0)?;
            }
            Request::Quit { h, id, token } => {
                header(&mut w, b"QUIT", h)?
                    .field(id.as_bytes())?
                    .hex(token.0)?;
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
