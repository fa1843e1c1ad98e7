//! Time as a value: the core never reads a clock.

use core::ops::{Add, Sub};

/// A point in time, in milliseconds since an arbitrary epoch chosen by the caller.
///
/// The server passes milliseconds since it started; tests pass whatever they
/// like. Only differences matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Millis(s.saturating_mul(1000))
    }
}

impl Add<Millis> for Instant {
    type Output = Instant;
    fn add(self, rhs: Millis) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Millis> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Millis) -> Instant {
        Instant(self.0.saturating_sub(rhs.0))
    }
}
