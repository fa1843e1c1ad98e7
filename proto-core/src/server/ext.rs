//! The extended protocol's requests.
//!
//! Order of checks, for every request but `HELLO`: parse, then the cookie
//! (nothing changes and nothing larger than the request is sent until the
//! source has echoed a cookie bound to its address), then the rate budget
//! the cookie decides (traffic spoofed from an address cannot echo its
//! cookie, so it never charges the budget of the client really there),
//! then ownership, then the table rules. A request refused by any of them
//! changes nothing.

use core::net::SocketAddr;

use crate::wire::Locals;

use super::seed::NEVER;
use super::text::Line;
use super::{Outbox, Server, stats::Verb};
use crate::MAX_DATAGRAM;
use crate::registry::{Entry, Handle, Owner, Subscription};
use crate::time::{Instant, Millis};
use crate::wire::reply::{IdSeq, StatSeq};
use crate::wire::request::Header;
use crate::wire::{
    ErrorCode, FieldError, Id, IdBuf, ParseError, PublicKey, Reply, Request, Token, TxId,
};

/// Slots a `LIST` may visit for one page, so a sparse table cannot make
/// one request expensive; the cursor says where to go on.
const LIST_SCAN: u32 = 4096;

/// Best effort at the transaction id of a request that did not parse, so
/// the client can match the error to what it sent.
pub(super) fn salvage_tx(d: &[u8]) -> Option<TxId<'_>> {
    let mut words = d.split(|&b| b == b' ');
    words.next()?;
    let tx = words.next()?;
    let tx = tx.strip_suffix(b"\n").unwrap_or(tx);
    let tx = tx.strip_suffix(b"\r").unwrap_or(tx);
    TxId::from_bytes(tx).ok()
}

fn parse_error_code(e: ParseError) -> ErrorCode {
    match e {
        ParseError::UnknownVerb => ErrorCode::UnknownVerb,
        ParseError::Field(FieldError::BadId) => ErrorCode::BadId,
        _ => ErrorCode::Malformed,
    }
}

