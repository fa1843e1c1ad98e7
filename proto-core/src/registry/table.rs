//! The registry proper: slab, hash index, and the two intrusive lists.

use core::fmt;
use core::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::{Entry, NIL, Slot, Subscription};
use crate::time::Instant;
use crate::wire::Id;
use crate::wire::fields::MAX_ID_LEN;

/// A registration's place in the table; valid until it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle(u32);

impl Handle {
    /// The slot number.
    pub fn slot(self) -> u32 {
        self.0
    }
}

/// The registration-order links of a slot: (prev, next).
fn order_links(s: &mut Slot) -> (&mut u32, &mut u32) {
    (&mut s.prev, &mut s.next)
}

/// The subscriber-list links of a slot: (prev, next).
fn sub_links(s: &mut Slot) -> (&mut u32, &mut u32) {
    (&mut s.sub_prev, &mut s.sub_next)
}

/// Take `slot` out of a doubly linked list threaded through `slots` by
/// the links `links` picks, mending the list's `head` and `tail`: the
/// registration order and the subscriber list come apart alike. The
/// slot's own links are left as they were; returns its `next`.
#[inline]
fn unlink(
    slots: &mut [Slot],
    head: &mut u32,
    tail: &mut u32,
    slot: u32,
    links: impl Fn(&mut Slot) -> (&mut u32, &mut u32),
) -> u32 {
    let (prev, next) = {
        let (p, n) = links(&mut slots[slot as usize]);
        (*p, *n)
    };
    match prev {
        NIL => *head = next,
        p => *links(&mut slots[p as usize]).1 = next,
    }
    match next {
        NIL => *tail = prev,
        n => *links(&mut slots[n as usize]).0 = prev,
    }
    next
}

/// Index cells for a table of `capacity` slots: a power of two at least
/// twice the capacity, so linear probes stay short (load factor <= 0.5).
pub const fn index_len_for(capacity: usize) -> usize {
    let want = if capacity < 1 { 2 } else { capacity * 2 };
    want.next_power_of_two()
}

/// Why storage was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// No slots, or more than a `u32` can number.
    BadCapacity,
    /// The index is not [`index_len_for`] the slot count.
    BadIndex,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageError::BadCapacity => "the table needs between 1 and 2^32-2 slots",
            StorageError::BadIndex => "the index length must be index_len_for(the slot count)",
        })
    }
}

/// The table has no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the table is full")
    }
}

/// Index cell meaning "empty". A stored cell never equals it: its slot
/// field is below the capacity, so never all ones (see `slot_bits`).
const EMPTY: u32 = NIL;

/// Where an id lives in a [`Registry`]'s index: see [`Registry::plan`].
/// Meaningful only to the registry that made it. It keeps the id too, so
/// the `_planned` methods use it only for that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    cell: usize,
    tag: u32,
    /// The id's length, or `u8::MAX` for one too long to be an id.
    len: u8,
    id: [u8; MAX_ID_LEN],
}

impl Plan {
    fn is_for(&self, id: &[u8]) -> bool {
        usize::from(self.len) == id.len() && self.id[..id.len()] == *id
    }
}

/// The id table. See the module docs for the layout.
pub struct Registry<'a> {
    slots: &'a mut [Slot],
    /// Open addressing, linear probes. A cell holds a slot number in its
    /// low `slot_bits` and a tag (more bits of the id's hash) above them:
    /// a probe reads a slot only when the tag matches, so a lookup almost
    /// never touches another id's slot (in a table larger than the caches
    /// each such visit is a cache miss).
    index: &'a mut [u32],
    mask: usize,
    slot_bits: u32,
    key: (u64, u64),
    len: usize,
    /// Free slots, threaded through `Slot::next`.
    free: u32,
    head: u32,
    tail: u32,
    sub_head: u32,
    sub_tail: u32,
    sub_count: usize,
    /// The subscriber the round robin visits next.
    sub_cursor: u32,
    /// The slot the clock hand visits next.
    hand: u32,
    /// Every slot at or above this one has never held an entry. The free
    /// list starts in slot order and is LIFO, so a table that never held
    /// many entries at once keeps them all below a low mark.
    span: u32,
}

