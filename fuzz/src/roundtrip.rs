//! The `roundtrip` target: structure-aware messages of every family.
//!
//! Each input builds one message from valid fields (see [`crate::make`]) and
//! checks that
//!
//! - a message that fits its datagram limit (1200 bytes; 1024 for what a
//!   seed client reads) emits into a buffer of exactly that limit and parses
//!   back to an equal message (`parse(emit(m)) == m`);
//! - a message that does not fit is refused, never truncated: `emit` into a
//!   limit-sized buffer fails, and `Reply::emit` fails even into a larger
//!   buffer (it enforces the limit itself);
//! - `seed::emit_list` always fits [`SEED_MAX_LIST`], keeps the ids in order,
//!   and stops only at the first id that would not fit.
//!
//! The one lossy field is documented: the extended protocol writes addresses
//! as Rust's `SocketAddr` does, which has no IPv6 flow label, so replies are
//! built with a zero flow label ([`crate::make::addr`]); the seed's Python
//! tuples carry it and are built with any.

use arbitrary::{Result, Unstructured};
use proto_core::wire::reply::{ChangeSeq, IdSeq, StatSeq};
use proto_core::wire::request::{Header, MAX_LEASE_SECS, Owned};
use proto_core::wire::sealed::{
    INITIATION_MIN, MAX_INITIATION_NOISE, MAX_SEALED, RESPONSE_MAX, Sealed, hex_decode, hex_encode,
};
use proto_core::wire::seed::{Refusal, SeedList, emit_list};
use proto_core::wire::{
    Cookie, ErrorCode, Id, PeerKind, PublicKey, Reply, Request, SeedReply, SeedRequest, Token, TxId,
};
use proto_core::{MAX_DATAGRAM, SEED_MAX_LIST};

use crate::make;

/// Build one message from `data` and check its round trip.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    // Running out of bytes just ends the input early.
    let _ = one(&mut u);
}

fn one(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0u8..=5)? {
        0 => request(u),
        1 => reply(u),
        2 => seed_request(u),
        3 => seed_reply(u),
        4 => sealed(u),
        _ => seed_list(u),
    }
}

/// Material every family draws from, generated up front so the messages can
/// borrow it.
struct Material {
    tx: String,
    id: String,
    other: String,
    cookie: Option<Cookie>,
    token: Token,
    n1: u32,
    n2: u32,
}

impl Material {
    fn new(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Material {
            tx: make::txid(u)?,
            id: make::id(u)?,
            other: make::id(u)?,
            cookie: if u.ratio(1, 4)? {
                None
            } else {
                Some(Cookie(u.arbitrary()?))
            },
            token: Token(u.arbitrary()?),
            n1: number(u)?,
            n2: number(u)?,
        })
    }
    fn tx(&self) -> TxId<'_> {
        TxId::new(&self.tx).expect("generated txid is valid")
    }
    fn id(&self) -> Id<'_> {
        Id::new(&self.id).expect("generated id is valid")
    }
    fn other(&self) -> Id<'_> {
        Id::new(&self.other).expect("generated id is valid")
    }
    fn header(&self) -> Header<'_> {
        Header {
            tx: self.tx(),
            cookie: self.cookie,
        }
    }
}

/// A u32, often small, sometimes at the edges.
fn number(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => u.int_in_range(0..=9)?,
        1 => u32::MAX - u.int_in_range(0..=2)?,
        _ => u.arbitrary()?,
    })
}