impl Server<'_> {
    /// Charge one request from `src` to the budget it is due: the one for
    /// requests that echoed a valid cookie, or the one for those that did
    /// not. Over budget, the request is dropped, and an extended client is
    /// told to slow down within its error budget, in no more bytes than it
    /// sent, so a spoofed flood gains nothing.
    fn charge_request(
        &mut self,
        now: Instant,
        src: SocketAddr,
        validated: bool,
        d: &[u8],
        out: &mut impl Outbox,
    ) -> bool {
        if !self.cfg.limits {
            return true;
        }
        let budget = if validated {
            &mut self.cookie_limit
        } else {
            &mut self.req_limit
        };
        if budget.allow(now, src.ip()) {
            return true;
        }
        self.stats.drop_rate_limited += 1;
        self.send_error(
            now,
            out,
            src,
            salvage_tx(d),
            ErrorCode::RateLimited,
            d.len(),
        );
        false
    }

    pub(super) fn handle_ext(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &[u8],
        out: &mut impl Outbox,
    ) {
        // Until a cookie proves the source can receive at its address, no
        // reply may be larger than the request that caused it.
        let unvalidated = d.len();
        let req = match Request::parse(d) {
            Ok(req) => req,
            Err(e) => {
                if self.charge_request(now, src, false, d, out) {
                    let code = parse_error_code(e);
                    self.send_error(now, out, src, salvage_tx(d), code, unvalidated);
                }
                return;
            }
        };
        let validated = req
            .header()
            .and_then(|h| h.cookie)
            .is_some_and(|c| self.cookies.check(now, src, c));
        if !self.charge_request(now, src, validated, d, out) {
            return;
        }
        let h = match req.header() {
            Some(h) => h,
            None => {
                let tx = req.tx();
                self.stats.count_request(Verb::Hello);
                let cookie = self.cookies.issue(now, src);
                let reply = Reply::Cookie {
                    tx,
                    cookie,
                    addr: src,
                };
                self.send_reply(out, src, &reply, unvalidated);
                return;
            }
        };
        if !validated {
            self.send_error(now, out, src, Some(h.tx), ErrorCode::BadCookie, unvalidated);
            return;
        }
        let result = match req {
            Request::Hello { .. } => Ok(()),
            Request::Register {
                h,
                id,
                lease,
                token,
                key,
            } => self.register(now, src, h, id, lease, token, key, out),
            Request::Keepalive { h, id, token } => self.keepalive(now, src, h, id, token, out),
            Request::Lookup { h, id } => self.lookup(now, src, h, id, out),
            Request::Introduce {
                h,
                id,
                token,
                target,
                local,
            } => self.introduce(now, src, h, id, token, target, local, out),
            Request::List { h, cursor } => self.list(now, src, h, cursor, out),
            Request::Subscribe { h, id, token } => {
                self.subscribe(now, src, h, id, token, true, out)
            }
            Request::Unsubscribe { h, id, token } => {
                self.subscribe(now, src, h, id, token, false, out)
            }
            Request::Quit { h, id, token } => self.quit(now, src, h, id, token, out),
            Request::Stats { h, admin } => self.stats_reply(src, h, admin, out),
        };
        if let Err(code) = result {
            self.send_error(now, out, src, Some(h.tx), code, MAX_DATAGRAM);
        }
    }

    /// The live registration of `id` if `token` owns it.
    fn owned(&mut self, now: Instant, id: Id<'_>, token: Token) -> Result<Handle, ErrorCode> {
        let h = self.find_live(now, id).ok_or(ErrorCode::NoSuchId)?;
        match self.reg.get(h).owner {
            Owner::Token(t) if t == token => Ok(h),
            _ => Err(ErrorCode::NotOwner),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        lease: Option<u32>,
        token: Option<Token>,
        key: Option<PublicKey>,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Reg);
        let lease = self.cfg.grant(lease);
        let expires = now + Millis::from_secs(u64::from(lease));
        let (slot, token) = match self.find_live(now, id) {
            Some(slot) => {
                // Renewal: only the token that owns the id may renew it, and
                // the stored address follows the datagram's source.
                let e = self.reg.get(slot);
                let owned = match (e.owner, token) {
                    (Owner::Token(t), Some(asked)) if t == asked => t,
                    // A retransmitted REG whose REGD was lost: the cookie
                    // proved the source, and only the registering socket
                    // sends from that address and port, so it gets its
                    // token again rather than `id-taken`.
                    (Owner::Token(t), None) if e.addr == src => t,
                    _ => return Err(ErrorCode::IdTaken),
                };
                // The key bound at registration holds for the whole lease,
                // so a peer that learned it cannot be switched to another
                // by whoever holds (or stole) the token. A REG without a
                // key leaves it as it is.
                if key.is_some_and(|k| e.key != Some(k)) {
                    return Err(ErrorCode::KeyTaken);
                }
                self.rebind(slot, src)?;
                let e = self.reg.get_mut(slot);
                e.expires = expires;
                e.lease = lease;
                (slot, owned)
            }
            None => {
                self.admit(now, src)?;
                let token = self.tokens.next();
                let entry = Entry {
                    id: IdBuf::from_id(id),
                    addr: src,
                    expires,
                    lease,
                    owner: Owner::Token(token),
                    key,
                    sub: Subscription::None,
                    sub_seq: 0,
                    sub_sent: NEVER,
                };
                let slot = self.reg.insert(entry).map_err(|_| {
                    self.release_quota(src);
                    ErrorCode::TableFull
                })?;
                self.joined(slot);
                (slot, token)
            }
        };
        let _ = slot;
        let reply = Reply::Registered {
            tx: h.tx,
            id,
            lease,
            addr: src,
            token,
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    fn keepalive(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        token: Token,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Keep);
        let slot = self.owned(now, id, token)?;
        self.rebind(slot, src)?;
        let e = self.reg.get_mut(slot);
        let lease = e.lease;
        e.expires = now + Millis::from_secs(u64::from(lease));
        let reply = Reply::Alive {
            tx: h.tx,
            lease,
            addr: src,
            seq: self.log.latest(),
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    fn lookup(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Lookup);
        let slot = self.find_live(now, id).ok_or(ErrorCode::NoSuchId)?;
        let e = self.reg.get(slot);
        let reply = Reply::At {
            tx: h.tx,
            id,
            addr: e.addr,
            kind: e.kind(),
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn introduce(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        token: Token,
        target: Id<'_>,
        local: Locals,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Intro);
        // Only a registered requester may make the server send to a third
        // party, and the target learns who asked.
        let me = self.owned(now, id, token)?;
        let there = self.find_live(now, target).ok_or(ErrorCode::NoSuchId)?;
        // Only now that nothing can fail does the requester move.
        self.rebind(me, src)?;
        let (target_addr, target_kind) = {
            let e = self.reg.get(there);
            (e.addr, e.kind())
        };
        // The requester's local addresses go to the target only (for a
        // LAN path), never used here: the server sends nothing to an
        // address named in a payload. Nothing is stored either.
        let punch = Reply::Punch {
            id,
            addr: src,
            kind: self.reg.get(me).kind(),
            local,
        };
        self.send_reply(out, target_addr, &punch, MAX_DATAGRAM);
        let reply = Reply::At {
            tx: h.tx,
            id: target,
            addr: target_addr,
            kind: target_kind,
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    fn list(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        cursor: u32,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::List);
        // Room for "PAGE <tx> <cursor>" and the ids after it.
        let room = MAX_DATAGRAM - "PAGE  4294967295".len() - h.tx.as_bytes().len();
        let mut ids = Line::new();
        // Slots past the span have never held an entry: a lightly used
        // table lists in one page however large its capacity.
        let cap = self.reg.span() as u32;
        let mut slot = cursor;
        let end = cursor.saturating_add(LIST_SCAN).min(cap);
        while slot < end {
            if let Some((_, e)) = self.reg.at_slot(slot) {
                if e.expires > now {
                    let id = e.id.as_bytes();
                    if ids.len() + 1 + id.len() > room {
                        break;
                    }
                    if !ids.is_empty() {
                        ids.push(b" ");
                    }
                    ids.push(id);
                }
            }
            slot += 1;
        }
        let next = if slot >= cap { 0 } else { slot };
        let reply = Reply::Page {
            tx: h.tx,
            next,
            ids: IdSeq(ids.as_str()),
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        token: Token,
        on: bool,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats
            .count_request(if on { Verb::Sub } else { Verb::Unsub });
        let slot = self.owned(now, id, token)?;
        self.rebind(slot, src)?;
        let reply = if on {
            let seq = self.log.latest();
            self.reg.set_subscription(slot, Subscription::Events);
            let e = self.reg.get_mut(slot);
            e.sub_seq = seq;
            e.sub_sent = NEVER;
            Reply::Subscribed { tx: h.tx, seq }
        } else {
            self.reg.set_subscription(slot, Subscription::None);
            Reply::Unsubscribed { tx: h.tx }
        };
        self.refresh_gauges();
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }

    fn quit(
        &mut self,
        now: Instant,
        src: SocketAddr,
        h: Header<'_>,
        id: Id<'_>,
        token: Token,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Quit);
        let slot = self.owned(now, id, token)?;
        self.remove(slot);
        self.send_reply(out, src, &Reply::Bye { tx: h.tx, id }, MAX_DATAGRAM);
        Ok(())
    }

    fn stats_reply(
        &mut self,
        src: SocketAddr,
        h: Header<'_>,
        admin: Option<Token>,
        out: &mut impl Outbox,
    ) -> Result<(), ErrorCode> {
        self.stats.count_request(Verb::Stats);
        // On a dual-stack socket a local IPv4 client is ::ffff:127.0.0.1.
        let allowed = src.ip().to_canonical().is_loopback()
            || (self.cfg.admin_token.is_some() && admin == self.cfg.admin_token);
        if !allowed {
            return Err(ErrorCode::Forbidden);
        }
        // "STATS <tx> " comes before the counters; those that do not fit
        // are left out whole (the metrics endpoint has all of them).
        let room = MAX_DATAGRAM - "STATS  ".len() - h.tx.as_bytes().len();
        let mut body = Line::new();
        self.stats.for_each(|name, value| {
            let mut digits = [0u8; 20];
            let v = super::text::decimal(value, &mut digits);
            let sep = usize::from(!body.is_empty());
            if body.len() + sep + name.len() + 1 + v.len() > room {
                return;
            }
            if sep == 1 {
                body.push(b" ");
            }
            body.push(name.as_bytes());
            body.push(b"=");
            body.push(v);
        });
        let reply = Reply::Stats {
            tx: h.tx,
            stats: StatSeq(body.as_str()),
        };
        self.send_reply(out, src, &reply, MAX_DATAGRAM);
        Ok(())
    }
}