impl<'a> Registry<'a> {
    /// Build an empty registry over `slots` and `index`, resetting both.
    ///
    /// ```
    /// use proto_core::registry::{index_len_for, Registry, Slot};
    /// let mut slots = [Slot::EMPTY; 8];
    /// let mut index = [0u32; index_len_for(8)];
    /// let reg = Registry::new(&mut slots, &mut index, [0; 16]).unwrap();
    /// assert_eq!(reg.capacity(), 8);
    /// ```
    pub fn new(
        slots: &'a mut [Slot],
        index: &'a mut [u32],
        hash_key: [u8; 16],
    ) -> Result<Self, StorageError> {
        if slots.is_empty() || slots.len() >= NIL as usize {
            return Err(StorageError::BadCapacity);
        }
        if index.len() != index_len_for(slots.len()) {
            return Err(StorageError::BadIndex);
        }
        index.fill(EMPTY);
        let n = slots.len();
        for (i, s) in slots.iter_mut().enumerate() {
            *s = Slot::EMPTY;
            s.next = if i + 1 < n { i as u32 + 1 } else { NIL };
        }
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&hash_key[..8]);
        k1.copy_from_slice(&hash_key[8..]);
        // Enough bits to write the capacity itself, so no slot number (at
        // most capacity - 1) fills its field with ones and equals EMPTY.
        let slot_bits = u32::BITS - (n as u32).leading_zeros();
        Ok(Registry {
            mask: index.len() - 1,
            slot_bits,
            slots,
            index,
            key: (u64::from_le_bytes(k0), u64::from_le_bytes(k1)),
            len: 0,
            free: 0,
            head: NIL,
            tail: NIL,
            sub_head: NIL,
            sub_tail: NIL,
            sub_count: 0,
            sub_cursor: NIL,
            hand: 0,
            span: 0,
        })
    }

    /// How many slots, from slot 0, have ever held an entry: every slot
    /// from here on is empty, so a walk over the slots can stop here.
    pub fn span(&self) -> usize {
        self.span as usize
    }

    /// How many registrations fit.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many registrations are stored (live or not yet reclaimed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many entries are subscribed.
    pub fn subscriber_count(&self) -> usize {
        self.sub_count
    }

    /// The home cell of `id` in the index and its tag: from `plan` if it
    /// was made for `id`, else one keyed hash.
    fn place(&self, id: &[u8], plan: Option<&Plan>) -> (usize, u32) {
        if let Some(p) = plan.filter(|p| p.is_for(id)) {
            // Masked so that a plan of another registry, a caller's
            // mistake, can give wrong answers but never index out of range.
            return (p.cell & self.mask, p.tag);
        }
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(id);
        let h = h.finish();
        // The home takes the low bits, the tag the top ones: independent
        // for any index of fewer than 2^32 cells.
        let tag = ((h >> 32) as u32).checked_shl(self.slot_bits).unwrap_or(0);
        (h as usize & self.mask, tag)
    }

    /// Give every cell the same (empty) tag, as if all tags collided.
    /// Only on an empty table.
    #[cfg(test)]
    pub(super) fn untagged_for_tests(&mut self) {
        assert!(self.is_empty());
        self.slot_bits = u32::BITS;
    }

    /// The home cell of `id` in the index.
    pub(super) fn hash(&self, id: &[u8]) -> usize {
        self.place(id, None).0
    }

    /// The slot number a stored cell names.
    fn slot_of(&self, cell: u32) -> u32 {
        cell & !u32::MAX.checked_shl(self.slot_bits).unwrap_or(0)
    }

    /// The tag a stored cell carries.
    fn tag_of(&self, cell: u32) -> u32 {
        cell & u32::MAX.checked_shl(self.slot_bits).unwrap_or(0)
    }

    fn entry_at(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize)?.entry.as_ref()
    }

    /// Where `id` is stored. Expiry is the caller's business.
    pub fn find(&self, id: Id<'_>) -> Option<Handle> {
        self.find_planned(id, None)
    }

    /// [`Self::find`], with the hash taken from `plan` if it was made for
    /// `id` (see [`Self::plan`]).
    pub fn find_planned(&self, id: Id<'_>, plan: Option<&Plan>) -> Option<Handle> {
        let (mut i, tag) = self.place(id.as_bytes(), plan);
        loop {
            let cell = self.index[i];
            if cell == EMPTY {
                return None;
            }
            if self.tag_of(cell) == tag {
                let slot = self.slot_of(cell);
                if self.entry_at(slot).is_some_and(|e| e.id.eq_id(id)) {
                    return Some(Handle(slot));
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Where `id` lives in the index, found with one keyed hash, for a
    /// caller that prefetches a whole batch of datagrams before handling
    /// them (memory-level parallelism on a table far larger than the
    /// caches): first [`Self::cell_hint`] for every datagram, then
    /// [`Self::slot_hint`] for every one. Handing the plan to
    /// [`Self::find_planned`], [`Self::insert_planned`] or
    /// [`Self::remove_planned`] saves them the hash. Any plan this registry
    /// made stays right: it answers only for the id it was made for, and
    /// an id's place never changes. (A plan made by another registry would
    /// misplace its id here.)
    pub fn plan(&self, id: &[u8]) -> Plan {
        let (cell, tag) = self.place(id, None);
        let mut plan = Plan {
            cell,
            tag,
            len: u8::MAX,
            id: [0; MAX_ID_LEN],
        };
        if let Some(to) = plan.id.get_mut(..id.len()) {
            to.copy_from_slice(id);
            plan.len = id.len() as u8;
        }
        plan
    }

    /// The index cell a lookup planned by `plan` reads first, for a
    /// caller that prefetches it (its address is all that is of use).
    pub fn cell_hint(&self, plan: &Plan) -> Option<&u32> {
        self.index.get(plan.cell)
    }

    /// The slot of the first cell in the planned probe run whose tag
    /// matches (`None` if there is none). This reads the cells, so ask for
    /// it only after the [`Self::cell_hint`] was prefetched.
    pub fn slot_hint(&self, plan: &Plan) -> Option<&Slot> {
        let mut i = plan.cell;
        // Runs are short at a load factor of at most 0.5; a hint that gives
        // up early costs only a miss later.
        for _ in 0..8 {
            let cell = *self.index.get(i)?;
            if cell == EMPTY {
                return None;
            }
            if self.tag_of(cell) == plan.tag {
                return self.slots.get(self.slot_of(cell) as usize);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The entry behind a handle.
    ///
    /// # Panics
    /// If the handle was removed: handles come from this registry and die
    /// with their entry, so that is a bug in the caller, not bad input.
    pub fn get(&self, h: Handle) -> &Entry {
        self.slots[h.0 as usize]
            .entry
            .as_ref()
            .expect("a live handle")
    }

    /// The entry behind a handle, to change its address, lease or
    /// subscriber bookkeeping. Change `sub` only with [`Self::set_subscription`].
    pub fn get_mut(&mut self, h: Handle) -> &mut Entry {
        self.slots[h.0 as usize]
            .entry
            .as_mut()
            .expect("a live handle")
    }

    /// Store a new registration at the tail of registration order.
    /// The id must not be stored already.
    pub fn insert(&mut self, entry: Entry) -> Result<Handle, Full> {
        self.insert_planned(entry, None)
    }

    /// [`Self::insert`], with the hash taken from `plan` if it was made
    /// for the entry's id.
    pub fn insert_planned(&mut self, entry: Entry, plan: Option<&Plan>) -> Result<Handle, Full> {
        debug_assert!(entry.id.as_id().is_some_and(|id| self.find(id).is_none()));
        if self.free == NIL {
            return Err(Full);
        }
        let slot = self.free;
        self.span = self.span.max(slot + 1);
        let s = &mut self.slots[slot as usize];
        self.free = s.next;
        let sub = entry.sub;
        *s = Slot {
            entry: Some(entry),
            prev: self.tail,
            next: NIL,
            sub_prev: NIL,
            sub_next: NIL,
        };
        match self.tail {
            NIL => self.head = slot,
            t => self.slots[t as usize].next = slot,
        }
        self.tail = slot;
        let (mut i, tag) = self.place(entry.id.as_bytes(), plan);
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = tag | slot;
        self.len += 1;
        if sub != Subscription::None {
            self.sub_link(slot);
        }
        Ok(Handle(slot))
    }

    /// Remove a registration, returning it.
    pub fn remove(&mut self, h: Handle) -> Entry {
        self.remove_planned(h, None)
    }

    /// [`Self::remove`], with the hash of the entry's id taken from `plan`
    /// if it was made for it.
    pub fn remove_planned(&mut self, h: Handle, plan: Option<&Plan>) -> Entry {
        let slot = h.0;
        let entry = *self.get(h);
        if entry.sub != Subscription::None {
            self.sub_unlink(slot);
        }
        unlink(
            self.slots,
            &mut self.head,
            &mut self.tail,
            slot,
            order_links,
        );
        self.unindex(slot, entry.id.as_bytes(), plan);
        self.slots[slot as usize] = Slot {
            next: self.free,
            ..Slot::EMPTY
        };
        self.free = slot;
        self.len -= 1;
        entry
    }

    /// Take `slot` out of the index, shifting later members of its probe
    /// run back so that no lookup stops early at the hole.
    fn unindex(&mut self, slot: u32, id: &[u8], plan: Option<&Plan>) {
        let mut i = self.place(id, plan).0;
        while self.index[i] == EMPTY || self.slot_of(self.index[i]) != slot {
            i = (i + 1) & self.mask;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let cell = self.index[j];
            if cell == EMPTY {
                break;
            }
            let home = match self.entry_at(self.slot_of(cell)) {
                Some(e) => self.hash(e.id.as_bytes()),
                None => j,
            };
            // `cell` may move into the hole if its home is not in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = cell;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Subscribe or unsubscribe an entry.
    pub fn set_subscription(&mut self, h: Handle, sub: Subscription) {
        let was = self.get(h).sub;
        if was == sub {
            return;
        }
        if was == Subscription::None {
            self.sub_link(h.0);
        } else if sub == Subscription::None {
            self.sub_unlink(h.0);
        }
        self.get_mut(h).sub = sub;
    }

    fn sub_link(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.sub_prev = self.sub_tail;
        s.sub_next = NIL;
        match self.sub_tail {
            NIL => self.sub_head = slot,
            t => self.slots[t as usize].sub_next = slot,
        }
        self.sub_tail = slot;
        self.sub_count += 1;
    }

    fn sub_unlink(&mut self, slot: u32) {
        let next = unlink(
            self.slots,
            &mut self.sub_head,
            &mut self.sub_tail,
            slot,
            sub_links,
        );
        if self.sub_cursor == slot {
            self.sub_cursor = next;
        }
        let s = &mut self.slots[slot as usize];
        s.sub_prev = NIL;
        s.sub_next = NIL;
        self.sub_count -= 1;
    }

    /// The next subscriber in round-robin order, wrapping; `None` if there are none.
    pub fn next_subscriber(&mut self) -> Option<Handle> {
        let at = match self.sub_cursor {
            NIL => self.sub_head,
            c => c,
        };
        if at == NIL {
            return None;
        }
        self.sub_cursor = self.slots[at as usize].sub_next;
        Some(Handle(at))
    }

    /// Move the clock hand over at most `budget` slots, returning the first
    /// stored entry whose lease ended at or before `now`. The caller removes
    /// it and may call again.
    pub fn next_expired(&mut self, now: Instant, budget: usize) -> Option<Handle> {
        let mut left = budget;
        self.sweep(now, &mut left)
    }

    /// [`Self::next_expired`] for a caller that spreads one budget over
    /// several calls: `budget` is reduced by every slot visited, so the
    /// calls together never visit more slots than it first held.
    pub fn sweep(&mut self, now: Instant, budget: &mut usize) -> Option<Handle> {
        let n = self.slots.len() as u32;
        *budget = (*budget).min(n as usize);
        while *budget > 0 {
            *budget -= 1;
            let slot = self.hand;
            self.hand = if slot + 1 >= n { 0 } else { slot + 1 };
            if self.entry_at(slot).is_some_and(|e| e.expires <= now) {
                return Some(Handle(slot));
            }
        }
        None
    }

    /// Walk the whole table and check every structural invariant: each
    /// stored entry is found by its id through the index (so the probe runs
    /// have no holes and no id is stored twice), the index holds exactly the
    /// stored slots, the free list holds exactly the empty slots, both lists
    /// are consistent doubly linked lists over exactly the right slots, the
    /// counts agree, and the cursors point where they may.
    ///
    /// O(capacity): for tests and fuzzers, never for the hot path.
    pub fn audit(&self) -> Result<(), &'static str> {
        let cap = self.slots.len();
        if self.span as usize > cap {
            return Err("the span is beyond the table");
        }
        if self.slots[self.span as usize..]
            .iter()
            .any(|s| s.entry.is_some())
        {
            return Err("a slot at or beyond the span holds an entry");
        }
        // The index: every non-empty cell names a stored slot, at most once,
        // and that entry's own lookup finds that very slot.
        let mut indexed = 0usize;
        for &cell in self.index.iter() {
            if cell == EMPTY {
                continue;
            }
            let slot = self.slot_of(cell);
            let e = self
                .entry_at(slot)
                .ok_or("an index cell names an empty or missing slot")?;
            if self.place(e.id.as_bytes(), None).1 != self.tag_of(cell) {
                return Err("an index cell's tag is not its entry's");
            }
            let id = e.id.as_id().ok_or("a stored id is not a valid id")?;
            if self.find(id) != Some(Handle(slot)) {
                return Err("an entry is not found by its id through the index");
            }
            indexed += 1;
        }
        let stored = self.slots.iter().filter(|s| s.entry.is_some()).count();
        if stored != self.len || indexed != self.len {
            return Err("the stored, indexed and counted entries disagree");
        }
        if self.index.iter().all(|&c| c != EMPTY) {
            return Err("the index has no empty cell, so a miss would never end");
        }
        // The free list: only empty slots, each once (a cycle would exceed
        // the capacity), and all of them.
        let (free, _) = self.follow(
            self.free,
            |s| s.next,
            |s, _| match s.entry {
                Some(_) => Err("the free list runs through a stored entry"),
                None => Ok(()),
            },
        )?;
        if free + self.len != cap {
            return Err("free and stored slots do not add up to the capacity");
        }
        // Registration order: a doubly linked list over exactly the stored slots.
        let (n, tail) = self.walk(self.head, |s| (s.prev, s.next))?;
        if n != self.len || tail != self.tail {
            return Err("the registration order list does not hold every entry once");
        }
        // Subscribers: a doubly linked list over exactly the subscribed slots.
        let (n, tail) = self.walk(self.sub_head, |s| (s.sub_prev, s.sub_next))?;
        let subscribed = self
            .slots
            .iter()
            .filter(|s| s.entry.is_some_and(|e| e.sub != Subscription::None))
            .count();
        if n != self.sub_count || tail != self.sub_tail || subscribed != self.sub_count {
            return Err("the subscriber list does not hold every subscriber once");
        }
        for s in self.slots.iter() {
            let unsubscribed = s.entry.is_none_or(|e| e.sub == Subscription::None);
            if unsubscribed && (s.sub_prev != NIL || s.sub_next != NIL) {
                return Err("a slot outside the subscriber list has subscriber links");
            }
        }
        if self.sub_cursor != NIL
            && self
                .entry_at(self.sub_cursor)
                .is_none_or(|e| e.sub == Subscription::None)
        {
            return Err("the round-robin cursor is not on a subscriber");
        }
        if self.hand as usize >= cap {
            return Err("the clock hand is outside the table");
        }
        Ok(())
    }

    /// Follow a doubly linked list from `head`, checking back links and
    /// that every member is stored; returns its length and last member.
    fn walk(
        &self,
        head: u32,
        links: impl Fn(&Slot) -> (u32, u32),
    ) -> Result<(usize, u32), &'static str> {
        self.follow(
            head,
            |s| links(s).1,
            |s, prev| {
                if s.entry.is_none() {
                    return Err("a list runs through an empty slot");
                }
                if links(s).0 != prev {
                    return Err("a list's back link is wrong");
                }
                Ok(())
            },
        )
    }

    /// Follow a list from `head` by `next`, at most once round the table,
    /// with `check` on each member and the member before it; returns its
    /// length and last member.
    fn follow(
        &self,
        head: u32,
        next: impl Fn(&Slot) -> u32,
        check: impl Fn(&Slot, u32) -> Result<(), &'static str>,
    ) -> Result<(usize, u32), &'static str> {
        let mut n = 0usize;
        let mut prev = NIL;
        let mut at = head;
        while at != NIL {
            let s = self
                .slots
                .get(at as usize)
                .ok_or("a list leaves the table")?;
            check(s, prev)?;
            n += 1;
            if n > self.slots.len() {
                return Err("a list has a cycle");
            }
            prev = at;
            at = next(s);
        }
        Ok((n, prev))
    }

    /// Entries in registration order, oldest first (expired ones included).
    pub fn order(&self) -> Order<'_, 'a> {
        Order {
            reg: self,
            at: self.head,
        }
    }

    /// The entry in `slot`, if any: for scans that resume at a slot number.
    pub fn at_slot(&self, slot: u32) -> Option<(Handle, &Entry)> {
        self.entry_at(slot).map(|e| (Handle(slot), e))
    }
}

/// Iterator over entries in registration order.
pub struct Order<'r, 'a> {
    reg: &'r Registry<'a>,
    at: u32,
}

impl<'r> Iterator for Order<'r, '_> {
    type Item = (Handle, &'r Entry);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let slot = self.at;
        let s = self.reg.slots.get(slot as usize)?;
        self.at = s.next;
        s.entry.as_ref().map(|e| (Handle(slot), e))
    }
}
