//! Export and import of the whole table, so a restarted server carries on
//! where it stopped: same ids at the same addresses with the same owners,
//! keys and subscriptions, tokens that stay valid and are never issued
//! twice, presence sequence numbers that go on.
//!
//! The core only hands out and takes back values; the file format, the
//! clock across the downtime and the secret behind cookies and tokens (the
//! 32 bytes of entropy given to [`Server::new`], which the caller must give
//! again) are the embedding program's. Time must go on too: the restarted
//! server's `now` must continue the stopped one's, moved on by the
//! downtime, so leases keep running and cookies keep their windows.

use core::fmt;

use super::Server;
use crate::presence::ChangeLog;
use crate::registry::{Entry, Owner, Subscription};
use crate::time::{Instant, Millis};

/// What a server needs, beyond its entries and its entropy, to carry on
/// after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    /// How many owner tokens were issued: the next one follows, so no
    /// token is ever issued twice under the same key.
    pub tokens_issued: u64,
    /// The version of the seed clients' `List`.
    pub seed_version: u32,
    /// The latest presence sequence number.
    pub presence_seq: u32,
}

/// What [`Server::restore`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Entries now in the table.
    pub live: usize,
    /// Entries whose lease had ended by `now`, left out.
    pub expired: usize,
}

/// Why [`Server::restore`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// The table already holds registrations: restore only into a new server.
    NotEmpty,
    /// More live entries than the table holds.
    TooMany {
        /// Live entries offered (the count stops at the first that did not fit).
        live: usize,
        /// The table's capacity.
        capacity: usize,
    },
    /// An entry's id is not a valid id.
    BadId,
    /// Two entries have the same id.
    Duplicate,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::NotEmpty => f.write_str("the table is not empty"),
            RestoreError::TooMany { live, capacity } => write!(
                f,
                "more than {capacity} live registrations were saved (at least {live}), and the table holds {capacity}"
            ),
            RestoreError::BadId => f.write_str("a saved registration has an invalid id"),
            RestoreError::Duplicate => f.write_str("two saved registrations have the same id"),
        }
    }
}

impl Server<'_> {
    /// The counters a restarted server needs (see [`Self::restore`]).
    pub fn continuity(&self) -> Continuity {
        Continuity {
            tokens_issued: self.tokens.issued(),
            seed_version: self.seed_version,
            presence_seq: self.log.latest(),
        }
    }

    /// Fill a new server with the registrations of a stopped one, in the
    /// order `Server::entries` gave them, and carry on its counters.
    /// Entries whose lease ended by `now` are left out. A lease longer than
    /// this server grants is cut to its longest. On an error the server
    /// may hold some of the entries: drop it.
    pub fn restore(
        &mut self,
        now: Instant,
        c: Continuity,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Restored, RestoreError> {
        if !self.reg.is_empty() {
            return Err(RestoreError::NotEmpty);
        }
        let longest = Millis::from_secs(u64::from(self.cfg.lease_max.max(self.cfg.seed_lease)));
        let mut done = Restored::default();
        for mut e in entries {
            if e.expires <= now {
                done.expired += 1;
                continue;
            }
            let id = e.id.as_id().ok_or(RestoreError::BadId)?;
            if self.reg.find(id).is_some() {
                return Err(RestoreError::Duplicate);
            }
            e.expires = e.expires.min(now + longest);
            if e.owner == Owner::Address {
                // The seed protocol has no keys.
                e.key = None;
            }
            if e.sub != Subscription::None && e.sub_sent > now && e.sub_sent != super::seed::NEVER {
                e.sub_sent = now;
            }
            if self.reg.insert(e).is_err() {
                return Err(RestoreError::TooMany {
                    live: done.live + 1,
                    capacity: self.reg.capacity(),
                });
            }
            // Ids already held are never refused or evicted: a quota
            // smaller than before the restart only stops new registrations.
            // (A cell too full to count one more is as good as full.)
            if self.cfg.limits {
                let ip = e.addr.ip();
                let _ = self.quota.acquire_held(ip) && self.net_quota.acquire_held(ip);
            }
            if e.owner == Owner::Address {
                self.seed_holders.add(e.addr);
            }
            done.live += 1;
        }
        self.tokens.resume(c.tokens_issued);
        self.seed_version = c.seed_version;
        self.log = ChangeLog::resumed_at(c.presence_seq);
        self.stats.registrations += done.live as u64;
        self.fanout.changed(self.reg.subscriber_count());
        self.refresh_gauges();
        Ok(done)
    }
}
