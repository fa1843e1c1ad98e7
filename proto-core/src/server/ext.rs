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
use super::{Claim, Outbox, Server, stats::Verb};
use crate::MAX_DATAGRAM;
use crate::registry::{Handle, Owner, Subscription};
use crate::time::{Instant, Millis};
use crate::wire::body::{PageIds, StatCounters};
use crate::wire::classify;
use crate::wire::request::Owned;
use crate::wire::{ErrorCode, FieldError, Id, ParseError, PublicKey, Reply, Request, Token, TxId};

/// Slots a `LIST` may visit for one page, so a sparse table cannot make
/// one request expensive; the cursor says where to go on.
const LIST_SCAN: u32 = 4096;

/// What every handler is asked with: when, by whom, and the transaction
/// its reply echoes.
#[derive(Clone, Copy)]
struct Asked<'r> {
    now: Instant,
    src: SocketAddr,
    tx: TxId<'r>,
}

/// A handler's reply, which `handle_ext` sends, or the error it sends
/// instead.
type Answer<'r> = Result<Reply<'r>, ErrorCode>;

/// The counter a cookied request counts in.
fn verb(req: &Request<'_>) -> Verb {
    match req {
        Request::Hello { .. } => Verb::Hello,
        Request::Register { .. } => Verb::Reg,
        Request::Keepalive { .. } => Verb::Keep,
        Request::Lookup { .. } => Verb::Lookup,
        Request::Introduce { .. } => Verb::Intro,
        Request::List { .. } => Verb::List,
        Request::Subscribe { .. } => Verb::Sub,
        Request::Unsubscribe { .. } => Verb::Unsub,
        Request::Quit { .. } => Verb::Quit,
        Request::Stats { .. } => Verb::Stats,
    }
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
            classify::tx(d),
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
                    self.send_error(now, out, src, classify::tx(d), code, unvalidated);
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
                self.stats.count_request(verb(&req));
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
        let tx = h.tx;
        let a = Asked { now, src, tx };
        self.stats.count_request(verb(&req));
        // LIST and STATS build their bodies here, beside the reply that
        // borrows them, so every handler hands back its reply and this one
        // place writes it into the outbox.
        let mut page;
        let mut counters;
        let result = match req {
            Request::Hello { .. } => return,
            Request::Register {
                id,
                lease,
                token,
                key,
                ..
            } => self.register(a, id, lease, token, key),
            Request::Keepalive(by) => self.keepalive(a, by),
            Request::Lookup { id, .. } => self.lookup(a, id),
            Request::Introduce { by, target, local } => self.introduce(a, by, target, local, out),
            Request::List { cursor, .. } => {
                page = PageIds::new(tx);
                let next = self.list(now, cursor, &mut page);
                Ok(Reply::Page {
                    tx,
                    next,
                    ids: page.ids(),
                })
            }
            Request::Subscribe(by) => self.subscribe(a, by, true),
            Request::Unsubscribe(by) => self.subscribe(a, by, false),
            Request::Quit(by) => self.quit(a, by),
            Request::Stats { admin, .. } => {
                counters = StatCounters::new(tx);
                self.stats_body(src, admin, &mut counters)
                    .map(|()| Reply::Stats {
                        tx,
                        stats: counters.stats(),
                    })
            }
        };
        match result {
            Ok(reply) => self.send_reply(out, src, &reply, MAX_DATAGRAM),
            Err(code) => self.send_error(now, out, src, Some(tx), code, MAX_DATAGRAM),
        }
    }

    /// The live registration of `by.id` if `by.token` owns it.
    fn owned(&mut self, now: Instant, by: Owned<'_>) -> Result<Handle, ErrorCode> {
        let h = self.find_live(now, by.id).ok_or(ErrorCode::NoSuchId)?;
        match self.reg.get(h).owner {
            Owner::Token(t) if t == by.token => Ok(h),
            _ => Err(ErrorCode::NotOwner),
        }
    }

    fn register<'r>(
        &mut self,
        Asked { now, src, tx }: Asked<'r>,
        id: Id<'r>,
        lease: Option<u32>,
        token: Option<Token>,
        key: Option<PublicKey>,
    ) -> Answer<'r> {
        let lease = self.cfg.grant(lease);
        let expires = now + Millis::from_secs(u64::from(lease));
        let token = match self.find_live(now, id) {
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
                owned
            }
            None => {
                let slot = self.enroll(now, src, id, lease, Claim::Token { key })?;
                match self.reg.get(slot).owner {
                    Owner::Token(t) => t,
                    // `enroll` mints a token for every `Claim::Token`.
                    Owner::Address => return Err(ErrorCode::TableFull),
                }
            }
        };
        Ok(Reply::Registered {
            tx,
            id,
            lease,
            addr: src,
            token,
        })
    }

    fn keepalive<'r>(&mut self, a: Asked<'r>, by: Owned<'_>) -> Answer<'r> {
        let Asked { now, src, tx } = a;
        let slot = self.owned(now, by)?;
        self.rebind(slot, src)?;
        let e = self.reg.get_mut(slot);
        let lease = e.lease;
        e.expires = now + Millis::from_secs(u64::from(lease));
        Ok(Reply::Alive {
            tx,
            lease,
            addr: src,
            seq: self.log.latest(),
        })
    }

    fn lookup<'r>(&mut self, Asked { now, tx, .. }: Asked<'r>, id: Id<'r>) -> Answer<'r> {
        let slot = self.find_live(now, id).ok_or(ErrorCode::NoSuchId)?;
        let e = self.reg.get(slot);
        Ok(Reply::At {
            tx,
            id,
            addr: e.addr,
            kind: e.kind(),
        })
    }

    /// Besides its reply, `INTRO` sends the target a `PUNCH`.
    fn introduce<'r>(
        &mut self,
        Asked { now, src, tx }: Asked<'r>,
        by: Owned<'_>,
        target: Id<'r>,
        local: Locals,
        out: &mut impl Outbox,
    ) -> Answer<'r> {
        // Only a registered requester may make the server send to a third
        // party, and the target learns who asked.
        let me = self.owned(now, by)?;
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
            id: by.id,
            addr: src,
            kind: self.reg.get(me).kind(),
            local,
        };
        self.send_reply(out, target_addr, &punch, MAX_DATAGRAM);
        Ok(Reply::At {
            tx,
            id: target,
            addr: target_addr,
            kind: target_kind,
        })
    }

    /// Fill `ids` with a page of live ids from `cursor` on; the cursor of
    /// the next page, 0 after the last.
    fn list(&mut self, now: Instant, cursor: u32, ids: &mut PageIds) -> u32 {
        // Slots past the span have never held an entry: a lightly used
        // table lists in one page however large its capacity.
        let cap = self.reg.span() as u32;
        let mut slot = cursor;
        let end = cursor.saturating_add(LIST_SCAN).min(cap);
        while slot < end {
            if let Some((_, e)) = self.reg.at_slot(slot) {
                if e.expires > now && !ids.push(e.id.as_bytes()) {
                    break;
                }
            }
            slot += 1;
        }
        if slot >= cap { 0 } else { slot }
    }

    fn subscribe<'r>(&mut self, a: Asked<'r>, by: Owned<'_>, on: bool) -> Answer<'r> {
        let Asked { now, src, tx } = a;
        let slot = self.owned(now, by)?;
        self.rebind(slot, src)?;
        let reply = if on {
            let seq = self.log.latest();
            self.reg.set_subscription(slot, Subscription::Events);
            let e = self.reg.get_mut(slot);
            e.sub_seq = seq;
            e.sub_sent = NEVER;
            Reply::Subscribed { tx, seq }
        } else {
            self.reg.set_subscription(slot, Subscription::None);
            Reply::Unsubscribed { tx }
        };
        self.refresh_gauges();
        Ok(reply)
    }

    fn quit<'r>(&mut self, Asked { now, tx, .. }: Asked<'r>, by: Owned<'r>) -> Answer<'r> {
        let slot = self.owned(now, by)?;
        self.remove(slot);
        self.relay.end_for(by.id);
        Ok(Reply::Bye { tx, id: by.id })
    }

    /// Fill `body` with the counters, for a loopback source or the admin
    /// token only.
    fn stats_body(
        &mut self,
        src: SocketAddr,
        admin: Option<Token>,
        body: &mut StatCounters,
    ) -> Result<(), ErrorCode> {
        // On a dual-stack socket a local IPv4 client is ::ffff:127.0.0.1.
        let allowed = src.ip().to_canonical().is_loopback()
            || (self.cfg.admin_token.is_some() && admin == self.cfg.admin_token);
        if !allowed {
            return Err(ErrorCode::Forbidden);
        }
        // Counters that do not fit are left out whole (the metrics
        // endpoint has all of them).
        self.stats.for_each(|name, value| {
            body.push(name, value);
        });
        Ok(())
    }
}
