//! The variable bodies of replies, built item by item within the room one
//! datagram leaves them: the ids of a `PAGE`, the changes of an `EVENTS`,
//! the counters of a `STATS`. The grammar of each is in [`reply`](super::reply):
//!
//! ```text
//! ids      = id *( SP id )
//! changes  = change *( SP change )     ; change = ( "+" / "-" ) id
//! counters = counter *( SP counter )   ; counter = name "=" 1*20DIGIT
//! ```
//!
//! An item that would not fit is refused whole, so a body is always a
//! prefix of what was offered and never cuts an item.

use super::fields::TxId;
use super::reply::{ChangeSeq, IdSeq, Reply, StatSeq};
use crate::MAX_DATAGRAM;

/// Up to one datagram of ASCII text, built from whole items.
struct Line {
    buf: [u8; MAX_DATAGRAM],
    len: usize,
    room: usize,
}

impl Line {
    fn new(room: usize) -> Self {
        Line {
            buf: [0; MAX_DATAGRAM],
            len: 0,
            room: room.min(MAX_DATAGRAM),
        }
    }

    /// Append a space (unless this is the first item) and `parts`, whole,
    /// or nothing if they would not fit.
    fn item(&mut self, parts: &[&[u8]]) -> bool {
        let sep = usize::from(self.len > 0);
        let n: usize = sep + parts.iter().map(|p| p.len()).sum::<usize>();
        if self.len + n > self.room {
            return false;
        }
        if sep == 1 {
            self.buf[self.len] = b' ';
            self.len += 1;
        }
        for p in parts {
            self.buf[self.len..self.len + p.len()].copy_from_slice(p);
            self.len += p.len();
        }
        true
    }

    /// The text so far. Only ASCII is ever pushed (ids, names, digits), so
    /// this is always valid; the fallback keeps it panic-free regardless.
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// The ids of a `PAGE`.
pub struct PageIds(Line);

impl PageIds {
    /// An empty body for a `PAGE` answering `tx`.
    pub fn new(tx: TxId<'_>) -> Self {
        PageIds(Line::new(Reply::page_room(tx)))
    }

    /// Append a stored id (its bytes); `false`, and nothing appended, if
    /// it does not fit.
    pub fn push(&mut self, id: &[u8]) -> bool {
        self.0.item(&[id])
    }

    /// The ids so far, for [`Reply::Page`].
    pub fn ids(&self) -> IdSeq<'_> {
        IdSeq(self.0.as_str())
    }
}

/// The changes of an `EVENTS`.
pub struct EventChanges(Line);

impl Default for EventChanges {
    fn default() -> Self {
        EventChanges(Line::new(Reply::EVENTS_ROOM))
    }
}

impl EventChanges {
    /// Append a join or a leave of a stored id; `false`, and nothing
    /// appended, if it does not fit.
    pub fn push(&mut self, join: bool, id: &[u8]) -> bool {
        self.0.item(&[if join { b"+" } else { b"-" }, id])
    }

    /// The changes so far, for [`Reply::Events`].
    pub fn changes(&self) -> ChangeSeq<'_> {
        ChangeSeq(self.0.as_str())
    }
}

/// The counters of a `STATS` reply.
pub struct StatCounters(Line);

impl StatCounters {
    /// An empty body for a `STATS` reply answering `tx`.
    pub fn new(tx: TxId<'_>) -> Self {
        StatCounters(Line::new(Reply::stats_room(tx)))
    }

    /// Append `name=value` (a name of the counters' alphabet); `false`,
    /// and nothing appended, if it does not fit.
    pub fn push(&mut self, name: &str, value: u64) -> bool {
        let mut digits = itoa::Buffer::new();
        self.0
            .item(&[name.as_bytes(), b"=", digits.format(value).as_bytes()])
    }

    /// The counters so far, for [`Reply::Stats`].
    pub fn stats(&self) -> StatSeq<'_> {
        StatSeq(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn tx(s: &str) -> TxId<'_> {
        TxId::new(s).unwrap()
    }

    #[test]
    fn a_line_refuses_what_does_not_fit() {
        let mut l = Line::new(MAX_DATAGRAM);
        assert!(l.item(&[&[b'a'; MAX_DATAGRAM - 3]]));
        assert!(!l.item(&[b"bc", b"d"]));
        assert!(l.item(&[b"b"]));
        assert_eq!(l.len, MAX_DATAGRAM - 1);
        assert!(!l.item(&[b"c"]));
        assert_eq!(l.len, MAX_DATAGRAM - 1);
        // No room is larger than a datagram.
        assert_eq!(Line::new(usize::MAX).room, MAX_DATAGRAM);
    }

    #[test]
    fn bodies_are_written_in_their_grammar_and_parse_back() {
        let mut ids = PageIds::new(tx("1"));
        assert_eq!(ids.ids().as_str(), "");
        assert!(ids.push(b"alice") && ids.push(b"bob"));
        assert_eq!(ids.ids(), IdSeq::new("alice bob").unwrap());
        let mut changes = EventChanges::default();
        assert_eq!(changes.changes().as_str(), "");
        assert!(changes.push(true, b"alice") && changes.push(false, b"bob"));
        assert_eq!(changes.changes(), ChangeSeq::new("+alice -bob").unwrap());
        let mut stats = StatCounters::new(tx("1"));
        assert!(stats.push("ids", 0) && stats.push("in.reg", 10520));
        assert!(stats.push("max", u64::MAX));
        assert_eq!(
            stats.stats(),
            StatSeq::new("ids=0 in.reg=10520 max=18446744073709551615").unwrap()
        );
    }

    #[test]
    fn a_full_body_fills_its_reply_to_the_datagram() {
        let mut buf = [0u8; MAX_DATAGRAM];
        let t = tx("0123456789abcdef");
        let mut ids = PageIds::new(t);
        let mut n = 0u32;
        while ids.push(std::format!("{:032}", n).as_bytes()) {
            n += 1;
        }
        // Short ids still fit after the long ones ran out of room.
        while ids.push(b"z") {}
        let page = Reply::Page {
            tx: t,
            next: u32::MAX,
            ids: ids.ids(),
        };
        // " z" is two bytes: at most one short of full.
        let m = page.emit(&mut buf).unwrap();
        assert!(m + 1 >= MAX_DATAGRAM && m <= MAX_DATAGRAM, "{m}");
        let mut changes = EventChanges::default();
        while changes.push(true, b"abcdefghijklmnopqrstuvwxyz") {}
        while changes.push(false, b"z") {}
        let events = Reply::Events {
            first: u32::MAX,
            last: u32::MAX,
            changes: changes.changes(),
        };
        let m = events.emit(&mut buf).unwrap();
        // "-z" is two bytes and a space: at most two short of full.
        assert!(m + 2 >= MAX_DATAGRAM && m <= MAX_DATAGRAM, "{m}");
        let mut stats = StatCounters::new(t);
        while stats.push("a", 1) {}
        let reply = Reply::Stats {
            tx: t,
            stats: stats.stats(),
        };
        let m = reply.emit(&mut buf).unwrap();
        // " a=1" is four bytes: at most three short of full.
        assert!(m + 3 >= MAX_DATAGRAM && m <= MAX_DATAGRAM, "{m}");
    }
}
