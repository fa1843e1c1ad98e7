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
use core::net::{IpAddr, SocketAddr};

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

    /// Give `ip` back the token an [`Self::allow`] took for something that
    /// was not done after all (never beyond the burst).
    pub fn refund(&mut self, ip: IpAddr) {
        if self.cells.is_empty() {
            return;
        }
        let i = source_hash(self.key, ip) as usize % self.cells.len();
        let c = &mut self.cells[i];
        c.tokens_milli = c.tokens_milli.saturating_add(1000).min(self.burst_milli);
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

    /// Count one more id for `ip`; `false` (and nothing counted) if it holds `max`.
    pub fn try_acquire(&mut self, ip: IpAddr) -> bool {
        let h = source_hash(self.key, ip);
        self.try_acquire_all(&[(h, self.max)])
    }

    /// Count one more id for `ip` however many it holds already: for the
    /// ids a restarted server takes back, which are never refused or
    /// evicted. `false` (nothing counted) only if a cell is too full to
    /// count it, as for [`Self::try_acquire`].
    pub fn acquire_held(&mut self, ip: IpAddr) -> bool {
        let h = source_hash(self.key, ip);
        self.try_acquire_all(&[(h, u16::MAX)])
    }

    /// Count one id fewer for `ip`: undo exactly one earlier successful
    /// [`Self::try_acquire`] for the same source. Releasing what was never
    /// acquired would lower counts that colliding sources share.
    pub fn release(&mut self, ip: IpAddr) {
        let h = source_hash(self.key, ip);
        self.release_all(&[h]);
    }

    fn cells_of(&self, h: u64) -> (usize, usize) {
        let n = self.cells.len();
        let a = (h as u32 as usize) % n;
        let mut b = ((h >> 32) as usize) % n;
        if b == a {
            b = (b + 1) % n;
        }
        (a, b)
    }

    /// The count-min estimate for the key hashed to `h`.
    fn count(&self, h: u64) -> u16 {
        let (a, b) = self.cells_of(h);
        self.cells[a].0.min(self.cells[b].0)
    }

    /// Count one more for every `(hash, max)` in `keys`, or for none of
    /// them if any is at its `max`.
    fn try_acquire_all(&mut self, keys: &[(u64, u16)]) -> bool {
        if self.cells.len() < 2 {
            return true;
        }
        for &(h, max) in keys {
            if self.count(h) >= max {
                return false;
            }
            // A cell that cannot count every increment of this call would
            // make the matching release undo something never done: refuse.
            let (a, b) = self.cells_of(h);
            let room = u16::MAX - 2 * keys.len() as u16;
            if self.cells[a].0 > room || self.cells[b].0 > room {
                return false;
            }
        }
        for &(h, _) in keys {
            let (a, b) = self.cells_of(h);
            self.cells[a].0 += 1;
            self.cells[b].0 += 1;
        }
        true
    }

    fn release_all(&mut self, keys: &[u64]) {
        if self.cells.len() < 2 {
            return;
        }
        for &h in keys {
            let (a, b) = self.cells_of(h);
            self.cells[a].0 = self.cells[a].0.saturating_sub(1);
            self.cells[b].0 = self.cells[b].0.saturating_sub(1);
        }
    }
}

/// The most ids each network may hold, by prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetLimits {
    /// Per IPv4 /24.
    pub v4_24: u16,
    /// Per IPv6 /56 (a typical customer's delegation).
    pub v6_56: u16,
    /// Per IPv6 /48 (a typical site's).
    pub v6_48: u16,
}

impl NetLimits {
    /// The limits for a table of `capacity` ids whose sources may each hold
    /// `per_source`: an IPv4 /24 and an IPv6 /48 an eighth of the table, an
    /// IPv6 /56 a thirty-second, and never less than one source may hold.
    /// No one network can fill the table, however many addresses it has.
    pub fn for_capacity(capacity: usize, per_source: u16) -> NetLimits {
        let share = |div: usize| {
            (capacity / div).clamp(usize::from(per_source), usize::from(u16::MAX)) as u16
        };
        NetLimits {
            v4_24: share(8),
            v6_56: share(32),
            v6_48: share(8),
        }
    }
}

