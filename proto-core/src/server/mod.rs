//! The sans-IO server state machine.
//!
//! [`Server::handle`] takes one datagram with the time and its source and
//! puts any replies in an [`Outbox`]; [`Server::tick`] does the timed work
//! (lease reclamation, presence fan-out) and says when it next wants to run.
//! Nothing here reads a clock, opens a socket or draws a random number.
//!
//! ```
//! use core::net::SocketAddr;
//! use proto_core::limit::{QuotaCell, RateCell};
//! use proto_core::registry::Slot;
//! use proto_core::server::{Config, Layout, Server, Storage, VecOutbox};
//! use proto_core::Instant;
//!
//! // A server allocates its tables once; a device would use static arrays.
//! let layout = Layout::for_capacity(1024);
//! let mut slots = vec![Slot::EMPTY; layout.slots];
//! let mut index = vec![0u32; layout.index];
//! let mut rate = vec![RateCell::EMPTY; layout.rate];
//! let mut quota = vec![QuotaCell::EMPTY; layout.quota];
//! let storage = Storage { slots: &mut slots, index: &mut index, rate: &mut rate, quota: &mut quota };
//! let mut server = Server::new(Config::default(), storage, [7; 32]).unwrap();
//! let mut out = VecOutbox::<8>::new();
//! let alice: SocketAddr = "127.0.0.1:10520".parse().unwrap();
//! server.handle(Instant::from_secs(1), alice, b"ID alice", &mut out);
//! server.tick(Instant::from_secs(1), &mut out);
//! assert_eq!(out.pop().unwrap().1.as_slice(), b"List ['alice']");
//! ```

mod ext;
mod fanout;
mod keys;
mod outbox;
mod plan;
mod relay;
mod seed;
mod snapshot;
mod stats;
mod stun;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use outbox::VecOutbox;
pub use snapshot::{Continuity, RestoreError, Restored};
pub use stats::{Stats, VERBS};

use core::net::SocketAddr;

use crate::MAX_DATAGRAM;
use crate::cookie::CookieJar;
use crate::limit::{Holders, NetLimits, NetQuota, Quota, QuotaCell, RateCell, RateLimiter};
use crate::presence::ChangeLog;
use crate::registry::{Entry, Handle, Owner, Plan, Registry, Slot, Subscription};
use crate::time::{Instant, Millis};
use crate::wire::classify::{self, Family};
use crate::wire::request::MAX_LEASE_SECS;
use crate::wire::{ErrorCode, Id, IdBuf, PublicKey, Reply, Token, TxId};

/// Where the state machine puts the datagrams it wants sent.
///
/// The server calls `send` for each datagram; an implementation copies the
/// bytes into its own batch (a `sendmmsg` array, a heapless queue in tests).
/// A full outbox refuses the datagram and the state machine counts the drop:
/// the core never blocks and never buffers without bound.
pub trait Outbox {
    /// Queue `payload` for `dst`. `Err(OutboxFull)` if there is no room.
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull>;

    /// A buffer of at least [`MAX_DATAGRAM`] bytes to write the next
    /// datagram into where it will be sent from, saving the copy `send`
    /// makes; [`Outbox::commit`] then queues it. `None` (the default, and
    /// when there is no room) has the server write into a buffer of its
    /// own and call `send`. Reserving without committing queues nothing.
    fn reserve(&mut self) -> Option<&mut [u8]> {
        None
    }

    /// Queue for `dst` the first `len` bytes written into the buffer the
    /// last [`Outbox::reserve`] gave. Only called after a reserve that
    /// gave a buffer, with `len` no larger than that buffer.
    fn commit(&mut self, dst: SocketAddr, len: usize) -> Result<(), OutboxFull> {
        let _ = (dst, len);
        Err(OutboxFull)
    }
}

/// The outbox had no room for another datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxFull;

impl core::fmt::Display for OutboxFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the outbox has no room for another datagram")
    }
}

