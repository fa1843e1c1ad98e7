//! Per-source quotas and rate limits in fixed memory.
//!
//! Both are hashed sketches rather than exact per-source tables: a cell is
//! picked by a keyed hash of the source (an IPv4 address, or an IPv6 /64,
//! since one host holds a whole /64), and sources that collide share it.
//! Sharing only ever makes a limit stricter, never looser, and it means the
//! tables never fill up, never evict, and cost the same under attack as at
//! rest. Quotas use two cells per source (count-min), which makes a wrong
//! refusal need two collisions at once.

use core::hash::Hasher;
use core::net::IpAddr;

use siphasher::sip::SipHasher13;

use crate::time::Instant;

/// One rate-limit cell: a token bucket shared by the sources that hash to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateCell {
    /// Tokens, in thousandths.
    tokens_milli: u32,
    /// When the bucket was last refilled, in ms, truncated to 32 bits to
    /// keep cells small. A bucket left idle for a multiple of 2^32 ms (49.7
    /// days) sees a shorter idle time than it had and refills less: stricter,
    /// never looser, and only until its next refill.
    last_ms: u32,
    /// Whether the cell has been used.
    used: bool,
}

impl RateCell {
    /// An unused cell.
    pub const EMPTY: RateCell = RateCell {
        tokens_milli: 0,
        last_ms: 0,
        used: false,
    };
}

/// One quota cell: a counter shared by the sources that hash to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaCell(u16);

impl QuotaCell {
    /// An unused cell.
    pub const EMPTY: QuotaCell = QuotaCell(0);
}

/// Rate-limit cells for a server of `capacity` registrations (per limiter).
pub const fn rate_cells_for(capacity: usize) -> usize {
    let n = if capacity < 1024 { 1024 } else { capacity };
    n.next_power_of_two()
}

/// Quota cells for a server of `capacity` registrations: four per slot, so
/// that even a full table of distinct sources rarely collides.
pub const fn quota_cells_for(capacity: usize) -> usize {
    let n = if capacity < 1024 { 1024 } else { capacity };
    (n * 4).next_power_of_two()
}

fn key_pair(key: [u8; 16]) -> (u64, u64) {
    let mut k0 = [0u8; 8];
    let mut k1 = [0u8; 8];
    k0.copy_from_slice(&key[..8]);
    k1.copy_from_slice(&key[8..]);
    (u64::from_le_bytes(k0), u64::from_le_bytes(k1))
}

/// The part of an address that identifies a source: an IPv4 address, an
/// IPv6 /64 (an IPv4-mapped IPv6 address counts as its IPv4 address).
fn source_hash(key: (u64, u64), ip: IpAddr) -> u64 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()[..8]),
        },
    }
    h.finish()
}

/// A token bucket per source, in fixed memory.
///
/// ```
/// use proto_core::limit::{RateCell, RateLimiter};
/// use proto_core::Instant;
/// let mut cells = [RateCell::EMPTY; 64];
/// let mut rl = RateLimiter::new(&mut cells, [0; 16], 10, 2);
/// let ip = "192.0.2.1".parse().unwrap();
/// assert!(rl.allow(Instant(0), ip));
/// assert!(rl.allow(Instant(0), ip));
/// assert!(!rl.allow(Instant(0), ip));
/// assert!(rl.allow(Instant(100), ip)); // 10 per second: one more after 100 ms
/// ```
pub struct RateLimiter<'a> {
    cells: &'a mut [RateCell],
    key: (u64, u64),
    per_sec: u32,
    burst_milli: u32,
}

impl<'a> RateLimiter<'a> {
    /// `per_sec` sustained, `burst` at once, per source (a `burst` of 0
    /// counts as 1; a `per_sec` of 0 never refills). Resets `cells`; with
    /// no cells every source is allowed.
    pub fn new(cells: &'a mut [RateCell], key: [u8; 16], per_sec: u32, burst: u32) -> Self {
        cells.fill(RateCell::EMPTY);
        RateLimiter {
            cells,
            key: key_pair(key),
            per_sec,
            burst_milli: burst.max(1).saturating_mul(1000),
        }
    }

