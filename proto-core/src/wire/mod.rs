//! The codec: one module per message family, each with a typed `Repr` that
//! parses from a datagram and emits into a caller's buffer.
//!
//! Every message is one UTF-8 line of text per datagram, readable and
//! typeable with `nc -u`. A single trailing `\n` or `\r\n` is accepted on
//! input (what `nc` sends) and never emitted, except in the free text of a
//! seed `Message`, which is carried verbatim. The grammar of each family sits
//! at the top of its module; `docs/PROTOCOL.md` has all of it with examples.
//!
//! - [`body`]: builders for the variable bodies of `PAGE`, `EVENTS` and
//!   `STATS`, within the room one datagram leaves them.
//! - [`classify`]: which family a datagram belongs to, and where its
//!   transaction id and first id are, without parsing it.
//! - [`fields`]: ids, transaction ids, cookies, tokens, public keys, addresses.
//! - [`seed`]: the verbs of the seed system (`ID`, `Peer`, `Quit`, `ID2`,
//!   `List`, `NoPeer`, `Message`), byte for byte.
//! - [`request`]: the extended protocol's requests (client to server).
//! - [`reply`]: the extended protocol's replies and unsolicited events.
//! - [`peer`]: chat between clients (client to client).
//! - [`sealed`]: the Noise handshake and transport datagrams that carry
//!   [`peer`] messages between Parley clients (a text initiation, then
//!   binary datagrams told apart from text by their first byte).
//! - [`stun`]: STUN Binding (RFC 8489), binary, on the same port as the text.
//! - [`relay`]: relaying between two peers (`RELAY`, `RELAYD`, binary frames).
//!
//! Parsing never panics and never allocates; a malformed datagram gives a
//! [`ParseError`] that says what was wrong. Emitting writes into `&mut [u8]`
//! and returns the length, or [`EmitError::TooLong`].

pub mod addr;
pub mod body;
pub mod classify;
pub mod fields;
pub mod peer;
pub mod relay;
pub mod reply;
pub mod request;
pub mod sealed;
pub mod seed;
pub mod stun;
#[cfg(test)]
mod testgen;
mod text;

/// Local (host) addresses a client may announce in `INTRO`, and the
/// server passes on in `PUNCH`.
pub const MAX_LOCAL: usize = 4;

pub use addr::Locals;
pub use fields::{Cookie, FieldError, Id, IdBuf, PeerKind, PublicKey, Token, TxId};
pub use reply::{ErrorCode, Reply};
pub use request::Request;
pub use seed::{SeedReply, SeedRequest};

use core::fmt;

/// Why a datagram could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The datagram was empty.
    Empty,
    /// The datagram was longer than the protocol allows.
    TooLong,
    /// The datagram was not valid UTF-8.
    NotUtf8,
    /// The first word is not a verb this protocol knows.
    UnknownVerb,
    /// A field was missing, extra, or not of its form.
    Malformed,
    /// A field failed its own validation.
    Field(FieldError),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("the datagram was empty"),
            ParseError::TooLong => f.write_str("the datagram was longer than 1200 bytes"),
            ParseError::NotUtf8 => f.write_str("the datagram was not valid UTF-8"),
            ParseError::UnknownVerb => f.write_str("the datagram did not start with a known verb"),
            ParseError::Malformed => {
                f.write_str("a field of the message was missing, extra or badly formed")
            }
            ParseError::Field(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        ParseError::Field(e)
    }
}

/// Why a message could not be emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer (or the datagram limit) is too small for the message.
    TooLong,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the message does not fit in the output buffer")
    }
}
