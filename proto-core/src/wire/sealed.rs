//! Sealed datagrams between Parley clients: the Noise handshake and the
//! encrypted transport that carries every [`super::peer`] message.
//!
//! ```text
//! sealed      = initiation / response / confirm / transport
//! initiation  = "NOISE" SP pattern SP sender-hex SP noise-hex [SP *"."]
//!                                         ; dots pad it to INITIATION_MIN
//! pattern     = "IK" / "XX"
//! sender-hex  = 8LOWHEX                   ; the initiator's index
//! noise-hex   = 1*(2LOWHEX)               ; Noise message 1, in hex
//! response    = %xF9 sender receiver noise
//! confirm     = %xFB receiver noise                      ; XX's third message
//! transport   = %xFA receiver counter ciphertext
//! sender      = 4OCTET    ; u32, big-endian: the sender's index for this handshake
//! receiver    = 4OCTET    ; u32, big-endian: the index the receiver chose
//! counter     = 8OCTET    ; u64, big-endian: the AEAD nonce, never reused
//! noise       = 1*OCTET   ; a Noise_{IK,XX}_25519_ChaChaPoly_BLAKE2s message
//! ciphertext  = 16*OCTET  ; ChaCha20-Poly1305 of a peer message, the header as AD
//! hello       = id-length id session counter ; the initiator's payload (IK: msg 1, XX: msg 3)
//! ```
//!
//! The initiation is text: it goes to every address known for a peer
//! before anyone knows whether a Parley client or the seed's client is
//! there, and the seed's client decodes every datagram it gets as UTF-8
//! (a binary one would kill its receiving thread); it ignores a line it
//! does not know. Everything after it goes only to a peer that answered
//! as a Parley client, and is binary: its first byte is one that never
//! starts UTF-8 (nor a STUN message, 0x00/0x01). Indices work as WireGuard's: each side names a session by a
//! random index of its own, so a transport datagram finds its keys without
//! naming anyone. An initiation is padded to [`INITIATION_MIN`] bytes so
//! that the response (at most [`RESPONSE_MAX`]) is never larger than what
//! provoked it: a spoofed initiation cannot make a client an amplifier.
//! Every sealed datagram fits [`MAX_SEALED`] (1190) bytes, so it can also
//! travel in a relay frame ([`super::relay`]) unchanged.

use super::fields::Id;
use super::{EmitError, ParseError};

/// How an initiation starts.
pub const INITIATION: &[u8] = b"NOISE ";
/// First byte of a response.
pub const RESPONSE: u8 = 0xF9;
/// First byte of a transport datagram.
pub const TRANSPORT: u8 = 0xFA;
/// First byte of XX's third message.
pub const CONFIRM: u8 = 0xFB;

/// Bytes before the ciphertext of a transport datagram (the AEAD's AD).
pub const TRANSPORT_HEADER: usize = 1 + 4 + 8;
/// Bytes the AEAD adds.
pub const TAG: usize = 16;
/// The longest sealed datagram: one that still fits a relay frame
/// ([`super::relay::MAX_PAYLOAD`]) when no direct path exists.
pub const MAX_SEALED: usize = super::relay::MAX_PAYLOAD;
/// The longest peer message a transport datagram carries.
pub const MAX_PLAINTEXT: usize = MAX_SEALED - TRANSPORT_HEADER - TAG;
/// Every initiation is at least this long (see the module doc).
pub const INITIATION_MIN: usize = 192;
/// The longest Noise message an initiation carries (IK's message 1 with
/// the longest hello), so that the initiation stays below the 1024 bytes
/// the seed's client reads.
pub const MAX_INITIATION_NOISE: usize = 32 + 48 + HELLO_MAX + 16;
/// The longest response: header, XX's `e, ee, s, es` and an empty payload.
pub const RESPONSE_MAX: usize = 1 + 4 + 4 + 32 + 48 + 16;
const _: () = assert!(
    INITIATION_MIN >= RESPONSE_MAX,
    "a response never outgrows its initiation"
);

/// The longest hello: an id of 32 bytes, its length, session and counter.
pub const HELLO_MAX: usize = 1 + 32 + 8 + 8;

