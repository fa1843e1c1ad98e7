//! The seed system's verbs, byte for byte (shared/seed/, figures 6 to 13).
//!
//! ```text
//! ; client to server
//! seed-req = id-req / peer-req / quit-req / id2-req
//! id-req   = "ID" SP id
//! peer-req = "Peer" SP id
//! quit-req = "Quit" SP id
//! id2-req  = "ID2" SP *OCTET           ; the seed client sends "ID2 "
//! ; server to client
//! seed-rep = list / peer-rep / nopeer / refusal
//! list     = "List" SP "[" [ "'" id "'" *( "," SP "'" id "'" ) ] "]"   ; Python's str(list)
//! peer-rep = "Peer" SP "(" "'" host "'" "," SP port [ "," SP flow "," SP scope ] ")"
//!                                      ; Python's repr of the recvfrom address
//! nopeer   = "NoPeer"
//! refusal  = "Message parley-server: " ( "the id " id " is taken"
//!                                      / "the table is full"
//!                                      / "your network holds too many ids" )
//!                                      ; an ID refused: the seed client
//!                                      ; prints a Message's text
//! ; client to client
//! message  = "Message" SP text         ; text: any UTF-8, verbatim (a
//!                                      ; trailing newline is part of it)
//! ```
//!
//! The seed client evaluates `peer-rep`'s tuple with `ast.literal_eval` and
//! sends to it, so it must be a Python literal. IPv6 addresses get Python's
//! 4-tuple `('::1', 10520, 0, 0)`. A `List` for a seed client must fit in
//! [`crate::SEED_MAX_LIST`] bytes; [`emit_list`] stops before the id that
//! would not fit, and says how many it wrote.

use core::net::SocketAddr;

use super::addr::{parse_py, write_py};
use super::fields::Id;
use super::text::{Fields, Writer, check_run, strip_newline, verb_and_rest};
use super::{EmitError, ParseError};

/// The seed client reads with `recvfrom(1024)`; nothing longer is a seed message.
pub const MAX_SEED_DATAGRAM: usize = 1024;