/// Everything an operator can tune.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease granted when a `REG` asks for none, in seconds.
    pub lease_default: u32,
    /// Shortest lease granted, in seconds.
    pub lease_min: u32,
    /// Longest lease granted, in seconds.
    pub lease_max: u32,
    /// Lease of a seed (`ID`) registration, in seconds: seed clients never refresh.
    pub seed_lease: u32,
    /// Each subscriber gets at most one presence datagram per interval.
    pub presence_interval: Millis,
    /// Presence datagrams per second, for all subscribers together.
    pub fanout_per_sec: u32,
    /// Ids one source may hold (per IPv4 address, per IPv6 /64). The
    /// networks around a source have quotas of their own, sized from the
    /// capacity: see [`NetLimits::for_capacity`].
    pub quota_per_source: u16,
    /// Requests per second one source may send, sustained. Requests that
    /// echo a valid cookie and those that do not (seed verbs, `HELLO`,
    /// anything with a bad cookie) have budgets of this size each, so
    /// traffic spoofed from an address cannot use up the budget of the
    /// client that really has it.
    pub rate_per_sec: u32,
    /// Requests one source may send in a burst (each budget).
    pub rate_burst: u32,
    /// Error replies per second one source may receive.
    pub error_rate_per_sec: u32,
    /// Quotas and rate limits on (off for benchmarks on one host).
    pub limits: bool,
    /// Refuse the seed's unauthenticated verbs.
    pub strict: bool,
    /// Token that unlocks `STATS` from other than loopback.
    pub admin_token: Option<Token>,
    /// How long a cookie stays valid (it is accepted for one more window).
    pub cookie_window: Millis,
    /// STUN Binding answers per second, all sources together (0: no STUN).
    pub stun_per_sec: u32,
    /// Octets per second all relay sessions together may forward (0: no relay).
    pub relay_bytes_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_default: 120,
            lease_min: 15,
            lease_max: 3600,
            seed_lease: 3600,
            presence_interval: Millis(100),
            fanout_per_sec: 10_000,
            quota_per_source: 64,
            rate_per_sec: 200,
            rate_burst: 400,
            error_rate_per_sec: 10,
            limits: true,
            strict: false,
            admin_token: None,
            cookie_window: Millis::from_secs(120),
            stun_per_sec: 20_000,
            relay_bytes_per_sec: 20_000_000,
        }
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_min == 0 || self.lease_min > self.lease_max {
            return Err(ConfigError::BadSetting("lease_min"));
        }
        if self.lease_max > MAX_LEASE_SECS {
            return Err(ConfigError::BadSetting("lease_max"));
        }
        if !(self.lease_min..=self.lease_max).contains(&self.lease_default) {
            return Err(ConfigError::BadSetting("lease_default"));
        }
        if self.seed_lease == 0 || self.seed_lease > MAX_LEASE_SECS {
            return Err(ConfigError::BadSetting("seed_lease"));
        }
        if self.fanout_per_sec == 0 {
            return Err(ConfigError::BadSetting("fanout_per_sec"));
        }
        if self.cookie_window.0 < 1000 {
            return Err(ConfigError::BadSetting("cookie_window"));
        }
        if self.limits && (self.quota_per_source == 0 || self.rate_per_sec == 0) {
            return Err(ConfigError::BadSetting("quota_per_source or rate_per_sec"));
        }
        Ok(())
    }

    /// Clamp a requested lease to what this server grants.
    fn grant(&self, asked: Option<u32>) -> u32 {
        asked
            .unwrap_or(self.lease_default)
            .clamp(self.lease_min, self.lease_max)
    }
}

/// How many cells of each table a server of a given capacity needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Registry slots (the capacity).
    pub slots: usize,
    /// Hash index cells (a power of two).
    pub index: usize,
    /// Rate-limit cells: three limiters (requests without a valid cookie,
    /// requests with one, error replies) share them.
    pub rate: usize,
    /// Quota cells: three sketches (sources, networks, seed holders) share them.
    pub quota: usize,
}

