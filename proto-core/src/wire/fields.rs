//! The fields every message shares: ids, transaction ids, cookies, tokens.
//!
//! ```text
//! id      = 1*32 idchar          ; printable ASCII, no space, no ' " or \
//! idchar  = %x21 / %x23-26 / %x28-5B / %x5D-7E
//! txid    = 1*16 (ALPHA / DIGIT)
//! cookie  = 16 LOWHEX            ; 64 bits, big-endian
//! token   = 16 LOWHEX            ; 64 bits, big-endian
//! pubkey  = 64 LOWHEX            ; a 32-byte X25519 static public key, byte order as stored
//! kind    = pubkey / "seed" / "-" ; what the server knows of a peer's key
//! ```
//!
//! The id alphabet is chosen so that Python's `repr` of an id is exactly
//! `'` + id + `'`: the seed client prints the server's `List` verbatim, and
//! the seed server built it with `str(list)`.

use core::fmt;

/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 32;
/// Longest transaction id, in bytes.
pub const MAX_TXID_LEN: usize = 16;

/// Why a field was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// The id was empty, longer than 32 bytes, or held a forbidden byte.
    BadId,
    /// The transaction id was empty, longer than 16 bytes, or not alphanumeric.
    BadTxId,
    /// A cookie or token was not exactly 16 lowercase hex digits.
    BadHex,
    /// A public key was not exactly 64 lowercase hex digits, or a peer's
    /// kind was neither a key nor `seed` nor `-`.
    BadKey,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldError::BadId => {
                "the id must be 1 to 32 printable ASCII characters without spaces, quotes or backslashes"
            }
            FieldError::BadTxId => "the transaction id must be 1 to 16 letters or digits",
            FieldError::BadHex => "the value must be exactly 16 lowercase hex digits",
            FieldError::BadKey => {
                "the public key must be exactly 64 lowercase hex digits (a peer's kind may also be `seed` or `-`)"
            }
        })
    }
}

/// Bytes a constructor checked to be ASCII, as text. The check cannot
/// fail; its error arm keeps this panic-free without `unsafe`.
fn ascii(b: &[u8]) -> &str {
    core::str::from_utf8(b).unwrap_or("")
}

/// Whether `b` may appear in an id.
pub const fn is_id_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && b != b'\'' && b != b'"' && b != b'\\'
}

/// The methods [`Id`] and [`TxId`] share: each is ASCII text held as
/// the datagram's bytes, checked against an alphabet and a length, and
/// shown as itself. A macro, as each type needs them as its own inherent
/// methods and trait impls.
macro_rules! checked_text {
    ($name:ident, $what:literal, $error:expr, $max:expr, $alphabet:expr) => {
        impl<'a> $name<'a> {
            #[doc = concat!("Validate `s` as ", $what, ".")]
            pub fn new(s: &'a str) -> Result<Self, FieldError> {
                Self::from_bytes(s.as_bytes())
            }

            #[doc = concat!("Validate raw bytes as ", $what, ". The bytes are ASCII if this succeeds.")]
            pub fn from_bytes(b: &'a [u8]) -> Result<Self, FieldError> {
                if !b.iter().all($alphabet) {
                    return Err($error);
                }
                Self::from_checked(b)
            }

            #[doc = concat!("[`", stringify!($name), "::from_bytes`] for bytes already known to be in its")]
            /// alphabet (the tokenizer checked them as it split the
            /// field): only the length is left to check.
            pub(crate) fn from_checked(b: &'a [u8]) -> Result<Self, FieldError> {
                if b.is_empty() || b.len() > $max {
                    return Err($error);
                }
                Ok($name(b))
            }

            /// The checked bytes as text.
            pub fn as_str(&self) -> &'a str {
                ascii(self.0)
            }

            /// The checked bytes.
            pub fn as_bytes(&self) -> &'a [u8] {
                self.0
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A validated client id, borrowed from a datagram or from the registry.
///
/// ```
/// use proto_core::wire::Id;
/// assert!(Id::new("alice").is_ok());
/// assert!(Id::new("it's").is_err());
/// assert!(Id::new("").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id<'a>(
    /// Id bytes only (all ASCII): held as bytes so that making an `Id`
    /// from a datagram needs no UTF-8 check on the hot path.
    &'a [u8],
);

checked_text!(Id, "an id", FieldError::BadId, MAX_ID_LEN, |&c| is_id_byte(
    c
));

/// An id held by value, for tables and for callers that outlive the datagram.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdBuf {
    len: u8,
    bytes: [u8; MAX_ID_LEN],
}

impl IdBuf {
    /// An empty placeholder (not a valid id; [`IdBuf::as_id`] refuses it).
    pub const EMPTY: IdBuf = IdBuf {
        len: 0,
        bytes: [0; MAX_ID_LEN],
    };