/// A seed-protocol request (client to server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedRequest<'a> {
    /// `ID <id>`: register the sender's address under `id`.
    Id(Id<'a>),
    /// `Peer <id>`: where is `id`?
    Peer(Id<'a>),
    /// `Quit <id>`: remove `id`.
    Quit(Id<'a>),
    /// `ID2 `: send everyone the list again.
    Id2,
}

/// A `List [...]` as received, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedList<'a>(pub(crate) &'a str);

impl<'a> SeedList<'a> {
    /// The ids in order.
    pub fn iter(&self) -> impl Iterator<Item = Id<'a>> + 'a {
        self.0
            .split(", ")
            .filter_map(|q| q.strip_prefix('\'')?.strip_suffix('\''))
            .filter_map(|s| Id::new(s).ok())
    }
}

/// A seed-protocol message from the server, or from a peer (`Message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedReply<'a> {
    /// `List [...]`: who is online.
    List(SeedList<'a>),
    /// `Peer (...)`: where the asked-for peer is.
    Peer(SocketAddr),
    /// `NoPeer`: nobody has that id.
    NoPeer,
    /// `Message parley-server: ...`: the server refused an `ID`.
    Refused(Refusal<'a>),
    /// `Message <text>`: chat text from a peer.
    Message(&'a str),
}

/// Why the server refused a seed `ID`, told as a `Message` because that is
/// the one thing the seed client prints whatever state it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// Another address holds the id.
    Taken(Id<'a>),
    /// Every slot is held.
    TableFull,
    /// The sender's address or one of its networks holds its quota.
    OverQuota,
}

/// What every refusal's text starts with.
const REFUSAL: &str = "parley-server: ";
const TAKEN: (&str, &str) = ("the id ", " is taken");
const FULL: &str = "the table is full";
const OVER_QUOTA: &str = "your network holds too many ids";

impl<'a> Refusal<'a> {
    /// The refusal a `Message` text says, if it is one, exactly.
    fn from_text(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix(REFUSAL)?;
        match rest {
            FULL => Some(Refusal::TableFull),
            OVER_QUOTA => Some(Refusal::OverQuota),
            _ => {
                let id = rest.strip_prefix(TAKEN.0)?.strip_suffix(TAKEN.1)?;
                Id::new(id).ok().map(Refusal::Taken)
            }
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.put(REFUSAL.as_bytes())?;
        match self {
            Refusal::Taken(id) => w
                .put(TAKEN.0.as_bytes())?
                .put(id.as_bytes())?
                .put(TAKEN.1.as_bytes())?,
            Refusal::TableFull => w.put(FULL.as_bytes())?,
            Refusal::OverQuota => w.put(OVER_QUOTA.as_bytes())?,
        };
        Ok(())
    }
}

impl<'a> SeedRequest<'a> {
    /// Parse one datagram.
    ///
    /// ```
    /// use proto_core::wire::{Id, SeedRequest};
    /// assert_eq!(SeedRequest::parse(b"ID 120"), Ok(SeedRequest::Id(Id::new("120").unwrap())));
    /// assert_eq!(SeedRequest::parse(b"ID2 "), Ok(SeedRequest::Id2));
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let (verb, rest) = verb_and_rest(datagram, MAX_SEED_DATAGRAM)?;
        let mut f = Fields::new(rest);
        let req = match verb {
            b"ID" => SeedRequest::Id(f.id()?),
            b"Peer" => SeedRequest::Peer(f.id()?),
            b"Quit" => SeedRequest::Quit(f.id()?),
            // The seed server matched "ID2 " by prefix and ignored the rest.
            b"ID2" => return Ok(SeedRequest::Id2),
            _ => return Err(ParseError::UnknownVerb),
        };
        f.end()?;
        Ok(req)
    }

    /// Write this request into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        match self {
            SeedRequest::Id(id) => w.put(b"ID")?.field(id.as_bytes())?,
            SeedRequest::Peer(id) => w.put(b"Peer")?.field(id.as_bytes())?,
            SeedRequest::Quit(id) => w.put(b"Quit")?.field(id.as_bytes())?,
            SeedRequest::Id2 => w.put(b"ID2 ")?,
        };
        Ok(w.finish())
    }
}

impl<'a> SeedList<'a> {
    /// Validate the text between the brackets of a `List [...]`.
    pub fn new(inner: &'a str) -> Result<Self, ParseError> {
        check_run(inner, ", ", |item| {
            let id = item
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .ok_or(ParseError::Malformed)?;
            Id::new(id)?;
            Ok(())
        })?;
        Ok(SeedList(inner))
    }
}

impl<'a> SeedReply<'a> {
    /// Parse one datagram.
    ///
    /// ```
    /// use proto_core::wire::SeedReply;
    /// let SeedReply::List(list) = SeedReply::parse(b"List ['120', '150']").unwrap() else { panic!() };
    /// assert_eq!(list.iter().count(), 2);
    /// assert_eq!(SeedReply::parse(b"NoPeer"), Ok(SeedReply::NoPeer));
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        if datagram.is_empty() {
            return Err(ParseError::Empty);
        }
        if datagram.len() > MAX_SEED_DATAGRAM {
            return Err(ParseError::TooLong);
        }
        // A message's text is carried verbatim, trailing newline and all:
        // stripping it would make `Message a\n` and `Message a\n\n` emit
        // texts that parse back as other texts.
        if let Some(msg) = datagram.strip_prefix(b"Message ") {
            let msg = core::str::from_utf8(msg).map_err(|_| ParseError::NotUtf8)?;
            return Ok(Refusal::from_text(msg).map_or(SeedReply::Message(msg), SeedReply::Refused));
        }
        let d = strip_newline(datagram);
        let text = core::str::from_utf8(d).map_err(|_| ParseError::NotUtf8)?;
        if text == "NoPeer" {
            return Ok(SeedReply::NoPeer);
        }
        if let Some(body) = text.strip_prefix("List ") {
            let inner = body
                .strip_prefix('[')
                .and_then(|b| b.strip_suffix(']'))
                .ok_or(ParseError::Malformed)?;
            return SeedList::new(inner).map(SeedReply::List);
        }
        if let Some(tuple) = text.strip_prefix("Peer ") {
            return parse_py(tuple.as_bytes()).map(SeedReply::Peer);
        }
        Err(ParseError::UnknownVerb)
    }

    /// Write this message into `buf`, returning the number of bytes written.
    /// A `List` is written in full or not at all; use [`emit_list`] to truncate.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        match self {
            SeedReply::List(list) => w.put(b"List [")?.put(list.0.as_bytes())?.put(b"]")?,
            SeedReply::Peer(a) => write_py(w.put(b"Peer ")?, *a)?,
            SeedReply::NoPeer => w.put(b"NoPeer")?,
            SeedReply::Refused(r) => {
                r.write(w.put(b"Message ")?)?;
                &mut w
            }
            SeedReply::Message(text) => w.put(b"Message ")?.put(text.as_bytes())?,
        };
        Ok(w.finish())
    }
}

