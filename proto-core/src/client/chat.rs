//! The pieces of reliable chat: the duplicate-suppression window, the
//! reassembly slots for incoming messages and the retransmission state of
//! outgoing ones. All fixed-size.

use heapless::{String, Vec};

use crate::time::Instant;
use crate::wire::IdBuf;
use crate::wire::peer::{MAX_FRAGMENTS, split_at_boundary};

/// Longest chat message, in bytes of UTF-8.
pub const MAX_TEXT: usize = 4096;

/// How far back (in message numbers) the window remembers.
pub const WINDOW: u32 = 64;

/// Which message numbers of one sender's session were already shown
/// (IPsec's anti-replay window: a high-water mark and a bitmap below it).
///
/// Numbers more than [`WINDOW`] below the mark count as seen: a sender
/// never has that many messages in flight (it holds at most
/// [`super::MAX_OUTGOING`]), so anything that old was either shown or given
/// up by its sender long ago.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    session: Option<u64>,
    top: u32,
    /// Bit `i`: message `top - i` was seen.
    bits: u64,
}

impl Window {
    /// Whether `(session, seq)` was already marked.
    pub fn seen(&self, session: u64, seq: u32) -> bool {
        if self.session != Some(session) {
            return false;
        }
        if seq > self.top {
            return false;
        }
        let back = self.top - seq;
        back >= WINDOW || self.bits & (1u64 << back) != 0
    }

    /// Mark `(session, seq)` seen. A new session replaces the old one (the
    /// sender restarted; one id is one process at a time).
    pub fn mark(&mut self, session: u64, seq: u32) {
        if self.session != Some(session) {
            *self = Window {
                session: Some(session),
                top: seq,
                bits: 1,
            };
            return;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.bits = if shift >= WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.top = seq;
        } else {
            let back = self.top - seq;
            if back < WINDOW {
                self.bits |= 1u64 << back;
            }
        }
    }
}

/// What a reassembly slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing.
    Free,
    /// Some fragments of a message.
    Partial,
    /// A whole message, waiting to be handed out as an event.
    Ready,
}

/// Why a fragment was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The fragment disagrees with the others (fragment count).
    Inconsistent,
    /// The message would be longer than [`MAX_TEXT`].
    TooLong,
}

/// One incoming message being put back together.
pub struct Reassembly {
    /// What the slot holds.
    pub state: SlotState,
    /// The sender, if known.
    pub from: Option<IdBuf>,
    /// Whether it came as a seed `Message`.
    pub seed: bool,
    /// The sender's session.
    pub session: u64,
    /// The message number.
    pub seq: u32,
    /// When the last new fragment arrived (abandoned partials are dropped).
    pub active: Instant,
    count: u8,
    have: u16,
    spans: [(u16, u16); MAX_FRAGMENTS as usize],
    /// Fragments in arrival order; `spans` says where each one is.
    buf: Vec<u8, MAX_TEXT>,
}

impl Reassembly {
    /// An empty slot.
    pub const EMPTY: Reassembly = Reassembly {
        state: SlotState::Free,
        from: None,
        seed: false,
        session: 0,
        seq: 0,
        active: Instant(0),
        count: 0,
        have: 0,
        spans: [(0, 0); MAX_FRAGMENTS as usize],
        buf: Vec::new(),
    };

    /// Start a message of `count` fragments in a free slot.
    pub fn start(
        &mut self,
        from: Option<IdBuf>,
        seed: bool,
        session: u64,
        seq: u32,
        count: u8,
        now: Instant,
    ) {
        *self = Reassembly {
            state: SlotState::Partial,
            from,
            seed,
            session,
            seq,
            active: now,
            count,
            ..Reassembly::EMPTY
        };
    }

    /// Whether this slot is collecting `(from, session, seq)`.
    pub fn is(&self, from: &IdBuf, session: u64, seq: u32) -> bool {
        self.state != SlotState::Free
            && !self.seed
            && self.from.as_ref() == Some(from)
            && self.session == session
            && self.seq == seq
    }

