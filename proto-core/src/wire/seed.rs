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
//! seed-rep = list / peer-rep / nopeer
//! list     = "List" SP "[" [ "'" id "'" *( "," SP "'" id "'" ) ] "]"   ; Python's str(list)
//! peer-rep = "Peer" SP "(" "'" host "'" "," SP port [ "," SP flow "," SP scope ] ")"
//!                                      ; Python's repr of the recvfrom address
//! nopeer   = "NoPeer"
//! ; client to client
//! message  = "Message" SP text         ; text: any UTF-8
//! ```
//!
//! The seed client evaluates `peer-rep`'s tuple with `ast.literal_eval` and
//! sends to it, so it must be a Python literal. IPv6 addresses get Python's
//! 4-tuple `('::1', 10520, 0, 0)`. A `List` for a seed client must fit in
//! [`crate::SEED_MAX_LIST`] bytes; [`emit_list`] stops before the id that
//! would not fit, and says how many it wrote.

use core::net::SocketAddr;

use super::fields::Id;
use super::{EmitError, ParseError};

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
    /// `Message <text>`: chat text from a peer.
    Message(&'a str),
}

impl<'a> SeedRequest<'a> {
    /// Parse one datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let _ = datagram;
        todo!("codec: seed request parse")
    }

    /// Write this request into `buf`, returning the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let _ = buf;
        todo!("codec: seed request emit")
    }
}

impl<'a> SeedReply<'a> {
    /// Parse one datagram.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        let _ = datagram;
        todo!("codec: seed reply parse")
    }

    /// Write this message into `buf`, returning the number of bytes written.
    /// A `List` is written in full or not at all; use [`emit_list`] to truncate.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let _ = buf;
        todo!("codec: seed reply emit")
    }
}

/// Write `List [...]` with as many ids from `ids` as fit in `buf`, in order.
/// Returns `(bytes written, ids written)`. Never fails for `buf.len() >= 7`
/// (`List []`); a shorter buffer gives [`EmitError::TooLong`].
pub fn emit_list<'i>(
    ids: impl Iterator<Item = Id<'i>>,
    buf: &mut [u8],
) -> Result<(usize, usize), EmitError> {
    let _ = (ids, buf);
    todo!("codec: seed list emit")
}
