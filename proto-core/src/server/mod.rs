//! The sans-IO server state machine.
//!
//! [`Server::handle`] takes one datagram with the time and its source and
//! puts any replies in an [`Outbox`]; [`Server::tick`] does the timed work
//! (lease reclamation, presence fan-out) and says when it next wants to run.
//! Nothing here reads a clock, opens a socket or draws a random number.

mod stats;

pub use stats::Stats;

use core::net::SocketAddr;

use crate::limit::{QuotaCell, RateCell};
use crate::registry::Slot;
use crate::time::{Instant, Millis};
use crate::wire::Token;

/// Where the state machine puts the datagrams it wants sent.
///
/// The server calls `send` for each datagram; an implementation copies the
/// bytes into its own batch (a `sendmmsg` array, a heapless queue in tests).
/// A full outbox refuses the datagram and the state machine counts the drop:
/// the core never blocks and never buffers without bound.
pub trait Outbox {
    /// Queue `payload` for `dst`. `Err(OutboxFull)` if there is no room.
    fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> Result<(), OutboxFull>;
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
    /// Ids one source may hold (per IPv4 address, per IPv6 /64).
    pub quota_per_source: u16,
    /// Requests per second one source may send, sustained.
    pub rate_per_sec: u32,
    /// Requests one source may send in a burst.
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
        }
    }
}

/// How many cells of each table a server of a given capacity needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Registry slots (the capacity).
    pub slots: usize,
    /// Hash index cells (a power of two).
    pub index: usize,
    /// Rate-limit cells.
    pub rate: usize,
    /// Quota cells.
    pub quota: usize,
}

impl Layout {
    /// The layout for `capacity` registrations.
    pub fn for_capacity(capacity: usize) -> Layout {
        let _ = capacity;
        todo!("core: layout")
    }

    /// Bytes of storage this layout takes.
    pub fn bytes(&self) -> usize {
        todo!("core: layout bytes")
    }
}

/// The tables a server runs on, handed in once and never grown.
pub struct Storage<'a> {
    /// Registry slots; `capacity` of them.
    pub slots: &'a mut [Slot],
    /// Hash index cells; a power of two, see [`Layout`].
    pub index: &'a mut [u32],
    /// Rate-limit cells.
    pub rate: &'a mut [RateCell],
    /// Quota cells.
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

/// The rendezvous server, without I/O.
pub struct Server<'a> {
    _storage: Storage<'a>,
    stats: Stats,
}

impl<'a> Server<'a> {
    /// Build a server over `storage`. `entropy` keys the hash index, the
    /// cookies, the owner tokens and the limiters; give it 32 random bytes.
    pub fn new(
        config: Config,
        storage: Storage<'a>,
        entropy: [u8; 32],
    ) -> Result<Self, ConfigError> {
        let _ = (config, entropy);
        Ok(Server {
            _storage: storage,
            stats: Stats::default(),
        })
    }

    /// Handle one datagram from `src` that arrived at `now`.
    pub fn handle(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &mut impl Outbox,
    ) {
        let _ = (now, src, datagram, out);
        todo!("core: handle")
    }

    /// Do timed work due at `now`; returns when it next wants to run.
    pub fn tick(&mut self, now: Instant, out: &mut impl Outbox) -> Option<Instant> {
        let _ = (now, out);
        todo!("core: tick")
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
