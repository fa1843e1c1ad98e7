//! Chat between clients (client to client).
//!
//! ```text
//! peer     = chat / ack / probe / probed / message
//! chat     = "CHAT" SP id SP session SP seq SP frag "/" count SP text
//! ack      = "ACK" SP id SP session SP seq SP frag
//! probe    = "PROBE" SP id SP nonce
//! probed   = "PROBED" SP id SP nonce          ; echoes the probe's nonce
//! message  = "Message" SP *OCTET              ; the seed's chat, see [`super::seed`]
//! id       = the sender's id (for ACK and PROBED: the one answering)
//! session  = 16LOWHEX       ; drawn at random when the sending client starts
//! seq      = 1*10DIGIT      ; u32: the message's number within its session
//! frag     = 1*2DIGIT       ; 1 to count
//! count    = 1*2DIGIT       ; 1 to 16 (MAX_FRAGMENTS)
//! nonce    = 16LOWHEX
//! text     = 1*(any UTF-8 character but CR and LF)
//! ```
//!
//! A chat message is identified by `(id, session, seq)`; the session makes
//! the id unique across restarts of the sender, so a receiver never takes a
//! new message for a duplicate of an old one. A message longer than one
//! datagram travels as `count` fragments, each acknowledged on its own by
//! an `ACK` naming the same session, seq and fragment. `PROBE` / `PROBED`
//! test a session's path (keepalives); the Noise initiation is what opens
//! one (hole punching).
//!
//! `Message <text>` is what the seed's client sends and understands; it has
//! no id, no acknowledgement and reads at most 1024 bytes
//! ([`super::seed::MAX_SEED_DATAGRAM`]). Every other message travels
//! sealed in a transport datagram ([`super::sealed`]) and fits its
//! plaintext, [`super::sealed::MAX_PLAINTEXT`] bytes; there the receiver
//! takes the sender from the key that opened it, not from `id`.

use super::fields::{Id, parse_hex64};
use super::sealed::MAX_PLAINTEXT;
use super::seed::{MAX_SEED_DATAGRAM, SeedReply};
use super::text::{Fields, Writer, parse_u32, verb_and_rest};
use super::{EmitError, ParseError};

/// Most fragments one chat message may be split into.
pub const MAX_FRAGMENTS: u8 = 16;

/// Longest `CHAT` header: `CHAT ` id, session, seq, `16/16` and the spaces.
pub const MAX_CHAT_HEADER: usize = 5 + 32 + 1 + 16 + 1 + 10 + 1 + 5 + 1;

/// Longest text one `CHAT` fragment can carry whatever the sender's id,
/// sealed in a transport datagram ([`super::sealed::MAX_PLAINTEXT`]).
pub const MAX_FRAGMENT_TEXT: usize = MAX_PLAINTEXT - MAX_CHAT_HEADER;

/// Longest text one seed `Message` can carry (the seed reads 1024 bytes).
pub const MAX_SEED_TEXT: usize = MAX_SEED_DATAGRAM - "Message ".len();

/// Chat text: non-empty UTF-8 with no CR or LF (one line per datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<'a>(&'a str);