    /// Copy a validated id.
    pub fn from_id(id: Id<'_>) -> Self {
        let mut out = Self::EMPTY;
        let b = id.as_bytes();
        out.bytes[..b.len()].copy_from_slice(b);
        out.len = b.len() as u8;
        out
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The stored id, or `None` for [`IdBuf::EMPTY`].
    pub fn as_id(&self) -> Option<Id<'_>> {
        // Only `from_id` fills an `IdBuf`, with bytes `Id` checked: the
        // length is all there is left to check.
        Id::from_checked(self.as_bytes()).ok()
    }

    /// Whether this holds `id`.
    pub fn eq_id(&self, id: Id<'_>) -> bool {
        self.as_bytes() == id.as_bytes()
    }
}

impl fmt::Debug for IdBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_id() {
            Some(id) => write!(f, "IdBuf({})", id.as_str()),
            None => f.write_str("IdBuf(<empty>)"),
        }
    }
}

/// A client-chosen transaction id, echoed in the reply to the request that carried it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxId<'a>(
    /// ASCII letters and digits only, held as bytes as [`Id`]'s are.
    &'a [u8],
);

checked_text!(
    TxId,
    "a transaction id",
    FieldError::BadTxId,
    MAX_TXID_LEN,
    u8::is_ascii_alphanumeric
);

/// Parse exactly 16 lowercase hex digits.
pub fn parse_hex64(b: &[u8]) -> Result<u64, FieldError> {
    let (Some(hi), Some(lo)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) else {
        return Err(FieldError::BadHex);
    };
    if b.len() != 16 {
        return Err(FieldError::BadHex);
    }
    // Eight digits at a time (a cookie is checked on every request).
    match (
        hex32(u64::from_be_bytes(*hi)),
        hex32(u64::from_be_bytes(*lo)),
    ) {
        (Some(h), Some(l)) => Ok(u64::from(h) << 32 | u64::from(l)),
        _ => Err(FieldError::BadHex),
    }
}