    /// Take fragment `frag` (1-based) of `count`. Taking one twice is fine.
    /// Returns whether the message is now whole.
    pub fn add(&mut self, frag: u8, count: u8, text: &str) -> Result<bool, Refused> {
        if count != self.count || frag == 0 || frag > count {
            return Err(Refused::Inconsistent);
        }
        let bit = 1u16 << (frag - 1);
        if self.have & bit == 0 {
            let start = self.buf.len();
            self.buf
                .extend_from_slice(text.as_bytes())
                .map_err(|_| Refused::TooLong)?;
            self.spans[usize::from(frag - 1)] = (start as u16, text.len() as u16);
            self.have |= bit;
        }
        let whole = self.have.count_ones() == u32::from(self.count);
        if whole {
            self.state = SlotState::Ready;
        }
        Ok(whole)
    }

    /// Copy the whole message, fragments in order, into `out`.
    pub fn assemble(&self, out: &mut String<MAX_TEXT>) {
        out.clear();
        for &(start, len) in &self.spans[..usize::from(self.count)] {
            let bytes = &self.buf[usize::from(start)..usize::from(start) + usize::from(len)];
            // Every fragment was checked as UTF-8 on arrival.
            let _ = out.push_str(core::str::from_utf8(bytes).unwrap_or(""));
        }
    }

    /// Empty the slot.
    pub fn clear(&mut self) {
        self.state = SlotState::Free;
        self.buf.clear();
        self.have = 0;
    }
}

/// Where an outgoing message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// Waiting for a path to the peer.
    Waiting,
    /// Sent; retransmitted at `next` unless acknowledged.
    Sending {
        /// Transmissions so far.
        attempts: u8,
        /// When the next retransmission is due.
        next: Instant,
        /// The current timeout, in milliseconds.
        rto: u64,
        /// When it was first sent (for round-trip samples).
        first: Instant,
    },
}

/// An outgoing message: its text, its fragments and what is acknowledged.
pub struct Outgoing {
    /// The peer.
    pub to: IdBuf,
    /// Its number in this client's session.
    pub seq: u32,
    /// Where it is.
    pub state: OutState,
    /// When it was queued.
    pub queued: Instant,
    text: String<MAX_TEXT>,
    /// Fragment `i` (1-based) is `text[cuts[i-1]..cuts[i]]`.
    cuts: Vec<u16, { MAX_FRAGMENTS as usize + 1 }>,
    acked: u16,
}

impl Outgoing {
    /// Split `text` into fragments of at most `frag_len` bytes, on
    /// character boundaries. `None` if it needs more than [`MAX_FRAGMENTS`]
    /// or is longer than [`MAX_TEXT`].
    pub fn new(to: IdBuf, seq: u32, text: &str, frag_len: usize, now: Instant) -> Option<Outgoing> {
        let mut cuts = Vec::new();
        cuts.push(0).ok()?;
        let mut rest = text;
        let mut at = 0usize;
        while !rest.is_empty() {
            let (head, tail) = split_at_boundary(rest, frag_len.max(4));
            at += head.len();
            cuts.push(at as u16).ok()?;
            rest = tail;
        }
        Some(Outgoing {
            to,
            seq,
            state: OutState::Waiting,
            queued: now,
            text: String::try_from(text).ok()?,
            cuts,
            acked: 0,
        })
    }

    /// How many fragments.
    pub fn count(&self) -> u8 {
        (self.cuts.len() - 1) as u8
    }