impl<'a> Text<'a> {
    /// Validate `s` as chat text.
    ///
    /// ```
    /// use proto_core::wire::peer::Text;
    /// assert!(Text::new("hello there").is_some());
    /// assert!(Text::new("two\nlines").is_none());
    /// assert!(Text::new("").is_none());
    /// ```
    pub fn new(s: &'a str) -> Option<Self> {
        if s.is_empty() || s.bytes().any(|b| b == b'\r' || b == b'\n') {
            None
        } else {
            Some(Text(s))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// One fragment of a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chat<'a> {
    /// Who sends it.
    pub from: Id<'a>,
    /// The sender's session (random per start of the sender).
    pub session: u64,
    /// The message's number within the session.
    pub seq: u32,
    /// Which fragment this is, from 1.
    pub frag: u8,
    /// How many fragments the message has.
    pub count: u8,
    /// This fragment's text.
    pub text: Text<'a>,
}

/// A `PROBE` or the `PROBED` that answers it: the answer echoes the
/// probe's nonce, so both carry the same fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe<'a> {
    /// Who sends it.
    pub from: Id<'a>,
    /// Drawn by the prober, echoed in the answer.
    pub nonce: u64,
}

impl<'a> Probe<'a> {
    /// Read `id nonce`, the fields after the verb.
    fn read(f: &mut Fields<'a>) -> Result<Self, ParseError> {
        Ok(Probe {
            from: f.id()?,
            nonce: parse_hex64(f.raw()?)?,
        })
    }
}

/// A client-to-client datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMsg<'a> {
    /// A fragment of a chat message.
    Chat(Chat<'a>),
    /// `from` received fragment `frag` of message `(session, seq)`.
    Ack {
        /// Who acknowledges.
        from: Id<'a>,
        /// The session of the acknowledged message (the receiver's own).
        session: u64,
        /// The acknowledged message.
        seq: u32,
        /// The acknowledged fragment.
        frag: u8,
    },
    /// Is this path open? Answer with [`PeerMsg::Probed`].
    Probe(Probe<'a>),
    /// The answer to a probe: the path works both ways.
    Probed(Probe<'a>),
    /// The seed's `Message <text>`: unacknowledged, sender unnamed.
    Seed(&'a str),
}

fn frag_count(w: &[u8]) -> Result<(u8, u8), ParseError> {
    let slash = w
        .iter()
        .position(|&b| b == b'/')
        .ok_or(ParseError::Malformed)?;
    let frag = small(&w[..slash])?;
    let count = small(&w[slash + 1..])?;
    if frag == 0 || frag > count || count > MAX_FRAGMENTS {
        return Err(ParseError::Malformed);
    }
    Ok((frag, count))
}

fn small(w: &[u8]) -> Result<u8, ParseError> {
    if w.len() > 2 {
        return Err(ParseError::Malformed);
    }
    u8::try_from(parse_u32(w)?).map_err(|_| ParseError::Malformed)
}

impl<'a> PeerMsg<'a> {
    /// Parse one datagram from a peer.
    ///
    /// ```
    /// use proto_core::wire::peer::PeerMsg;
    /// let m = PeerMsg::parse(b"CHAT alice 00000000000000ab 7 1/1 hi bob").unwrap();
    /// let PeerMsg::Chat(c) = m else { panic!() };
    /// assert_eq!((c.from.as_str(), c.seq, c.text.as_str()), ("alice", 7, "hi bob"));
    /// assert_eq!(PeerMsg::parse(b"Message hi"), Ok(PeerMsg::Seed("hi")));
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        if datagram.starts_with(b"Message ") {
            return match SeedReply::parse(datagram)? {
                SeedReply::Message(t) => Ok(PeerMsg::Seed(t)),
                _ => Err(ParseError::UnknownVerb),
            };
        }
        // Parley's own messages travel sealed: no longer than a transport
        // datagram's plaintext.
        let (verb, rest) = verb_and_rest(datagram, MAX_PLAINTEXT)?;
        let mut f = Fields::new(rest);
        let msg = match verb {
            b"CHAT" => {
                let from = f.id()?;
                let session = parse_hex64(f.raw()?)?;
                let seq = f.u32()?;
                let (frag, count) = frag_count(f.raw()?)?;
                let tail = f.tail()?;
                let text = core::str::from_utf8(tail).map_err(|_| ParseError::NotUtf8)?;
                let text = Text::new(text).ok_or(ParseError::Malformed)?;
                PeerMsg::Chat(Chat {
                    from,
                    session,
                    seq,
                    frag,
                    count,
                    text,
                })
            }
            b"ACK" => {
                let from = f.id()?;
                let session = parse_hex64(f.raw()?)?;
                let seq = f.u32()?;
                let frag = small(f.raw()?)?;
                if frag == 0 || frag > MAX_FRAGMENTS {
                    return Err(ParseError::Malformed);
                }
                PeerMsg::Ack {
                    from,
                    session,
                    seq,
                    frag,
                }
            }
            b"PROBE" => PeerMsg::Probe(Probe::read(&mut f)?),
            b"PROBED" => PeerMsg::Probed(Probe::read(&mut f)?),
            _ => return Err(ParseError::UnknownVerb),
        };
        f.end()?;
        Ok(msg)
    }

    /// Write this message into `buf`, returning the number of bytes written.
    /// Fails if it does not fit `buf` or the datagram limit of its kind.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer::new(buf);
        let limit = match *self {
            PeerMsg::Chat(c) => {
                if c.frag == 0 || c.frag > c.count || c.count > MAX_FRAGMENTS {
                    return Err(EmitError::TooLong);
                }
                w.put(b"CHAT")?
                    .field(c.from.as_bytes())?
                    .hex(c.session)?
                    .num(c.seq)?
                    .num(u32::from(c.frag))?
                    .put(b"/")?
                    .u64(u64::from(c.count))?
                    .field(c.text.as_str().as_bytes())?;
                MAX_PLAINTEXT
            }
            PeerMsg::Ack {
                from,
                session,
                seq,
                frag,
            } => {
                w.put(b"ACK")?
                    .field(from.as_bytes())?
                    .hex(session)?
                    .num(seq)?
                    .num(u32::from(frag))?;
                MAX_PLAINTEXT
            }
            PeerMsg::Probe(Probe { from, nonce }) => {
                w.put(b"PROBE")?.field(from.as_bytes())?.hex(nonce)?;
                MAX_PLAINTEXT
            }
            PeerMsg::Probed(Probe { from, nonce }) => {
                w.put(b"PROBED")?.field(from.as_bytes())?.hex(nonce)?;
                MAX_PLAINTEXT
            }
            PeerMsg::Seed(text) => {
                w.put(b"Message ")?.put(text.as_bytes())?;
                MAX_SEED_DATAGRAM
            }
        };
        if w.finish() > limit {
            return Err(EmitError::TooLong);
        }
        Ok(w.finish())
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a
/// character boundary (so every fragment is valid UTF-8 on its own).
pub fn split_at_boundary(s: &str, max: usize) -> (&str, &str) {
    if s.len() <= max {
        return (s, "");
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.split_at(cut)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    use super::*;
    use crate::MAX_DATAGRAM;
    use proptest::prelude::*;

    fn id(s: &str) -> Id<'_> {
        Id::new(s).unwrap()
    }

    fn roundtrip(bytes: &[u8]) -> PeerMsg<'_> {
        let m = PeerMsg::parse(bytes).unwrap();
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = m.emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], bytes, "{m:?}");
        m
    }

    #[test]
    fn every_verb_byte_for_byte() {
        let m = roundtrip(b"CHAT alice 5f0c2a1b9d8e7f60 17 2/3 how are you?");
        assert_eq!(
            m,
            PeerMsg::Chat(Chat {
                from: id("alice"),
                session: 0x5f0c_2a1b_9d8e_7f60,
                seq: 17,
                frag: 2,
                count: 3,
                text: Text::new("how are you?").unwrap(),
            })
        );
        assert_eq!(
            roundtrip(b"ACK bob 5f0c2a1b9d8e7f60 17 2"),
            PeerMsg::Ack {
                from: id("bob"),
                session: 0x5f0c_2a1b_9d8e_7f60,
                seq: 17,
                frag: 2
            }
        );
        let probe = |from| Probe {
            from: id(from),
            nonce: 0x0123_4567_89ab_cdef,
        };
        assert_eq!(
            roundtrip(b"PROBE alice 0123456789abcdef"),
            PeerMsg::Probe(probe("alice"))
        );
        assert_eq!(
            roundtrip(b"PROBED bob 0123456789abcdef"),
            PeerMsg::Probed(probe("bob"))
        );
        assert_eq!(roundtrip(b"Message hi"), PeerMsg::Seed("hi"));
        // Text keeps inner and edge spaces exactly.
        let m = roundtrip("CHAT a 0000000000000001 0 1/1  spaced  é ".as_bytes());
        let PeerMsg::Chat(c) = m else { panic!() };
        assert_eq!(c.text.as_str(), " spaced  é ");
    }

    #[test]
    fn nc_newline_is_accepted() {
        assert!(PeerMsg::parse(b"PROBE a 0123456789abcdef\n").is_ok());
        let PeerMsg::Chat(c) = PeerMsg::parse(b"CHAT a 0123456789abcdef 1 1/1 hi\r\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(c.text.as_str(), "hi");
        // A seed `Message` is verbatim (see `wire::seed`): the client, not
        // the codec, drops an `nc` newline before showing it.
        assert_eq!(PeerMsg::parse(b"Message hi\n"), Ok(PeerMsg::Seed("hi\n")));
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        use ParseError::*;
        for (bad, why) in [
            (&b""[..], Empty),
            (b"CHAT", Malformed),
            (b"CHAT a 0123456789abcdef 1 1/1", Malformed),
            (b"CHAT a 0123456789abcdef 1 1/1 ", Malformed),
            (b"CHAT a 0123456789abcdef 1 0/1 x", Malformed),
            (b"CHAT a 0123456789abcdef 1 2/1 x", Malformed),
            (b"CHAT a 0123456789abcdef 1 1/17 x", Malformed),
            (b"CHAT a 0123456789abcdef 1 1/001 x", Malformed),
            (b"CHAT a 0123456789abcdef 01 1/1 x", Malformed),
            (
                b"CHAT a 0123456789ABCDEF 1 1/1 x",
                Field(super::super::FieldError::BadHex),
            ),
            (
                b"CHAT a'b 0123456789abcdef 1 1/1 x",
                Field(super::super::FieldError::BadId),
            ),
            (b"CHAT a 0123456789abcdef 1 1/1 two\nlines", Malformed),
            (b"CHAT a 0123456789abcdef 1 1/1 \xff", NotUtf8),
            (b"ACK a 0123456789abcdef 1 0", Malformed),
            (b"ACK a 0123456789abcdef 1 1 extra", Malformed),
            (b"PROBE a", Malformed),
            (b"PROBED a 0123", Field(super::super::FieldError::BadHex)),
            (b"chat a", UnknownVerb),
            (b"Hello", UnknownVerb),
        ] {
            assert_eq!(
                PeerMsg::parse(bad),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b'x'; MAX_DATAGRAM + 1];
        assert_eq!(PeerMsg::parse(&long), Err(TooLong));
        let mut seed = [b'x'; MAX_SEED_DATAGRAM + 1];
        seed[..8].copy_from_slice(b"Message ");
        assert_eq!(PeerMsg::parse(&seed), Err(TooLong));
    }

    #[test]
    fn emit_respects_the_datagram_limits() {
        let big = "x".repeat(MAX_FRAGMENT_TEXT);
        let longest_id = "i".repeat(32);
        let c = Chat {
            from: id(&longest_id),
            session: u64::MAX,
            seq: u32::MAX,
            frag: 16,
            count: 16,
            text: Text::new(&big).unwrap(),
        };
        let mut buf = [0u8; 2 * MAX_DATAGRAM];
        assert_eq!(PeerMsg::Chat(c).emit(&mut buf), Ok(MAX_PLAINTEXT));
        let bigger = "x".repeat(MAX_FRAGMENT_TEXT + 1);
        let c = Chat {
            text: Text::new(&bigger).unwrap(),
            ..c
        };
        assert_eq!(PeerMsg::Chat(c).emit(&mut buf), Err(EmitError::TooLong));
        let seed = "y".repeat(MAX_SEED_TEXT);
        assert_eq!(PeerMsg::Seed(&seed).emit(&mut buf), Ok(MAX_SEED_DATAGRAM));
        let seed = "y".repeat(MAX_SEED_TEXT + 1);
        assert_eq!(PeerMsg::Seed(&seed).emit(&mut buf), Err(EmitError::TooLong));
        assert_eq!(
            PeerMsg::Probe(Probe {
                from: id("a"),
                nonce: 1
            })
            .emit(&mut buf[..10]),
            Err(EmitError::TooLong)
        );
    }

    #[test]
    fn splitting_keeps_characters_whole() {
        assert_eq!(split_at_boundary("abc", 5), ("abc", ""));
        assert_eq!(split_at_boundary("abcdef", 4), ("abcd", "ef"));
        // 'é' is two bytes: a cut inside it moves back.
        assert_eq!(split_at_boundary("aé", 2), ("a", "é"));
    }

    fn arb_id() -> impl Strategy<Value = String> {
        "[!#-&(-\\[\\]-~]{1,32}"
    }

    fn arb_text() -> impl Strategy<Value = String> {
        "[^\r\n]{1,300}"
    }

    proptest! {
        #[test]
        fn chat_roundtrips(from in arb_id(), session in any::<u64>(), seq in any::<u32>(),
                           count in 1u8..=16, frag_off in 0u8..16, text in arb_text()) {
            let frag = frag_off % count + 1;
            let m = PeerMsg::Chat(Chat {
                from: Id::new(&from).unwrap(), session, seq, frag, count,
                text: Text::new(&text).unwrap(),
            });
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = m.emit(&mut buf).unwrap();
            prop_assert_eq!(PeerMsg::parse(&buf[..n]), Ok(m));
        }

        #[test]
        fn control_roundtrips(from in arb_id(), session in any::<u64>(), seq in any::<u32>(),
                              frag in 1u8..=16, nonce in any::<u64>(), which in 0u8..3,
                              text in arb_text()) {
            let from = Id::new(&from).unwrap();
            let m = match which {
                0 => PeerMsg::Ack { from, session, seq, frag },
                1 => PeerMsg::Probe(Probe { from, nonce }),
                _ => PeerMsg::Probed(Probe { from, nonce }),
            };
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = m.emit(&mut buf).unwrap();
            prop_assert_eq!(PeerMsg::parse(&buf[..n]), Ok(m));
            let s = PeerMsg::Seed(&text);
            if let Ok(n) = s.emit(&mut buf) {
                prop_assert_eq!(PeerMsg::parse(&buf[..n]), Ok(s));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let _ = PeerMsg::parse(&bytes);
        }

        #[test]
        fn near_miss_text_never_panics(verb in "(CHAT|ACK|PROBE|PROBED|Message)", rest in "[ -~]{0,80}") {
            let d = std::format!("{verb} {rest}");
            if let Ok(m) = PeerMsg::parse(d.as_bytes()) {
                let mut buf = [0u8; MAX_DATAGRAM];
                let n = m.emit(&mut buf).unwrap();
                prop_assert_eq!(PeerMsg::parse(&buf[..n]), Ok(m));
            }
        }
    }
}