/// A request must parse back whole if it fits 1200 bytes and be refused by a
/// 1200-byte buffer if not.
fn request(u: &mut Unstructured<'_>) -> Result<()> {
    let m = Material::new(u)?;
    let h = m.header();
    let by = Owned {
        h,
        id: m.id(),
        token: m.token,
    };
    let req = match u.int_in_range(0u8..=9)? {
        0 => Request::Hello {
            tx: m.tx(),
            // Mostly within a datagram, sometimes (up to 64 KiB) beyond it.
            pad: if u.ratio(1, 8)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=1200)?
            },
        },
        1 => Request::Register {
            h,
            id: m.id(),
            lease: if u.arbitrary()? {
                Some(u.int_in_range(0..=MAX_LEASE_SECS)?)
            } else {
                None
            },
            token: if u.arbitrary()? { Some(m.token) } else { None },
            key: if u.arbitrary()? {
                Some(PublicKey(u.arbitrary()?))
            } else {
                None
            },
        },
        2 => Request::Keepalive(by),
        3 => Request::Lookup { h, id: m.id() },
        4 => Request::Introduce {
            by,
            target: m.other(),
            local: {
                let mut l = proto_core::wire::Locals::EMPTY;
                for _ in 0..u.int_in_range(0..=proto_core::wire::MAX_LOCAL)? {
                    let _ = l.push(make::addr(u, false)?);
                }
                l
            },
        },
        5 => Request::List { h, cursor: m.n1 },
        6 => Request::Subscribe(by),
        7 => Request::Unsubscribe(by),
        8 => Request::Quit(by),
        _ => Request::Stats {
            h,
            admin: if u.arbitrary()? { Some(m.token) } else { None },
        },
    };
    let natural = emitted_len(|b| req.emit(b));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    match req.emit(&mut buf) {
        Ok(n) => {
            assert_eq!(Some(n), natural);
            assert!(n <= MAX_DATAGRAM);
            assert_eq!(Request::parse(&buf[..n]), Ok(req), "{:?}", text(&buf[..n]));
            assert_eq!(req.tx(), m.tx());
        }
        Err(_) => {
            let n = natural.expect("emits into a big buffer");
            assert!(n > MAX_DATAGRAM, "refused a {n}-byte request");
            let mut big = vec![0u8; n];
            req.emit(&mut big).expect("fits its own length");
            assert!(Request::parse(&big).is_err(), "an oversized request parses");
        }
    }
    Ok(())
}

/// A run of `count` generated words joined by `sep`.
fn run(
    u: &mut Unstructured<'_>,
    max: usize,
    sep: &str,
    mut word: impl FnMut(&mut Unstructured<'_>) -> Result<String>,
) -> Result<String> {
    let count = u.int_in_range(0..=max)?;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        words.push(word(u)?);
    }
    Ok(words.join(sep))
}

fn change(u: &mut Unstructured<'_>) -> Result<String> {
    let sign = if u.arbitrary()? { '+' } else { '-' };
    Ok(format!("{sign}{}", make::id(u)?))
}

fn counter(u: &mut Unstructured<'_>) -> Result<String> {
    const KEY: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";
    let len = u.int_in_range(1..=32)?;
    let key: String = (0..len)
        .map(|_| u.choose(KEY).map(|&b| char::from(b)))
        .collect::<Result<_>>()?;
    let v: u64 = if u.arbitrary()? {
        u.int_in_range(0..=99)?
    } else {
        u.arbitrary()?
    };
    Ok(format!("{key}={v}"))
}

/// A peer's kind: a key, a seed client or neither.
fn kind(u: &mut Unstructured<'_>) -> Result<PeerKind> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => PeerKind::Seed,
        1 => PeerKind::Keyless,
        _ => PeerKind::Key(PublicKey(u.arbitrary()?)),
    })
}

