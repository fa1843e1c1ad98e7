//! The one small random generator of the tests and benchmarks: xorshift64,
//! seeded, so a run repeats exactly. Not for anything secret (the core
//! takes its entropy from the OS through the binaries).

/// A xorshift64 generator.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// The usual seed of the tests (the golden ratio's bits).
    pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

    /// A generator from `seed`; a zero seed (which xorshift never leaves)
    /// is replaced by [`Self::SEED`].
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 { Self::SEED } else { seed })
    }

    /// The next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n` (slightly biased; fine for tests).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

impl Default for XorShift {
    fn default() -> Self {
        Self::new(Self::SEED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_xorshift64_and_repeats() {
        let mut a = XorShift::default();
        let mut x = XorShift::SEED;
        for _ in 0..100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(a.next_u64(), x);
        }
        assert_eq!(XorShift::new(0).next_u64(), XorShift::default().next_u64());
    }

    #[test]
    fn below_stays_below() {
        let mut r = XorShift::new(7);
        assert!((0..1000).all(|_| r.below(13) < 13));
    }
}