    /// Take one token for `ip`; `false` if its bucket is empty.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.cells.is_empty() {
            return true;
        }
        let i = source_hash(self.key, ip) as usize % self.cells.len();
        let c = &mut self.cells[i];
        let now_ms = now.0 as u32;
        if !c.used {
            c.used = true;
            c.tokens_milli = self.burst_milli;
        } else {
            let elapsed = u64::from(now_ms.wrapping_sub(c.last_ms));
            let refill = elapsed.saturating_mul(u64::from(self.per_sec));
            c.tokens_milli = u64::from(c.tokens_milli)
                .saturating_add(refill)
                .min(u64::from(self.burst_milli)) as u32;
        }
        c.last_ms = now_ms;
        if c.tokens_milli >= 1000 {
            c.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// How many ids each source holds, in fixed memory.
///
/// ```
/// use proto_core::limit::{Quota, QuotaCell};
/// let mut cells = [QuotaCell::EMPTY; 64];
/// let mut q = Quota::new(&mut cells, [0; 16], 2);
/// let ip = "192.0.2.1".parse().unwrap();
/// assert!(q.try_acquire(ip) && q.try_acquire(ip));
/// assert!(!q.try_acquire(ip));
/// q.release(ip);
/// assert!(q.try_acquire(ip));
/// ```
pub struct Quota<'a> {
    cells: &'a mut [QuotaCell],
    key: (u64, u64),
    max: u16,
}

impl<'a> Quota<'a> {
    /// At most `max` ids per source. Resets `cells`; with fewer than two
    /// cells there is no sketch and every source is admitted.
    pub fn new(cells: &'a mut [QuotaCell], key: [u8; 16], max: u16) -> Self {
        cells.fill(QuotaCell::EMPTY);
        Quota {
            cells,
            key: key_pair(key),
            max,
        }
    }

    fn cells_of(&self, ip: IpAddr) -> (usize, usize) {
        let h = source_hash(self.key, ip);
        let n = self.cells.len();
        let a = (h as u32 as usize) % n;
        let mut b = ((h >> 32) as usize) % n;
        if b == a {
            b = (b + 1) % n;
        }
        (a, b)
    }

    /// Count one more id for `ip`; `false` (and nothing counted) if it holds `max`.
    pub fn try_acquire(&mut self, ip: IpAddr) -> bool {
        if self.cells.len() < 2 {
            return true;
        }
        let (a, b) = self.cells_of(ip);
        if self.cells[a].0.min(self.cells[b].0) >= self.max {
            return false;
        }
        // A cell that cannot count one more would make the matching release
        // undo something this acquire never did: refuse instead.
        if self.cells[a].0 == u16::MAX || self.cells[b].0 == u16::MAX {
            return false;
        }
        self.cells[a].0 += 1;
        self.cells[b].0 += 1;
        true
    }

    /// Count one id fewer for `ip`: undo exactly one earlier successful
    /// [`Self::try_acquire`] for the same source. Releasing what was never
    /// acquired would lower counts that colliding sources share.
    pub fn release(&mut self, ip: IpAddr) {
        if self.cells.len() < 2 {
            return;
        }
        let (a, b) = self.cells_of(ip);
        self.cells[a].0 = self.cells[a].0.saturating_sub(1);
        self.cells[b].0 = self.cells[b].0.saturating_sub(1);
    }
}

