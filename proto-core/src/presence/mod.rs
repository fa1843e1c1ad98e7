//! The presence change log: a fixed ring of the latest joins and leaves.
//!
//! Subscribers remember the sequence number of the last change they were
//! sent; fan-out sends each one the changes after that. Keeping one shared
//! log instead of a queue per subscriber is what keeps memory fixed: 10 000
//! subscribers cost one `u32` each, not a backlog each. A subscriber that
//! falls further behind than the ring reaches is told to `RESYNC` (list again).
//!
//! Sequence numbers are `u32` and wrap; comparisons use wrapping distance.

use heapless::Deque;

use crate::wire::{Id, IdBuf};

/// How many changes the ring keeps.
pub const LOG_LEN: usize = 512;

/// One join or leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// This change's sequence number.
    pub seq: u32,
    /// `true` for a join, `false` for a leave.
    pub join: bool,
    /// Who joined or left.
    pub id: IdBuf,
}

/// What a subscriber at some sequence number is owed.
pub enum Backlog<'l> {
    /// Nothing: it has seen the latest change.
    UpToDate,
    /// These changes, oldest first.
    Changes(RecordIter<'l>),
    /// More changes than the ring holds: it must list again.
    Gap,
}

/// The changes after some sequence number, oldest first.
pub struct RecordIter<'l> {
    inner: heapless::deque::Iter<'l, Record>,
}

impl<'l> Iterator for RecordIter<'l> {
    type Item = &'l Record;
    fn next(&mut self) -> Option<&'l Record> {
        self.inner.next()
    }
}

/// The ring of recent presence changes.
///
/// ```
/// use proto_core::presence::{Backlog, ChangeLog};
/// use proto_core::wire::Id;
/// let mut log = ChangeLog::new();
/// let before = log.latest();
/// log.push(true, Id::new("alice").unwrap());
/// match log.since(before) {
///     Backlog::Changes(mut it) => assert!(it.next().unwrap().join),
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Default)]
pub struct ChangeLog {
    ring: Deque<Record, LOG_LEN>,
    latest: u32,
}

impl ChangeLog {
    /// An empty log at sequence number 0.
    pub const fn new() -> Self {
        ChangeLog {
            ring: Deque::new(),
            latest: 0,
        }
    }

    /// An empty log whose latest change was `seq` (a restarted server's):
    /// a subscriber that had seen it is up to date, any other must list again.
    pub const fn resumed_at(seq: u32) -> Self {
        ChangeLog {
            ring: Deque::new(),
            latest: seq,
        }
    }

    /// The sequence number of the latest change (0 before any).
    pub fn latest(&self) -> u32 {
        self.latest
    }

    /// Record a change and return its sequence number. The oldest record
    /// falls off when the ring is full.
    pub fn push(&mut self, join: bool, id: Id<'_>) -> u32 {
        self.latest = self.latest.wrapping_add(1);
        if self.ring.is_full() {
            self.ring.pop_front();
        }
        let rec = Record {
            seq: self.latest,
            join,
            id: IdBuf::from_id(id),
        };
        // Cannot fail: a slot was freed above if the ring was full.
        let _ = self.ring.push_back(rec);
        self.latest
    }

    /// What a subscriber that has seen everything up to `seen` is owed.
    pub fn since(&self, seen: u32) -> Backlog<'_> {
        let behind = self.latest.wrapping_sub(seen);
        if behind == 0 {
            return Backlog::UpToDate;
        }
        // A subscriber "ahead" of the log (a server restart, a forged
        // number) is as lost as one too far behind.
        if behind as usize > self.ring.len() {
            return Backlog::Gap;
        }
        let mut inner = self.ring.iter();
        for _ in 0..self.ring.len() - behind as usize {
            inner.next();
        }
        Backlog::Changes(RecordIter { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id<'_> {
        Id::new(s).unwrap()
    }

    #[test]
    fn fresh_log_owes_nothing() {
        let log = ChangeLog::new();
        assert!(matches!(log.since(0), Backlog::UpToDate));
    }

    #[test]
    fn owes_exactly_the_changes_after_seen() {
        let mut log = ChangeLog::new();
        log.push(true, id("a"));
        let seen = log.latest();
        log.push(true, id("b"));
        log.push(false, id("a"));
        let Backlog::Changes(it) = log.since(seen) else {
            panic!("expected changes");
        };
        let got: heapless::Vec<(u32, bool), 4> = it.map(|r| (r.seq, r.join)).collect();
        assert_eq!(got.as_slice(), &[(2, true), (3, false)]);
        assert!(matches!(log.since(3), Backlog::UpToDate));
    }

    #[test]
    fn falling_off_the_ring_is_a_gap() {
        let mut log = ChangeLog::new();
        for _ in 0..LOG_LEN + 5 {
            log.push(true, id("x"));
        }
        assert!(matches!(log.since(0), Backlog::Gap));
        assert!(matches!(log.since(4), Backlog::Gap));
        // The oldest kept record is 6, so a subscriber at 5 misses nothing.
        let Backlog::Changes(mut it) = log.since(5) else {
            panic!("a subscriber at 5 is owed 6 onwards");
        };
        assert_eq!(it.next().map(|r| r.seq), Some(6));
        assert_eq!(it.count(), LOG_LEN - 1);
    }

    #[test]
    fn a_subscriber_ahead_of_the_log_must_resync() {
        let mut log = ChangeLog::new();
        log.push(true, id("x"));
        assert!(matches!(log.since(7), Backlog::Gap));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut log = ChangeLog {
            ring: Deque::new(),
            latest: u32::MAX - 1,
        };
        let seen = log.latest();
        log.push(true, id("a"));
        log.push(true, id("b"));
        assert_eq!(log.latest(), 0);
        let Backlog::Changes(it) = log.since(seen) else {
            panic!("expected changes across the wrap");
        };
        assert_eq!(it.count(), 2);
    }
}
