//! What the crate's unit tests share to stand a server up. Tests outside
//! the crate use `testkit::tables`, which cannot serve here: a unit test
//! builds its own copy of this crate, whose types are not testkit's.

extern crate std;

use std::boxed::Box;
use std::vec;

use super::{Layout, Storage};
use crate::limit::{QuotaCell, RateCell};
use crate::registry::Slot;

/// Empty tables for `capacity` registrations, never freed: each test
/// builds a few, and `'static` lets a harness own its server.
pub(crate) fn leaked_storage(capacity: usize) -> Storage<'static> {
    fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }
    let l = Layout::for_capacity(capacity);
    Storage {
        slots: leak(Slot::EMPTY, l.slots),
        index: leak(0u32, l.index),
        rate: leak(RateCell::EMPTY, l.rate),
        quota: leak(QuotaCell::EMPTY, l.quota),
    }
}