/// A reply fits 1200 bytes and parses back whole, or `emit` refuses it.
fn reply(u: &mut Unstructured<'_>) -> Result<()> {
    let m = Material::new(u)?;
    let a = make::addr(u, false)?;
    let ids = run(u, 60, " ", make::id)?;
    let changes = run(u, 60, " ", change)?;
    let stats = run(u, 50, " ", counter)?;
    let (tx, id) = (m.tx(), m.id());
    let rep = match u.int_in_range(0u8..=12)? {
        0 => Reply::Cookie {
            tx,
            cookie: Cookie(m.token.0),
            addr: a,
        },
        1 => Reply::Registered {
            tx,
            id,
            lease: m.n1,
            addr: a,
            token: m.token,
        },
        2 => Reply::Alive {
            tx,
            lease: m.n1,
            addr: a,
            seq: m.n2,
        },
        3 => Reply::At {
            tx,
            id,
            addr: a,
            kind: kind(u)?,
        },
        4 => Reply::Page {
            tx,
            next: m.n1,
            ids: IdSeq::new(&ids).expect("generated ids are valid"),
        },
        5 => Reply::Subscribed { tx, seq: m.n1 },
        6 => Reply::Unsubscribed { tx },
        7 => Reply::Bye { tx, id },
        8 => Reply::Stats {
            tx,
            stats: StatSeq::new(&stats).expect("generated counters are valid"),
        },
        9 => Reply::Error {
            tx: if u.arbitrary()? { Some(tx) } else { None },
            code: *u.choose(&ErrorCode::ALL)?,
        },
        10 => Reply::Punch {
            id,
            addr: a,
            kind: kind(u)?,
            local: proto_core::wire::Locals::new(&[a][..u.int_in_range(0..=1)?]),
        },
        11 if !changes.is_empty() => Reply::Events {
            first: m.n1,
            last: m.n2,
            changes: ChangeSeq::new(&changes).expect("generated changes are valid"),
        },
        _ => Reply::Resync { seq: m.n2 },
    };
    // The natural length, for the messages whose length varies.
    let var = |head: String, tail: &str| head.len() + usize::from(!tail.is_empty()) + tail.len();
    let natural = match rep {
        Reply::Page { next, ids, .. } => Some(var(format!("PAGE {} {next}", m.tx), ids.as_str())),
        Reply::Stats { stats, .. } => Some(var(format!("STATS {}", m.tx), stats.as_str())),
        Reply::Events {
            first,
            last,
            changes,
        } => Some(var(format!("EVENTS {first} {last}"), changes.as_str())),
        _ => None,
    };
    let mut big = vec![0u8; 4 * MAX_DATAGRAM];
    match rep.emit(&mut big) {
        Ok(n) => {
            assert!(n <= MAX_DATAGRAM, "a {n}-byte reply");
            if let Some(want) = natural {
                assert_eq!(n, want);
            }
            let mut exact = vec![0u8; MAX_DATAGRAM];
            assert_eq!(rep.emit(&mut exact), Ok(n));
            assert_eq!(&exact[..n], &big[..n]);
            assert_eq!(Reply::parse(&big[..n]), Ok(rep), "{:?}", text(&big[..n]));
        }
        Err(_) => {
            let want = natural.expect("only pages, counters and events can be too long");
            assert!(want > MAX_DATAGRAM, "refused a {want}-byte reply");
        }
    }
    Ok(())
}

fn seed_request(u: &mut Unstructured<'_>) -> Result<()> {
    let m = Material::new(u)?;
    let req = match u.int_in_range(0u8..=3)? {
        0 => SeedRequest::Id(m.id()),
        1 => SeedRequest::Peer(m.id()),
        2 => SeedRequest::Quit(m.id()),
        _ => SeedRequest::Id2,
    };
    let mut buf = vec![0u8; SEED_MAX_LIST];
    let n = req.emit(&mut buf).expect("a seed request always fits");
    assert_eq!(
        SeedRequest::parse(&buf[..n]),
        Ok(req),
        "{:?}",
        text(&buf[..n])
    );
    Ok(())
}

/// What a seed client reads (`recvfrom(1024)`): a message that fits 1024
/// bytes parses back whole; one that does not is refused by a 1024-byte
/// buffer.
fn seed_reply(u: &mut Unstructured<'_>) -> Result<()> {
    let inner = run(u, 40, ", ", |u| Ok(format!("'{}'", make::id(u)?)))?;
    let text_len = u.int_in_range(0..=1100)?;
    let mut chars = Vec::with_capacity(text_len);
    for _ in 0..text_len {
        chars.push(u.arbitrary::<char>()?);
    }
    let msg: String = chars.into_iter().collect();
    let a = make::addr(u, true)?;
    let taken = make::id(u)?;
    let rep = match u.int_in_range(0u8..=4)? {
        0 => SeedReply::List(SeedList::new(&inner).expect("generated list is valid")),
        1 => SeedReply::Peer(a),
        2 => SeedReply::NoPeer,
        3 => SeedReply::Refused(match u.int_in_range(0u8..=2)? {
            0 => Refusal::Taken(Id::new(&taken).expect("generated id is valid")),
            1 => Refusal::TableFull,
            _ => Refusal::OverQuota,
        }),
        // A peer's text that reads as a server's refusal parses as one (the
        // seed client cannot tell them apart either): not a round trip.
        _ if msg.starts_with("parley-server: ") => return Ok(()),
        _ => SeedReply::Message(&msg),
    };
    let natural = emitted_len(|b| rep.emit(b)).expect("emits into a big buffer");
    let mut buf = vec![0u8; SEED_MAX_LIST];
    match rep.emit(&mut buf) {
        Ok(n) => {
            assert_eq!(n, natural);
            assert_eq!(
                SeedReply::parse(&buf[..n]),
                Ok(rep),
                "{:?}",
                text(&buf[..n])
            );
        }
        Err(_) => assert!(natural > SEED_MAX_LIST, "refused a {natural}-byte reply"),
    }
    Ok(())
}