impl Layout {
    /// The layout for `capacity` registrations.
    pub fn for_capacity(capacity: usize) -> Layout {
        Layout {
            slots: capacity,
            index: crate::registry::index_len_for(capacity),
            rate: 3 * crate::limit::rate_cells_for(capacity),
            quota: 3 * crate::limit::quota_cells_for(capacity),
        }
    }

    /// Bytes of storage this layout takes.
    pub fn bytes(&self) -> usize {
        self.slots * core::mem::size_of::<Slot>()
            + self.index * core::mem::size_of::<u32>()
            + self.rate * core::mem::size_of::<RateCell>()
            + self.quota * core::mem::size_of::<QuotaCell>()
    }
}

/// The tables a server runs on, handed in once and never grown.
pub struct Storage<'a> {
    /// Registry slots; `capacity` of them.
    pub slots: &'a mut [Slot],
    /// Hash index cells; see [`Layout`].
    pub index: &'a mut [u32],
    /// Rate-limit cells; see [`Layout`].
    pub rate: &'a mut [RateCell],
    /// Quota cells; see [`Layout`].
    pub quota: &'a mut [QuotaCell],
}

/// Why a server could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The storage does not match a [`Layout`].
    BadStorage,
    /// A setting is out of range.
    BadSetting(&'static str),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::BadStorage => f.write_str("the storage does not match the table layout"),
            ConfigError::BadSetting(what) => write!(f, "the setting {what} is out of range"),
        }
    }
}

/// The clock hand goes round the whole table once in this long, however
/// busy the server is, so an expired lease holds its slot for about this
/// long (a lookup reclaims what it finds at once, and a registration into
/// a full table searches further). Slower only when ticks are too far
/// apart for [`SWEEP_MAX_PER_TICK`]: a 1M table ticked once a second goes
/// round in 16 s. Tied to time, not to traffic: on a table larger than the
/// caches every visit is a cache miss, and visits paid per datagram (or
/// even in bulk at the tick, in proportion to traffic) would make every
/// request dearer.
const SWEEP_ROUND: Millis = Millis(10_000);
/// The most slots one tick visits, so a server that ticks rarely never
/// stalls for a sweep of its whole table.
const SWEEP_MAX_PER_TICK: u64 = 1 << 16;
/// Extra slots a registration into a full table may search for an expired lease.
const SWEEP_WHEN_FULL: usize = 64;
/// List rounds that no change caused (`ID2 `, an `ID` that renews) start at
/// most this often across the whole server; one asked for sooner starts
/// when this has passed, so a seed client still gets the list it waits for.
const RELIST_INTERVAL: Millis = Millis(1000);

/// Who a new registration belongs to (see [`Server::enroll`]).
enum Claim {
    /// The source address, under the seed's rule.
    Address,
    /// A token minted for it, with the key it binds, if any.
    Token {
        /// The public key bound for the whole lease.
        key: Option<PublicKey>,
    },
}

/// The rendezvous server, without I/O.
pub struct Server<'a> {
    cfg: Config,
    reg: Registry<'a>,
    cookies: CookieJar,
    /// Requests that do not echo a valid cookie, by source.
    req_limit: RateLimiter<'a>,
    /// Requests that echo a valid cookie, by source: spoofed traffic
    /// cannot charge this one.
    cookie_limit: RateLimiter<'a>,
    err_limit: RateLimiter<'a>,
    quota: Quota<'a>,
    net_quota: NetQuota<'a>,
    /// Addresses that hold a seed id: only they may ask for a list round.
    seed_holders: Holders<'a>,
    /// When the last list round that no change caused started.
    relisted_at: Option<Instant>,
    /// A list round was asked for too soon after the last one.
    relist_owed: bool,
    fanout: fanout::Fanout,
    log: ChangeLog,
    /// Bumped on every change a seed subscriber would see in its `List`, and
    /// on `ID2`; a seed subscriber whose `sub_seq` differs is owed a `List`.
    seed_version: u32,
    tokens: keys::TokenMint,
    stun: stun::StunBudget,
    relay: relay::Relay,
    stats: Stats,
    /// The plan of the datagram [`Server::handle_planned`] is handling;
    /// `None` outside that call.
    planned: Option<Plan>,
    /// When the clock hand last moved (`None` before the first tick).
    swept_at: Option<Instant>,
    scratch: [u8; MAX_DATAGRAM],
}

