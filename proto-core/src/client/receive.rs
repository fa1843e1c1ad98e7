//! Receiving from peers: what each authenticated peer message does,
//! incoming chat messages reassembled in order and shown exactly once, and
//! the seed's plain `Message` lines (shown, marked unverified).

use core::net::SocketAddr;

use crate::time::{Instant, Millis};
use crate::wire::peer::{Chat, PeerMsg, Probe, Text};

use super::chat::SlotState;
use super::event::Rec;
use super::{Client, MAX_INCOMING};

/// A partial incoming message that got no new fragment for this long is
/// dropped (its sender retransmits far more often, or gave up).
pub(super) const REASSEMBLY_TIMEOUT: Millis = Millis(15_000);

/// Reassembly slots one sender may hold at once, so no sender can keep
/// the others out.
const SLOTS_PER_SENDER: usize = MAX_INCOMING / 2;

impl Client {
    /// A peer message that opened under peer `p`'s session. The sender is
    /// peer `p`, whatever id the message names.
    pub(super) fn on_peer(&mut self, now: Instant, p: usize, msg: PeerMsg<'_>) {
        match msg {
            PeerMsg::Probe(probe) => {
                let Some(me) = self.cfg.id else { return };
                let Some(me) = me.as_id() else { return };
                let reply = PeerMsg::Probed(Probe { from: me, ..probe });
                self.send_sealed(now, p, &reply);
            }
            PeerMsg::Probed(_) => {}
            PeerMsg::Ack {
                session, seq, frag, ..
            } => self.on_ack(now, p, session, seq, frag),
            PeerMsg::Chat(c) => self.on_chat(now, p, c),
            // Inside a session, only Parley messages make sense.
            PeerMsg::Seed(_) => {}
        }
    }

    /// A datagram in plain text from `src`: only the seed's `Message`
    /// means anything now; Parley's own messages travel sealed, so a plain
    /// `CHAT` or `PROBE` is a forgery or an old client, dropped and counted.
    pub(super) fn on_plain(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        match PeerMsg::parse(datagram) {
            Ok(PeerMsg::Seed(text)) => self.on_seed(now, src, text),
            _ => self.stats.plain_refused += 1,
        }
    }

    /// A seed `Message` line: a whole message, which cannot be acknowledged.
    fn on_seed(&mut self, now: Instant, src: SocketAddr, text: &str) {
        // The seed's client names nobody: the address may, but only for a
        // peer taken for a seed client; a plain line is never put in the
        // name of a peer that holds a key.
        let from = self
            .peers
            .iter()
            .enumerate()
            .find(|(i, p)| (p.path == Some(src) || p.cands.contains(&src)) && !self.keyed(*i))
            .map(|(_, p)| p.id);
        // The text is carried verbatim; one typed by hand (`nc -u`) ends in
        // a newline, which is not part of what was said.
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let Some(text) = Text::new(text) else { return };
        // Unauthenticated senders share the same bound as one peer.
        let held = self
            .slots
            .iter()
            .filter(|s| s.state != SlotState::Free && s.seed)
            .count();
        if held >= SLOTS_PER_SENDER {
            return;
        }
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

    fn on_chat(&mut self, now: Instant, p: usize, c: Chat<'_>) {
        self.peers[p].talked = Some(now);
        let from = self.peers[p].id;
        let Some(me) = self.cfg.id else { return };
        let Some(me) = me.as_id() else { return };
        let ack = PeerMsg::Ack {
            from: me,
            session: c.session,
            seq: c.seq,
            frag: c.frag,
        };
        if self.peers[p].rx.seen(c.session, c.seq) {
            self.send_sealed(now, p, &ack);
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
                // No room (in all, or for this sender): say nothing, and
                // the sender sends it again later.
                let mine = self
                    .slots
                    .iter()
                    .filter(|s| s.state != SlotState::Free && s.from == Some(from))
                    .count();
                if mine >= SLOTS_PER_SENDER {
                    return;
                }
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
            self.send_sealed(now, p, &ack);
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
