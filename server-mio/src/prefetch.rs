//! Prefetching a received batch before handling it.
//!
//! A lookup reads an index cell, then the slot it names: two dependent
//! cache misses on a table larger than the caches. Asking for every
//! datagram's cell first, then every slot, lets a batch's misses overlap
//! rather than queue one behind another. It pays even with 10k ids: the
//! kernel's own traffic through the caches evicts the tables between
//! batches (lookup +3%, 7 alternating pairs; see benches/RESULTS.md).

use proto_core::registry::Plan;
use proto_core::server::Server;

use crate::net::BATCH;

/// Plan each datagram of a batch (`None` for a slot that holds none), then
/// prefetch the index cells the plans name, then the slots those cells
/// name. Returns the plans in batch order, for [`Server::handle_planned`].
/// Datagrams beyond [`BATCH`] are not planned.
pub fn prefetch_batch<'d>(
    server: &Server<'_>,
    batch: impl IntoIterator<Item = Option<&'d [u8]>>,
) -> [Option<Plan>; BATCH] {
    let mut plans = [None; BATCH];
    for (plan, d) in plans.iter_mut().zip(batch) {
        *plan = d.and_then(|d| server.plan(d));
        if let Some(hint) = plan.and_then(|p| server.cell_hint(p)) {
            hint.lines().for_each(prefetch);
        }
    }
    for plan in plans.iter().flatten() {
        if let Some(hint) = server.slot_hint(*plan) {
            hint.lines().for_each(prefetch);
        }
    }
    plans
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
    use proto_core::limit::{QuotaCell, RateCell};
    use proto_core::registry::Slot;
    use proto_core::server::{Config, Layout, Storage};

    #[test]
    fn every_datagram_that_names_an_id_is_planned_in_order() {
        let l = Layout::for_capacity(1024);
        let storage = Storage {
            slots: Vec::leak(vec![Slot::EMPTY; l.slots]),
            index: Vec::leak(vec![0u32; l.index]),
            rate: Vec::leak(vec![RateCell::EMPTY; l.rate]),
            quota: Vec::leak(vec![QuotaCell::EMPTY; l.quota]),
        };
        let server = Server::new(Config::default(), storage, [3; 32]).unwrap();
        let batch: [Option<&[u8]>; 4] = [
            Some(b"LOOKUP 1 - alice"),
            None,
            Some(b"HELLO 2"),
            Some(b"ID bob"),
        ];
        let plans = prefetch_batch(&server, batch);
        assert_eq!(plans[0], server.plan(b"LOOKUP 1 - alice"));
        assert!(plans[0].is_some());
        assert_eq!(plans[1..3], [None, None]);
        assert_eq!(plans[3], server.plan(b"ID bob"));
        assert!(plans[4..].iter().all(Option::is_none));
    }
}
