//! What the generator puts on the wire and how it reads what comes back.
//!
//! Requests are written straight into send buffers (no allocation, no
//! formatting machinery): the generator must cost less per request than the
//! server does. Replies are classified by their first words only; the
//! transaction id names the in-flight slot (`slot` in the low 16 bits, the
//! slot's generation above), so matching a reply is one array index and
//! one comparison, and a late reply to a reused slot is recognised as late.
//!
//! ```text
//! txid   = lowercase hex of (generation << 16 | slot), no leading zeros
//! id     = prefix kind decimal      ; "lg" "p" "123" -> "lgp123"
//! ```

use proto_core::wire::fields::{hex64, parse_hex64};

/// What kind of id: prefilled, freshly registered, or a churn actor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// Registered before the measured phase (`--table`).
    Prefill,
    /// Registered once by the `register` workload and kept.
    Fresh,
    /// Registered and quit over and over by a churn actor.
    Actor,
}

impl IdKind {
    fn letter(self) -> u8 {
        match self {
            IdKind::Prefill => b'p',
            IdKind::Fresh => b'f',
            IdKind::Actor => b'c',
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

/// Encode a transaction id.
pub fn txid(slot: u16, generation: u32) -> u64 {
    (u64::from(generation) << 16) | u64::from(slot)
}

/// Split a transaction id back into (slot, generation).
pub fn split_txid(tx: u64) -> (u16, u32) {
    ((tx & 0xffff) as u16, (tx >> 16) as u32)
}

/// Parse a transaction id from the wire; `None` if it is not one of ours.
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

/// A cursor writing ASCII into a fixed buffer; refuses to overflow.
pub struct W<'a> {
    buf: &'a mut [u8],
    at: usize,
    overflow: bool,
}

impl<'a> W<'a> {
    /// Write into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        W {
            buf,
            at: 0,
            overflow: false,
        }
    }

    /// Append bytes.
    pub fn put(&mut self, b: &[u8]) -> &mut Self {
        if self.at + b.len() > self.buf.len() {
            self.overflow = true;
        } else {
            self.buf[self.at..self.at + b.len()].copy_from_slice(b);
            self.at += b.len();
        }
        self
    }

    /// Append a space and then bytes.
    pub fn field(&mut self, b: &[u8]) -> &mut Self {
        self.put(b" ").put(b)
    }

    /// Append a decimal number.
    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&d[i..])
    }

    /// Append lowercase hex without leading zeros.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.put(&d[i..])
    }

    /// Append exactly 16 lowercase hex digits (cookies and tokens).
    pub fn hex16(&mut self, v: u64) -> &mut Self {
        self.put(&hex64(v))
    }

    /// Append a space and an id.
    pub fn id(&mut self, prefix: &[u8], id: IdRef) -> &mut Self {
        self.put(b" ")
            .put(prefix)
            .put(&[id.kind.letter()])
            .dec(u64::from(id.n))
    }

    /// Bytes written, or `None` if the buffer was too small.
    pub fn written(&self) -> Option<usize> {
        (!self.overflow).then_some(self.at)
    }
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

/// Padding after `HELLO`: the `COOKIE` reply must not be longer than the
/// request (`COOKIE tx 16hex [IPv6]:port` is at most 80 bytes).
pub const HELLO_PAD: usize = 80;