impl<'a> Server<'a> {
    /// Build a server over `storage`. `entropy` keys the hash index, the
    /// cookies, the owner tokens and the limiters; give it 32 random bytes.
    pub fn new(
        config: Config,
        storage: Storage<'a>,
        entropy: [u8; 32],
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = keys::Keys::derive(&entropy);
        let Storage {
            slots,
            index,
            rate,
            quota,
        } = storage;
        if rate.len() < 3 || quota.len() < 3 {
            return Err(ConfigError::BadStorage);
        }
        let capacity = slots.len();
        let reg = Registry::new(slots, index, keys.index).map_err(|_| ConfigError::BadStorage)?;
        let third = rate.len() / 3;
        let (req_cells, rest) = rate.split_at_mut(third);
        let (cookie_cells, err_cells) = rest.split_at_mut(third);
        let req_limit = RateLimiter::new(
            req_cells,
            keys.limit,
            config.rate_per_sec,
            config.rate_burst.max(1),
        );
        let cookie_limit = RateLimiter::new(
            cookie_cells,
            keys.limit,
            config.rate_per_sec,
            config.rate_burst.max(1),
        );
        let err_limit = RateLimiter::new(
            err_cells,
            keys.limit,
            config.error_rate_per_sec.max(1),
            config.error_rate_per_sec.max(1),
        );
        let third = quota.len() / 3;
        let (source_cells, rest) = quota.split_at_mut(third);
        let (net_cells, holder_cells) = rest.split_at_mut(third);
        let quota = Quota::new(source_cells, keys.quota, config.quota_per_source);
        let net_limits = NetLimits::for_capacity(capacity, config.quota_per_source);
        let net_quota = NetQuota::new(net_cells, keys.quota, net_limits);
        let seed_holders = Holders::new(holder_cells, keys.quota);
        let stats = Stats {
            capacity: capacity as u64,
            ..Stats::default()
        };
        Ok(Server {
            cookies: CookieJar::new(keys.cookie, config.cookie_window),
            fanout: fanout::Fanout::new(config.fanout_per_sec),
            tokens: keys::TokenMint::new(keys.token),
            stun: stun::StunBudget::new(config.stun_per_sec),
            relay: relay::Relay::new(&entropy, config.relay_bytes_per_sec),
            cfg: config,
            reg,
            req_limit,
            cookie_limit,
            err_limit,
            quota,
            net_quota,
            seed_holders,
            relisted_at: None,
            relist_owed: false,
            log: ChangeLog::new(),
            seed_version: 0,
            stats,
            planned: None,
            swept_at: None,
            scratch: [0; MAX_DATAGRAM],
        })
    }

    /// Count `datagram` in and say which family it is. Every datagram
    /// counts, whichever port it came to and whatever becomes of it.
    fn arrived(&mut self, datagram: &[u8]) -> Family {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        classify::family(datagram)
    }

    /// Handle one datagram from `src` that arrived at `now`.
    pub fn handle(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &mut impl Outbox,
    ) {
        match self.arrived(datagram) {
            Family::Stun => self.handle_stun(now, src, datagram, out),
            // Relayed data has its own per-session and global budgets.
            Family::RelayFrame => self.handle_relay_frame(now, src, datagram, out),
            // Charged like any request that has not yet shown a cookie.
            Family::RelayRequest => {
                if self.charge_uncookied(now, src) {
                    self.handle_relay_request(now, src, datagram, out);
                }
            }
            // The seed protocol has no cookie: its verbs are charged to the
            // budget of requests that prove nothing, and get no
            // rate-limited reply (the seed client would not understand one).
            Family::Seed => {
                if self.charge_uncookied(now, src) {
                    if self.cfg.strict {
                        self.stats.drop_strict += 1;
                    } else {
                        self.handle_seed(now, src, datagram, out);
                    }
                }
            }
            Family::Extended => self.handle_ext(now, src, datagram, out),
        }
    }

