//! The registration tables a `proto_core::server::Server` runs over, for
//! tests, benchmarks and fuzz targets (the binaries have their own, on huge
//! pages).

use proto_core::limit::{QuotaCell, RateCell};
use proto_core::registry::Slot;
use proto_core::server::{Layout, Storage};

/// Empty tables for `capacity` registrations, owned by the caller, for
/// code that builds many servers (a fuzz target, a cost measurement) and
/// must free each one.
pub struct Tables {
    slots: Vec<Slot>,
    index: Vec<u32>,
    rate: Vec<RateCell>,
    quota: Vec<QuotaCell>,
}

impl Tables {
    /// Empty tables sized by [`Layout::for_capacity`].
    pub fn new(capacity: usize) -> Self {
        let l = Layout::for_capacity(capacity);
        Tables {
            slots: vec![Slot::EMPTY; l.slots],
            index: vec![0; l.index],
            rate: vec![RateCell::EMPTY; l.rate],
            quota: vec![QuotaCell::EMPTY; l.quota],
        }
    }

    /// The storage a server borrows.
    pub fn storage(&mut self) -> Storage<'_> {
        Storage {
            slots: &mut self.slots,
            index: &mut self.index,
            rate: &mut self.rate,
            quota: &mut self.quota,
        }
    }

    /// The storage for the rest of the process, so a harness can own its
    /// server; for tests that build a few.
    pub fn leak(self) -> Storage<'static> {
        Storage {
            slots: self.slots.leak(),
            index: self.index.leak(),
            rate: self.rate.leak(),
            quota: self.quota.leak(),
        }
    }
}

/// Empty tables for `capacity` registrations, never freed.
pub fn leaked(capacity: usize) -> Storage<'static> {
    Tables::new(capacity).leak()
}