/// Write `req` with transaction id `tx` and `cookie` into `buf`.
pub fn write_req(buf: &mut [u8], prefix: &[u8], req: Req, tx: u64, cookie: u64) -> Option<usize> {
    let mut w = W::new(buf);
    let head = |w: &mut W<'_>, verb: &[u8]| {
        w.put(verb).put(b" ").hex(tx).put(b" ").hex16(cookie);
    };
    match req {
        Req::Hello => {
            w.put(b"HELLO ").hex(tx).put(b" ");
            for _ in 0..HELLO_PAD {
                w.put(b".");
            }
        }
        Req::Reg(id, lease) => {
            head(&mut w, b"REG");
            w.id(prefix, id).put(b" ").dec(u64::from(lease)).put(b" -");
            w.put(b" ");
            for part in key_of(id) {
                w.hex16(part);
            }
        }
        Req::Lookup(id) => {
            head(&mut w, b"LOOKUP");
            w.id(prefix, id);
        }
        Req::Quit(id, token) => {
            head(&mut w, b"QUIT");
            w.id(prefix, id).put(b" ").hex16(token);
        }
        Req::Sub(id, token) => {
            head(&mut w, b"SUB");
            w.id(prefix, id).put(b" ").hex16(token);
        }
        Req::Stats => head(&mut w, b"STATS"),
        Req::SeedId(id) => {
            w.put(b"ID").id(prefix, id);
        }
        Req::SeedPeer(id) => {
            w.put(b"Peer").id(prefix, id);
        }
        Req::SeedQuit(id) => {
            w.put(b"Quit").id(prefix, id);
        }
    }
    w.written()
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
    AnonError(&'a [u8]),
    /// Presence or introduction traffic (`EVENTS`, `RESYNC`, `PUNCH`, seed `List`).
    Unsolicited,
    /// A seed `Peer (...)` (it carries no transaction id).
    SeedPeer,
    /// A seed `NoPeer`.
    SeedNoPeer,
    /// Anything else.
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
    /// `STATS`: the `key=value` body.
    Stats(&'a [u8]),
    /// `ERR tx code`: the code.
    Error(&'a [u8]),
    /// Our own request, sent back by an echo server.
    Echo,
    /// Another reply we do not use (`ALIVE`, `PAGE`...).
    Other,
}

/// Read a datagram from the server (or from an echo server).
pub fn classify<'a>(d: &'a [u8]) -> Rx<'a> {
    let mut words = d.splitn(3, |&b| b == b' ');
    let verb = words.next().unwrap_or_default();
    match verb {
        b"EVENTS" | b"RESYNC" | b"PUNCH" | b"List" => return Rx::Unsolicited,
        b"Peer" => return Rx::SeedPeer,
        b"NoPeer" => return Rx::SeedNoPeer,
        _ => {}
    }
    let Some(txw) = words.next() else {
        return Rx::Unknown;
    };
    let rest = words.next().unwrap_or_default();
    if verb == b"ERR" && txw == b"-" {
        return Rx::AnonError(rest);
    }
    let Some(tx) = parse_txid(txw) else {
        return Rx::Unknown;
    };
    let last_word =
        |r: &'a [u8]| -> &'a [u8] { r.rsplit(|&b| b == b' ').next().unwrap_or_default() };
    let what = match verb {
        b"COOKIE" => match parse_hex64(rest.split(|&b| b == b' ').next().unwrap_or_default()) {
            Ok(c) => Answer::Cookie(c),
            Err(_) => return Rx::Unknown,
        },
        b"REGD" => match parse_hex64(last_word(rest)) {
            Ok(t) => Answer::Registered(t),
            Err(_) => return Rx::Unknown,
        },
        b"AT" => Answer::At(rest.split(|&b| b == b' ').next().unwrap_or_default()),
        b"BYE" => Answer::Bye,
        b"SUBD" => Answer::Subscribed,
        b"STATS" => Answer::Stats(rest),
        b"ERR" => Answer::Error(rest),
        b"HELLO" | b"REG" | b"LOOKUP" | b"QUIT" | b"SUB" => Answer::Echo,
        _ => Answer::Other,
    };
    Rx::Answer { tx, what }
}

/// Whether `got` (from an `AT`) names the id `want`.
pub fn same_id(got: &[u8], prefix: &[u8], want: IdRef) -> bool {
    let mut buf = [0u8; 48];
    let mut w = W::new(&mut buf);
    w.put(prefix)
        .put(&[want.kind.letter()])
        .dec(u64::from(want.n));
    match w.written() {
        Some(n) => buf[..n] == *got,
        None => false,
    }
}

/// `key=value` pairs of a `STATS` body.
pub fn stat_pairs(body: &[u8]) -> impl Iterator<Item = (&str, u64)> {
    body.split(|&b| b == b' ').filter_map(|w| {
        let s = std::str::from_utf8(w).ok()?;
        let (k, v) = s.split_once('=')?;
        Some((k, v.parse().ok()?))
    })
}

/// A garbage datagram: bytes no parser accepts, with no space in them so
/// the server cannot salvage a transaction id and answer one of our slots.
pub fn garbage(buf: &mut [u8], rnd: u64) -> usize {
    let len = 8 + (rnd % 120) as usize;
    let len = len.min(buf.len());
    let mut x = rnd | 1;
    for b in buf[..len].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 24) as u8;
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
            let mut b = [0u8; 16];
            let mut w = W::new(&mut b);
            w.hex(t);
            let n = w.written().unwrap();
            assert_eq!(parse_txid(&b[..n]), Some(t));
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
            Ok(Request::Hello { pad, .. }) if pad as usize == HELLO_PAD
        ));
        // The longest COOKIE reply fits in what HELLO sent.
        assert!(
            "COOKIE 3 0123456789abcdef [ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".len()
                <= hello.len()
        );
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
                what: Answer::Error(b"no-such-id")
            }
        );
        assert_eq!(classify(b"ERR - malformed"), Rx::AnonError(b"malformed"));
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
        let v: Vec<_> = stat_pairs(b"datagrams_in=5 occupancy=2 junk").collect();
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
