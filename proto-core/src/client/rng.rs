//! The client's random numbers: ChaCha20 (a CSPRNG) seeded once from the
//! 32 bytes of operating-system entropy the caller hands to
//! [`super::Client::new`]. Session ids, transaction ids, handshake indices,
//! ephemeral keys and jitter all come from it, so nothing a peer or the
//! server sees lets it predict the next value.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::secure::Keypair;

pub(super) struct Rng(ChaCha20Rng);

impl Rng {
    pub fn new(entropy: [u8; 32]) -> Rng {
        Rng(ChaCha20Rng::from_seed(entropy))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// A fresh key pair (a handshake's ephemeral).
    pub fn keypair(&mut self) -> Keypair {
        let mut secret = [0u8; 32];
        self.0.fill_bytes(&mut secret);
        Keypair::from_secret(secret)
    }

    /// Uniform in `0..n` (0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// `ms` give or take 20%, so that clients that lost the same datagram
    /// do not all retry at the same moment.
    pub fn jitter(&mut self, ms: u64) -> u64 {
        let spread = ms / 5;
        ms - spread + self.below(2 * spread + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        let mut r = Rng::new([3; 32]);
        let mut lo = u64::MAX;
        let mut hi = 0;
        for _ in 0..10_000 {
            let j = r.jitter(1000);
            lo = lo.min(j);
            hi = hi.max(j);
        }
        assert!(lo >= 800 && hi <= 1200, "{lo}..{hi}");
        assert!(lo < 820 && hi > 1180, "the spread is used: {lo}..{hi}");
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn different_entropy_different_streams() {
        assert_ne!(Rng::new([1; 32]).next_u64(), Rng::new([2; 32]).next_u64());
    }

    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn splitmix_out(state: u64) -> u64 {
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unshift(mut z: u64, k: u32) -> u64 {
        let mut r = z;
        for _ in 0..(64 / k) {
            z >>= k;
            r ^= z;
        }
        r
    }

    fn inverse(a: u64) -> u64 {
        // Newton's iteration for the inverse of an odd number mod 2^64.
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        x
    }

    /// What an observer of one SplitMix64 output (a session id on the
    /// wire) predicts as the generator's next output.
    fn predict_next(seen: u64) -> u64 {
        let mut z = unshift(seen, 31);
        z = z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
        z = unshift(z, 27);
        z = z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
        let state = unshift(z, 30);
        splitmix_out(state.wrapping_add(GAMMA))
    }

    #[test]
    fn one_output_does_not_predict_the_next() {
        // The attack works on the generator the client used to have...
        let state = 0x1234_5678_9abc_def0u64;
        let first = splitmix_out(state.wrapping_add(GAMMA));
        let second = splitmix_out(state.wrapping_add(GAMMA).wrapping_add(GAMMA));
        assert_eq!(predict_next(first), second, "the predictor is sound");
        // ...and not on this one: a session id says nothing of the next
        // transaction id, nonce or index.
        for seed in 0..64u8 {
            let mut r = Rng::new([seed; 32]);
            let session = r.next_u64();
            let next = r.next_u64();
            assert_ne!(predict_next(session), next, "seed {seed}");
        }
    }

    /// The client draws its session id (which every `CHAT` carries to the
    /// peer) and then its first transaction id (which the server sees):
    /// the old generator let a peer compute the second from the first.
    #[test]
    fn a_peer_cannot_predict_the_clients_transaction_ids_from_its_session() {
        use crate::client::{Client, Config};
        use crate::wire::{Id, Request};
        for seed in 0..32u8 {
            let server: core::net::SocketAddr = "192.0.2.1:9999".parse().unwrap();
            let cfg = Config::new(server, Some(Id::new("alice").unwrap()));
            let mut c = Client::new(
                cfg,
                crate::Instant(0),
                [seed; 32],
                Keypair::from_secret([1; 32]),
            );
            let hello = c.poll_transmit().unwrap();
            let Ok(Request::Hello { tx, .. }) = Request::parse(&hello.payload) else {
                panic!("the first datagram is HELLO");
            };
            let tx: u64 = tx.as_str().parse().unwrap();
            // The REG queued at start took the first transaction id; the
            // HELLO that fetches its cookie, the next.
            let predicted = predict_next(c.session) % 1_000_000 + 2;
            assert_ne!(predicted, tx, "seed {seed}");
        }
    }
}