/// Write `List [...]` with as many ids from `ids` as fit in `buf`, in order.
/// Returns `(bytes written, ids written)`. Never fails for `buf.len() >= 7`
/// (`List []`); a shorter buffer gives [`EmitError::TooLong`].
///
/// ```
/// use proto_core::wire::{seed::emit_list, Id};
/// let ids = ["120", "150"].map(|s| Id::new(s).unwrap());
/// let mut buf = [0u8; 64];
/// let (n, count) = emit_list(ids.into_iter(), &mut buf).unwrap();
/// assert_eq!(&buf[..n], b"List ['120', '150']");
/// assert_eq!(count, 2);
/// let (n, count) = emit_list(ids.into_iter(), &mut buf[..16]).unwrap();
/// assert_eq!((&buf[..n], count), (&b"List ['120']"[..], 1));
/// ```
pub fn emit_list<'i>(
    ids: impl Iterator<Item = Id<'i>>,
    buf: &mut [u8],
) -> Result<(usize, usize), EmitError> {
    const OPEN: &[u8] = b"List [";
    if buf.len() < OPEN.len() + 1 {
        return Err(EmitError::TooLong);
    }
    buf[..OPEN.len()].copy_from_slice(OPEN);
    let mut pos = OPEN.len();
    let mut count = 0;
    for id in ids {
        let sep = if count == 0 { 0 } else { 2 };
        let need = sep + 2 + id.as_bytes().len();
        // Keep one byte for the closing bracket.
        if pos + need + 1 > buf.len() {
            break;
        }
        if sep != 0 {
            buf[pos..pos + 2].copy_from_slice(b", ");
        }
        pos += sep;
        buf[pos] = b'\'';
        buf[pos + 1..pos + 1 + id.as_bytes().len()].copy_from_slice(id.as_bytes());
        pos += 1 + id.as_bytes().len();
        buf[pos] = b'\'';
        pos += 1;
        count += 1;
    }
    buf[pos] = b']';
    Ok((pos + 1, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testgen;

    fn emit_req(r: SeedRequest<'_>) -> ([u8; 64], usize) {
        let mut b = [0u8; 64];
        let n = r.emit(&mut b).unwrap();
        (b, n)
    }

    fn id(s: &str) -> Id<'_> {
        Id::new(s).unwrap()
    }

    #[test]
    fn the_seed_clients_requests_byte_for_byte() {
        for (bytes, req) in [
            (&b"ID 120"[..], SeedRequest::Id(id("120"))),
            (b"Peer 150", SeedRequest::Peer(id("150"))),
            (b"Quit 120", SeedRequest::Quit(id("120"))),
            (b"ID2 ", SeedRequest::Id2),
        ] {
            assert_eq!(SeedRequest::parse(bytes), Ok(req));
            let (b, n) = emit_req(req);
            assert_eq!(&b[..n], bytes);
        }
    }

    #[test]
    fn seed_request_errors() {
        assert_eq!(SeedRequest::parse(b""), Err(ParseError::Empty));
        assert_eq!(SeedRequest::parse(b"ID"), Err(ParseError::Malformed));
        assert_eq!(SeedRequest::parse(b"ID a b"), Err(ParseError::Malformed));
        assert_eq!(
            SeedRequest::parse(b"ID it's"),
            Err(ParseError::Field(crate::wire::FieldError::BadId))
        );
        assert_eq!(SeedRequest::parse(b"Hello x"), Err(ParseError::UnknownVerb));
        assert_eq!(
            SeedRequest::parse(b"ID 120\n"),
            Ok(SeedRequest::Id(id("120")))
        );
        assert_eq!(SeedRequest::parse(b"ID2"), Ok(SeedRequest::Id2));
    }

    #[test]
    fn the_seed_servers_replies_byte_for_byte() {
        let a: SocketAddr = "127.0.0.1:10107".parse().unwrap();
        for bytes in [
            &b"List ['120']"[..],
            b"List ['120', '150', '170']",
            b"List []",
            b"Peer ('127.0.0.1', 10107)",
            b"NoPeer",
            b"Message hi",
            b"Message hello2",
        ] {
            let r = SeedReply::parse(bytes).unwrap();
            let mut b = [0u8; 128];
            let n = r.emit(&mut b).unwrap();
            assert_eq!(&b[..n], bytes);
        }
        assert_eq!(
            SeedReply::parse(b"Peer ('127.0.0.1', 10107)"),
            Ok(SeedReply::Peer(a))
        );
    }

    #[test]
    fn refusals_are_messages_the_seed_client_prints() {
        for (bytes, r) in [
            (
                &b"Message parley-server: the id 120 is taken"[..],
                Refusal::Taken(id("120")),
            ),
            (
                b"Message parley-server: the table is full",
                Refusal::TableFull,
            ),
            (
                b"Message parley-server: your network holds too many ids",
                Refusal::OverQuota,
            ),
        ] {
            assert_eq!(SeedReply::parse(bytes), Ok(SeedReply::Refused(r)));
            let mut b = [0u8; 128];
            let n = SeedReply::Refused(r).emit(&mut b).unwrap();
            assert_eq!(&b[..n], bytes);
            // The seed client prints what follows "Message ".
            assert!(b[..n].starts_with(b"Message "));
        }
        // Anything else, however close, is a peer's chat text.
        for text in [
            &b"Message parley-server: the id it's is taken"[..],
            b"Message parley-server: the table is full\n",
            b"Message the table is full",
        ] {
            assert!(matches!(SeedReply::parse(text), Ok(SeedReply::Message(_))));
        }
    }

    #[test]
    fn list_truncates_before_the_id_that_does_not_fit() {
        let ids = ["aaaa", "bbbb", "cccc"].map(id);
        let mut buf = [0u8; 1024];
        for len in 7..40 {
            let (n, count) = emit_list(ids.into_iter(), &mut buf[..len]).unwrap();
            assert!(n <= len);
            let text = core::str::from_utf8(&buf[..n]).unwrap();
            let SeedReply::List(l) = SeedReply::parse(text.as_bytes()).unwrap() else {
                panic!("{text}")
            };
            assert_eq!(l.iter().count(), count);
        }
        assert!(emit_list(ids.into_iter(), &mut buf[..6]).is_err());
    }

    #[test]
    fn bad_lists_fail() {
        testgen::refuses_all(
            |d| SeedReply::parse(d).is_err(),
            &[
                b"List [",
                b"List ['a',]",
                b"List [a]",
                b"List ['a' 'b']",
                b"List ['a b']",
            ],
        );
    }

    mod props {
        extern crate std;

        use std::string::String;
        use std::vec::Vec;

        use super::*;
        use crate::wire::testgen;
        use proptest::prelude::*;

        fn request(kind: u8, id: &str) -> SeedRequest<'_> {
            let id = Id::new(id).unwrap();
            match kind {
                0 => SeedRequest::Id(id),
                1 => SeedRequest::Peer(id),
                2 => SeedRequest::Quit(id),
                _ => SeedRequest::Id2,
            }
        }

        proptest! {
            #[test]
            fn requests_round_trip(kind in 0u8..4, id in testgen::id()) {
                let req = request(kind, &id);
                let (b, n) = emit_req(req);
                prop_assert_eq!(SeedRequest::parse(&b[..n]), Ok(req));
            }

            #[test]
            fn lists_round_trip_and_match_python(ids in proptest::collection::vec(testgen::id(), 0..24)) {
                // Python's str() of a list of str: ['a', 'b'].
                let python = ids.iter().map(|i| std::format!("'{i}'")).collect::<Vec<_>>().join(", ");
                let reply = SeedReply::List(SeedList::new(&python).unwrap());
                let mut buf = [0u8; MAX_SEED_DATAGRAM];
                let n = reply.emit(&mut buf).unwrap();
                let expected = std::format!("List [{python}]");
                prop_assert_eq!(&buf[..n], expected.as_bytes());
                prop_assert_eq!(SeedReply::parse(&buf[..n]), Ok(reply));
                let SeedReply::List(back) = reply else { unreachable!() };
                prop_assert_eq!(back.iter().map(|i| i.as_str()).collect::<Vec<_>>(), ids.iter().map(String::as_str).collect::<Vec<_>>());
            }

            #[test]
            fn emit_list_fills_the_buffer_with_a_prefix(ids in proptest::collection::vec(testgen::id(), 0..64), cap in 7usize..1024) {
                let ids: Vec<Id<'_>> = ids.iter().map(|s| Id::new(s).unwrap()).collect();
                let mut buf = [0u8; 1024];
                let (n, count) = emit_list(ids.iter().copied(), &mut buf[..cap]).unwrap();
                prop_assert!(n <= cap);
                let Ok(SeedReply::List(list)) = SeedReply::parse(&buf[..n]) else {
                    return Err(TestCaseError::fail("emit_list wrote an unparsable list"));
                };
                prop_assert!(list.iter().eq(ids[..count].iter().copied()));
                // Nothing was cut that would have fitted.
                if count < ids.len() {
                    prop_assert!(n + 4 + ids[count].as_bytes().len() > cap);
                }
            }

            #[test]
            fn peer_tuples_round_trip(a in testgen::py_addr()) {
                let reply = SeedReply::Peer(a);
                let mut buf = [0u8; 128];
                let n = reply.emit(&mut buf).unwrap();
                prop_assert_eq!(SeedReply::parse(&buf[..n]), Ok(reply));
            }

            #[test]
            fn messages_round_trip(text in "[^\n]{0,200}") {
                let reply = SeedReply::Message(&text);
                let mut buf = [0u8; MAX_SEED_DATAGRAM];
                let n = reply.emit(&mut buf).unwrap();
                prop_assert_eq!(SeedReply::parse(&buf[..n]), Ok(reply));
            }

            #[test]
            fn no_byte_string_makes_parse_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
                if let Ok(req) = SeedRequest::parse(&bytes) {
                    let (b, n) = emit_req(req);
                    prop_assert_eq!(SeedRequest::parse(&b[..n]), Ok(req));
                }
                if let Ok(reply) = SeedReply::parse(&bytes) {
                    let mut buf = [0u8; MAX_SEED_DATAGRAM];
                    let n = reply.emit(&mut buf).unwrap();
                    prop_assert_eq!(SeedReply::parse(&buf[..n]), Ok(reply));
                }
            }
        }
    }
}
