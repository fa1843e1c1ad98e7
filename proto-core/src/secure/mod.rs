//! The secure channel between two Parley clients: Noise handshakes
//! (`Noise_IK_25519_ChaChaPoly_BLAKE2s` when the responder's key is known,
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s` when it is not), transport sessions
//! with explicit counters and a sliding replay window, and the safety
//! number two people compare by voice.
//!
//! Nothing here is hand-written cryptography: the Noise state machine is
//! `clatter`'s, the primitives are x25519-dalek, chacha20poly1305 and
//! blake2 (the generations `clatter` uses). What this module adds is the
//! bookkeeping UDP needs: counters carried on the wire, a window that
//! refuses replays and tolerates reordering, and keys that come in as
//! values (the core has no random source: ephemeral keys are drawn by the
//! caller from its CSPRNG and handed to [`Handshake`]).
//!
//! The framing of handshake and transport datagrams is in
//! [`crate::wire::sealed`].

mod handshake;
mod replay;
mod session;

use core::fmt;

pub use handshake::{Handshake, Pattern};
pub use replay::ReplayWindow;
pub use session::Session;

use clatter::crypto::dh::X25519;
use clatter::traits::Dh;

/// Bound into every handshake (the Noise prologue): a handshake for
/// another protocol or version never completes with this one.
pub const PROLOGUE: &[u8] = b"parley/1";

/// Bytes the AEAD adds to every sealed message.
pub const TAG_LEN: usize = 16;

/// A client's long-term X25519 public key: the wire's type, which `REG`,
/// `AT` and `PUNCH` carry as 64 lower-case hex digits.
pub use crate::wire::PublicKey;

/// A client's long-term key pair (its identity).
#[derive(Clone)]
pub struct Keypair {
    secret: [u8; 32],
    public: PublicKey,
}

impl Keypair {
    /// The key pair whose secret is `secret` (32 random bytes from the
    /// operating system, or the identity file's). X25519 clamps it.
    pub fn from_secret(secret: [u8; 32]) -> Keypair {
        let sk = clatter::bytearray::SensitiveByteArray::new(secret);
        let public = PublicKey(X25519::pubkey(&sk));
        Keypair { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The secret, for the application to store (mode 0600).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    fn to_clatter(
        &self,
    ) -> clatter::KeyPair<[u8; 32], clatter::bytearray::SensitiveByteArray<[u8; 32]>> {
        clatter::KeyPair::new(
            self.public.0,
            clatter::bytearray::SensitiveByteArray::new(self.secret),
        )
    }
}

impl Drop for Keypair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair({})", self.public)
    }
}

/// Why a handshake or transport message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureError {
    /// The message did not authenticate (wrong key, tampered, or not for this state).
    Unauthenticated,
    /// The counter was already seen or is too old for the replay window.
    Replayed,
    /// The message or the output buffer has the wrong size.
    BadLength,
    /// The handshake is not at a step where this makes sense.
    OutOfOrder,
    /// The session has sent as many messages as it may; a new handshake is needed.
    Exhausted,
}

impl fmt::Display for SecureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecureError::Unauthenticated => "the datagram did not authenticate",
            SecureError::Replayed => "the datagram was a replay or too old",
            SecureError::BadLength => "the datagram or the buffer had the wrong length",
            SecureError::OutOfOrder => "the handshake message came at the wrong step",
            SecureError::Exhausted => "the session has used up its counters",
        })
    }
}

/// A safety number: 60 digits made from two public keys, the same on both
/// sides, shown as 12 groups of 5 (Signal's form).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SafetyNumber([u8; 60]);

impl SafetyNumber {
    /// The 60 digits, as ASCII.
    pub fn digits(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.chunks_exact(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(core::str::from_utf8(group).unwrap_or("?????"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// The safety number of two keys: BLAKE2s over a label and both keys in
/// sorted order (so both people compute the same), each group of 5 digits
/// from 4 bytes of digest mod 100000, as Signal's fingerprints are. The
/// digest is 32 bytes; a second BLAKE2s over it gives the 16 more needed
/// for 12 groups.
pub fn safety_number(a: &PublicKey, b: &PublicKey) -> SafetyNumber {
    use blake2::{Blake2s256, Digest};
    let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    let mut h = Blake2s256::new();
    h.update(b"parley safety number v1");
    h.update(lo.0);
    h.update(hi.0);
    let d1 = h.finalize();
    let d2 = Blake2s256::digest(d1);
    let mut bytes = [0u8; 48];
    bytes[..32].copy_from_slice(&d1);
    bytes[32..].copy_from_slice(&d2[..16]);
    let mut out = [b'0'; 60];
    for (g, chunk) in bytes.chunks_exact(4).enumerate() {
        let mut v = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) % 100_000;
        for i in (0..5).rev() {
            out[g * 5 + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    SafetyNumber(out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn public_key_hex_roundtrips() {
        let k = Keypair::from_secret([7; 32]).public();
        let s = format!("{k}");
        assert_eq!(s.len(), 64);
        assert_eq!(PublicKey::parse(s.as_bytes()), Ok(k));
        assert!(PublicKey::parse(s.to_uppercase().as_bytes()).is_err());
        assert!(!format!("{:?}", Keypair::from_secret([7; 32])).contains("0707"));
    }

    #[test]
    fn safety_numbers_are_symmetric_and_tell_keys_apart() {
        let a = Keypair::from_secret([1; 32]).public();
        let b = Keypair::from_secret([2; 32]).public();
        let c = Keypair::from_secret([3; 32]).public();
        let ab = safety_number(&a, &b);
        assert_eq!(ab, safety_number(&b, &a));
        assert_ne!(ab, safety_number(&a, &c));
        let shown = format!("{ab}");
        assert_eq!(shown.len(), 12 * 5 + 11);
        assert!(
            shown
                .split(' ')
                .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit()))
        );
        assert_eq!(ab.digits().len(), 60);
    }
}
