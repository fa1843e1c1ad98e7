//! The seed's verbs: `ID`, `Peer`, `Quit`, `ID2`.
//!
//! The seed protocol has no error message and no authentication: an id is
//! owned by the source address that registered it, a refused request gets
//! no reply (the seed client would not understand one) and is counted in
//! `seed_refused`. `--strict` servers drop these verbs altogether.

use core::net::SocketAddr;

use super::{Outbox, Server, send_bytes, stats::Verb};
use crate::registry::{Entry, Owner, Subscription};
use crate::time::{Instant, Millis};
use crate::wire::{Id, IdBuf, SeedReply, SeedRequest};

/// Whether a datagram is one of the seed's verbs (they are mixed case; the
/// extended protocol's are upper case, so a prefix decides).
pub(super) fn is_seed(d: &[u8]) -> bool {
    d.starts_with(b"ID ")
        || d.starts_with(b"ID2")
        || d.starts_with(b"Peer ")
        || d.starts_with(b"Quit ")
}

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
                self.seed_register(now, src, id);
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
                // client is shown the list again; the fan-out budget bounds it.
                self.seed_version = self.seed_version.wrapping_add(1);
                self.fanout.changed(self.reg.subscriber_count());
            }
        }
    }

    /// Whether `src` owns `h` under the seed's rule: same address, seed-registered.
    fn seed_owns(&self, h: crate::registry::Handle, src: SocketAddr) -> bool {
        let e = self.reg.get(h);
        e.owner == Owner::Address && e.addr == src
    }

    fn seed_register(&mut self, now: Instant, src: SocketAddr, id: Id<'_>) {
        let expires = now + Millis::from_secs(u64::from(self.cfg.seed_lease));
        if let Some(h) = self.find_live(now, id) {
            if self.seed_owns(h, src) {
                // Registering again is how a seed client asks for the list.
                self.reg.get_mut(h).expires = expires;
                self.seed_version = self.seed_version.wrapping_add(1);
                self.fanout.changed(self.reg.subscriber_count());
            } else {
                self.stats.seed_refused += 1;
            }
            return;
        }
        if self.admit(now, src).is_err() {
            self.stats.seed_refused += 1;
            return;
        }
        let entry = Entry {
            id: IdBuf::from_id(id),
            addr: src,
            expires,
            lease: self.cfg.seed_lease,
            owner: Owner::Address,
            key: None,
            sub: Subscription::SeedList,
            sub_seq: self.seed_version.wrapping_sub(1),
            sub_sent: NEVER,
        };
        match self.reg.insert(entry) {
            Ok(h) => self.joined(h),
            Err(_) => {
                if self.cfg.limits {
                    self.quota.release(src.ip());
                }
                self.stats.seed_refused += 1;
            }
        }
    }
}