/// A sealed datagram, borrowed from the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed<'a> {
    /// The first handshake message.
    Initiation {
        /// 1: IK, 2: XX.
        pattern: u8,
        /// The initiator's index.
        sender: u32,
        /// Noise message 1, in lower-case hex ([`hex_decode`] gives the bytes).
        hex: &'a [u8],
    },
    /// The second handshake message.
    Response {
        /// The responder's index.
        sender: u32,
        /// The initiator's index.
        receiver: u32,
        /// Noise message 2.
        noise: &'a [u8],
    },
    /// XX's third handshake message.
    Confirm {
        /// The responder's index.
        receiver: u32,
        /// Noise message 3.
        noise: &'a [u8],
    },
    /// A sealed peer message.
    Transport {
        /// The receiver's index.
        receiver: u32,
        /// The AEAD counter.
        counter: u64,
        /// The ciphertext with its tag.
        ciphertext: &'a [u8],
    },
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ParseError> {
    let s = b.get(at..at + 4).ok_or(ParseError::Malformed)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Whether `datagram` is one of these (rather than another peer message).
pub fn is_sealed(datagram: &[u8]) -> bool {
    datagram.starts_with(INITIATION)
        || matches!(datagram.first(), Some(&(RESPONSE | TRANSPORT | CONFIRM)))
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes` into `out`; returns the hex.
pub fn hex_encode<'o>(bytes: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], EmitError> {
    let out = out.get_mut(..2 * bytes.len()).ok_or(EmitError::TooLong)?;
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    Ok(out)
}

/// The bytes of lower-case `hex` into `out`; returns how many.
pub fn hex_decode(hex: &[u8], out: &mut [u8]) -> Result<usize, ParseError> {
    if hex.len() % 2 != 0 || hex.len() / 2 > out.len() {
        return Err(ParseError::Malformed);
    }
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(ParseError::Malformed)?;
        let lo = hex_digit(pair[1]).ok_or(ParseError::Malformed)?;
        out[i] = hi << 4 | lo;
    }
    Ok(hex.len() / 2)
}

fn parse_initiation(d: &[u8]) -> Result<Sealed<'_>, ParseError> {
    let rest = d.strip_prefix(INITIATION).ok_or(ParseError::UnknownVerb)?;
    let mut f = rest.splitn(4, |&b| b == b' ');
    let pattern = match f.next() {
        Some(b"IK") => 1,
        Some(b"XX") => 2,
        _ => return Err(ParseError::Malformed),
    };
    let sender = f.next().ok_or(ParseError::Malformed)?;
    let mut idx = [0u8; 4];
    if sender.len() != 8 || hex_decode(sender, &mut idx)? != 4 {
        return Err(ParseError::Malformed);
    }
    let hex = f.next().ok_or(ParseError::Malformed)?;
    let mut scratch = [0u8; MAX_INITIATION_NOISE];
    if hex.is_empty() || hex_decode(hex, &mut scratch).is_err() {
        return Err(ParseError::Malformed);
    }
    if let Some(pad) = f.next() {
        if pad.iter().any(|&b| b != b'.') {
            return Err(ParseError::Malformed);
        }
    }
    let s = Sealed::Initiation {
        pattern,
        sender: u32::from_be_bytes(idx),
        hex,
    };
    // Exactly as long as emitted: one canonical form.
    if s.len() != d.len() {
        return Err(ParseError::Malformed);
    }
    Ok(s)
}

impl<'a> Sealed<'a> {
    /// Parse one sealed datagram.
    pub fn parse(d: &'a [u8]) -> Result<Sealed<'a>, ParseError> {
        if d.len() > MAX_SEALED {
            return Err(ParseError::TooLong);
        }
        let (&kind, _) = d.split_first().ok_or(ParseError::Empty)?;
        if d.starts_with(INITIATION) {
            return parse_initiation(d);
        }
        match kind {
            RESPONSE => {
                let noise = d
                    .get(9..)
                    .filter(|n| !n.is_empty())
                    .ok_or(ParseError::Malformed)?;
                Ok(Sealed::Response {
                    sender: u32_at(d, 1)?,
                    receiver: u32_at(d, 5)?,
                    noise,
                })
            }
            CONFIRM => {
                let noise = d
                    .get(5..)
                    .filter(|n| !n.is_empty())
                    .ok_or(ParseError::Malformed)?;
                Ok(Sealed::Confirm {
                    receiver: u32_at(d, 1)?,
                    noise,
                })
            }
            TRANSPORT => {
                let ciphertext = d
                    .get(TRANSPORT_HEADER..)
                    .filter(|c| c.len() >= TAG)
                    .ok_or(ParseError::Malformed)?;
                let c = &d[5..13];
                Ok(Sealed::Transport {
                    receiver: u32_at(d, 1)?,
                    counter: u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                    ciphertext,
                })
            }
            _ => Err(ParseError::UnknownVerb),
        }
    }

    /// The datagram's length when emitted.
    pub fn len(&self) -> usize {
        match self {
            Sealed::Initiation { hex, .. } => {
                let base = INITIATION.len() + 3 + 9 + hex.len();
                if base >= INITIATION_MIN {
                    base
                } else {
                    INITIATION_MIN
                }
            }
            Sealed::Response { noise, .. } => 9 + noise.len(),
            Sealed::Confirm { noise, .. } => 5 + noise.len(),
            Sealed::Transport { ciphertext, .. } => TRANSPORT_HEADER + ciphertext.len(),
        }
    }

    /// Never: every sealed datagram has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Write the datagram into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        // What parse would refuse is never written.
        let carries_nothing = match self {
            Sealed::Initiation { hex, .. } => hex.is_empty(),
            Sealed::Response { noise, .. } | Sealed::Confirm { noise, .. } => noise.is_empty(),
            Sealed::Transport { ciphertext, .. } => ciphertext.len() < TAG,
        };
        if carries_nothing {
            return Err(EmitError::TooLong);
        }
        let n = self.len();
        if n > buf.len() || n > MAX_SEALED {
            return Err(EmitError::TooLong);
        }
        let out = &mut buf[..n];
        match *self {
            Sealed::Initiation {
                pattern,
                sender,
                hex,
            } => {
                if hex.len() > 2 * MAX_INITIATION_NOISE || hex.len() % 2 != 0 {
                    return Err(EmitError::TooLong);
                }
                let name: &[u8] = match pattern {
                    1 => b"IK ",
                    2 => b"XX ",
                    _ => return Err(EmitError::TooLong),
                };
                let mut at = 0;
                for part in [INITIATION, name] {
                    out[at..at + part.len()].copy_from_slice(part);
                    at += part.len();
                }
                hex_encode(&sender.to_be_bytes(), &mut out[at..at + 8])?;
                out[at + 8] = b' ';
                at += 9;
                out[at..at + hex.len()].copy_from_slice(hex);
                at += hex.len();
                if at < n {
                    out[at] = b' ';
                    out[at + 1..].fill(b'.');
                }
            }
            Sealed::Response {
                sender,
                receiver,
                noise,
            } => {
                out[0] = RESPONSE;
                out[1..5].copy_from_slice(&sender.to_be_bytes());
                out[5..9].copy_from_slice(&receiver.to_be_bytes());
                out[9..].copy_from_slice(noise);
            }
            Sealed::Confirm { receiver, noise } => {
                out[0] = CONFIRM;
                out[1..5].copy_from_slice(&receiver.to_be_bytes());
                out[5..].copy_from_slice(noise);
            }
            Sealed::Transport {
                receiver,
                counter,
                ciphertext,
            } => {
                out[..TRANSPORT_HEADER].copy_from_slice(&transport_header(receiver, counter));
                out[TRANSPORT_HEADER..].copy_from_slice(ciphertext);
            }
        }
        Ok(n)
    }
}

/// The header of a transport datagram, which is also its AEAD's AD.
pub fn transport_header(receiver: u32, counter: u64) -> [u8; TRANSPORT_HEADER] {
    let mut h = [0u8; TRANSPORT_HEADER];
    h[0] = TRANSPORT;
    h[1..5].copy_from_slice(&receiver.to_be_bytes());
    h[5..].copy_from_slice(&counter.to_be_bytes());
    h
}

/// What an initiator says about itself inside the handshake (encrypted
/// and authenticated with its static key): its id, its session (random per
/// start) and a counter that grows with every initiation of the session,
/// so a responder refuses an initiation replayed within one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The initiator's id.
    pub id: Id<'a>,
    /// The initiator's session.
    pub session: u64,
    /// Initiations sent in that session so far.
    pub counter: u64,
}

impl<'a> Hello<'a> {
    /// Parse a hello payload.
    pub fn parse(b: &'a [u8]) -> Result<Hello<'a>, ParseError> {
        let (&n, rest) = b.split_first().ok_or(ParseError::Empty)?;
        let n = usize::from(n);
        if rest.len() != n + 16 {
            return Err(ParseError::Malformed);
        }
        let id = core::str::from_utf8(&rest[..n]).map_err(|_| ParseError::NotUtf8)?;
        let id = Id::new(id)?;
        let mut s = [0u8; 8];
        s.copy_from_slice(&rest[n..n + 8]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&rest[n + 8..]);
        Ok(Hello {
            id,
            session: u64::from_be_bytes(s),
            counter: u64::from_be_bytes(c),
        })
    }

    /// Write it into `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let id = self.id.as_bytes();
        let n = 1 + id.len() + 16;
        let out = buf.get_mut(..n).ok_or(EmitError::TooLong)?;
        out[0] = id.len() as u8;
        out[1..1 + id.len()].copy_from_slice(id);
        out[1 + id.len()..9 + id.len()].copy_from_slice(&self.session.to_be_bytes());
        out[9 + id.len()..].copy_from_slice(&self.counter.to_be_bytes());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::MAX_DATAGRAM;
    use proptest::prelude::*;

    fn rt(s: Sealed<'_>) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = s.emit(&mut buf).unwrap();
        assert_eq!(n, s.len());
        assert!(is_sealed(&buf[..n]));
        assert_eq!(Sealed::parse(&buf[..n]), Ok(s));
    }

    #[test]
    fn every_kind_roundtrips() {
        let long = [b'a'; 2 * MAX_INITIATION_NOISE];
        rt(Sealed::Initiation {
            pattern: 1,
            sender: 7,
            hex: b"00ff",
        });
        rt(Sealed::Initiation {
            pattern: 2,
            sender: u32::MAX,
            hex: &long,
        });
        rt(Sealed::Response {
            sender: 1,
            receiver: 2,
            noise: &[3; 48],
        });
        rt(Sealed::Confirm {
            receiver: 2,
            noise: &[3; 64],
        });
        rt(Sealed::Transport {
            receiver: 9,
            counter: 1 << 40,
            ciphertext: &[4; 16],
        });
        let h = Hello {
            id: Id::new("alice").unwrap(),
            session: 5,
            counter: 6,
        };
        let mut buf = [0u8; HELLO_MAX];
        let n = h.emit(&mut buf).unwrap();
        assert_eq!(Hello::parse(&buf[..n]), Ok(h));
        assert!(Hello::parse(&buf[..n - 1]).is_err());
    }

    #[test]
    fn initiations_are_text_padded_past_any_response() {
        let s = Sealed::Initiation {
            pattern: 2,
            sender: 0xab,
            hex: b"0102",
        };
        assert_eq!(s.len(), INITIATION_MIN);
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = s.emit(&mut buf).unwrap();
        let text = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("NOISE XX 000000ab 0102 ...."), "{text}");
        // Unpadded, or with junk in the padding, or upper-case hex: refused.
        assert!(Sealed::parse(&buf[..n - 1]).is_err());
        buf[n - 1] = b'x';
        assert!(Sealed::parse(&buf[..n]).is_err());
        assert!(Sealed::parse(b"NOISE XX 000000AB 0102").is_err());
        // The longest one still fits what the seed's client reads.
        let mut hex = [0u8; 2 * MAX_INITIATION_NOISE];
        let hex = hex_encode(&[0xee; MAX_INITIATION_NOISE], &mut hex).unwrap();
        let s = Sealed::Initiation {
            pattern: 1,
            sender: 1,
            hex,
        };
        assert!(s.len() <= crate::SEED_MAX_LIST);
        let mut back = [0u8; MAX_INITIATION_NOISE];
        assert_eq!(hex_decode(hex, &mut back), Ok(MAX_INITIATION_NOISE));
        assert_eq!(back, [0xee; MAX_INITIATION_NOISE]);
    }

    #[test]
    fn text_is_never_sealed() {
        assert!(!is_sealed(b"CHAT a 0123456789abcdef 1 1/1 hi"));
        assert!(!is_sealed(b"Message hi"));
        assert!(!is_sealed(&[0x00, 0x01]));
        assert!(is_sealed(b"NOISE "));
        assert_eq!(Sealed::parse(&[TRANSPORT; 20]), Err(ParseError::Malformed));
        assert_eq!(Sealed::parse(b"x"), Err(ParseError::UnknownVerb));
        // Nothing parse refuses is ever written.
        let mut buf = [0u8; 64];
        assert!(
            Sealed::Response {
                sender: 0,
                receiver: 1,
                noise: &[]
            }
            .emit(&mut buf)
            .is_err()
        );
        assert!(
            Sealed::Transport {
                receiver: 0,
                counter: 1,
                ciphertext: &[0; 15]
            }
            .emit(&mut buf)
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            if let Ok(s) = Sealed::parse(&bytes) {
                let mut buf = [0u8; MAX_DATAGRAM];
                let n = s.emit(&mut buf).unwrap();
                prop_assert_eq!(&buf[..n], &bytes[..]);
            }
            let _ = Hello::parse(&bytes);
        }
    }
}
