//! The sliding replay window of RFC 6479 (as WireGuard keeps it): a
//! high-water mark and a bitmap of the 2048 counters below it, so datagrams
//! that UDP reorders within the window are taken once each and anything
//! older, or seen, is refused.

/// Counters remembered below the highest seen.
pub const WINDOW_BITS: u64 = 2048;
// One word more than the window: the word being filled shares the ring.
const WORDS: usize = (WINDOW_BITS / 64) as usize + 1;

/// Which counters of one receiving direction were already taken.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// One past the highest counter taken (0: none yet).
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// A window that has taken nothing.
    pub const fn new() -> ReplayWindow {
        ReplayWindow {
            next: 0,
            bits: [0; WORDS],
        }
    }

    /// Whether `n` would be taken (not seen, not too old). Check before
    /// decrypting; [`ReplayWindow::take`] only after the datagram
    /// authenticated, so forgeries cannot move the window.
    pub fn fresh(&self, n: u64) -> bool {
        if n >= self.next {
            return true;
        }
        if self.next - n > WINDOW_BITS {
            return false;
        }
        self.bits[Self::word(n)] & Self::bit(n) == 0
    }

    /// Record `n`; `false` if it was not fresh.
    pub fn take(&mut self, n: u64) -> bool {
        if !self.fresh(n) {
            return false;
        }
        if n >= self.next {
            // Clear the words the window slides past.
            let old_top = self.next.saturating_sub(1) / 64;
            let new_top = n / 64;
            let clear = (new_top - old_top).min(WORDS as u64);
            for i in 1..=clear {
                self.bits[((old_top + i) % WORDS as u64) as usize] = 0;
            }
            self.next = n + 1;
        }
        self.bits[Self::word(n)] |= Self::bit(n);
        true
    }

    fn word(n: u64) -> usize {
        ((n / 64) % WORDS as u64) as usize
    }

    fn bit(n: u64) -> u64 {
        1u64 << (n % 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_once_in_any_order() {
        let mut w = ReplayWindow::new();
        assert!(w.take(0));
        assert!(!w.take(0));
        assert!(w.take(5));
        assert!(w.take(3));
        assert!(!w.take(3) && !w.take(5));
        assert!(w.take(4) && w.take(1) && w.take(2));
        // A jump ahead keeps the recent past.
        assert!(w.take(3000));
        assert!(!w.fresh(5), "older than the window");
        assert!(w.fresh(3000 - 2047) && !w.fresh(3000 - 2049));
        assert!(w.take(2999) && !w.take(2999));
        assert!(!w.take(3000));
    }

    #[test]
    fn sliding_clears_reused_words() {
        let mut w = ReplayWindow::new();
        for n in 0..10_000u64 {
            assert!(w.take(n), "{n}");
        }
        // Bits from a lap ago must not make new counters look seen.
        for n in (10_000..20_000u64).step_by(7) {
            assert!(w.take(n), "{n}");
        }
        for n in (10_000..20_000u64).step_by(7).skip(1300) {
            assert!(!w.take(n), "{n}");
        }
        // Unseen counters inside the window are still fresh.
        assert!(w.take(19_990));
    }
}
