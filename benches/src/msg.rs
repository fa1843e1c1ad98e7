//! What the generator puts on the wire and how it reads what comes back,
//! both through proto-core's codec: requests are `wire` types emitted
//! straight into the send buffers, replies are parsed by `wire`'s parsers,
//! so the generator knows no verb and no field order of its own.
//!
//! Every answer is parsed in full, addresses and keys included, so a reply
//! the codec refuses is counted as unknown and a server that writes a
//! malformed one shows in the report. The generator's core has room for
//! that: it waits on the server's or the floor's core (benches/RESULTS.md).
//!
//! What is the generator's own is how it names things. The transaction id
//! names the in-flight slot (`slot` in the low 16 bits, the slot's
//! generation above), so matching a reply is one array index and one
//! comparison, and a late reply to a reused slot is recognised as late.
//!
//! ```text
//! txid   = lowercase hex of (generation << 16 | slot), no leading zeros
//! id     = prefix kind decimal      ; "lg" "p" "123" -> "lgp123"
//! ```

use proto_core::wire::fields::{MAX_ID_LEN, hex64};
use proto_core::wire::relay::{self, Frame, RelayReply, RelayRequest};
use proto_core::wire::reply::StatSeq;
use proto_core::wire::request::{Header, Owned};
use proto_core::wire::stun::{self, BindingRequest, BindingSuccess};
use proto_core::wire::{
    Cookie, ErrorCode, Id, PublicKey, Reply, Request, SeedReply, SeedRequest, Token, TxId,
};
use testkit::rng::XorShift;

/// Payload octets of a relay frame in the relay workload: the size of a
/// short encrypted chat datagram.
pub const RELAY_PAYLOAD: usize = 64;

/// What kind of id: prefilled, freshly registered, or a churn actor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// Registered before the measured phase (`--table`).
    Prefill,
    /// Registered once by the `register` workload and kept.
    Fresh,
    /// Registered and quit over and over by a churn actor.
    Actor,
    /// End 0 of a lane's relay session (relay workload).
    RelayA,
    /// End 1 of a lane's relay session.
    RelayB,
}

impl IdKind {
    fn letter(self) -> u8 {
        match self {
            IdKind::Prefill => b'p',
            IdKind::Fresh => b'f',
            IdKind::Actor => b'c',
            IdKind::RelayA => b'x',
            IdKind::RelayB => b'y',
        }
    }
}

/// An id as the generator names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRef {
    /// Which family.
    pub kind: IdKind,
    /// Its number in the family.
    pub n: u32,
}

/// The name of an [`IdRef`] under a prefix, in a buffer of its own.
struct IdName {
    buf: [u8; MAX_ID_LEN],
    len: usize,
}

impl IdName {
    /// `prefix`, the kind's letter, the number in decimal; `None` if that
    /// is longer than an id may be.
    fn new(prefix: &[u8], id: IdRef) -> Option<IdName> {
        let mut number = itoa::Buffer::new();
        let digits = number.format(id.n).as_bytes();
        let len = prefix.len() + 1 + digits.len();
        let mut buf = [0u8; MAX_ID_LEN];
        buf.get_mut(..prefix.len())?.copy_from_slice(prefix);
        buf[prefix.len()] = id.kind.letter();
        buf.get_mut(prefix.len() + 1..len)?.copy_from_slice(digits);
        Some(IdName { buf, len })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn id(&self) -> Option<Id<'_>> {
        Id::from_bytes(self.as_bytes()).ok()
    }

    /// A request by this id's owner, holder of `token`, under header `h`.
    fn owned<'a>(&'a self, h: Header<'a>, token: u64) -> Option<Owned<'a>> {
        Some(Owned {
            h,
            id: self.id()?,
            token: Token(token),
        })
    }
}

/// Encode a transaction id.
pub fn txid(slot: u16, generation: u32) -> u64 {
    (u64::from(generation) << 16) | u64::from(slot)
}

