//! Requests to the server: the queue of pending requests, their
//! transaction ids, sending them once a cookie (and, where needed, the
//! registration) is in hand, and retransmission with exponential backoff.

use crate::time::{Instant, Millis};
use crate::wire::request::Header;
use crate::wire::{IdBuf, Request, Token, TxId};

use super::Client;
use super::event::{Failure, Rec};
use super::registration::RegState;

/// `HELLO` is padded to this length so the `COOKIE` reply (at most 99
/// bytes with an IPv6 address) is never larger than the request.
pub(super) const HELLO_LEN: usize = 128;
/// A cookie older than this is refreshed before use (servers keep one
/// valid for at least one 120 s window).
const COOKIE_FRESH: Millis = Millis(100_000);

/// What a pending request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Req {
    Hello {
        ping: bool,
    },
    Register,
    Keep,
    Subscribe,
    Quit,
    /// Where is this peer (to send to it)? `INTRO` when registered and
    /// not `plain`; `intro` says which was sent.
    Resolve {
        peer: IdBuf,
        plain: bool,
        intro: bool,
    },
    Lookup(IdBuf),
    List(u32),
    /// A relay session with this peer (`RELAY`).
    Relay(IdBuf),
}

/// A request waiting for its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) tx: u32,
    pub(super) req: Req,
    /// `None`: waiting for a cookie or a registration before it can go.
    pub(super) next: Option<Instant>,
    pub(super) attempts: u8,
    pub(super) rto: u64,
    pub(super) first: Instant,
}

fn tx_text(tx: u32, buf: &mut [u8; 10]) -> Option<TxId<'_>> {
    let mut i = buf.len();
    let mut v = tx;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    TxId::from_bytes(&buf[i..]).ok()
}

fn parse_tx(tx: TxId<'_>) -> Option<u32> {
    tx.as_str().parse().ok()
}

