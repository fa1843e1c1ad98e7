//! A small deterministic generator (SplitMix64) seeded from the entropy the
//! caller hands in: jitter, nonces and ids need to be unpredictable to
//! others, not cryptographic.

/// SplitMix64.
pub(super) struct Rng(u64);

impl Rng {
    pub fn new(entropy: [u8; 32]) -> Rng {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for chunk in entropy.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            s = (s ^ u64::from_le_bytes(w))
                .rotate_left(23)
                .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        }
        Rng(s)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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
}