/// How many ids each network holds (IPv4 /24s, IPv6 /56s and /48s), in
/// fixed memory: the per-source [`Quota`] bounds one address or /64, this
/// bounds the networks around it, so a holder of many addresses cannot
/// fill the table either. Ids already held are never evicted.
///
/// ```
/// use proto_core::limit::{NetLimits, NetQuota, QuotaCell};
/// let mut cells = [QuotaCell::EMPTY; 64];
/// let limits = NetLimits { v4_24: 8, v6_56: 2, v6_48: 3 };
/// let mut q = NetQuota::new(&mut cells, [0; 16], limits);
/// let in_56 = |i: u16| std::net::IpAddr::from([0x2001, 0xdb8, 0, i, 0, 0, 0, 1]);
/// assert!(q.try_acquire(in_56(1)) && q.try_acquire(in_56(2)));
/// assert!(!q.try_acquire(in_56(3)), "the /56 holds two");
/// assert!(q.try_acquire(in_56(0x100)), "another /56 of the /48");
/// assert!(!q.try_acquire(in_56(0x200)), "the /48 holds three");
/// ```
pub struct NetQuota<'a> {
    sketch: Quota<'a>,
    limits: NetLimits,
}

impl<'a> NetQuota<'a> {
    /// Resets `cells`; with fewer than two cells every network is admitted.
    pub fn new(cells: &'a mut [QuotaCell], key: [u8; 16], limits: NetLimits) -> Self {
        NetQuota {
            sketch: Quota::new(cells, key, u16::MAX),
            limits,
        }
    }

    /// The networks `ip` belongs to, hashed, with their limits.
    fn networks(&self, ip: IpAddr) -> ([(u64, u16); 2], usize) {
        let l = self.limits;
        let hash = |tag: u8, prefix: &[u8]| {
            let mut h = SipHasher13::new_with_keys(self.sketch.key.0, self.sketch.key.1);
            h.write_u8(tag);
            h.write(prefix);
            h.finish()
        };
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        match (v4, ip) {
            (Some(v4), _) => ([(hash(24, &v4.octets()[..3]), l.v4_24), (0, 0)], 1),
            (None, IpAddr::V6(v6)) => {
                let o = v6.octets();
                (
                    [(hash(56, &o[..7]), l.v6_56), (hash(48, &o[..6]), l.v6_48)],
                    2,
                )
            }
            (None, IpAddr::V4(_)) => unreachable!("an IPv4 address is its own IPv4 address"),
        }
    }

    /// Count one more id for every network of `ip`; `false` (and nothing
    /// counted) if any of them holds its limit.
    pub fn try_acquire(&mut self, ip: IpAddr) -> bool {
        let (nets, n) = self.networks(ip);
        self.sketch.try_acquire_all(&nets[..n])
    }

    /// [`Quota::acquire_held`] for every network of `ip`.
    pub fn acquire_held(&mut self, ip: IpAddr) -> bool {
        let (mut nets, n) = self.networks(ip);
        for net in nets.iter_mut() {
            net.1 = u16::MAX;
        }
        self.sketch.try_acquire_all(&nets[..n])
    }

    /// Undo exactly one earlier successful [`Self::try_acquire`] for `ip`
    /// (or any address in the same networks).
    pub fn release(&mut self, ip: IpAddr) {
        let (nets, n) = self.networks(ip);
        let hashes = [nets[0].0, nets[1].0];
        self.sketch.release_all(&hashes[..n]);
    }
}

/// Which source addresses (address and port) hold an id of some kind, in
/// fixed memory: a counting sketch, so a wrong "holds one" needs two
/// collisions at once with a keyed hash the sender cannot aim.
///
/// ```
/// use proto_core::limit::{Holders, QuotaCell};
/// let mut cells = [QuotaCell::EMPTY; 64];
/// let mut h = Holders::new(&mut cells, [0; 16]);
/// let a = "192.0.2.1:10520".parse().unwrap();
/// let b = "192.0.2.1:10521".parse().unwrap();
/// h.add(a);
/// assert!(h.holds(a) && !h.holds(b));
/// h.remove(a);
/// assert!(!h.holds(a));
/// ```
pub struct Holders<'a> {
    sketch: Quota<'a>,
}

impl<'a> Holders<'a> {
    /// Resets `cells`; with fewer than two cells everyone holds one.
    pub fn new(cells: &'a mut [QuotaCell], key: [u8; 16]) -> Self {
        Holders {
            sketch: Quota::new(cells, key, u16::MAX),
        }
    }

