//! Sending chat messages: `CHAT` fragments sealed in a peer's session,
//! retransmitted with backoff until every one is acknowledged, or
//! `Message` lines to a seed client, which cannot acknowledge.

use core::net::SocketAddr;

use crate::time::{Instant, Millis};
use crate::wire::IdBuf;
use crate::wire::peer::{Chat, MAX_SEED_TEXT, PeerMsg, Text, split_at_boundary};
use crate::wire::sealed::MAX_PLAINTEXT;

use super::Client;
use super::chat::{OutState, Outgoing};
use super::event::{Outcome, Rec, Undelivered};

impl Client {
    /// Retransmit the messages that are due; give up on those out of attempts.
    pub(super) fn chat_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.outs.len() {
            if let OutState::Sending { attempts, next, .. } = self.outs[i].state {
                if next <= now {
                    if attempts >= self.cfg.chat_attempts {
                        let o = self.outs.swap_remove(i);
                        self.settle(&o, Outcome::NotDelivered(Undelivered::NoAnswer));
                        continue;
                    }
                    self.send_fragments(now, i);
                    // A path that never carried an acknowledgement may be
                    // stale (the peer moved), or the peer may have lost the
                    // session (it restarted): ask the server again, and
                    // handshake again on every address known.
                    if attempts == 3 && !self.outs[i].any_acked() {
                        let to = self.outs[i].to;
                        self.resolve(now, to);
                        if let Some(p) = self.find_peer(&to) {
                            self.start_handshake(now, p);
                        }
                    }
                }
            }
            i += 1;
        }
    }

    /// Send every message waiting for seed peer `p` as `Message` datagrams.
    pub(super) fn send_seed(&mut self, p: usize, addr: SocketAddr) {
        let id = self.peers[p].id;
        let mut i = 0;
        while i < self.outs.len() {
            if self.outs[i].to != id {
                i += 1;
                continue;
            }
            let o = self.outs.swap_remove(i);
            let mut rest = o.text();
            while !rest.is_empty() {
                let (head, tail) = split_at_boundary(rest, MAX_SEED_TEXT);
                let msg = PeerMsg::Seed(head);
                self.emit(addr, |b| msg.emit(b));
                rest = tail;
            }
            self.settle(&o, Outcome::Unconfirmed);
        }
    }

    /// Send the unacknowledged fragments of outgoing message `i` and
    /// schedule the next retransmission.
    /// The timer moves on even when nothing could be sent (no path right
    /// now), so a message always ends in an event.
    pub(super) fn send_fragments(&mut self, now: Instant, i: usize) {
        let me = self.cfg.id;
        let from = me.as_ref().and_then(IdBuf::as_id);
        let to = self.outs[i].to;
        let p = self.find_peer(&to);
        let srtt = p.and_then(|p| self.peers[p].srtt);
        let count = self.outs[i].count();
        let sendable = from.zip(p).filter(|&(_, p)| self.has_session(now, p));
        for frag in 1..=count {
            let Some((from, p)) = sendable else { break };
            if self.outs[i].is_acked(frag) {
                continue;
            }
            let o = &self.outs[i];
            let Some(text) = Text::new(o.fragment(frag)) else {
                continue;
            };
            let msg = PeerMsg::Chat(Chat {
                from,
                session: self.session,
                seq: o.seq,
                frag,
                count,
                text,
            });
            let mut inner = [0u8; MAX_PLAINTEXT];
            if let Ok(n) = msg.emit(&mut inner) {
                self.send_sealed_bytes(now, p, &inner[..n]);
            }
        }
        let base = srtt.map_or(self.cfg.chat_rto.0, |s| (2 * s + 50).max(200));
        let max = self.cfg.chat_rto_max.0.max(base);
        let (attempts, rto, first) = match self.outs[i].state {
            OutState::Waiting => (0, base, now),
            OutState::Sending {
                attempts,
                rto,
                first,
                ..
            } => (attempts, (rto * 2).min(max), first),
        };
        let wait = self.rng.jitter(rto);
        self.outs[i].state = OutState::Sending {
            attempts: attempts + 1,
            next: now + Millis(wait),
            rto,
            first,
        };
    }

    /// Report what became of outgoing message `o`, off the queue now.
    fn settle(&mut self, o: &Outgoing, outcome: Outcome) {
        self.push_event(Rec::Sent {
            to: o.to,
            msg: o.seq,
            outcome,
        });
    }

    pub(super) fn fail_outgoing(&mut self, peer: &IdBuf, reason: Undelivered) {
        let mut i = 0;
        while i < self.outs.len() {
            if self.outs[i].to == *peer {
                let o = self.outs.swap_remove(i);
                self.settle(&o, Outcome::NotDelivered(reason));
            } else {
                i += 1;
            }
        }
    }

    /// Peer `p` acknowledged a fragment.
    pub(super) fn on_ack(&mut self, now: Instant, p: usize, session: u64, seq: u32, frag: u8) {
        if session != self.session {
            return;
        }
        let b = self.peers[p].id;
        let Some(i) = self.outs.iter().position(|o| o.to == b && o.seq == seq) else {
            return;
        };
        if let OutState::Sending {
            attempts: 1, first, ..
        } = self.outs[i].state
        {
            let sample = now.since(first);
            let s = &mut self.peers[p].srtt;
            *s = Some(s.map_or(sample, |s| (7 * s + sample) / 8));
        }
        if self.outs[i].ack(frag) {
            let o = self.outs.swap_remove(i);
            self.settle(&o, Outcome::Delivered);
        }
    }
}
