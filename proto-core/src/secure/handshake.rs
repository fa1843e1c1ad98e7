//! One Noise handshake, initiator or responder, IK or XX, over `clatter`.

use clatter::NqHandshakeCore;
use clatter::crypto::cipher::ChaChaPoly;
use clatter::crypto::dh::X25519;
use clatter::crypto::hash::Blake2s;
use clatter::traits::Handshaker;

use super::{Keypair, PROLOGUE, PublicKey, SecureError, Session};

/// `clatter` wants a random source it can make with `Default`; the core
/// has none. Every handshake is given its ephemeral key (drawn by the
/// client from its seeded CSPRNG), so clatter never asks this one; if it
/// ever did, that would be a bug to see, not randomness to fake.
#[derive(Clone, Default)]
struct EphemeralGiven;

impl rand_core::RngCore for EphemeralGiven {
    fn next_u32(&mut self) -> u32 {
        unreachable!("the ephemeral key is always handed in")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("the ephemeral key is always handed in")
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!("the ephemeral key is always handed in")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        Err(rand_core::Error::from(
            core::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                .unwrap_or(core::num::NonZeroU32::MIN),
        ))
    }
}

impl rand_core::CryptoRng for EphemeralGiven {}

type Hs = NqHandshakeCore<X25519, ChaChaPoly, Blake2s, EphemeralGiven>;

/// Which Noise pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `IK`: the initiator knows the responder's static key; one round trip.
    IK,
    /// `XX`: nobody knows anybody's key yet; one and a half round trips.
    XX,
}

impl Pattern {
    /// Its number on the wire.
    pub fn code(self) -> u8 {
        match self {
            Pattern::IK => 1,
            Pattern::XX => 2,
        }
    }

    /// The pattern with wire number `c`.
    pub fn from_code(c: u8) -> Option<Pattern> {
        match c {
            1 => Some(Pattern::IK),
            2 => Some(Pattern::XX),
            _ => None,
        }
    }
}

/// A handshake in progress.
pub struct Handshake {
    hs: Hs,
    pattern: Pattern,
}

fn hs_err(_: clatter::error::HandshakeError) -> SecureError {
    SecureError::Unauthenticated
}

impl Handshake {
    /// Start as initiator: IK toward `peer` when its key is known, XX
    /// otherwise. `ephemeral` must be fresh from a CSPRNG.
    pub fn initiator(me: &Keypair, ephemeral: &Keypair, peer: Option<PublicKey>) -> Handshake {
        Self::new(true, me, ephemeral, peer)
    }

    /// Start as responder to an initiation of `pattern`.
    pub fn responder(me: &Keypair, ephemeral: &Keypair, pattern: Pattern) -> Handshake {
        Handshake::with(false, me, ephemeral, None, pattern)
    }

    fn new(
        initiator: bool,
        me: &Keypair,
        ephemeral: &Keypair,
        peer: Option<PublicKey>,
    ) -> Handshake {
        let pattern = if initiator && peer.is_none() {
            Pattern::XX
        } else {
            Pattern::IK
        };
        Handshake::with(initiator, me, ephemeral, peer, pattern)
    }

    fn with(
        initiator: bool,
        me: &Keypair,
        ephemeral: &Keypair,
        peer: Option<PublicKey>,
        pattern: Pattern,
    ) -> Handshake {
        let p = match pattern {
            Pattern::IK => clatter::handshakepattern::noise_ik(),
            Pattern::XX => clatter::handshakepattern::noise_xx(),
        };
        // Only a missing pre-message key fails here, and IK as initiator
        // always has `peer`: fall back to XX rather than panic.
        match Hs::new(
            p,
            PROLOGUE,
            initiator,
            Some(me.to_clatter()),
            Some(ephemeral.to_clatter()),
            peer.map(|k| k.0),
            None,
        ) {
            Ok(hs) => Handshake { hs, pattern },
            Err(_) => Handshake::with(initiator, me, ephemeral, None, Pattern::XX),
        }
    }

    /// The pattern.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// Whether it is our turn to write.
    pub fn is_write_turn(&self) -> bool {
        self.hs.is_write_turn() && !self.hs.is_finished()
    }

    /// Whether both sides are done.
    pub fn is_finished(&self) -> bool {
        self.hs.is_finished()
    }

    /// The peer's static key, once the handshake has authenticated it.
    pub fn remote_static(&self) -> Option<PublicKey> {
        self.hs.get_remote_static().map(PublicKey)
    }

    /// Bytes the next message adds to its payload.
    pub fn overhead(&self) -> usize {
        self.hs
            .get_next_message_overhead()
            .unwrap_or(usize::MAX / 2)
    }