/// `emit_list` into the seed client's 1024 bytes: in order, as many as fit.
fn seed_list(u: &mut Unstructured<'_>) -> Result<()> {
    let count = u.int_in_range(0..=120)?;
    let mut owned = Vec::with_capacity(count);
    for _ in 0..count {
        owned.push(make::id(u)?);
    }
    let ids: Vec<Id<'_>> = owned.iter().map(|s| Id::new(s).expect("valid")).collect();
    let room = if u.ratio(1, 4)? {
        u.int_in_range(7..=SEED_MAX_LIST)?
    } else {
        SEED_MAX_LIST
    };
    let mut buf = vec![0u8; room];
    let (n, written) = emit_list(ids.iter().copied(), &mut buf).expect("room for List []");
    assert!(n <= room && n <= SEED_MAX_LIST);
    let Ok(SeedReply::List(list)) = SeedReply::parse(&buf[..n]) else {
        panic!("emit_list wrote {:?}", text(&buf[..n]));
    };
    let got: Vec<Id<'_>> = list.iter().collect();
    assert_eq!(got, ids[..written], "the first ids, in order");
    if let Some(next) = ids.get(written) {
        let sep = if written == 0 { 0 } else { 2 };
        assert!(
            n + sep + next.as_str().len() + 2 > room,
            "stopped before an id that fits"
        );
    }
    Ok(())
}

/// The sealed peer framing: a datagram that fits 1200 bytes parses back
/// equal; one that does not is refused; an initiation is never shorter
/// than the longest response, and its hex carries the bytes it was made of.
fn sealed(u: &mut Unstructured<'_>) -> Result<()> {
    let len = u.int_in_range(0..=1300)?;
    let body: Vec<u8> = (0..len)
        .map(|_| u.arbitrary::<u8>())
        .collect::<Result<_>>()?;
    let noise_len = u
        .int_in_range(1..=MAX_INITIATION_NOISE)?
        .min(body.len().max(1));
    let mut noise = body.clone();
    noise.resize(noise_len, 0xa5);
    let mut hex = vec![0u8; 2 * noise.len()];
    let hex = hex_encode(&noise, &mut hex).expect("room for the hex");
    let (a, b) = (u.arbitrary::<u32>()?, u.arbitrary::<u32>()?);
    let m = match u.int_in_range(0u8..=3)? {
        0 => Sealed::Initiation {
            pattern: u.int_in_range(1..=2)?,
            sender: a,
            hex,
        },
        1 => Sealed::Response {
            sender: a,
            receiver: b,
            noise: &body,
        },
        2 => Sealed::Confirm {
            receiver: a,
            noise: &body,
        },
        _ => Sealed::Transport {
            receiver: a,
            counter: u.arbitrary()?,
            ciphertext: &body,
        },
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    match m.emit(&mut buf) {
        Ok(n) => {
            assert_eq!(n, m.len());
            assert_eq!(Sealed::parse(&buf[..n]), Ok(m));
            if let Sealed::Initiation { hex, .. } = m {
                assert!(n >= INITIATION_MIN && INITIATION_MIN >= RESPONSE_MAX);
                let mut back = vec![0u8; MAX_INITIATION_NOISE];
                let k = hex_decode(hex, &mut back).expect("its own hex");
                assert_eq!(&back[..k], &noise[..]);
            }
        }
        Err(_) => {
            // Refused only when it really does not fit, or has nothing to carry.
            let empty = match m {
                Sealed::Response { noise, .. } | Sealed::Confirm { noise, .. } => noise.is_empty(),
                Sealed::Transport { ciphertext, .. } => ciphertext.len() < 16,
                Sealed::Initiation { hex, .. } => hex.is_empty(),
            };
            assert!(m.len() > MAX_SEALED || empty, "refused {m:?}");
        }
    }
    Ok(())
}

/// How long `emit` writes when given all the room it could want.
fn emitted_len<E>(emit: impl Fn(&mut [u8]) -> core::result::Result<usize, E>) -> Option<usize> {
    let mut big = vec![0u8; 1 << 17];
    emit(&mut big).ok()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
