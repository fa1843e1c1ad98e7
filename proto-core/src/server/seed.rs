//! The seed's verbs: `ID`, `Peer`, `Quit`, `ID2`.
//!
//! The seed protocol has no error message and no authentication: an id is
//! owned by the source address that registered it. A refused `ID` is
//! answered with a `Message` the seed client prints (it would otherwise
//! wait for a list forever), within the sender's error budget and the
//! global fan-out budget, since the seed protocol cannot prove the sender
//! is at its address; other refusals get no reply. Every refusal is counted
//! in `seed_refused`.
//!
//! A list round that no change caused (`ID2 `, an `ID` that renews) makes
//! the server send a datagram to every seed client: only an address that
//! holds a seed id may ask for one, and such rounds start at most once per
//! [`RELIST_INTERVAL`] across the server. `--strict` servers drop these
//! verbs altogether.

use core::net::SocketAddr;

use super::{Claim, Outbox, RELIST_INTERVAL, Server, send_bytes, stats::Verb};
use crate::registry::Owner;
use crate::time::{Instant, Millis};
use crate::wire::seed::Refusal;
use crate::wire::{ErrorCode, Id, SeedReply, SeedRequest};

/// `sub_sent` of a subscriber that has never been sent anything.
pub(super) const NEVER: Instant = Instant(u64::MAX);

impl Server<'_> {
    pub(super) fn handle_seed(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &[u8],
        out: &mut impl Outbox,
    ) {
        let Ok(req) = SeedRequest::parse(d) else {
            self.stats.seed_refused += 1;
            return;
        };
        match req {
            SeedRequest::Id(id) => {
                self.stats.count_request(Verb::SeedId);
                if let Err(refusal) = self.seed_register(now, src, id) {
                    self.stats.seed_refused += 1;
                    self.seed_refuse(now, src, refusal, out);
                }
            }
            SeedRequest::Peer(id) => {
                self.stats.count_request(Verb::SeedPeer);
                let reply = match self.find_live(now, id) {
                    Some(h) => SeedReply::Peer(self.reg.get(h).addr),
                    None => SeedReply::NoPeer,
                };
                if let Ok(n) = reply.emit(&mut self.scratch) {
                    send_bytes(out, &mut self.stats, src, &self.scratch[..n]);
                }
            }
            SeedRequest::Quit(id) => {
                self.stats.count_request(Verb::SeedQuit);
                match self.find_live(now, id) {
                    Some(h) if self.seed_owns(h, src) => self.remove(h),
                    _ => self.stats.seed_refused += 1,
                }
            }
            SeedRequest::Id2 => {
                self.stats.count_request(Verb::SeedId2);
                // The seed client sends `ID2 ` after chatting so that every
                // client is shown the list again. Four bytes that make the
                // server write to every seed client: only a holder may ask.
                if self.seed_holders.holds(src) {
                    self.relist(now);
                } else {
                    self.stats.seed_refused += 1;
                }
            }
        }
    }

    /// Whether `src` owns `h` under the seed's rule: same address, seed-registered.
    fn seed_owns(&self, h: crate::registry::Handle, src: SocketAddr) -> bool {
        let e = self.reg.get(h);
        e.owner == Owner::Address && e.addr == src
    }

    fn seed_register<'i>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        id: Id<'i>,
    ) -> Result<(), Refusal<'i>> {
        let expires = now + Millis::from_secs(u64::from(self.cfg.seed_lease));
        if let Some(h) = self.find_live(now, id) {
            if !self.seed_owns(h, src) {
                return Err(Refusal::Taken(id));
            }
            // Registering again is how a seed client asks for the list.
            self.reg.get_mut(h).expires = expires;
            self.relist(now);
            return Ok(());
        }
        self.enroll(now, src, id, self.cfg.seed_lease, Claim::Address)
            .map(|_| ())
            .map_err(|code| match code {
                ErrorCode::OverQuota => Refusal::OverQuota,
                _ => Refusal::TableFull,
            })
    }

    /// Tell a seed client why its `ID` was refused, if both the sender's
    /// error budget and the global fan-out budget allow: the sender may be
    /// spoofed, so neither one address nor many can turn refusals into a
    /// flood. Only a refusal that leaves spends the sender's budget.
    fn seed_refuse(
        &mut self,
        now: Instant,
        src: SocketAddr,
        refusal: Refusal<'_>,
        out: &mut impl Outbox,
    ) {
        if self.cfg.limits && !self.err_limit.allow(now, src.ip()) {
            self.stats.drop_error_limited += 1;
            return;
        }
        let sent = self.fanout.take_budget(now)
            && SeedReply::Refused(refusal)
                .emit(&mut self.scratch)
                .is_ok_and(|n| send_bytes(out, &mut self.stats, src, &self.scratch[..n]));
        if !sent {
            self.stats.drop_error_limited += 1;
            if self.cfg.limits {
                self.err_limit.refund(src.ip());
            }
        }
    }

    /// Send every seed client the list again, now or, if a round that no
    /// change caused started less than [`RELIST_INTERVAL`] ago, once that
    /// has passed (one round then answers every request in between).
    pub(super) fn relist(&mut self, now: Instant) {
        match self.relisted_at {
            Some(at) if now.since(at) < RELIST_INTERVAL.0 => self.relist_owed = true,
            _ => self.start_relist(now),
        }
    }

    fn start_relist(&mut self, now: Instant) {
        self.relisted_at = Some(now);
        self.relist_owed = false;
        self.seed_version = self.seed_version.wrapping_add(1);
        self.fanout.changed(self.reg.subscriber_count());
    }

    /// Start an owed list round if its time has come; returns when the one
    /// still owed is due.
    pub(super) fn relist_due(&mut self, now: Instant) -> Option<Instant> {
        if !self.relist_owed {
            return None;
        }
        let due = self.relisted_at.map_or(now, |at| at + RELIST_INTERVAL);
        if due <= now {
            self.start_relist(now);
            return None;
        }
        Some(due)
    }
}
