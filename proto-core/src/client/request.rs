//! Requests to the server: the queue of pending requests, their
//! transaction ids, sending them once a cookie (and, where needed, the
//! registration) is in hand, and retransmission with exponential backoff.

use crate::time::{Instant, Millis};
use crate::wire::relay::RelayRequest;
use crate::wire::request::{Header, Owned};
use crate::wire::{Id, IdBuf, Reply, Request, Token, TxId};

use super::Client;
use super::event::{Event, Failure};

/// The longest wait between transmissions of a server request, in ms:
/// past it, more tries ride out loss better than longer waits do.
const REQUEST_RTO_MAX: u64 = 2000;

/// `HELLO` is padded to this length, a round size above the longest
/// `COOKIE`, so the server's answer is never larger than the request.
pub(super) const HELLO_LEN: usize = 128;
const _: () = assert!(Reply::COOKIE_MAX <= HELLO_LEN);
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
                    self.cookie.is_some() && (self.token.is_some() || !self.is_registering())
                }
                Req::Resolve { .. } => self.cookie.is_some() && !self.is_registering(),
                Req::Relay(_) => self.cookie.is_some() && self.is_registered(),
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
        let mut tbuf = [0u8; 10];
        let Some(tx) = tx_text(self.pending[i].tx, &mut tbuf) else {
            self.pending.swap_remove(i);
            return;
        };
        let h = Header {
            tx,
            cookie: self.cookie.map(|(c, _)| c),
        };
        // Whether a resolve goes as `INTRO` is decided anew on every
        // attempt, and remembered for what its answer means.
        let registered = self.is_registered();
        let mut copies = 1;
        if let Req::Resolve { plain, intro, .. } = &mut self.pending[i].req {
            *intro = !*plain && registered;
            if *intro && self.pending[i].attempts == 0 {
                copies = super::path::PUNCH_COPIES;
            }
        }
        let req = self.pending[i].req;
        let me = self.cfg.id;
        let me = me.as_ref().and_then(IdBuf::as_id);
        let server = self.cfg.server;
        let sent = match &req {
            Req::Relay(peer) => {
                if let (Some(id), Some(peer)) = (me, peer.as_id()) {
                    let token = self.token.unwrap_or(Token(0));
                    let r = RelayRequest { h, id, token, peer };
                    self.emit(server, |b| r.emit(b));
                }
                me.is_some()
            }
            req => match self.request_of(req, h, me) {
                Some(r) => {
                    self.emit_copies(server, copies, |b| r.emit(b));
                    true
                }
                None => false,
            },
        };
        if !sent {
            self.pending.swap_remove(i);
            return;
        }
        self.schedule_retransmit(now, i);
    }

    /// The request `req` stands for, under header `h`, from `me`; `None`
    /// if it cannot be written (no id of our own, or a bad id in it).
    fn request_of<'r>(
        &self,
        req: &'r Req,
        h: Header<'r>,
        me: Option<Id<'r>>,
    ) -> Option<Request<'r>> {
        let by = me.map(|id| Owned {
            h,
            id,
            token: self.token.unwrap_or(Token(0)),
        });
        Some(match req {
            Req::Hello { .. } => Request::padded_hello(h.tx, HELLO_LEN),
            Req::Register => Request::Register {
                h,
                id: me?,
                lease: self.cfg.lease,
                token: self.token,
                key: self.cfg.register_key.then(|| self.identity.public()),
            },
            Req::Keep => Request::Keepalive(by?),
            Req::Subscribe => Request::Subscribe(by?),
            Req::Quit => Request::Quit(by?),
            Req::Resolve { peer, intro, .. } => {
                let target = peer.as_id()?;
                match by {
                    Some(by) if *intro => Request::Introduce {
                        by,
                        target,
                        local: self.cfg.local,
                    },
                    _ => Request::Lookup { h, id: target },
                }
            }
            Req::Lookup(id) => Request::Lookup { h, id: id.as_id()? },
            Req::List(cursor) => Request::List { h, cursor: *cursor },
            // Not a `Request`: written by the caller.
            Req::Relay(_) => return None,
        })
    }

    /// Count an attempt of pending request `i` and set when it goes again
    /// (exponential backoff with jitter, at most [`REQUEST_RTO_MAX`]).
    fn schedule_retransmit(&mut self, now: Instant, i: usize) {
        let jitter = self.rng.jitter(self.pending[i].rto);
        let p = &mut self.pending[i];
        if p.attempts == 0 {
            p.first = now;
        }
        p.attempts = p.attempts.saturating_add(1);
        p.next = Some(now + Millis(jitter));
        p.rto = (p.rto * 2).min(REQUEST_RTO_MAX);
    }

    pub(super) fn take_pending(&mut self, tx: TxId<'_>) -> Option<Pending> {
        let tx = parse_tx(tx)?;
        let i = self.pending.iter().position(|p| p.tx == tx)?;
        Some(self.pending.swap_remove(i))
    }

    pub(super) fn server_answered(&mut self) {
        if self.server_down {
            self.server_down = false;
            self.push_event(Event::ServerBack);
        }
    }
}
