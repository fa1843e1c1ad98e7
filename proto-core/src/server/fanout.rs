//! Presence fan-out: bounded, coalesced, under a global budget.
//!
//! A change does not send anything by itself; it asks for one round over
//! the subscriber list. Each tick walks a bounded number of subscribers
//! (round robin, so nobody starves) and sends each one that is behind at
//! most one datagram per presence interval, while the global token bucket
//! allows. A subscriber skipped for its interval or for the budget asks for
//! another round, so every subscriber ends up with the latest state.

use super::seed::NEVER;
use super::{Outbox, Server, send_bytes};
use crate::SEED_MAX_LIST;
use crate::limit::TokenBucket;
use crate::presence::Backlog;
use crate::registry::Subscription;
use crate::time::{Instant, Millis};
use crate::wire::body::EventChanges;
use crate::wire::{Reply, seed};

/// Subscribers visited per tick at most.
const VISITS_PER_TICK: usize = 2048;
/// Ids of the registration list a seed `List` may look at, so expired
/// entries not yet reclaimed cannot make one `List` expensive.
const SEED_LIST_SCAN: usize = 4096;

pub(super) struct Fanout {
    budget: TokenBucket,
    per_sec: u32,
    /// Subscriber visits still owed in the current round.
    remaining: usize,
    /// Someone was skipped this round: go round again.
    again: bool,
    /// Earliest moment a skipped subscriber's interval ends.
    retry_at: Option<Instant>,
}

impl Fanout {
    pub fn new(per_sec: u32) -> Self {
        Fanout {
            budget: TokenBucket::new(per_sec, per_sec),
            per_sec,
            remaining: 0,
            again: false,
            retry_at: None,
        }
    }

    /// Presence changed: every subscriber must be visited once more.
    pub fn changed(&mut self, subscribers: usize) {
        self.remaining = self.remaining.max(subscribers);
    }

    /// Take one datagram's worth of the global budget for something other
    /// than a presence datagram (a seed refusal); `false` if there is none.
    pub fn take_budget(&mut self, now: Instant) -> bool {
        self.budget.take(now)
    }

    fn defer(&mut self, at: Instant) {
        self.again = true;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
    }
}

impl Server<'_> {
    /// Send owed presence updates; returns when fan-out next wants to run.
    pub(super) fn fan_out(&mut self, now: Instant, out: &mut impl Outbox) -> Option<Instant> {
        if self.fanout.remaining == 0 && self.fanout.again {
            // A round ended with subscribers skipped: start the next one
            // when the earliest of them may be sent to.
            match self.fanout.retry_at {
                Some(t) if t > now => return Some(t),
                _ => {
                    self.fanout.again = false;
                    self.fanout.retry_at = None;
                    self.fanout.remaining = self.reg.subscriber_count();
                }
            }
        }
        let interval = self.cfg.presence_interval;
        let mut visits = 0;
        while self.fanout.remaining > 0 {
            if visits == VISITS_PER_TICK {
                return Some(now);
            }
            visits += 1;
            let Some(h) = self.reg.next_subscriber() else {
                self.fanout.remaining = 0;
                break;
            };
            self.fanout.remaining -= 1;
            let e = *self.reg.get(h);
            if e.expires <= now {
                continue;
            }
            let owed = match e.sub {
                Subscription::SeedList => e.sub_seq != self.seed_version,
                Subscription::Events => e.sub_seq != self.log.latest(),
                Subscription::None => false,
            };
            if !owed {
                continue;
            }
            if e.sub_sent != NEVER && now.since(e.sub_sent) < interval.0 {
                self.fanout.defer(e.sub_sent + interval);
                continue;
            }
            if !self.fanout.budget.take(now) {
                self.stats.fanout_deferred += 1;
                let wait = Millis((1000 / u64::from(self.fanout.per_sec)).max(1));
                self.fanout.defer(now + wait);
                self.fanout.remaining += 1;
                return Some(now + wait);
            }
            let Some((len, seq)) = self.presence_datagram(now, e.sub, e.sub_seq) else {
                continue;
            };
            if send_bytes(out, &mut self.stats, e.addr, &self.scratch[..len]) {
                self.stats.fanout_sent += 1;
                let e = self.reg.get_mut(h);
                e.sub_seq = seq;
                e.sub_sent = now;
                // A backlog longer than one datagram: the rest is owed
                // after this subscriber's interval, change or no change.
                if e.sub == Subscription::Events && seq != self.log.latest() {
                    self.fanout.defer(now + interval);
                }
            } else {
                // The outbox is full this tick; try this one again later.
                self.fanout.defer(now + Millis(1));
            }
        }
        if self.fanout.again {
            self.fanout.retry_at.map(|t| t.max(now))
        } else {
            None
        }
    }

    /// Build the datagram a subscriber at `seen` is owed into the scratch
    /// buffer; returns its length and the sequence number it brings the
    /// subscriber to.
    fn presence_datagram(
        &mut self,
        now: Instant,
        sub: Subscription,
        seen: u32,
    ) -> Option<(usize, u32)> {
        match sub {
            Subscription::None => None,
            Subscription::SeedList => {
                let ids = self
                    .reg
                    .order()
                    .take(SEED_LIST_SCAN)
                    .filter(|(_, e)| e.expires > now)
                    .filter_map(|(_, e)| e.id.as_id());
                let (len, _) = seed::emit_list(ids, &mut self.scratch[..SEED_MAX_LIST]).ok()?;
                Some((len, self.seed_version))
            }
            Subscription::Events => match self.log.since(seen) {
                Backlog::UpToDate => None,
                Backlog::Gap => {
                    self.stats.fanout_resync += 1;
                    let seq = self.log.latest();
                    let n = Reply::Resync { seq }.emit(&mut self.scratch).ok()?;
                    Some((n, seq))
                }
                Backlog::Changes(records) => {
                    let mut changes = EventChanges::default();
                    let (mut first, mut last) = (None, seen);
                    for r in records {
                        if !changes.push(r.join, r.id.as_bytes()) {
                            break;
                        }
                        first.get_or_insert(r.seq);
                        last = r.seq;
                    }
                    let reply = Reply::Events {
                        first: first?,
                        last,
                        changes: changes.changes(),
                    };
                    let n = reply.emit(&mut self.scratch).ok()?;
                    Some((n, last))
                }
            },
        }
    }
}