/// Split a transaction id back into (slot, generation).
pub fn split_txid(tx: u64) -> (u16, u32) {
    ((tx & 0xffff) as u16, (tx >> 16) as u32)
}

/// Read one of our transaction ids back; `None` if it is not one of ours.
pub fn parse_txid(w: &[u8]) -> Option<u64> {
    if w.is_empty() || w.len() > 12 {
        return None;
    }
    let mut v = 0u64;
    for &b in w {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// Our transaction id `tx` as its digits: the 16 of `hex64` without the
/// leading zeros (one digit stays for 0).
fn tx_digits(tx: u64) -> ([u8; 16], usize) {
    let skip = (tx.leading_zeros() / 4).min(15) as usize;
    (hex64(tx), skip)
}

/// A request the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// `HELLO`, padded so the server may answer.
    Hello,
    /// `REG id lease - key`: every registration brings a public key, so the
    /// table holds keys and lookups answer with them, as for Parley clients.
    Reg(IdRef, u32),
    /// `LOOKUP id`.
    Lookup(IdRef),
    /// `QUIT id token`.
    Quit(IdRef, u64),
    /// `SUB id token`.
    Sub(IdRef, u64),
    /// `STATS`.
    Stats,
    /// Seed `ID id` (no reply).
    SeedId(IdRef),
    /// Seed `Peer id`.
    SeedPeer(IdRef),
    /// Seed `Quit id` (no reply).
    SeedQuit(IdRef),
    /// A STUN Binding request; the transaction id carries `tx`.
    Stun,
    /// `RELAY me token peer`.
    Relay(IdRef, u64, IdRef),
    /// A relay frame on a channel; the payload starts with `tx`.
    Frame(u64),
}

/// The 32-byte public key the generator registers `id` with, as four
/// 64-bit words (distinct per id; any 32 bytes will do for the server).
pub fn key_of(id: IdRef) -> [u64; 4] {
    let mut x =
        (u64::from(id.n) << 8 | u64::from(id.kind.letter())).wrapping_add(0x9e37_79b9_7f4a_7c15);
    core::array::from_fn(|_| {
        // SplitMix64 steps.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn public_key(id: IdRef) -> PublicKey {
    let mut k = [0u8; 32];
    for (chunk, word) in k.chunks_exact_mut(8).zip(key_of(id)) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    PublicKey(k)
}

/// Padding after `HELLO`: the `COOKIE` reply must not be longer than the
/// request (`COOKIE tx 16hex [IPv6]:port` is at most 80 bytes).
pub const HELLO_PAD: u16 = 80;

/// Write `req` with transaction id `tx` and `cookie` into `buf`; `None` if
/// it does not fit (or the prefix makes ids too long).
pub fn write_req(buf: &mut [u8], prefix: &[u8], req: Req, tx: u64, cookie: u64) -> Option<usize> {
    let (digits, skip) = tx_digits(tx);
    let txid = TxId::from_bytes(&digits[skip..]).ok()?;
    let h = Header {
        tx: txid,
        cookie: Some(Cookie(cookie)),
    };
    let ext = |r: Request<'_>, buf: &mut [u8]| r.emit(buf).ok();
    let seed = |r: SeedRequest<'_>, buf: &mut [u8]| r.emit(buf).ok();
    match req {
        Req::Stun => {
            let mut transaction = [0u8; 12];
            transaction[4..].copy_from_slice(&tx.to_be_bytes());
            BindingRequest { transaction }.emit(buf).ok()
        }
        Req::Hello => ext(
            Request::Hello {
                tx: txid,
                pad: HELLO_PAD,
            },
            buf,
        ),
        Req::Stats => ext(Request::Stats { h, admin: None }, buf),
        Req::Reg(r, lease) => {
            let name = IdName::new(prefix, r)?;
            let req = Request::Register {
                h,
                id: name.id()?,
                lease: Some(lease),
                token: None,
                key: Some(public_key(r)),
            };
            ext(req, buf)
        }
        Req::Lookup(r) => {
            let name = IdName::new(prefix, r)?;
            ext(Request::Lookup { h, id: name.id()? }, buf)
        }
        Req::Quit(r, token) => {
            let name = IdName::new(prefix, r)?;
            ext(Request::Quit(name.owned(h, token)?), buf)
        }
        Req::Sub(r, token) => {
            let name = IdName::new(prefix, r)?;
            ext(Request::Subscribe(name.owned(h, token)?), buf)
        }
        Req::SeedId(r) => seed(SeedRequest::Id(IdName::new(prefix, r)?.id()?), buf),
        Req::SeedPeer(r) => seed(SeedRequest::Peer(IdName::new(prefix, r)?.id()?), buf),
        Req::SeedQuit(r) => seed(SeedRequest::Quit(IdName::new(prefix, r)?.id()?), buf),
        Req::Relay(me, token, peer) => {
            let (me, peer) = (IdName::new(prefix, me)?, IdName::new(prefix, peer)?);
            let req = RelayRequest {
                h,
                id: me.id()?,
                token: Token(token),
                peer: peer.id()?,
            };
            req.emit(buf).ok()
        }
        Req::Frame(channel) => {
            let mut payload = [0u8; RELAY_PAYLOAD];
            payload[..8].copy_from_slice(&tx.to_be_bytes());
            let frame = Frame {
                channel,
                payload: &payload,
            };
            frame.emit(buf).ok()
        }
    }
}

/// A datagram that came back, read as far as matching needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx<'a> {
    /// An answer carrying one of our transaction ids.
    Answer {
        /// The transaction id.
        tx: u64,
        /// What it says.
        what: Answer<'a>,
    },
    /// `ERR - code`: an error about a datagram the server could not read.
    AnonError(ErrorCode),
    /// Presence or introduction traffic (`EVENTS`, `RESYNC`, `PUNCH`, seed `List`).
    Unsolicited,
    /// A seed `Peer (...)` (it carries no transaction id).
    SeedPeer,
    /// A seed `NoPeer`.
    SeedNoPeer,
    /// Anything else, including whatever the codec does not parse.
    Unknown,
}

/// The content of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `COOKIE`: the cookie.
    Cookie(u64),
    /// `REGD`: the owner token.
    Registered(u64),
    /// `AT`: the id that was found.
    At(&'a [u8]),
    /// `BYE`.
    Bye,
    /// `SUBD`.
    Subscribed,
    /// `STATS`: the counters.
    Stats(StatSeq<'a>),
    /// `ERR tx code`: the code.
    Error(ErrorCode),
    /// Our own request, sent back by an echo server.
    Echo,
    /// A STUN Binding success (its address is not checked: on loopback
    /// it is the lane's own).
    Mapped,
    /// `RELAYD`: the session's channel.
    RelayChannel(u64),
    /// A relay frame came back (from the server, or from an echo server).
    Relayed,
    /// Another reply we do not use (`ALIVE`, `PAGE`...).
    Other,
}

fn answer<'a>(tx: TxId<'_>, what: Answer<'a>) -> Rx<'a> {
    match parse_txid(tx.as_bytes()) {
        Some(tx) => Rx::Answer { tx, what },
        None => Rx::Unknown,
    }
}

fn stun_tx(transaction: &[u8; 12]) -> u64 {
    let mut tx = [0u8; 8];
    tx.copy_from_slice(&transaction[4..]);
    u64::from_be_bytes(tx)
}

/// Read a datagram from the server (or from an echo server).
pub fn classify<'a>(d: &'a [u8]) -> Rx<'a> {
    if relay::is_frame(d) {
        // Our frames carry the transaction id in their first payload octets.
        return match Frame::parse(d).map(|f| f.payload.first_chunk::<8>().copied()) {
            Ok(Some(tx)) => Rx::Answer {
                tx: u64::from_be_bytes(tx),
                what: Answer::Relayed,
            },
            _ => Rx::Unknown,
        };
    }
    if stun::is_stun(d) {
        if let Ok(s) = BindingSuccess::parse(d) {
            return Rx::Answer {
                tx: stun_tx(&s.transaction),
                what: Answer::Mapped,
            };
        }
        return match BindingRequest::parse(d) {
            Ok(r) => Rx::Answer {
                tx: stun_tx(&r.transaction),
                what: Answer::Echo,
            },
            Err(_) => Rx::Unknown,
        };
    }
    // Replies first (a server's), then requests (an echo server's).
    if let Ok(r) = Reply::parse(d) {
        return match r {
            Reply::Cookie { tx, cookie, .. } => answer(tx, Answer::Cookie(cookie.0)),
            Reply::Registered { tx, token, .. } => answer(tx, Answer::Registered(token.0)),
            Reply::At { tx, id, .. } => answer(tx, Answer::At(id.as_bytes())),
            Reply::Bye { tx, .. } => answer(tx, Answer::Bye),
            Reply::Subscribed { tx, .. } => answer(tx, Answer::Subscribed),
            Reply::Stats { tx, stats } => answer(tx, Answer::Stats(stats)),
            Reply::Error { tx: Some(tx), code } => answer(tx, Answer::Error(code)),
            Reply::Error { tx: None, code } => Rx::AnonError(code),
            Reply::Alive { tx, .. } | Reply::Page { tx, .. } | Reply::Unsubscribed { tx } => {
                answer(tx, Answer::Other)
            }
            Reply::Punch { .. } | Reply::Events { .. } | Reply::Resync { .. } => Rx::Unsolicited,
        };
    }
    if let Ok(r) = Request::parse(d) {
        return answer(r.tx(), Answer::Echo);
    }
    if let Ok(r) = RelayReply::parse(d) {
        return answer(r.tx, Answer::RelayChannel(r.channel));
    }
    if let Ok(r) = RelayRequest::parse(d) {
        return answer(r.h.tx, Answer::Echo);
    }
    match SeedReply::parse(d) {
        Ok(SeedReply::List(_)) => return Rx::Unsolicited,
        Ok(SeedReply::Peer(_)) => return Rx::SeedPeer,
        Ok(SeedReply::NoPeer) => return Rx::SeedNoPeer,
        Ok(_) | Err(_) => {}
    }
    // An echo server's `Peer id` stands for the answer it cannot give.
    match SeedRequest::parse(d) {
        Ok(SeedRequest::Peer(_)) => Rx::SeedPeer,
        _ => Rx::Unknown,
    }
}

/// Whether `got` (from an `AT`) names the id `want`.
pub fn same_id(got: &[u8], prefix: &[u8], want: IdRef) -> bool {
    IdName::new(prefix, want).is_some_and(|n| n.as_bytes() == got)
}

/// A garbage datagram: bytes no parser accepts, with no space in them so
/// the server cannot salvage a transaction id and answer one of our slots.
pub fn garbage(buf: &mut [u8], rnd: u64) -> usize {
    let len = 8 + (rnd % 120) as usize;
    let len = len.min(buf.len());
    let mut x = XorShift::new(rnd | 1);
    for b in buf[..len].iter_mut() {
        let v = (x.next_u64() >> 24) as u8;
        *b = if v == b' ' { b'_' } else { v };
    }
    // Lower case first byte: never one of the verbs, which are upper or mixed case.
    buf[0] = b'z';
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::wire::{Request, SeedRequest};

    fn text(req: Req, tx: u64) -> String {
        let mut b = [0u8; 256];
        let n = write_req(&mut b, b"lg", req, tx, 0x0123_4567_89ab_cdef).unwrap();
        String::from_utf8(b[..n].to_vec()).unwrap()
    }

    #[test]
    fn txids_round_trip_and_reject_foreign_ones() {
        for (slot, g) in [(0u16, 0u32), (7, 1), (65535, u32::MAX), (300, 12345)] {
            let t = txid(slot, g);
            let (b, skip) = tx_digits(t);
            assert_eq!(parse_txid(&b[skip..]), Some(t));
            assert_eq!(split_txid(t), (slot, g));
        }
        assert_eq!(parse_txid(b"-"), None);
        assert_eq!(parse_txid(b"A1"), None);
        assert_eq!(parse_txid(b""), None);
        assert_eq!(parse_txid(b"1234567890abc"), None);
    }

    #[test]
    fn requests_are_what_the_server_parses() {
        let id = IdRef {
            kind: IdKind::Prefill,
            n: 42,
        };
        let s = text(Req::Lookup(id), 0x1_0007);
        assert_eq!(s, "LOOKUP 10007 0123456789abcdef lgp42");
        assert!(matches!(
            Request::parse(s.as_bytes()),
            Ok(Request::Lookup { id, .. }) if id.as_str() == "lgp42"
        ));
        let s = text(Req::Reg(id, 3600), 5);
        let want: Vec<u8> = key_of(id).iter().flat_map(|w| w.to_be_bytes()).collect();
        assert!(matches!(
            Request::parse(s.as_bytes()),
            Ok(Request::Register {
                lease: Some(3600),
                token: None,
                key: Some(k),
                ..
            }) if k.0[..] == want[..]
        ));
        let other = IdRef {
            kind: IdKind::Prefill,
            n: 43,
        };
        assert_ne!(key_of(id), key_of(other));
        let s = text(Req::Quit(id, 0xff), 5);
        assert!(s.ends_with(" lgp42 00000000000000ff"), "{s}");
        assert!(matches!(
            Request::parse(s.as_bytes()),
            Ok(Request::Quit { .. })
        ));
        assert!(matches!(
            Request::parse(text(Req::Sub(id, 1), 9).as_bytes()),
            Ok(Request::Subscribe { .. })
        ));
        assert!(matches!(
            Request::parse(text(Req::Stats, 9).as_bytes()),
            Ok(Request::Stats { admin: None, .. })
        ));
        let hello = text(Req::Hello, 3);
        assert!(matches!(
            Request::parse(hello.as_bytes()),
            Ok(Request::Hello { pad, .. }) if pad == HELLO_PAD
        ));
        // The longest COOKIE reply fits in what HELLO sent.
        let cookie = Reply::Cookie {
            tx: TxId::new("3").unwrap(),
            cookie: Cookie(0x0123_4567_89ab_cdef),
            addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                .parse()
                .unwrap(),
        };
        let mut b = [0u8; 256];
        assert!(cookie.emit(&mut b).unwrap() <= hello.len());
        assert_eq!(
            SeedRequest::parse(text(Req::SeedPeer(id), 0).as_bytes()).unwrap(),
            SeedRequest::Peer(proto_core::wire::Id::new("lgp42").unwrap())
        );
        assert!(matches!(
            SeedRequest::parse(text(Req::SeedId(id), 0).as_bytes()),
            Ok(SeedRequest::Id(_))
        ));
        assert!(matches!(
            SeedRequest::parse(text(Req::SeedQuit(id), 0).as_bytes()),
            Ok(SeedRequest::Quit(_))
        ));
    }

    #[test]
    fn a_too_small_buffer_is_refused_not_overrun() {
        let mut b = [0u8; 10];
        let id = IdRef {
            kind: IdKind::Fresh,
            n: 1,
        };
        assert_eq!(write_req(&mut b, b"lg", Req::Lookup(id), 1, 1), None);
    }

    #[test]
    fn replies_are_classified() {
        assert_eq!(
            classify(b"COOKIE 1f 00000000000000aa 127.0.0.1:5"),
            Rx::Answer {
                tx: 0x1f,
                what: Answer::Cookie(0xaa)
            }
        );
        assert_eq!(
            classify(b"REGD 2 lgf1 3600 127.0.0.1:5 00000000000000bb"),
            Rx::Answer {
                tx: 2,
                what: Answer::Registered(0xbb)
            }
        );
        assert_eq!(
            classify(b"AT 3 lgp9 127.0.0.2:77 -"),
            Rx::Answer {
                tx: 3,
                what: Answer::At(b"lgp9")
            }
        );
        assert_eq!(
            classify(b"ERR 4 no-such-id"),
            Rx::Answer {
                tx: 4,
                what: Answer::Error(ErrorCode::NoSuchId)
            }
        );
        assert_eq!(
            classify(b"ERR - malformed"),
            Rx::AnonError(ErrorCode::Malformed)
        );
        assert_eq!(classify(b"EVENTS 1 2 +a -b"), Rx::Unsolicited);
        assert_eq!(classify(b"List ['a']"), Rx::Unsolicited);
        assert_eq!(classify(b"Peer ('127.0.0.1', 5)"), Rx::SeedPeer);
        assert_eq!(classify(b"NoPeer"), Rx::SeedNoPeer);
        assert_eq!(
            classify(b"LOOKUP 5 0123456789abcdef lgp1"),
            Rx::Answer {
                tx: 5,
                what: Answer::Echo
            }
        );
        assert_eq!(classify(b"REGD 2 lgf1 3600 127.0.0.1:5 zz"), Rx::Unknown);
        assert_eq!(classify(b"AT XYZ lgp9 127.0.0.2:77"), Rx::Unknown);
        assert_eq!(classify(b""), Rx::Unknown);
        assert_eq!(classify(b"\xff\xfe"), Rx::Unknown);
    }

    #[test]
    fn relay_messages_go_through_the_codec() {
        let (me, peer) = (
            IdRef {
                kind: IdKind::RelayA,
                n: 1,
            },
            IdRef {
                kind: IdKind::RelayB,
                n: 1,
            },
        );
        let s = text(Req::Relay(me, 0xab, peer), 7);
        assert_eq!(s, "RELAY 7 0123456789abcdef lgx1 00000000000000ab lgy1");
        assert!(matches!(
            RelayRequest::parse(s.as_bytes()),
            Ok(RelayRequest { id, peer, .. }) if id.as_str() == "lgx1" && peer.as_str() == "lgy1"
        ));
        assert_eq!(
            classify(s.as_bytes()),
            Rx::Answer {
                tx: 7,
                what: Answer::Echo
            }
        );
        assert_eq!(
            classify(b"RELAYD 7 lgy1 00000000000000cd ready"),
            Rx::Answer {
                tx: 7,
                what: Answer::RelayChannel(0xcd)
            }
        );
        let mut b = [0u8; 256];
        let n = write_req(&mut b, b"lg", Req::Frame(0xcd), 0x1_0009, 0).unwrap();
        assert_eq!(Frame::parse(&b[..n]).map(|f| f.channel), Ok(0xcd));
        assert_eq!(
            classify(&b[..n]),
            Rx::Answer {
                tx: 0x1_0009,
                what: Answer::Relayed
            }
        );
        // A frame too short to carry one of our transaction ids is not an answer.
        assert_eq!(classify(&b[..relay::FRAME_HEADER + 4]), Rx::Unknown);
    }

    #[test]
    fn ids_compare_by_name() {
        let id = IdRef {
            kind: IdKind::Actor,
            n: 17,
        };
        assert!(same_id(b"lgc17", b"lg", id));
        assert!(!same_id(b"lgc18", b"lg", id));
        assert!(!same_id(b"lgp17", b"lg", id));
    }

    #[test]
    fn stats_bodies_split_into_pairs() {
        let Rx::Answer {
            tx: 6,
            what: Answer::Stats(body),
        } = classify(b"STATS 6 datagrams_in=5 occupancy=2")
        else {
            panic!("not a STATS answer");
        };
        let v: Vec<_> = body.iter().collect();
        assert_eq!(v, [("datagrams_in", 5), ("occupancy", 2)]);
    }

    #[test]
    fn garbage_never_parses_and_carries_no_txid() {
        let mut b = [0u8; 200];
        for seed in 0..2000u64 {
            let n = garbage(&mut b, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!((8..=128).contains(&n));
            assert!(!b[..n].contains(&b' '));
            assert!(Request::parse(&b[..n]).is_err());
            assert!(SeedRequest::parse(&b[..n]).is_err());
        }
    }
}
