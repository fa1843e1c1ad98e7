//! Planning a batch: where handling a datagram will first touch the table.
//!
//! A server that receives datagrams in batches can plan every datagram
//! (one keyed hash of the id it names), prefetch the index cell of each
//! plan, then the slot each cell names, and hand each datagram with its
//! plan to [`Server::handle_planned`], which then does not hash that id
//! again. On a table much larger than the caches the misses overlap
//! instead of queueing one behind the other. When to prefetch what is the
//! caller's choice (parley-server runs the steps a few datagrams ahead of
//! the one it handles); this crate hands out the places and reads nothing
//! on the caller's behalf. A plan changes nothing but the hashing of the
//! one datagram it is handed in with.

use core::net::SocketAddr;

use super::{Outbox, Server};
use crate::registry::{Plan, Slot};
use crate::time::Instant;
use crate::wire::classify;

impl Server<'_> {
    /// Where handling `datagram` will look in the table: one keyed hash of
    /// the id it names, for [`Server::cell_hint`], [`Server::slot_hint`]
    /// and [`Server::handle_planned`]. `None` if the datagram names no id.
    ///
    /// ```
    /// # use proto_core::limit::{QuotaCell, RateCell};
    /// # use proto_core::registry::Slot;
    /// # use proto_core::server::{Config, Layout, Server, Storage};
    /// # let l = Layout::for_capacity(1024);
    /// # let (mut s, mut i) = (vec![Slot::EMPTY; l.slots], vec![0u32; l.index]);
    /// # let (mut r, mut q) = (vec![RateCell::EMPTY; l.rate], vec![QuotaCell::EMPTY; l.quota]);
    /// # let st = Storage { slots: &mut s, index: &mut i, rate: &mut r, quota: &mut q };
    /// let server = Server::new(Config::default(), st, [1; 32]).unwrap();
    /// let batch: [&[u8]; 2] = [b"LOOKUP 1 - alice", b"HELLO 2"];
    /// let plans = batch.map(|d| server.plan(d));
    /// assert!(plans[1].is_none());
    /// let cells = plans.iter().flatten().filter_map(|p| server.cell_hint(p));
    /// assert_eq!(cells.count(), 1); // prefetch each one's cache line
    /// // Nobody is registered, so no slot is worth fetching.
    /// assert!(plans.iter().flatten().all(|p| server.slot_hint(p).is_none()));
    /// ```
    pub fn plan(&self, datagram: &[u8]) -> Option<Plan> {
        Some(self.reg.plan(classify::first_id(datagram)?))
    }

    /// [`Server::handle`] for a datagram planned with this server's
    /// [`Server::plan`]: the id's place in the index is not computed
    /// again. A plan of this server for another datagram, or none, is
    /// harmless: a plan is used only for the id it was made for, and only
    /// while this datagram is handled. (A plan from another server would
    /// misplace its id; never mix them.)
    pub fn handle_planned(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        plan: Option<Plan>,
        out: &mut impl Outbox,
    ) {
        self.planned = plan;
        self.handle(now, src, datagram, out);
        self.planned = None;
    }

    /// The index cell a planned datagram reads first: its address is for
    /// a prefetch, nothing more.
    pub fn cell_hint(&self, plan: &Plan) -> Option<&u32> {
        self.reg.cell_hint(plan)
    }

    /// The slot the index names for a planned datagram (this reads the
    /// cells: ask after prefetching the cell hint). `None` if it names none.
    pub fn slot_hint(&self, plan: &Plan) -> Option<&Slot> {
        self.reg.slot_hint(plan)
    }
}