    /// Write the next handshake message with `payload` into `out`.
    pub fn write(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, SecureError> {
        if !self.is_write_turn() {
            return Err(SecureError::OutOfOrder);
        }
        if payload.len() + self.overhead() > out.len() {
            return Err(SecureError::BadLength);
        }
        self.hs.write_message(payload, out).map_err(hs_err)
    }

    /// Read the peer's next handshake message into `payload`; returns the
    /// payload's length. A failure leaves the handshake unusable.
    pub fn read(&mut self, msg: &[u8], payload: &mut [u8]) -> Result<usize, SecureError> {
        if self.hs.is_write_turn() || self.hs.is_finished() {
            return Err(SecureError::OutOfOrder);
        }
        if msg.len() > crate::MAX_DATAGRAM {
            return Err(SecureError::BadLength);
        }
        let overhead = self.overhead();
        if msg.len() < overhead || msg.len() - overhead > payload.len() {
            return Err(SecureError::BadLength);
        }
        self.hs.read_message(msg, payload).map_err(hs_err)
    }

    /// The finished handshake's transport session.
    pub fn into_session(self) -> Result<Session, SecureError> {
        if !self.hs.is_finished() {
            return Err(SecureError::OutOfOrder);
        }
        let initiator = self.hs.is_initiator();
        let remote = self.remote_static().ok_or(SecureError::OutOfOrder)?;
        let ts = self.hs.finalize().map_err(hs_err)?;
        let c = ts.take();
        Ok(if initiator {
            Session::new(c.initiator_to_responder, c.responder_to_initiator, remote)
        } else {
            Session::new(c.responder_to_initiator, c.initiator_to_responder, remote)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(b: u8) -> Keypair {
        Keypair::from_secret([b; 32])
    }

    fn run(pattern_known: bool) -> (Session, Session) {
        let (a, b) = (kp(1), kp(2));
        let mut i = Handshake::initiator(&a, &kp(11), pattern_known.then(|| b.public()));
        let mut buf = [0u8; 512];
        let mut pay = [0u8; 512];
        let n = i.write(b"alice", &mut buf).unwrap();
        let mut r = Handshake::responder(&b, &kp(12), i.pattern());
        let m = r.read(&buf[..n], &mut pay).unwrap();
        assert_eq!(&pay[..m], b"alice");
        if i.pattern() == Pattern::IK {
            assert_eq!(
                r.remote_static(),
                Some(a.public()),
                "IK names the initiator at once"
            );
        }
        let n = r.write(b"", &mut buf).unwrap();
        assert_eq!(i.read(&buf[..n], &mut pay).unwrap(), 0);
        assert_eq!(i.remote_static(), Some(b.public()));
        if i.pattern() == Pattern::XX {
            assert!(!r.is_finished());
            let n = i.write(b"id", &mut buf).unwrap();
            assert_eq!(r.read(&buf[..n], &mut pay).unwrap(), 2);
            assert_eq!(r.remote_static(), Some(a.public()));
        }
        assert!(i.is_finished() && r.is_finished());
        (i.into_session().unwrap(), r.into_session().unwrap())
    }

    #[test]
    fn ik_and_xx_complete_and_carry_data() {
        for known in [true, false] {
            let (mut i, mut r) = run(known);
            let mut ct = [0u8; 64];
            let mut pt = [0u8; 64];
            let (c, n) = i.seal(b"hdr", b"hello", &mut ct).unwrap();
            assert_eq!(r.open(c, b"hdr", &ct[..n], &mut pt), Ok(5));
            assert_eq!(&pt[..5], b"hello");
            let (c, n) = r.seal(b"h2", b"back", &mut ct).unwrap();
            assert_eq!(i.open(c, b"h2", &ct[..n], &mut pt), Ok(4));
        }
    }

    #[test]
    fn ik_to_the_wrong_key_fails() {
        let (a, b, mallory) = (kp(1), kp(2), kp(3));
        let mut i = Handshake::initiator(&a, &kp(11), Some(b.public()));
        let mut buf = [0u8; 512];
        let mut pay = [0u8; 512];
        let n = i.write(b"alice", &mut buf).unwrap();
        let mut r = Handshake::responder(&mallory, &kp(12), Pattern::IK);
        assert_eq!(
            r.read(&buf[..n], &mut pay),
            Err(SecureError::Unauthenticated)
        );
    }

    #[test]
    fn a_flipped_bit_fails_the_handshake() {
        let (a, b) = (kp(1), kp(2));
        let mut i = Handshake::initiator(&a, &kp(11), Some(b.public()));
        let mut buf = [0u8; 512];
        let mut pay = [0u8; 512];
        let n = i.write(b"alice", &mut buf).unwrap();
        buf[n - 1] ^= 1;
        let mut r = Handshake::responder(&b, &kp(12), Pattern::IK);
        assert!(r.read(&buf[..n], &mut pay).is_err());
        // Short, or far too long, is refused without a panic.
        let mut r = Handshake::responder(&b, &kp(12), Pattern::IK);
        assert_eq!(r.read(&buf[..3], &mut pay), Err(SecureError::BadLength));
        let big = [0u8; 2000];
        assert_eq!(r.read(&big, &mut pay), Err(SecureError::BadLength));
    }
}
