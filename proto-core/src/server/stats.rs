//! Counters, for the `STATS` verb and for the server's metrics endpoint.

/// Every counter the server keeps. All are totals since start except the
/// gauges `occupancy` and `capacity`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Live registrations now (gauge).
    pub occupancy: u64,
    /// Table capacity (gauge).
    pub capacity: u64,
}

impl Stats {
    /// Visit every counter as `(name, value)`, names in `snake_case`.
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        f("datagrams_in", self.datagrams_in);
        f("datagrams_out", self.datagrams_out);
        f("bytes_in", self.bytes_in);
        f("bytes_out", self.bytes_out);
        f("occupancy", self.occupancy);
        f("capacity", self.capacity);
    }
}