    /// Fragment `frag` (1-based).
    pub fn fragment(&self, frag: u8) -> &str {
        let i = usize::from(frag);
        self.text
            .get(usize::from(self.cuts[i - 1])..usize::from(self.cuts[i]))
            .unwrap_or("")
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether fragment `frag` is acknowledged.
    pub fn is_acked(&self, frag: u8) -> bool {
        self.acked & (1 << (frag - 1)) != 0
    }

    /// Record an acknowledgement; returns whether every fragment now is.
    pub fn ack(&mut self, frag: u8) -> bool {
        if frag >= 1 && frag <= self.count() {
            self.acked |= 1 << (frag - 1);
        }
        self.acked.count_ones() == u32::from(self.count())
    }

    /// Whether any fragment was acknowledged.
    pub fn any_acked(&self) -> bool {
        self.acked != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Id;

    #[test]
    fn window_rules() {
        let mut w = Window::default();
        // (mark these, then expect these seen/unseen)
        assert!(!w.seen(1, 5));
        w.mark(1, 5);
        assert!(w.seen(1, 5));
        assert!(!w.seen(2, 5), "another session is another sender start");
        assert!(!w.seen(1, 4));
        assert!(!w.seen(1, 6));
        w.mark(1, 7);
        assert!(w.seen(1, 5) && w.seen(1, 7) && !w.seen(1, 6));
        w.mark(1, 6);
        assert!(w.seen(1, 6));
        // Far ahead: everything older counts as seen.
        w.mark(1, 7 + WINDOW + 10);
        assert!(w.seen(1, 7 + WINDOW + 10));
        assert!(w.seen(1, 8), "older than the window is taken as seen");
        assert!(!w.seen(1, 7 + WINDOW + 9));
        assert!(w.seen(1, 7 + 10), "exactly the window's depth is too old");
        assert!(!w.seen(1, 7 + 11), "one less is still remembered");
        // A new session starts over.
        w.mark(9, 1);
        assert!(w.seen(9, 1) && !w.seen(9, 2) && !w.seen(1, 5));
    }

    #[test]
    fn reassembly_in_any_order_and_twice() {
        let from = IdBuf::from_id(Id::new("a").unwrap());
        let mut r = Reassembly::EMPTY;
        r.start(Some(from), false, 1, 2, 3, Instant(0));
        assert!(r.is(&from, 1, 2) && !r.is(&from, 1, 3));
        assert_eq!(r.add(3, 3, "!"), Ok(false));
        assert_eq!(r.add(1, 3, "hel"), Ok(false));
        assert_eq!(r.add(3, 3, "!"), Ok(false));
        assert_eq!(r.add(2, 2, "x"), Err(Refused::Inconsistent));
        assert_eq!(r.add(2, 3, "lo"), Ok(true));
        assert_eq!(r.state, SlotState::Ready);
        let mut out = String::new();
        r.assemble(&mut out);
        assert_eq!(out.as_str(), "hello!");
        r.clear();
        assert_eq!(r.state, SlotState::Free);
    }

    #[test]
    fn reassembly_is_bounded() {
        let mut r = Reassembly::EMPTY;
        r.start(None, false, 1, 1, 2, Instant(0));
        let big = [b'x'; MAX_TEXT];
        let big = core::str::from_utf8(&big).unwrap();
        assert_eq!(r.add(1, 2, big), Ok(false));
        assert_eq!(r.add(2, 2, "y"), Err(Refused::TooLong));
    }

    #[test]
    fn outgoing_splits_on_characters() {
        let to = IdBuf::from_id(Id::new("b").unwrap());
        let o = Outgoing::new(to, 1, "ab\u{e9}cd\u{e9}", 4, Instant(0)).unwrap();
        assert_eq!(o.count(), 2);
        assert_eq!([o.fragment(1), o.fragment(2)], ["ab\u{e9}", "cd\u{e9}"]);
        let o = Outgoing::new(to, 1, "abc\u{e9}", 4, Instant(0)).unwrap();
        assert_eq!([o.fragment(1), o.fragment(2)], ["abc", "\u{e9}"]);
        let o = Outgoing::new(to, 1, "x", 1100, Instant(0)).unwrap();
        assert_eq!(o.count(), 1);
        let long = [b'y'; 17 * 4];
        let long = core::str::from_utf8(&long).unwrap();
        assert!(Outgoing::new(to, 1, long, 4, Instant(0)).is_none());
        let mut o = Outgoing::new(to, 1, "abcdefgh", 4, Instant(0)).unwrap();
        assert!(!o.ack(2) && o.is_acked(2) && !o.is_acked(1));
        assert!(o.ack(1));
    }
}
