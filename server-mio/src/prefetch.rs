//! Prefetching a received batch while handling it.
//!
//! A lookup reads an index cell, then the slot it names: two dependent
//! cache misses on a table larger than the caches. [`Plans::plan`] hashes
//! the batch's ids; then, as each datagram is handled, [`Plans::take`] asks
//! for the cell of the datagram [`CELL_AHEAD`] places on and the slot of
//! the one [`SLOT_AHEAD`] places on (its cell has arrived by then). The
//! misses overlap with each other and with the handling, and only a few
//! are in flight at a time: asking for a whole batch's cells, then all its
//! slots (two lines each), at once fills the core's line-fill buffers, and
//! the prefetch instructions themselves stall (benches/RESULTS.md).
//! Prefetching pays at both table sizes (benches/RESULTS.md): the kernel's
//! own traffic through the caches evicts even a 10k table between batches.

use proto_core::registry::Plan;
use proto_core::server::Server;

use crate::net::BATCH;

/// How many datagrams ahead of the one being handled its slot is asked
/// for: enough handling time to cover a miss to memory, few enough lines
/// in flight for the line-fill buffers.
pub const SLOT_AHEAD: usize = 8;

/// How many datagrams ahead of the one being handled its index cell is
/// asked for: its slot is asked for `CELL_AHEAD - SLOT_AHEAD` datagrams
/// later, when the cell has arrived.
pub const CELL_AHEAD: usize = 16;

/// The plans of one batch, kept between batches so they are never copied.
pub struct Plans {
    plans: [Option<Plan>; BATCH],
    len: usize,
}

impl Default for Plans {
    fn default() -> Self {
        Plans {
            plans: [None; BATCH],
            len: 0,
        }
    }
}

impl Plans {
    /// Plan each datagram of a batch (`None` for a slot that holds none)
    /// and prefetch the index cells of the first [`CELL_AHEAD`] datagrams,
    /// then the slots of the first [`SLOT_AHEAD`]. Datagrams beyond
    /// [`BATCH`] are not planned.
    pub fn plan<'d>(
        &mut self,
        server: &Server<'_>,
        batch: impl IntoIterator<Item = Option<&'d [u8]>>,
    ) {
        self.len = 0;
        for (plan, d) in self.plans.iter_mut().zip(batch) {
            *plan = d.and_then(|d| server.plan(d));
            self.len += 1;
        }
        for i in 0..CELL_AHEAD.min(self.len) {
            self.prefetch_cell(server, i);
        }
        for i in 0..SLOT_AHEAD.min(self.len) {
            self.prefetch_slot(server, i);
        }
    }

    /// The plan of the batch's datagram `i`, for [`Server::handle_planned`],
    /// once the cell of datagram `i + CELL_AHEAD` and the slot of datagram
    /// `i + SLOT_AHEAD` have been asked for. Call it for each datagram in
    /// turn, just before handling it.
    pub fn take(&self, server: &Server<'_>, i: usize) -> Option<Plan> {
        self.prefetch_cell(server, i + CELL_AHEAD);
        self.prefetch_slot(server, i + SLOT_AHEAD);
        if i < self.len { self.plans[i] } else { None }
    }

    fn prefetch_cell(&self, server: &Server<'_>, i: usize) {
        if i < self.len {
            if let Some(cell) = self.plans[i].as_ref().and_then(|p| server.cell_hint(p)) {
                lines(cell).for_each(prefetch);
            }
        }
    }

    fn prefetch_slot(&self, server: &Server<'_>, i: usize) {
        if i < self.len {
            if let Some(slot) = self.plans[i].as_ref().and_then(|p| server.slot_hint(p)) {
                lines(slot).for_each(prefetch);
            }
        }
    }
}

/// Bytes of a cache line.
const LINE: usize = 64;

/// One address in each cache line that `value` lies in.
fn lines<T>(value: &T) -> impl Iterator<Item = *const u8> + use<T> {
    let start = std::ptr::from_ref(value).cast::<u8>();
    let skew = start as usize % LINE;
    let first = start.wrapping_sub(skew);
    (0..(skew + size_of::<T>()).div_ceil(LINE)).map(move |k| first.wrapping_add(k * LINE))
}

/// Bring the cache line at `p` in, without waiting for it.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program;
    // SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::registry::Slot;
    use proto_core::server::Config;

    #[test]
    fn the_lines_of_a_value_cover_it_whole_one_address_per_line() {
        let slots = vec![Slot::EMPTY; 4];
        for slot in &slots {
            let at = std::ptr::from_ref(slot) as usize;
            let len = size_of::<Slot>();
            let lines: Vec<usize> = lines(slot).map(|p| p as usize).collect();
            assert!(lines[0] <= at && at < lines[0] + 64);
            assert!(*lines.last().unwrap() + 64 >= at + len);
            assert!(lines.windows(2).all(|w| w[1] == w[0] + 64));
            assert!(lines.iter().all(|l| l % 64 == 0));
        }
        let cell = 7u32;
        assert_eq!(lines(&cell).count(), 1);
    }

    #[test]
    fn every_datagram_that_names_an_id_is_planned_in_order() {
        let storage = testkit::tables::leaked(1024);
        let server = Server::new(Config::default(), storage, [3; 32]).unwrap();
        let batch: [Option<&[u8]>; 4] = [
            Some(b"LOOKUP 1 - alice"),
            None,
            Some(b"HELLO 2"),
            Some(b"ID bob"),
        ];
        let mut plans = Plans::default();
        plans.plan(&server, batch);
        assert_eq!(plans.take(&server, 0), server.plan(b"LOOKUP 1 - alice"));
        assert!(plans.take(&server, 0).is_some());
        assert_eq!(plans.take(&server, 1), None);
        assert_eq!(plans.take(&server, 2), None);
        assert_eq!(plans.take(&server, 3), server.plan(b"ID bob"));
        assert!(plans.take(&server, 3).is_some());
        // Beyond the batch, and beyond BATCH: nothing, and no panic.
        assert_eq!(plans.take(&server, 4), None);
        assert_eq!(plans.take(&server, BATCH + SLOT_AHEAD), None);
        // A shorter batch next leaves nothing of this one behind.
        plans.plan(&server, [Some(&b"HELLO 3"[..])]);
        assert_eq!(plans.take(&server, 0), None);
        assert_eq!(plans.take(&server, 3), None);
    }
}