    /// Charge a request that carries no cookie to its source's budget for
    /// such requests; `false`, counted, when that is spent.
    fn charge_uncookied(&mut self, now: Instant, src: SocketAddr) -> bool {
        if self.cfg.limits && !self.req_limit.allow(now, src.ip()) {
            self.stats.drop_rate_limited += 1;
            return false;
        }
        true
    }

    /// Do timed work due at `now`; returns when it next wants to run. The
    /// clock hand that reclaims expired leases moves only here, at a pace
    /// that takes it round the table every ten seconds from the first tick.
    pub fn tick(&mut self, now: Instant, out: &mut impl Outbox) -> Option<Instant> {
        let budget = self.sweep_budget(now);
        self.reclaim(now, budget);
        let relist_due = self.relist_due(now);
        let fanout_due = self.fan_out(now, out);
        // Leases are reclaimed lazily on lookup as well, so the sweep only
        // has to keep memory honest: once a second is plenty.
        let sweep_due = now + Millis(1000);
        let due = fanout_due.map_or(sweep_due, |t| t.min(sweep_due));
        Some(relist_due.map_or(due, |t| t.min(due)))
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Walk the whole table and check its invariants: every entry findable
    /// by its id (so no id is held twice), counts that agree, lists that
    /// hold exactly the entries they should. O(capacity): for tests and
    /// fuzzing, never for the hot path.
    pub fn audit(&self, now: Instant) -> Result<(), &'static str> {
        let longest = Millis::from_secs(u64::from(self.cfg.lease_max.max(self.cfg.seed_lease)));
        let cap = self.reg.capacity();
        let (mut live, mut subs) = (0usize, 0usize);
        for slot in 0..cap as u32 {
            let Some((h, e)) = self.reg.at_slot(slot) else {
                continue;
            };
            live += 1;
            let id = e.id.as_id().ok_or("a stored id is not a valid id")?;
            if self.reg.find(id) != Some(h) {
                return Err("an entry cannot be found by its id");
            }
            if e.expires > now + longest {
                return Err("a lease runs longer than the server grants");
            }
            if e.sub != crate::registry::Subscription::None {
                subs += 1;
            }
        }
        if live != self.reg.len() || live > cap {
            return Err("the entry count disagrees with the table");
        }
        if self.reg.order().count() != live {
            return Err("the registration order list does not hold every entry once");
        }
        if subs != self.reg.subscriber_count() {
            return Err("the subscriber count disagrees with the table");
        }
        if self.stats.occupancy != live as u64 {
            return Err("the occupancy gauge disagrees with the table");
        }
        Ok(())
    }

    /// Every registration the table holds, in registration order (the
    /// order seed clients' lists show; expired ones not yet reclaimed
    /// included). O(occupancy): for saving, tests and fuzzing, never for
    /// the hot path.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.reg.order().map(|(_, e)| e)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Slots the clock hand is due to visit at `now`: its share of a
    /// [`SWEEP_ROUND`] since it last moved. Time short of one slot's share
    /// is carried to the next tick, so frequent ticks still sweep.
    fn sweep_budget(&mut self, now: Instant) -> usize {
        let Some(at) = self.swept_at else {
            self.swept_at = Some(now);
            return 0;
        };
        let due = (self.reg.capacity() as u64).saturating_mul(now.since(at)) / SWEEP_ROUND.0;
        if due > 0 {
            self.swept_at = Some(now);
        }
        due.min(SWEEP_MAX_PER_TICK) as usize
    }

