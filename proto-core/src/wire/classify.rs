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
    use super::Family::{Extended, RelayRequest, Seed};
    use super::*;
    use crate::wire::request::Owned;
    use crate::wire::{Request, SeedRequest};

    /// A text datagram, its family and the first id it names.
    type Case = (&'static [u8], Family, Option<&'static [u8]>);

    const TEXT: &[Case] = &[
        (b"LOOKUP 7 0123456789abcdef alice", Extended, Some(b"alice")),
        (b"LOOKUP 7 - alice\r\n", Extended, Some(b"alice")),
        (b"REG r - bob 60 00000000000000ff", Extended, Some(b"bob")),
        (b"REG 1 - bob", Extended, Some(b"bob")),
        (b"KEEP k c carol 00000000000000ff", Extended, Some(b"carol")),
        (b"QUIT q c dave t", Extended, Some(b"dave")),
        (b"SUB s c erin t", Extended, Some(b"erin")),
        (b"UNSUB s c erin t", Extended, Some(b"erin")),
        (b"INTRO i c me t you", Extended, Some(b"me")),
        (
            b"INTRO 1 - me 00000000000000ff you\n",
            Extended,
            Some(b"me"),
        ),
        (b"ID 120\n", Seed, Some(b"120")),
        (b"Peer 130\r\n", Seed, Some(b"130")),
        (b"Quit 140", Seed, Some(b"140")),
        (b"ID2 ", Seed, None),
        (b"RELAY 1 - a 00000000000000ff b", RelayRequest, None),
        (b"HELLO 1 ....", Extended, None),
        (b"LIST 1 c 0", Extended, None),
        (b"STATS 1 c", Extended, None),
        (b"LOOKUP 7 c", Extended, None),
        (b"LOOKUP 7 c ", Extended, None),
        (b"IDalice", Extended, None),
        (b"RELAYD 1", Extended, None),
        (b"", Extended, None),
        (b"\xff\x00 garbage", Extended, None),
    ];

    #[test]
    fn text_is_classified_and_its_first_id_found() {
        for &(d, family_of_d, id) in TEXT {
            let text = core::str::from_utf8(d);
            assert_eq!(family(d), family_of_d, "{text:?}");
            assert_eq!(first_id(d), id, "{text:?}");
        }
    }

    #[test]
    fn the_first_id_is_the_one_the_parser_finds() {
        let mut parsed = 0;
        for &(d, _, id) in TEXT {
            let named = match (Request::parse(d), SeedRequest::parse(d)) {
                (Ok(Request::Lookup { id, .. }), _)
                | (Ok(Request::Register { id, .. }), _)
                | (
                    Ok(Request::Introduce {
                        by: Owned { id, .. },
                        ..
                    }),
                    _,
                )
                | (_, Ok(SeedRequest::Id(id) | SeedRequest::Peer(id) | SeedRequest::Quit(id))) => {
                    id
                }
                _ => continue,
            };
            assert_eq!(id, Some(named.as_bytes()), "{:?}", core::str::from_utf8(d));
            parsed += 1;
        }
        assert!(parsed >= 6, "{parsed}");
    }

    #[test]
    fn binary_families_are_told_apart_by_their_first_octets() {
        let mut stun = [0u8; 20];
        stun[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        assert_eq!(family(&stun), Family::Stun);
        let mut frame = [0u8; relay::FRAME_HEADER];
        frame[..2].copy_from_slice(&[relay::FRAME_MAGIC, relay::FRAME_VERSION]);
        assert_eq!(family(&frame), Family::RelayFrame);
        assert_eq!(first_id(&frame), None);
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
}