    fn hash(&self, a: SocketAddr) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.sketch.key.0, self.sketch.key.1);
        let ip = match a.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        h.write(&ip.octets());
        h.write_u16(a.port());
        h.finish()
    }

    /// `a` holds one more. Saturated cells count no further (the matching
    /// [`Self::remove`] then leaves `a` counted: a wrong "holds", never a
    /// wrong "does not").
    pub fn add(&mut self, a: SocketAddr) {
        let h = self.hash(a);
        if self.sketch.cells.len() < 2 {
            return;
        }
        let (x, y) = self.sketch.cells_of(h);
        self.sketch.cells[x].0 = self.sketch.cells[x].0.saturating_add(1);
        self.sketch.cells[y].0 = self.sketch.cells[y].0.saturating_add(1);
    }

    /// `a` holds one fewer: undo exactly one earlier [`Self::add`].
    pub fn remove(&mut self, a: SocketAddr) {
        let h = self.hash(a);
        if self.sketch.cells.len() < 2 {
            return;
        }
        let (x, y) = self.sketch.cells_of(h);
        for c in [x, y] {
            // A saturated cell no longer knows its count: leave it.
            if self.sketch.cells[c].0 != u16::MAX {
                self.sketch.cells[c].0 = self.sketch.cells[c].0.saturating_sub(1);
            }
        }
    }

    /// Whether `a` may hold one (never `false` for one that does).
    pub fn holds(&self, a: SocketAddr) -> bool {
        self.sketch.cells.len() < 2 || self.sketch.count(self.hash(a)) > 0
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

    /// Limits of `v4_24`, `v6_56` and `v6_48` ids a network.
    fn limits(v4_24: u16, v6_56: u16, v6_48: u16) -> NetLimits {
        NetLimits {
            v4_24,
            v6_56,
            v6_48,
        }
    }

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

    #[test]
    fn net_limits_scale_with_the_capacity_and_never_undercut_a_source() {
        let l = NetLimits::for_capacity(1024, 64);
        assert_eq!((l.v4_24, l.v6_56, l.v6_48), (128, 64, 128));
        let l = NetLimits::for_capacity(65_536, 64);
        assert_eq!((l.v4_24, l.v6_56, l.v6_48), (8192, 2048, 8192));
        let l = NetLimits::for_capacity(16, 4);
        assert_eq!((l.v4_24, l.v6_56, l.v6_48), (4, 4, 4));
        let l = NetLimits::for_capacity(1 << 22, 64);
        assert_eq!(l.v4_24, u16::MAX);
    }

    #[test]
    fn net_quota_counts_v4_24s_and_mapped_addresses_alike() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut q = NetQuota::new(&mut cells, [5; 16], limits(2, 9, 9));
        assert!(q.try_acquire(ip("198.51.100.1")));
        assert!(q.try_acquire(ip("::ffff:198.51.100.200")));
        assert!(!q.try_acquire(ip("198.51.100.7")), "same /24");
        assert!(q.try_acquire(ip("198.51.101.7")), "another /24");
        q.release(ip("198.51.100.1"));
        assert!(q.try_acquire(ip("198.51.100.7")));
    }

    #[test]
    fn net_quota_refusal_at_one_level_counts_at_none() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut q = NetQuota::new(&mut cells, [5; 16], limits(1, 5, 1));
        assert!(q.try_acquire(ip("2001:db8:1:1::1")));
        let before = cells_snapshot(&q.sketch);
        // The /56 has room, the /48 has not: nothing is counted anywhere.
        assert!(!q.try_acquire(ip("2001:db8:1:1::2")));
        assert_eq!(cells_snapshot(&q.sketch), before);
        q.release(ip("2001:db8:1:1::1"));
        assert!(q.sketch.cells.iter().all(|c| *c == QuotaCell::EMPTY));
    }

    fn cells_snapshot(q: &Quota<'_>) -> Vec<QuotaCell> {
        q.cells.to_vec()
    }

    #[test]
    fn holders_are_per_address_and_port_and_forget_exactly() {
        let mut cells = [QuotaCell::EMPTY; 4096];
        let mut h = Holders::new(&mut cells, [9; 16]);
        let a: SocketAddr = "127.0.0.1:10520".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:10520".parse().unwrap();
        h.add(a);
        h.add(a);
        assert!(h.holds(a) && h.holds(mapped));
        let strangers = (1..200u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], 10520 + p)))
            .filter(|s| h.holds(*s))
            .count();
        assert_eq!(strangers, 0, "a wrong hold needs two collisions");
        h.remove(a);
        assert!(h.holds(a), "it still holds one");
        h.remove(a);
        assert!(!h.holds(a));
        assert!(h.sketch.cells.iter().all(|c| *c == QuotaCell::EMPTY));
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