/// The value of eight lowercase hex digits, first digit in the top byte;
/// `None` if any byte is not one.
fn hex32(x: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    if x & HIGH != 0 {
        return None;
    }
    // For bytes below 0x80, adding 0x80 - lo sets a byte's top bit exactly
    // when the byte is >= lo, and no carry crosses into the next byte.
    let at_least = |lo: u8| (x + ONES * u64::from(0x80 - lo)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if digit | letter != HIGH {
        return None;
    }
    // '0'..'9' are 0x30..0x39, 'a'..'f' are 0x61..0x66: the low nibble,
    // plus 9 for letters (bit 6 set).
    let v = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Gather the eight nibbles, one per byte, into 32 bits.
    let v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    let v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    Some(v as u32)
}

/// Write `v` as 16 lowercase hex digits.
pub fn hex64(v: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// A stateless address-validation cookie (see [`crate::cookie`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cookie(pub u64);

/// The secret that proves ownership of a registered id on the extended protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

macro_rules! hex_field {
    ($t:ident) => {
        impl $t {
            /// Parse 16 lowercase hex digits.
            pub fn parse(b: &[u8]) -> Result<Self, FieldError> {
                parse_hex64(b).map($t)
            }
            /// The 16 lowercase hex digits of this value.
            pub fn to_hex(self) -> [u8; 16] {
                hex64(self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }
    };
}
hex_field!(Cookie);
hex_field!(Token);

/// Bytes of a public key.
pub const PUBKEY_LEN: usize = 32;

/// A client's long-term X25519 static public key, as a registration
/// carries it and the server hands it to peers. The server only stores and
/// repeats it; what it proves is the clients' business (Noise).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; PUBKEY_LEN]);

impl PublicKey {
    /// Parse exactly 64 lowercase hex digits.
    pub fn parse(b: &[u8]) -> Result<Self, FieldError> {
        if b.len() != 2 * PUBKEY_LEN {
            return Err(FieldError::BadKey);
        }
        let mut out = [0u8; PUBKEY_LEN];
        for (digits, bytes) in b.chunks_exact(16).zip(out.chunks_exact_mut(8)) {
            let v = parse_hex64(digits).map_err(|_| FieldError::BadKey)?;
            bytes.copy_from_slice(&v.to_be_bytes());
        }
        Ok(PublicKey(out))
    }

    /// The 64 lowercase hex digits of this key.
    pub fn to_hex(&self) -> [u8; 2 * PUBKEY_LEN] {
        let mut out = [0u8; 2 * PUBKEY_LEN];
        for (bytes, digits) in self.0.chunks_exact(8).zip(out.chunks_exact_mut(16)) {
            let mut v = [0u8; 8];
            v.copy_from_slice(bytes);
            digits.copy_from_slice(&hex64(u64::from_be_bytes(v)));
        }
        out
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&self.to_hex()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// What the server says about the client behind an id, in `AT` and `PUNCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// A Parley client that registered this key with `REG`.
    Key(PublicKey),
    /// A seed client (registered with `ID`): it has no key and speaks plain text.
    Seed,
    /// Registered with `REG` without a key.
    Keyless,
}

impl PeerKind {
    /// Parse a `kind` field: a key, `seed` or `-`.
    pub fn parse(b: &[u8]) -> Result<Self, FieldError> {
        match b {
            b"seed" => Ok(PeerKind::Seed),
            b"-" => Ok(PeerKind::Keyless),
            _ => PublicKey::parse(b).map(PeerKind::Key),
        }
    }

    /// The key, if the peer registered one.
    pub fn key(&self) -> Option<PublicKey> {
        match self {
            PeerKind::Key(k) => Some(*k),
            PeerKind::Seed | PeerKind::Keyless => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_alphabet_matches_python_repr_rules() {
        assert!(Id::new("120").is_ok());
        assert!(Id::new("a-b_c.d@e").is_ok());
        assert_eq!(Id::new("a b"), Err(FieldError::BadId));
        assert_eq!(Id::new("a'b"), Err(FieldError::BadId));
        assert_eq!(Id::new("a\"b"), Err(FieldError::BadId));
        assert_eq!(Id::new("a\\b"), Err(FieldError::BadId));
        assert_eq!(Id::new("\u{e9}"), Err(FieldError::BadId));
        assert_eq!(Id::new("a\n"), Err(FieldError::BadId));
        assert!(Id::new(core::str::from_utf8(&[b'x'; 32]).unwrap()).is_ok());
        assert_eq!(
            Id::new(core::str::from_utf8(&[b'x'; 33]).unwrap()),
            Err(FieldError::BadId)
        );
    }

    #[test]
    fn txid_is_short_alphanumeric() {
        assert!(TxId::new("a1B2").is_ok());
        assert!(TxId::new("").is_err());
        assert!(TxId::new("a-b").is_err());
        assert!(TxId::new("12345678901234567").is_err());
    }

    #[test]
    fn hex_roundtrip_and_strictness() {
        for v in [0u64, 1, 0xdead_beef_0123_4567, u64::MAX] {
            assert_eq!(parse_hex64(&hex64(v)), Ok(v));
        }
        assert!(parse_hex64(b"DEADBEEF01234567").is_err());
        assert!(parse_hex64(b"0123").is_err());
        assert!(parse_hex64(b"012345678901234g").is_err());
    }

    #[test]
    fn public_keys_are_64_lowercase_hex_digits() {
        let k = PublicKey(core::array::from_fn(|i| (i * 37 + 5) as u8));
        let hex = k.to_hex();
        assert_eq!(&hex[..6], b"052a4f");
        assert_eq!(PublicKey::parse(&hex), Ok(k));
        let mut upper = hex;
        upper[3] = b'A';
        assert_eq!(PublicKey::parse(&upper), Err(FieldError::BadKey));
        assert_eq!(PublicKey::parse(&hex[..63]), Err(FieldError::BadKey));
        assert_eq!(PublicKey::parse(b"seed"), Err(FieldError::BadKey));
        assert_eq!(PeerKind::parse(&hex), Ok(PeerKind::Key(k)));
        assert_eq!(PeerKind::parse(b"seed"), Ok(PeerKind::Seed));
        assert_eq!(PeerKind::parse(b"-"), Ok(PeerKind::Keyless));
        assert_eq!(PeerKind::parse(b"Seed"), Err(FieldError::BadKey));
        assert_eq!(PeerKind::parse(b""), Err(FieldError::BadKey));
    }

    /// The digit-by-digit reading the eight-at-a-time one must agree with.
    fn reference_hex64(b: &[u8]) -> Option<u64> {
        if b.len() != 16 {
            return None;
        }
        b.iter().try_fold(0u64, |v, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            Some(v << 4 | u64::from(d))
        })
    }

    #[test]
    fn hex_agrees_with_the_digit_by_digit_reading_for_every_byte_in_every_place() {
        let base = *b"0123456789abcdef";
        for place in 0..16 {
            for byte in 0..=255u8 {
                let mut b = base;
                b[place] = byte;
                assert_eq!(parse_hex64(&b).ok(), reference_hex64(&b), "{b:?}");
            }
        }
        for len in [0, 1, 8, 15, 17, 32] {
            assert!(parse_hex64(&[b'a'; 32][..len]).is_err(), "length {len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hex_agrees_with_the_digit_by_digit_reading(b in proptest::collection::vec(
            proptest::prop_oneof![proptest::sample::select(b"0123456789abcdef".to_vec()), proptest::num::u8::ANY],
            14..18,
        )) {
            proptest::prop_assert_eq!(parse_hex64(&b).ok(), reference_hex64(&b));
        }
    }

    #[test]
    fn idbuf_holds_a_copy() {
        let id = Id::new("alice").unwrap();
        let b = IdBuf::from_id(id);
        assert!(b.eq_id(id));
        assert_eq!(b.as_id(), Some(id));
        assert_eq!(IdBuf::EMPTY.as_id(), None);
    }
}