    /// Visit up to `budget` slots with the clock hand, reclaiming expired leases.
    fn reclaim(&mut self, now: Instant, budget: usize) {
        let mut left = budget;
        // Each call visits slots out of `left` and stops at the first
        // expired one; we remove it and go on with what is left.
        while let Some(h) = self.reg.sweep(now, &mut left) {
            self.remove(h);
            self.stats.expired += 1;
        }
    }

    /// Find a live registration; an expired one found here is reclaimed.
    fn find_live(&mut self, now: Instant, id: crate::wire::Id<'_>) -> Option<Handle> {
        let h = self.reg.find_planned(id, self.planned.as_ref())?;
        if self.reg.get(h).expires <= now {
            self.remove(h);
            self.stats.expired += 1;
            return None;
        }
        Some(h)
    }

    /// Remove a registration and tell presence about it.
    fn remove(&mut self, h: Handle) {
        let e = self.reg.remove_planned(h, self.planned.as_ref());
        self.release_quota(e.addr);
        if e.owner == crate::registry::Owner::Address {
            self.seed_holders.remove(e.addr);
        }
        if let Some(id) = e.id.as_id() {
            self.log.push(false, id);
        }
        self.seed_version = self.seed_version.wrapping_add(1);
        self.fanout.changed(self.reg.subscriber_count());
        self.refresh_gauges();
    }

    /// Make room for one registration from `src`: check its quota and, if
    /// the table is full, look a little further for an expired lease.
    fn admit(&mut self, now: Instant, src: SocketAddr) -> Result<(), ErrorCode> {
        if self.reg.len() >= self.reg.capacity() {
            self.reclaim(now, SWEEP_WHEN_FULL);
            if self.reg.len() >= self.reg.capacity() {
                return Err(ErrorCode::TableFull);
            }
        }
        self.acquire_quota(src)
    }

    /// Count one more id for `src`'s address and networks, or refuse.
    fn acquire_quota(&mut self, src: SocketAddr) -> Result<(), ErrorCode> {
        if !self.cfg.limits {
            return Ok(());
        }
        if !self.quota.try_acquire(src.ip()) {
            return Err(ErrorCode::OverQuota);
        }
        if !self.net_quota.try_acquire(src.ip()) {
            self.quota.release(src.ip());
            return Err(ErrorCode::OverQuota);
        }
        Ok(())
    }

    /// Undo one [`Self::acquire_quota`] for `src`.
    fn release_quota(&mut self, src: SocketAddr) {
        if self.cfg.limits {
            self.quota.release(src.ip());
            self.net_quota.release(src.ip());
        }
    }

    /// Register `id` for `src` for `lease` seconds, if it is new: admit
    /// the source, store the entry, give the quota back if the table
    /// refuses it, and announce it. The one way an id enters the table
    /// from the network, for both protocols.
    fn enroll(
        &mut self,
        now: Instant,
        src: SocketAddr,
        id: Id<'_>,
        lease: u32,
        claim: Claim,
    ) -> Result<Handle, ErrorCode> {
        self.admit(now, src)?;
        let (owner, key, sub, sub_seq) = match claim {
            // A seed client is owed the list from the moment it registers.
            Claim::Address => (
                Owner::Address,
                None,
                Subscription::SeedList,
                self.seed_version.wrapping_sub(1),
            ),
            Claim::Token { key } => (Owner::Token(self.tokens.next()), key, Subscription::None, 0),
        };
        let entry = Entry {
            id: IdBuf::from_id(id),
            addr: src,
            expires: now + Millis::from_secs(u64::from(lease)),
            lease,
            owner,
            key,
            sub,
            sub_seq,
            sub_sent: seed::NEVER,
        };
        let Ok(h) = self.reg.insert_planned(entry, self.planned.as_ref()) else {
            self.release_quota(src);
            return Err(ErrorCode::TableFull);
        };
        if owner == Owner::Address {
            self.seed_holders.add(src);
        }
        self.joined(h);
        Ok(h)
    }

