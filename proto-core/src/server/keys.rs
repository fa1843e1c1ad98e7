//! Key material: one 32-byte entropy value in, independent keys out.
//!
//! Each table gets its own key so that learning one (say, by timing the
//! hash index) tells an attacker nothing about cookies or owner tokens.

use core::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::wire::Token;

/// The keys the server's parts use.
pub(crate) struct Keys {
    pub index: [u8; 16],
    pub cookie: [u8; 16],
    pub token: [u8; 16],
    pub limit: [u8; 16],
    pub quota: [u8; 16],
}

impl Keys {
    pub fn derive(entropy: &[u8; 32]) -> Keys {
        let mut master = [0u8; 16];
        for (i, b) in entropy.iter().enumerate() {
            master[i % 16] ^= b.rotate_left((i / 16) as u32 * 3);
        }
        let mix = |label: &[u8]| -> [u8; 16] {
            let mut h = SipHasher24::new_with_key(&master);
            h.write(entropy);
            h.write(label);
            h.finish128().as_bytes()
        };
        Keys {
            index: mix(b"parley index"),
            cookie: mix(b"parley cookie"),
            token: mix(b"parley token"),
            limit: mix(b"parley limit"),
            quota: mix(b"parley quota"),
        }
    }
}

/// Makes owner tokens: a keyed PRF over a counter, so tokens never repeat
/// within a run and cannot be guessed without the key.
pub(crate) struct TokenMint {
    key: [u8; 16],
    counter: u64,
}

impl TokenMint {
    pub fn new(key: [u8; 16]) -> Self {
        TokenMint { key, counter: 0 }
    }

    /// How many tokens this mint has made.
    pub fn issued(&self) -> u64 {
        self.counter
    }

    /// Carry on after `issued` tokens (a restart), so none is made twice.
    pub fn resume(&mut self, issued: u64) {
        self.counter = issued;
    }

    pub fn next(&mut self) -> Token {
        self.counter = self.counter.wrapping_add(1);
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.key);
        h.write_u64(self.counter);
        Token(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_purpose_and_entropy() {
        let a = Keys::derive(&[1; 32]);
        let b = Keys::derive(&[2; 32]);
        assert_ne!(a.index, a.cookie);
        assert_ne!(a.cookie, a.token);
        assert_ne!(a.index, b.index);
    }

    #[test]
    fn tokens_do_not_repeat() {
        let mut m = TokenMint::new([9; 16]);
        let t1 = m.next();
        let t2 = m.next();
        assert_ne!(t1, t2);
    }
}