impl Client {
    /// Retransmit the requests that are due; give up on those out of attempts.
    pub(super) fn requests_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            match p.next {
                Some(next) if next <= now => {
                    if p.attempts >= self.cfg.request_attempts {
                        self.pending.swap_remove(i);
                        self.request_failed(now, p.req, Failure::NoAnswer);
                        continue;
                    }
                    self.transmit_request(now, i);
                }
                _ => {}
            }
            i += 1;
        }
    }

    pub(super) fn has_pending(&self, f: impl Fn(&Req) -> bool) -> bool {
        self.pending.iter().any(|p| f(&p.req))
    }

    /// Queue a request; [`Client::pump`] sends it when it can go.
    pub(super) fn request(&mut self, now: Instant, req: Req) {
        let tx = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1);
        let p = Pending {
            tx,
            req,
            next: None,
            attempts: 0,
            rto: self.cfg.request_rto.0,
            first: now,
        };
        if self.pending.push(p).is_err() {
            self.request_failed(now, req, Failure::NoAnswer);
        }
    }

    /// Send every waiting request that can go now; fetch a cookie if one is needed.
    pub(super) fn pump(&mut self, now: Instant) {
        let fresh = self
            .cookie
            .is_some_and(|(_, at)| now.since(at) < COOKIE_FRESH.0);
        if !fresh {
            self.cookie = None;
        }
        let mut need_cookie = false;
        for i in 0..self.pending.len() {
            let p = self.pending[i];
            if p.next.is_some() {
                continue;
            }
            let ready = match p.req {
                Req::Hello { .. } => true,
                Req::Keep | Req::Subscribe | Req::Quit => {
                    self.cookie.is_some()
                        && (self.token.is_some()
                            || !matches!(self.reg, RegState::Registering { .. }))
                }
                Req::Resolve { .. } => {
                    self.cookie.is_some() && !matches!(self.reg, RegState::Registering { .. })
                }
                Req::Relay(_) => {
                    self.cookie.is_some() && matches!(self.reg, RegState::Registered { .. })
                }
                _ => self.cookie.is_some(),
            };
            if ready {
                self.transmit_request(now, i);
            } else if self.cookie.is_none() {
                need_cookie = true;
            }
        }
        if need_cookie && !self.has_pending(|r| matches!(r, Req::Hello { .. })) {
            self.request(now, Req::Hello { ping: false });
            if let Some(i) = self.pending.len().checked_sub(1) {
                self.transmit_request(now, i);
            }
        }
    }

    /// (Re)transmit pending request `i` and schedule its retransmission.
    fn transmit_request(&mut self, now: Instant, i: usize) {
        let p = self.pending[i];
        let mut tbuf = [0u8; 10];
        let Some(tx) = tx_text(p.tx, &mut tbuf) else {
            self.pending.swap_remove(i);
            return;
        };
        let h = Header {
            tx,
            cookie: self.cookie.map(|(c, _)| c),
        };
        let me = self.cfg.id;
        let me = me.as_ref().and_then(IdBuf::as_id);
        let token = self.token.unwrap_or(Token(0));
        let mut req_buf = [IdBuf::EMPTY; 1];
        let req = match p.req {
            Req::Hello { .. } => Some(Request::Hello {
                tx,
                pad: (HELLO_LEN - "HELLO  ".len() - tx.as_bytes().len()) as u16,
            }),
            Req::Register => me.map(|id| Request::Register {
                h,
                id,
                lease: self.cfg.lease,
                token: self.token,
                key: self.cfg.register_key.then(|| self.identity.public()),
            }),
            Req::Keep => me.map(|id| Request::Keepalive { h, id, token }),
            Req::Subscribe => me.map(|id| Request::Subscribe { h, id, token }),
            Req::Quit => me.map(|id| Request::Quit { h, id, token }),
            Req::Resolve { peer, plain, .. } => {
                req_buf[0] = peer;
                let target = req_buf[0].as_id();
                let intro = !plain && matches!(self.reg, RegState::Registered { .. });
                if let Req::Resolve {
                    intro: ref mut flag,
                    ..
                } = self.pending[i].req
                {
                    *flag = intro;
                }
                match (intro, me, target) {
                    (true, Some(id), Some(target)) => Some(Request::Introduce {
                        h,
                        id,
                        token,
                        target,
                        local: self.cfg.local,
                    }),
                    (_, _, Some(target)) => Some(Request::Lookup { h, id: target }),
                    _ => None,
                }
            }
            Req::Lookup(id) => {
                req_buf[0] = id;
                req_buf[0].as_id().map(|id| Request::Lookup { h, id })
            }
            Req::List(cursor) => Some(Request::List { h, cursor }),
            Req::Relay(peer) => {
                req_buf[0] = peer;
                if let (Some(id), Some(peer)) = (me, req_buf[0].as_id()) {
                    let r = crate::wire::relay::RelayRequest { h, id, token, peer };
                    let server = self.cfg.server;
                    self.emit(server, |b| r.emit(b));
                }
                None
            }
        };
        match req {
            Some(req) => {
                let server = self.cfg.server;
                self.emit(server, |b| req.emit(b));
            }
            None if matches!(p.req, Req::Relay(_)) && me.is_some() => {}
            None => {
                self.pending.swap_remove(i);
                return;
            }
        }
        let jitter = self.rng.jitter(p.rto);
        let p = &mut self.pending[i];
        if p.attempts == 0 {
            p.first = now;
        }
        p.attempts = p.attempts.saturating_add(1);
        p.next = Some(now + Millis(jitter));
        p.rto = (p.rto * 2).min(4000);
    }

    pub(super) fn take_pending(&mut self, tx: TxId<'_>) -> Option<Pending> {
        let tx = parse_tx(tx)?;
        let i = self.pending.iter().position(|p| p.tx == tx)?;
        Some(self.pending.swap_remove(i))
    }

    pub(super) fn server_answered(&mut self) {
        if self.server_down {
            self.server_down = false;
            self.push_event(Rec::ServerBack);
        }
    }
}
