//! Receiving from peers: what each peer message does, and incoming chat
//! messages reassembled in order and shown exactly once.

use core::net::SocketAddr;

use crate::time::{Instant, Millis};
use crate::wire::peer::{Chat, PeerMsg, Text};
use crate::wire::{Id, IdBuf};

use super::Client;
use super::chat::SlotState;
use super::event::Rec;

/// A partial incoming message that got no new fragment for this long is
/// dropped (its sender retransmits far more often, or gave up).
pub(super) const REASSEMBLY_TIMEOUT: Millis = Millis(15_000);

impl Client {
    pub(super) fn on_peer(&mut self, now: Instant, src: SocketAddr, msg: PeerMsg<'_>) {
        let Some(me) = self.cfg.id else {
            return;
        };
        let Some(my_id) = me.as_id() else { return };
        match msg {
            PeerMsg::Probe { from, nonce } => self.on_probe(now, src, my_id, from, nonce),
            PeerMsg::Probed { from, nonce } => self.on_probed(now, src, from, nonce),
            PeerMsg::Ack {
                from,
                session,
                seq,
                frag,
            } => self.on_ack(now, src, from, session, seq, frag),
            PeerMsg::Chat(c) => self.on_chat(now, src, my_id, c),
            PeerMsg::Seed(text) => self.on_seed(now, src, text),
        }
    }

    /// A seed `Message` line: a whole message, which cannot be acknowledged.
    fn on_seed(&mut self, now: Instant, src: SocketAddr, text: &str) {
        // The seed's client names nobody: the address may.
        let from = self
            .peers
            .iter()
            .find(|p| p.path == Some(src) || p.cands.contains(&src))
            .map(|p| p.id);
        // The text is carried verbatim; one typed by hand (`nc -u`) ends in
        // a newline, which is not part of what was said.
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let Some(text) = Text::new(text) else { return };
        let Some(s) = self.slots.iter().position(|s| s.state == SlotState::Free) else {
            return;
        };
        self.slots[s].start(from, true, 0, 0, 1, now);
        if self.slots[s].add(1, 1, text.as_str()) == Ok(true) {
            self.push_event(Rec::Message { slot: s as u8 });
        } else {
            self.slots[s].clear();
        }
    }

    fn on_chat(&mut self, now: Instant, src: SocketAddr, me: Id<'_>, c: Chat<'_>) {
        if c.from == me {
            return;
        }
        let Some(p) = self.heard_from(now, c.from, src) else {
            return;
        };
        let from = IdBuf::from_id(c.from);
        let ack = PeerMsg::Ack {
            from: me,
            session: c.session,
            seq: c.seq,
            frag: c.frag,
        };
        if self.peers[p].rx.seen(c.session, c.seq) {
            self.emit(src, |b| ack.emit(b));
            return;
        }
        // A fragment is acknowledged only if its message can be shown: while
        // the caller leaves the event queue full, say nothing, and the sender
        // sends it again later.
        if !self.event_room() {
            return;
        }
        let slot = match self
            .slots
            .iter()
            .position(|s| s.is(&from, c.session, c.seq))
        {
            Some(s) => s,
            None => {
                // No room: say nothing, and the sender sends it again later.
                let Some(s) = self.slots.iter().position(|s| s.state == SlotState::Free) else {
                    return;
                };
                self.slots[s].start(Some(from), false, c.session, c.seq, c.count, now);
                s
            }
        };
        // An inconsistent or oversized fragment is ignored, not acknowledged.
        if let Ok(whole) = self.slots[slot].add(c.frag, c.count, c.text.as_str()) {
            self.slots[slot].active = now;
            self.emit(src, |b| ack.emit(b));
            if whole {
                self.peers[p].rx.mark(c.session, c.seq);
                self.push_event(Rec::Message { slot: slot as u8 });
            }
        }
    }

    /// Drop the partial messages abandoned by their senders.
    pub(super) fn reassembly_due(&mut self, now: Instant) {
        for s in &mut self.slots {
            if s.state == SlotState::Partial && s.active + REASSEMBLY_TIMEOUT <= now {
                s.clear();
            }
        }
    }
}
