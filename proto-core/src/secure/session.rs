//! A transport session: the two cipher states a handshake produced, with
//! the counter carried on the wire (explicit nonces, as WireGuard's data
//! messages) and a replay window on the receiving side.

use clatter::cipherstate::CipherState;
use clatter::crypto::cipher::ChaChaPoly;

use super::{PublicKey, ReplayWindow, SecureError, TAG_LEN};

/// Counters a session may use before it must be replaced (WireGuard's
/// REJECT_AFTER_MESSAGES is 2^64 - 2^13 - 1; far below that is plenty).
pub const MAX_COUNTER: u64 = u64::MAX - (1 << 13);

/// One direction pair of keys with its counters.
pub struct Session {
    send: CipherState<ChaChaPoly>,
    recv: CipherState<ChaChaPoly>,
    sent: u64,
    window: ReplayWindow,
    remote: PublicKey,
}

impl Session {
    pub(super) fn new(
        send: CipherState<ChaChaPoly>,
        recv: CipherState<ChaChaPoly>,
        remote: PublicKey,
    ) -> Session {
        Session {
            send,
            recv,
            sent: 0,
            window: ReplayWindow::new(),
            remote,
        }
    }

    /// The peer's static key, authenticated by the handshake.
    pub fn remote(&self) -> PublicKey {
        self.remote
    }

    /// Messages sealed so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Seal `plaintext` with `ad` (the datagram's header) into `out`;
    /// returns the counter used and the ciphertext's length.
    pub fn seal(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(u64, usize), SecureError> {
        let n = self.sent;
        self.seal_at(n, ad, plaintext, out)
    }

    /// The counter the next [`Session::seal`] uses (to build its header).
    pub fn next_counter(&self) -> u64 {
        self.sent
    }

    fn seal_at(
        &mut self,
        n: u64,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(u64, usize), SecureError> {
        if n >= MAX_COUNTER {
            return Err(SecureError::Exhausted);
        }
        let sealed = out
            .get_mut(..plaintext.len() + TAG_LEN)
            .ok_or(SecureError::BadLength)?;
        self.send.set_nonce(n);
        self.send
            .encrypt_with_ad(ad, plaintext, sealed)
            .map_err(|_| SecureError::Exhausted)?;
        self.sent = n + 1;
        Ok((n, sealed.len()))
    }

    /// Open a datagram sealed at `counter` with `ad` into `out`; returns
    /// the plaintext's length. A replayed, too old, or forged datagram is
    /// refused and moves nothing.
    pub fn open(
        &mut self,
        counter: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SecureError> {
        if counter >= MAX_COUNTER || !self.window.fresh(counter) {
            return Err(SecureError::Replayed);
        }
        let len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(SecureError::BadLength)?;
        let opened = out.get_mut(..len).ok_or(SecureError::BadLength)?;
        self.recv.set_nonce(counter);
        self.recv
            .decrypt_with_ad(ad, ciphertext, opened)
            .map_err(|_| SecureError::Unauthenticated)?;
        self.window.take(counter);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Handshake, Keypair};
    use super::*;

    fn pair() -> (Session, Session) {
        let a = Keypair::from_secret([1; 32]);
        let b = Keypair::from_secret([2; 32]);
        let mut i = Handshake::initiator(&a, &Keypair::from_secret([3; 32]), Some(b.public()));
        let mut r = Handshake::responder(&b, &Keypair::from_secret([4; 32]), i.pattern());
        let mut buf = [0u8; 256];
        let mut p = [0u8; 256];
        let n = i.write(b"", &mut buf).unwrap();
        r.read(&buf[..n], &mut p).unwrap();
        let n = r.write(b"", &mut buf).unwrap();
        i.read(&buf[..n], &mut p).unwrap();
        (i.into_session().unwrap(), r.into_session().unwrap())
    }

    #[test]
    fn replay_tamper_and_reorder() {
        let (mut a, mut b) = pair();
        let mut ct = [[0u8; 64]; 3];
        let mut lens = [0usize; 3];
        for (k, c) in ct.iter_mut().enumerate() {
            let (n, len) = a.seal(b"ad", b"message", c).unwrap();
            assert_eq!(n, k as u64);
            lens[k] = len;
        }
        let mut out = [0u8; 64];
        // Out of order is fine, each once.
        assert_eq!(b.open(2, b"ad", &ct[2][..lens[2]], &mut out), Ok(7));
        assert_eq!(b.open(0, b"ad", &ct[0][..lens[0]], &mut out), Ok(7));
        assert_eq!(
            b.open(2, b"ad", &ct[2][..lens[2]], &mut out),
            Err(SecureError::Replayed)
        );
        // A flipped bit in the text, the tag, the header or the counter.
        let mut bad = ct[1];
        bad[0] ^= 1;
        assert_eq!(
            b.open(1, b"ad", &bad[..lens[1]], &mut out),
            Err(SecureError::Unauthenticated)
        );
        assert_eq!(
            b.open(1, b"aD", &ct[1][..lens[1]], &mut out),
            Err(SecureError::Unauthenticated)
        );
        assert_eq!(
            b.open(5, b"ad", &ct[1][..lens[1]], &mut out),
            Err(SecureError::Unauthenticated)
        );
        // Forgeries did not use up the counter: the real one still opens.
        assert_eq!(b.open(1, b"ad", &ct[1][..lens[1]], &mut out), Ok(7));
        assert_eq!(
            b.open(9, b"ad", &ct[0][..5], &mut out),
            Err(SecureError::BadLength)
        );
        // The other direction has its own keys: a's own datagram does not open at a.
        let mut back = [0u8; 64];
        let (n, len) = b.seal(b"ad", b"x", &mut back).unwrap();
        assert_eq!(a.open(n, b"ad", &back[..len], &mut out), Ok(1));
        assert_eq!(
            a.open(1, b"ad", &ct[1][..lens[1]], &mut out),
            Err(SecureError::Unauthenticated)
        );
    }
}