/// One global token bucket (the fan-out budget).
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    per_sec: u32,
    burst_milli: u64,
    tokens_milli: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// `per_sec` sustained, `burst` at once; starts full.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst_milli = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            per_sec,
            burst_milli,
            tokens_milli: burst_milli,
            last: None,
        }
    }

    /// Take one token; `false` if there is none.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.since(last).saturating_mul(u64::from(self.per_sec));
            self.tokens_milli = self
                .tokens_milli
                .saturating_add(refill)
                .min(self.burst_milli);
        }
        self.last = Some(now);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rate_allows_the_burst_then_the_rate() {
        let mut cells = [RateCell::EMPTY; 1024];
        let mut rl = RateLimiter::new(&mut cells, [3; 16], 100, 5);
        let a = ip("198.51.100.1");
        let allowed = (0..20).filter(|_| rl.allow(Instant(1000), a)).count();
        assert_eq!(allowed, 5);
        // 100 per second: 10 ms buys one more.
        assert!(rl.allow(Instant(1010), a));
        assert!(!rl.allow(Instant(1010), a));
        // Idle time refills up to the burst, not beyond.
        let allowed = (0..20).filter(|_| rl.allow(Instant(60_000), a)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn rate_limits_are_per_source_and_per_v6_prefix() {
        let mut cells = [RateCell::EMPTY; 1024];
        let mut rl = RateLimiter::new(&mut cells, [3; 16], 1, 1);
        assert!(rl.allow(Instant(0), ip("2001:db8:1:2::1")));
        assert!(!rl.allow(Instant(0), ip("2001:db8:1:2::ffff")), "same /64");
        let others = ["198.51.100.2", "198.51.100.3", "2001:db8:1:3::1"];
        let fresh = others
            .iter()
            .filter(|s| rl.allow(Instant(0), ip(s)))
            .count();
        // A collision would only make this stricter; with 1024 cells it is rare.
        assert!(fresh >= 2);
    }

    #[test]
    fn quota_counts_per_source_and_releases_exactly() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut q = Quota::new(&mut cells, [5; 16], 3);
        let a = ip("192.0.2.10");
        let b = ip("192.0.2.11");
        assert!((0..3).all(|_| q.try_acquire(a)));
        assert!(!q.try_acquire(a));
        assert!(q.try_acquire(b));
        q.release(a);
        assert!(q.try_acquire(a));
        assert!(!q.try_acquire(a));
        for _ in 0..3 {
            q.release(a);
        }
        q.release(b);
        assert!(cells.iter().all(|c| *c == QuotaCell::EMPTY));
    }

    #[test]
    fn mapped_v4_is_the_same_source() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut q = Quota::new(&mut cells, [5; 16], 1);
        assert!(q.try_acquire(ip("192.0.2.10")));
        assert!(!q.try_acquire(ip("::ffff:192.0.2.10")));
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let mut tb = TokenBucket::new(10, 3);
        let n = (0..10).filter(|_| tb.take(Instant(0))).count();
        assert_eq!(n, 3);
        assert!(!tb.take(Instant(99)));
        assert!(tb.take(Instant(100)));
        let n = (0..10).filter(|_| tb.take(Instant(100_000))).count();
        assert_eq!(n, 3);
    }

    #[test]
    fn cell_counts_are_powers_of_two_and_roomy() {
        for cap in [0, 1, 100, 1023, 1024, 1025, 50_000, 1 << 20] {
            let r = rate_cells_for(cap);
            let q = quota_cells_for(cap);
            assert!(r.is_power_of_two() && r >= cap && r >= 1024, "{cap}");
            assert!(q.is_power_of_two() && q >= 4 * cap && q >= 4096, "{cap}");
        }
    }

    #[test]
    fn rate_limiter_with_no_cells_allows_everyone() {
        let mut rl = RateLimiter::new(&mut [], [0; 16], 0, 0);
        assert!((0..100).all(|_| rl.allow(Instant(0), ip("192.0.2.1"))));
    }

    #[test]
    fn rate_zero_per_sec_never_refills() {
        let mut cells = [RateCell::EMPTY; 16];
        let mut rl = RateLimiter::new(&mut cells, [1; 16], 0, 2);
        let a = ip("192.0.2.1");
        assert!(rl.allow(Instant(0), a) && rl.allow(Instant(0), a));
        assert!(!rl.allow(Instant(1_000_000), a));
    }

    #[test]
    fn rate_survives_extreme_times_and_rates() {
        let mut cells = [RateCell::EMPTY; 16];
        let mut rl = RateLimiter::new(&mut cells, [1; 16], u32::MAX, u32::MAX);
        let a = ip("192.0.2.1");
        assert!(rl.allow(Instant(0), a));
        assert!(rl.allow(Instant(u64::MAX), a));
        assert!(rl.allow(Instant(u64::MAX / 2), a));
        let mut tb = TokenBucket::new(u32::MAX, u32::MAX);
        assert!(tb.take(Instant(0)));
        assert!(tb.take(Instant(u64::MAX)));
        assert!(tb.take(Instant(u64::MAX)));
    }

    #[test]
    fn rate_new_resets_dirty_cells() {
        let mut cells = [RateCell::EMPTY; 16];
        let a = ip("192.0.2.1");
        {
            let mut rl = RateLimiter::new(&mut cells, [1; 16], 0, 1);
            assert!(rl.allow(Instant(0), a));
            assert!(!rl.allow(Instant(0), a));
        }
        let mut rl = RateLimiter::new(&mut cells, [1; 16], 0, 1);
        assert!(rl.allow(Instant(0), a));
    }

    #[test]
    fn quota_saturated_cells_refuse_rather_than_miscount() {
        // Two cells: every source uses both. Fill one past what `max`
        // would allow by hand, as colliding sources could in a big table.
        let mut cells = [QuotaCell::EMPTY; 2];
        cells[0] = QuotaCell(u16::MAX);
        let mut q = Quota {
            cells: &mut cells,
            key: key_pair([0; 16]),
            max: u16::MAX,
        };
        assert!(!q.try_acquire(ip("192.0.2.1")));
        assert_eq!(cells, [QuotaCell(u16::MAX), QuotaCell(0)]);
    }

    #[test]
    fn quota_with_too_few_cells_admits_everyone() {
        let mut cells = [QuotaCell::EMPTY; 1];
        let mut q = Quota::new(&mut cells, [0; 16], 1);
        assert!((0..10).all(|_| q.try_acquire(ip("192.0.2.1"))));
        q.release(ip("192.0.2.1"));
    }

    #[test]
    fn quota_max_zero_refuses_everyone() {
        let mut cells = [QuotaCell::EMPTY; 64];
        let mut q = Quota::new(&mut cells, [0; 16], 0);
        assert!(!q.try_acquire(ip("192.0.2.1")));
        assert!(!q.try_acquire(ip("2001:db8::1")));
    }

    #[test]
    fn quota_v6_counts_per_64() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut q = Quota::new(&mut cells, [5; 16], 2);
        assert!(q.try_acquire(ip("2001:db8:0:1::1")));
        assert!(q.try_acquire(ip("2001:db8:0:1::2")));
        assert!(!q.try_acquire(ip("2001:db8:0:1:ffff::3")), "same /64");
        assert!(q.try_acquire(ip("2001:db8:0:2::1")), "another /64");
    }

    fn source() -> impl Strategy<Value = IpAddr> {
        // Few distinct sources and (below) few cells, so collisions happen.
        prop_oneof![
            (0u8..12).prop_map(|b| IpAddr::from([10, 0, 0, b])),
            (0u16..6).prop_map(|b| IpAddr::from([0x2001, 0xdb8, 0, b, 0, 0, 0, 1])),
        ]
    }

    proptest! {
        /// Acquire-then-release restores the cells bit for bit; no source
        /// ever holds more than `max` (collisions only make it stricter);
        /// releasing everything held empties the sketch.
        #[test]
        fn quota_is_exact_and_never_loose(
            n_cells in 2usize..24,
            max in 0u16..4,
            ops in proptest::collection::vec((source(), any::<bool>()), 0..200),
        ) {
            let mut cells = vec![QuotaCell::EMPTY; n_cells];
            let mut q = Quota::new(&mut cells, [7; 16], max);
            let mut held: Vec<IpAddr> = Vec::new();
            for (src, acquire) in ops {
                if acquire {
                    let before = q.cells.to_vec();
                    if q.try_acquire(src) {
                        held.push(src);
                        prop_assert!(held.iter().filter(|h| **h == src).count() <= usize::from(max));
                        // Undo and redo: both land on exactly the same cells.
                        let after = q.cells.to_vec();
                        q.release(src);
                        prop_assert_eq!(q.cells.to_vec(), before);
                        prop_assert!(q.try_acquire(src));
                        prop_assert_eq!(q.cells.to_vec(), after);
                    } else {
                        prop_assert_eq!(q.cells.to_vec(), before, "a refusal changes nothing");
                    }
                } else if let Some(p) = held.iter().position(|h| *h == src) {
                    held.swap_remove(p);
                    q.release(src);
                }
            }
            for src in held.drain(..) {
                q.release(src);
            }
            prop_assert!(q.cells.iter().all(|c| *c == QuotaCell::EMPTY));
        }

        /// Over any span, one source gets at most `burst + per_sec * secs`.
        #[test]
        fn rate_never_exceeds_burst_plus_rate(
            per_sec in 0u32..50,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..200, 1..300),
        ) {
            let mut cells = [RateCell::EMPTY; 8];
            let mut rl = RateLimiter::new(&mut cells, [2; 16], per_sec, burst);
            let mut tb = TokenBucket::new(per_sec, burst);
            let a = ip("198.51.100.7");
            let (mut now, mut allowed, mut taken) = (1_000u64, 0u64, 0u64);
            for gap in gaps {
                now += gap;
                allowed += u64::from(rl.allow(Instant(now), a));
                taken += u64::from(tb.take(Instant(now)));
            }
            let bound = u64::from(burst) + u64::from(per_sec) * (now - 1_000) / 1000;
            prop_assert!(allowed <= bound, "{} > {}", allowed, bound);
            prop_assert!(taken <= bound, "{} > {}", taken, bound);
        }
    }
}
