//! What a datagram is, found without parsing it: cheap enough to run on
//! every datagram before anything else, and the only place outside the
//! parsers that knows where a verb, a transaction id or an id sits.
//!
//! ```text
//! family  = stun / relay-frame / relay-req / seed / extended   ; tried in this order
//! stun    = %b00xxxxxx 3OCTET magic-cookie 12OCTET *OCTET      ; see `stun`
//! relay-frame = %xB7 %x01 8OCTET *OCTET                        ; see `relay`
//! relay-req   = "RELAY" SP *OCTET
//! seed    = ( "ID" SP / "ID2" / "Peer" SP / "Quit" SP ) *OCTET ; mixed case: see `seed`
//! extended = *OCTET                                            ; anything else: see `request`
//! ; every text request but the seed's: verb SP txid ...
//! ; the first id: verb SP txid SP cookie SP id ... (extended, the verbs below)
//! ;               verb SP id ...                   (seed `ID`, `Peer`, `Quit`)
//! ```
//!
//! The seed's verbs are mixed case and the extended protocol's upper case,
//! so a prefix tells them apart. A classification is a promise about where
//! to look, not that the datagram parses: the family's parser decides that.

use super::fields::TxId;
use super::text::strip_newline;
use super::{relay, stun};

/// Which parser a datagram is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A STUN message (binary).
    Stun,
    /// A relayed frame (binary).
    RelayFrame,
    /// A `RELAY` request.
    RelayRequest,
    /// One of the seed's verbs (`ID`, `ID2`, `Peer`, `Quit`).
    Seed,
    /// Anything else: an extended request, or nothing at all.
    Extended,
}

/// The family of `d`.
#[inline]
pub fn family(d: &[u8]) -> Family {
    if stun::is_stun(d) {
        Family::Stun
    } else if relay::is_frame(d) {
        Family::RelayFrame
    } else if d.starts_with(b"RELAY ") {
        Family::RelayRequest
    } else if is_seed(d) {
        Family::Seed
    } else {
        Family::Extended
    }
}

#[inline]
fn is_seed(d: &[u8]) -> bool {
    d.starts_with(b"ID ")
        || d.starts_with(b"ID2")
        || d.starts_with(b"Peer ")
        || d.starts_with(b"Quit ")
}

/// Best effort at the transaction id of a text request that did not
/// parse (its second field), so an error can still be matched to it.
pub fn tx(d: &[u8]) -> Option<TxId<'_>> {
    let mut words = strip_newline(d).split(|&b| b == b' ');
    words.next()?;
    TxId::from_bytes(words.next()?).ok()
}

/// The id a request names first (the one it looks up, registers or
/// refreshes), found without parsing the rest: `None` for a request that
/// names no id. A malformed id is returned too; whoever uses it must
/// expect an id that does not parse.
#[inline]
pub fn first_id(d: &[u8]) -> Option<&[u8]> {
    let mut words = strip_newline(d).split(|&b| b == b' ');
    let id = match words.next()? {
        // verb tx cookie id ...
        b"LOOKUP" | b"REG" | b"KEEP" | b"SUB" | b"UNSUB" | b"QUIT" | b"INTRO" => words.nth(2)?,
        // verb id
        b"ID" | b"Peer" | b"Quit" => words.next()?,
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Request, SeedRequest};

    #[test]
    fn the_named_id_is_found_in_every_verb_that_names_one() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"LOOKUP 7 0123456789abcdef alice", Some(b"alice")),
            (b"REG r - bob 60 00000000000000ff", Some(b"bob")),
            (b"KEEP k c carol 00000000000000ff", Some(b"carol")),
            (b"QUIT q c dave t", Some(b"dave")),
            (b"SUB s c erin t", Some(b"erin")),
            (b"UNSUB s c erin t", Some(b"erin")),
            (b"INTRO i c me t you", Some(b"me")),
            (b"ID 120\n", Some(b"120")),
            (b"Peer 130\r\n", Some(b"130")),
            (b"Quit 140", Some(b"140")),
            (b"HELLO 1 ....", None),
            (b"LIST 1 c 0", None),
            (b"STATS 1 c", None),
            (b"ID2 ", None),
            (b"LOOKUP 7 c", None),
            (b"LOOKUP 7 c ", None),
            (b"", None),
            (b"\xff\x00 garbage", None),
        ];
        for (d, want) in cases {
            assert_eq!(first_id(d), *want, "{:?}", core::str::from_utf8(d));
        }
    }

    #[test]
    fn the_first_id_is_the_one_the_parser_finds() {
        for d in [
            &b"LOOKUP 7 0123456789abcdef alice\r\n"[..],
            b"REG 1 - bob",
            b"INTRO 1 - me 00000000000000ff you\n",
        ] {
            let want = match Request::parse(d).unwrap() {
                Request::Lookup { id, .. }
                | Request::Register { id, .. }
                | Request::Introduce { id, .. } => id,
                other => panic!("{other:?}"),
            };
            assert_eq!(first_id(d), Some(want.as_bytes()));
        }
        for d in [&b"ID carol\n"[..], b"Peer dave\r\n"] {
            let (SeedRequest::Id(want) | SeedRequest::Peer(want)) = SeedRequest::parse(d).unwrap()
            else {
                panic!("{d:?}");
            };
            assert_eq!(first_id(d), Some(want.as_bytes()));
        }
    }

    #[test]
    fn a_transaction_id_loses_only_the_newline_the_parser_drops() {
        assert_eq!(
            tx(b"LOOKUP abc\r\n").map(|t| t.as_bytes()),
            Some(&b"abc"[..])
        );
        assert_eq!(tx(b"LOOKUP abc\n").map(|t| t.as_bytes()), Some(&b"abc"[..]));
        assert_eq!(tx(b"BOGUS k2 x y").map(|t| t.as_bytes()), Some(&b"k2"[..]));
        // A lone CR is not a newline to the parsers, so it is part of the
        // field here too, and makes it no transaction id.
        assert_eq!(tx(b"LOOKUP abc\r"), None);
        assert_eq!(tx(b"LOOKUP"), None);
        assert_eq!(tx(b""), None);
    }

    #[test]
    fn every_family_is_told_apart_by_its_first_octets() {
        let mut stun = [0u8; 20];
        stun[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        let frame = [
            relay::FRAME_MAGIC,
            relay::FRAME_VERSION,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let cases: &[(&[u8], Family)] = &[
            (&stun, Family::Stun),
            (&frame, Family::RelayFrame),
            (b"RELAY 1 - a 00000000000000ff b", Family::RelayRequest),
            (b"ID alice", Family::Seed),
            (b"ID2 ", Family::Seed),
            (b"Peer alice", Family::Seed),
            (b"Quit alice", Family::Seed),
            (b"QUIT 1 - alice 00000000000000ff", Family::Extended),
            (b"LOOKUP 1 - alice", Family::Extended),
            (b"IDalice", Family::Extended),
            (b"RELAYD 1", Family::Extended),
            (b"", Family::Extended),
        ];
        for (d, want) in cases {
            assert_eq!(family(d), *want, "{d:?}");
        }
    }
}