    /// Tell presence that `h` joined.
    fn joined(&mut self, h: Handle) {
        if let Some(id) = self.reg.get(h).id.as_id() {
            self.log.push(true, id);
        }
        self.seed_version = self.seed_version.wrapping_add(1);
        self.stats.registrations += 1;
        self.fanout.changed(self.reg.subscriber_count());
        self.refresh_gauges();
    }

    /// Move a registration to a new source address, moving its quota too.
    fn rebind(&mut self, h: Handle, src: SocketAddr) -> Result<(), ErrorCode> {
        let old = self.reg.get(h).addr;
        if old == src {
            return Ok(());
        }
        if old.ip() != src.ip() {
            // Release first, so a move inside a network at its limit stays
            // possible; a refused move takes the old count back.
            self.release_quota(old);
            if let Err(e) = self.acquire_quota(src) {
                let _ = self.acquire_quota(old);
                return Err(e);
            }
        }
        self.reg.get_mut(h).addr = src;
        Ok(())
    }

    fn refresh_gauges(&mut self) {
        self.stats.occupancy = self.reg.len() as u64;
        self.stats.subscribers = self.reg.subscriber_count() as u64;
    }

    /// Emit `reply` into the scratch buffer and send it to `dst`.
    ///
    /// `limit` is the largest reply this destination may get: the request's
    /// length for an address no cookie has validated (no amplification),
    /// [`MAX_DATAGRAM`] otherwise.
    fn send_reply(
        &mut self,
        out: &mut impl Outbox,
        dst: SocketAddr,
        reply: &Reply<'_>,
        limit: usize,
    ) {
        let (buf, in_place) = match out.reserve() {
            Some(buf) => (buf, true),
            None => (&mut self.scratch[..], false),
        };
        let Ok(n) = reply.emit(buf) else {
            // Every reply the server builds fits a datagram; a failure here
            // is a bug, counted rather than panicking on a network path.
            self.stats.drop_outbox_full += 1;
            return;
        };
        if n > limit {
            self.stats.drop_amplification += 1;
            return;
        }
        if !in_place {
            send_bytes(out, &mut self.stats, dst, &self.scratch[..n]);
            return;
        }
        count_sent(&mut self.stats, out.commit(dst, n), n);
    }

    /// Send `ERR tx code` if the source's error budget allows it.
    fn send_error(
        &mut self,
        now: Instant,
        out: &mut impl Outbox,
        dst: SocketAddr,
        tx: Option<TxId<'_>>,
        code: ErrorCode,
        limit: usize,
    ) {
        if self.cfg.limits && !self.err_limit.allow(now, dst.ip()) {
            self.stats.drop_error_limited += 1;
            return;
        }
        let before = self.stats.datagrams_out;
        self.send_reply(out, dst, &Reply::Error { tx, code }, limit);
        if self.stats.datagrams_out != before {
            self.stats.count_error(code);
        } else if self.cfg.limits {
            // Not sent (too large for an unvalidated source, or no room):
            // the budget pays only for errors that leave.
            self.err_limit.refund(dst.ip());
        }
    }
}

/// Hand `bytes` to the outbox, counting what went and what did not.
fn send_bytes(out: &mut impl Outbox, stats: &mut Stats, dst: SocketAddr, bytes: &[u8]) -> bool {
    count_sent(stats, out.send(dst, bytes), bytes.len())
}

/// Count a datagram of `len` bytes the outbox took, or the drop if it did not.
fn count_sent(stats: &mut Stats, queued: Result<(), OutboxFull>, len: usize) -> bool {
    match queued {
        Ok(()) => {
            stats.datagrams_out += 1;
            stats.bytes_out += len as u64;
            true
        }
        Err(OutboxFull) => {
            stats.drop_outbox_full += 1;
            false
        }
    }
}
