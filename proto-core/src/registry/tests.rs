//! Table tests and a model test for the registry.

extern crate std;

use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::wire::{Id, IdBuf};

const KEY: [u8; 16] = [9; 16];

fn entry(id: &str, expires: u64) -> Entry {
    Entry {
        id: IdBuf::from_id(Id::new(id).unwrap()),
        addr: "127.0.0.1:1".parse().unwrap(),
        expires: Instant(expires),
        lease: 60,
        owner: Owner::Address,
        key: None,
        sub: Subscription::None,
        sub_seq: 0,
        sub_sent: Instant(0),
    }
}

fn subscriber(id: &str) -> Entry {
    Entry {
        sub: Subscription::Events,
        ..entry(id, 1)
    }
}

fn with_registry<R>(cap: usize, f: impl FnOnce(&mut Registry<'_>) -> R) -> R {
    let mut slots = vec![Slot::EMPTY; cap];
    let mut index = vec![0u32; index_len_for(cap)];
    let mut reg = Registry::new(&mut slots, &mut index, KEY).unwrap();
    f(&mut reg)
}

fn id(s: &str) -> Id<'_> {
    Id::new(s).unwrap()
}

fn name(reg: &Registry<'_>, h: Handle) -> String {
    String::from(reg.get(h).id.as_id().unwrap().as_str())
}

fn order_names(reg: &Registry<'_>) -> Vec<String> {
    reg.order()
        .map(|(_, e)| String::from(e.id.as_id().unwrap().as_str()))
        .collect()
}

/// `n` distinct ids whose home cell in `reg`'s index is `home`.
fn ids_at_home(reg: &Registry<'_>, home: usize, n: usize) -> Vec<String> {
    let found: Vec<String> = (0..100_000)
        .map(|i| format!("c{i}"))
        .filter(|s| reg.hash(s.as_bytes()) == home)
        .take(n)
        .collect();
    assert_eq!(found.len(), n, "not enough ids homed at {home}");
    found
}

/// Every id in `names` is found, at a handle that holds that id.
fn assert_all_found(reg: &Registry<'_>, names: &[String]) {
    for n in names {
        let h = reg.find(id(n)).unwrap_or_else(|| panic!("{n} not found"));
        assert_eq!(name(reg, h), *n);
    }
}

#[test]
fn storage_is_checked() {
    let mut slots = vec![Slot::EMPTY; 8];
    let mut index = vec![0u32; 8];
    assert_eq!(
        Registry::new(&mut slots, &mut index, KEY).err(),
        Some(StorageError::BadIndex)
    );
    let mut index = vec![0u32; 32];
    assert_eq!(
        Registry::new(&mut slots, &mut index, KEY).err(),
        Some(StorageError::BadIndex)
    );
    let mut index = vec![0u32; 2];
    assert_eq!(
        Registry::new(&mut [], &mut index, KEY).err(),
        Some(StorageError::BadCapacity)
    );
}

#[test]
fn index_length_is_a_power_of_two_at_least_twice_the_capacity() {
    assert_eq!(index_len_for(0), 2);
    assert_eq!(index_len_for(1), 2);
    assert_eq!(index_len_for(2), 4);
    assert_eq!(index_len_for(3), 8);
    assert_eq!(index_len_for(4), 8);
    assert_eq!(index_len_for(1000), 2048);
    assert_eq!(index_len_for(1024), 2048);
    for cap in 1..3000 {
        let n = index_len_for(cap);
        assert!(n.is_power_of_two() && n >= 2 * cap && n < 4 * cap.max(1) + 1);
    }
}

#[test]
fn new_resets_dirty_storage() {
    let mut slots = vec![Slot::EMPTY; 4];
    let mut index = vec![0u32; index_len_for(4)];
    {
        let mut reg = Registry::new(&mut slots, &mut index, KEY).unwrap();
        for n in ["a", "b", "c"] {
            reg.insert(subscriber(n)).unwrap();
        }
    }
    // Index cells of 0 would name slot 0; stale links would corrupt lists.
    let reg = Registry::new(&mut slots, &mut index, KEY).unwrap();
    assert!(reg.is_empty());
    assert_eq!(reg.subscriber_count(), 0);
    assert_eq!(reg.order().count(), 0);
    assert!(reg.find(id("a")).is_none());
    reg.audit().unwrap();
}

#[test]
fn a_table_of_one() {
    with_registry(1, |reg| {
        let a = reg.insert(entry("a", 1)).unwrap();
        assert_eq!(reg.insert(entry("b", 1)), Err(Full));
        assert_eq!(reg.find(id("a")), Some(a));
        assert!(reg.find(id("b")).is_none());
        assert_eq!(reg.remove(a).id.as_bytes(), b"a");
        assert!(reg.find(id("a")).is_none());
        reg.insert(entry("b", 1)).unwrap();
        reg.audit().unwrap();
    });
}

#[test]
fn full_table_refuses_and_keeps_everyone() {
    with_registry(4, |reg| {
        let names = ["a", "b", "c", "d"];
        for n in names {
            reg.insert(entry(n, 10)).unwrap();
        }
        let before: Vec<Entry> = reg.order().map(|(_, e)| *e).collect();
        assert_eq!(reg.insert(entry("e", 10)), Err(Full));
        // Even an entry long expired is not evicted by insert: reclaiming
        // is the caller's decision, made with the clock hand.
        assert_eq!(reg.insert(entry("f", 0)), Err(Full));
        let after: Vec<Entry> = reg.order().map(|(_, e)| *e).collect();
        assert_eq!(before, after);
        assert_eq!(reg.len(), 4);
        for n in names {
            assert!(reg.find(id(n)).is_some());
        }
        assert!(reg.find(id("e")).is_none());
        reg.audit().unwrap();
        assert_eq!(Full.to_string(), "the table is full");
    });
}

#[test]
fn colliding_ids_are_all_found_and_removed_in_any_position() {
    // Capacity 8 has an index of 16 cells; put 5 ids on one home cell.
    for victim in 0..5 {
        with_registry(8, |reg| {
            let names = ids_at_home(reg, 3, 5);
            let hs: Vec<Handle> = names
                .iter()
                .map(|n| reg.insert(entry(n, 1)).unwrap())
                .collect();
            assert_all_found(reg, &names);
            reg.remove(hs[victim]);
            assert!(reg.find(id(&names[victim])).is_none());
            let rest: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != victim)
                .map(|(_, n)| n.clone())
                .collect();
            assert_all_found(reg, &rest);
            reg.audit().unwrap();
        });
    }
}

#[test]
fn backward_shift_never_moves_an_entry_before_its_home() {
    // Index cells h, h+1, h+2 hold A (home h), B (home h+1), C (home h).
    // Removing A may move C into h, but must leave B at its home h+1.
    with_registry(8, |reg| {
        let h = 5;
        let at_h = ids_at_home(reg, h, 2);
        let at_h1 = ids_at_home(reg, h + 1, 1);
        let (a, c, b) = (&at_h[0], &at_h[1], &at_h1[0]);
        let ha = reg.insert(entry(a, 1)).unwrap();
        reg.insert(entry(b, 1)).unwrap();
        reg.insert(entry(c, 1)).unwrap();
        reg.remove(ha);
        assert_all_found(reg, &[b.clone(), c.clone()]);
        reg.audit().unwrap();
    });
    // Removing B instead: C (home h, at h+2) moves into h+1.
    with_registry(8, |reg| {
        let h = 5;
        let at_h = ids_at_home(reg, h, 2);
        let at_h1 = ids_at_home(reg, h + 1, 1);
        let (a, c, b) = (&at_h[0], &at_h[1], &at_h1[0]);
        reg.insert(entry(a, 1)).unwrap();
        let hb = reg.insert(entry(b, 1)).unwrap();
        reg.insert(entry(c, 1)).unwrap();
        reg.remove(hb);
        assert_all_found(reg, &[a.clone(), c.clone()]);
        reg.audit().unwrap();
    });
}

#[test]
fn probe_runs_wrap_around_the_end_of_the_index() {
    with_registry(8, |reg| {
        let last = index_len_for(8) - 1;
        let at_last = ids_at_home(reg, last, 3);
        let at_zero = ids_at_home(reg, 0, 2);
        // Fill last, 0, 1 with ids homed at the last cell, then 2, 3 with
        // ids homed at 0 that had to probe past the wrapped run.
        let mut hs = Vec::new();
        for n in at_last.iter().chain(&at_zero) {
            hs.push(reg.insert(entry(n, 1)).unwrap());
        }
        let all: Vec<String> = at_last.iter().chain(&at_zero).cloned().collect();
        assert_all_found(reg, &all);
        // Remove the run's first member: everything shifts back across the wrap.
        reg.remove(hs[0]);
        assert_all_found(reg, &all[1..]);
        reg.audit().unwrap();
        reg.remove(hs[3]);
        assert_all_found(reg, &[all[1].clone(), all[2].clone(), all[4].clone()]);
        reg.audit().unwrap();
    });
}

#[test]
fn backward_shift_measures_distances_across_the_wrap() {
    // Cells last-1, last, 0 hold A (home last-1), B (home last), C (home
    // last). Removing A must leave both B and C where they are: C's home
    // (last) is after the hole once distances are taken modulo the index.
    with_registry(8, |reg| {
        let last = index_len_for(8) - 1;
        let a = ids_at_home(reg, last - 1, 1).remove(0);
        let bc = ids_at_home(reg, last, 2);
        let ha = reg.insert(entry(&a, 1)).unwrap();
        for n in &bc {
            reg.insert(entry(n, 1)).unwrap();
        }
        reg.remove(ha);
        assert_all_found(reg, &bc);
        reg.audit().unwrap();
    });
}

#[test]
fn removal_keeps_every_other_id_findable() {
    // A tiny table forces long probe runs that wrap around the index.
    with_registry(8, |reg| {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let hs: Vec<Handle> = names
            .iter()
            .map(|n| reg.insert(entry(n, 1)).unwrap())
            .collect();
        for (i, h) in hs.iter().enumerate().step_by(2) {
            reg.remove(*h);
            assert!(reg.find(id(names[i])).is_none());
            reg.audit().unwrap();
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(reg.find(id(n)).is_some(), i % 2 == 1, "{n}");
        }
        assert_eq!(reg.len(), 4);
    });
}

#[test]
fn registration_order_survives_removal_and_slot_reuse() {
    with_registry(4, |reg| {
        let a = reg.insert(entry("a", 1)).unwrap();
        let b = reg.insert(entry("b", 1)).unwrap();
        let c = reg.insert(entry("c", 1)).unwrap();
        reg.remove(a);
        let d = reg.insert(entry("d", 1)).unwrap();
        assert_eq!(d.slot(), a.slot(), "the freed slot is reused");
        assert_eq!(order_names(reg), ["b", "c", "d"]);
        reg.remove(c); // the middle
        assert_eq!(order_names(reg), ["b", "d"]);
        reg.remove(d); // the tail
        assert_eq!(order_names(reg), ["b"]);
        reg.insert(entry("e", 1)).unwrap();
        assert_eq!(order_names(reg), ["b", "e"]);
        reg.remove(b); // the head
        assert_eq!(order_names(reg), ["e"]);
        reg.audit().unwrap();
    });
}

#[test]
fn get_mut_changes_what_get_and_order_see() {
    with_registry(4, |reg| {
        let a = reg.insert(entry("a", 1)).unwrap();
        reg.get_mut(a).addr = "10.0.0.1:99".parse().unwrap();
        reg.get_mut(a).expires = Instant(77);
        assert_eq!(reg.get(a).addr, "10.0.0.1:99".parse().unwrap());
        assert_eq!(reg.order().next().unwrap().1.expires, Instant(77));
        assert_eq!(reg.find(id("a")), Some(a));
    });
}

#[test]
fn at_slot_sees_exactly_the_stored_slots() {
    with_registry(4, |reg| {
        let a = reg.insert(entry("a", 1)).unwrap();
        let b = reg.insert(entry("b", 1)).unwrap();
        reg.remove(a);
        assert!(reg.at_slot(a.slot()).is_none());
        let (h, e) = reg.at_slot(b.slot()).unwrap();
        assert_eq!((h, e.id.as_bytes()), (b, &b"b"[..]));
        assert!(reg.at_slot(4).is_none(), "past the end");
        assert!(reg.at_slot(NIL).is_none());
    });
}

#[test]
fn round_robin_visits_each_subscriber_once_per_round() {
    with_registry(8, |reg| {
        assert_eq!(reg.next_subscriber(), None);
        let mut subs = Vec::new();
        for n in ["a", "b", "c"] {
            subs.push(reg.insert(subscriber(n)).unwrap());
        }
        reg.insert(entry("quiet", 1)).unwrap();
        assert_eq!(reg.subscriber_count(), 3);
        for _ in 0..3 {
            let round: Vec<Handle> = (0..3).filter_map(|_| reg.next_subscriber()).collect();
            assert_eq!(round, subs);
        }
        // The cursor is on `b` after this; removing it must not derail the round.
        assert_eq!(reg.next_subscriber(), Some(subs[0]));
        reg.remove(subs[1]);
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
        assert_eq!(reg.next_subscriber(), Some(subs[0]));
        reg.set_subscription(subs[0], Subscription::None);
        assert_eq!(reg.subscriber_count(), 1);
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
        reg.set_subscription(subs[2], Subscription::None);
        assert_eq!(reg.next_subscriber(), None);
        reg.audit().unwrap();
    });
}

#[test]
fn removing_the_cursors_subscriber_at_the_tail_wraps_to_the_head() {
    with_registry(8, |reg| {
        let a = reg.insert(subscriber("a")).unwrap();
        let b = reg.insert(subscriber("b")).unwrap();
        let c = reg.insert(subscriber("c")).unwrap();
        assert_eq!(reg.next_subscriber(), Some(a));
        assert_eq!(reg.next_subscriber(), Some(b));
        // The cursor is on c, the tail: removing c ends the round.
        reg.remove(c);
        assert_eq!(reg.next_subscriber(), Some(a));
        // The cursor is on b, now the tail: unsubscribing it ends the round too.
        reg.set_subscription(b, Subscription::None);
        assert_eq!(reg.next_subscriber(), Some(a));
        assert_eq!(reg.next_subscriber(), Some(a));
        reg.audit().unwrap();
    });
}

#[test]
fn subscription_changes_keep_list_membership_right() {
    with_registry(8, |reg| {
        let a = reg.insert(subscriber("a")).unwrap();
        let b = reg.insert(entry("b", 1)).unwrap();
        // Changing the kind of subscription keeps a's place and count.
        reg.set_subscription(a, Subscription::SeedList);
        assert_eq!(reg.subscriber_count(), 1);
        assert_eq!(reg.get(a).sub, Subscription::SeedList);
        // Subscribing twice counts once.
        reg.set_subscription(b, Subscription::Events);
        reg.set_subscription(b, Subscription::Events);
        assert_eq!(reg.subscriber_count(), 2);
        // Unsubscribing what is not subscribed does nothing.
        reg.set_subscription(a, Subscription::None);
        reg.set_subscription(a, Subscription::None);
        assert_eq!(reg.subscriber_count(), 1);
        // Resubscribing joins at the tail of the round.
        reg.set_subscription(a, Subscription::Events);
        let round: Vec<Handle> = (0..2).filter_map(|_| reg.next_subscriber()).collect();
        assert_eq!(round, [b, a]);
        reg.remove(a);
        reg.remove(b);
        assert_eq!(reg.subscriber_count(), 0);
        reg.audit().unwrap();
    });
}

#[test]
fn clock_hand_visits_at_most_its_budget() {
    with_registry(8, |reg| {
        let mut hs = Vec::new();
        for i in 0..8 {
            hs.push(reg.insert(entry(&format!("x{i}"), 100)).unwrap());
        }
        // Only the entry in the last slot has expired.
        reg.get_mut(hs[7]).expires = Instant(5);
        assert_eq!(reg.next_expired(Instant(10), 0), None);
        assert_eq!(reg.next_expired(Instant(10), 3), None); // slots 0..3
        assert_eq!(reg.next_expired(Instant(10), 3), None); // slots 3..6
        assert_eq!(reg.next_expired(Instant(10), 3), Some(hs[7])); // 6, 7
        // Not yet expired is not expired; exactly at expiry is.
        assert_eq!(reg.next_expired(Instant(4), 8), None);
        assert_eq!(reg.next_expired(Instant(5), 8), Some(hs[7]));
        // A budget beyond the capacity still visits each slot once.
        reg.remove(hs[7]);
        assert_eq!(reg.next_expired(Instant(10), 1000), None);
    });
}

#[test]
fn one_budget_spread_over_several_sweeps_bounds_them_all() {
    with_registry(16, |reg| {
        let hs: Vec<Handle> = (0..16)
            .map(|i| reg.insert(entry(&format!("x{i}"), 100)).unwrap())
            .collect();
        // Every fourth slot has expired: 3, 7, 11, 15.
        for h in hs.iter().skip(3).step_by(4) {
            reg.get_mut(*h).expires = Instant(5);
        }
        let mut left = 9;
        assert_eq!(reg.sweep(Instant(10), &mut left), Some(hs[3]));
        assert_eq!(left, 5, "slots 0..=3 visited");
        assert_eq!(reg.sweep(Instant(10), &mut left), Some(hs[7]));
        assert_eq!(left, 1);
        // One visit left: slot 8, not expired; the budget is spent.
        assert_eq!(reg.sweep(Instant(10), &mut left), None);
        assert_eq!(left, 0);
        assert_eq!(reg.sweep(Instant(10), &mut left), None);
        // The hand goes on from slot 9.
        let mut left = 3;
        assert_eq!(reg.sweep(Instant(10), &mut left), Some(hs[11]));
    });
}

#[test]
fn clock_hand_skips_empty_slots_and_wraps() {
    with_registry(8, |reg| {
        let a = reg.insert(entry("a", 5)).unwrap();
        assert_eq!(a.slot(), 0);
        // Hand goes 0 -> found; then round the 7 empty slots and back to 0.
        assert_eq!(reg.next_expired(Instant(5), 8), Some(a));
        assert_eq!(reg.next_expired(Instant(5), 7), None);
        assert_eq!(reg.next_expired(Instant(5), 1), Some(a));
    });
}

#[test]
fn clock_hand_is_bounded_and_finds_everything_eventually() {
    with_registry(64, |reg| {
        for i in 0..64 {
            reg.insert(entry(&format!("x{i}"), if i % 3 == 0 { 5 } else { 50 }))
                .unwrap();
        }
        let mut found = 0;
        for _ in 0..1000 {
            if let Some(h) = reg.next_expired(Instant(10), 4) {
                assert!(reg.get(h).expires <= Instant(10));
                reg.remove(h);
                found += 1;
            }
        }
        assert_eq!(found, 22);
        assert_eq!(reg.len(), 42);
        assert!(reg.next_expired(Instant(10), 64).is_none());
        reg.audit().unwrap();
    });
}

#[test]
fn audit_catches_a_broken_table() {
    with_registry(4, |reg| {
        let a = reg.insert(entry("a", 1)).unwrap();
        reg.insert(entry("b", 1)).unwrap();
        reg.audit().unwrap();
        // Changing an id behind the index's back is exactly what get_mut's
        // contract forbids; audit must notice.
        reg.get_mut(a).id = IdBuf::from_id(id("zz-not-indexed-here"));
        assert!(reg.audit().is_err());
    });
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, bool),
    Remove(u8),
    Find(u8),
    Subscribe(u8, bool),
    NextSubscriber,
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, any::<bool>()).prop_map(|(k, s)| Op::Insert(k, s)),
        3 => (0u8..40).prop_map(Op::Remove),
        2 => (0u8..40).prop_map(Op::Find),
        1 => (0u8..40, any::<bool>()).prop_map(|(k, s)| Op::Subscribe(k, s)),
        2 => Just(Op::NextSubscriber),
        1 => (0u64..50).prop_map(Op::Expire),
    ]
}

/// The model: entries in registration order, subscribers in list order,
/// and the round-robin cursor (`None`: start again at the head).
#[derive(Default)]
struct Model {
    entries: Vec<(String, u64)>,
    subs: Vec<String>,
    cursor: Option<usize>,
}

impl Model {
    fn unsubscribe(&mut self, name: &str) {
        if let Some(p) = self.subs.iter().position(|s| s == name) {
            self.subs.remove(p);
            self.cursor = match self.cursor {
                Some(c) if p < c => Some(c - 1),
                Some(c) if c >= self.subs.len() => None,
                c => c,
            };
        }
    }

    fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| n != name);
        self.unsubscribe(name);
    }

    fn next_subscriber(&mut self) -> Option<String> {
        if self.subs.is_empty() {
            return None;
        }
        let c = self.cursor.unwrap_or(0);
        self.cursor = if c + 1 < self.subs.len() {
            Some(c + 1)
        } else {
            None
        };
        Some(self.subs[c].clone())
    }
}

fn run_model(cap: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_model_tagged(cap, ops, true)
}

/// With `tags` false every index cell carries the same tag, so every probe
/// falls through to comparing the ids, as when tags collide.
fn run_model_tagged(cap: usize, ops: Vec<Op>, tags: bool) -> Result<(), TestCaseError> {
    with_registry(cap, |reg| {
        if !tags {
            reg.untagged_for_tests();
        }
        let mut m = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert(k, sub) => {
                    let name = format!("k{k}");
                    if m.entries.iter().any(|(n, _)| *n == name) {
                        continue;
                    }
                    let expires = u64::from(k) + 10 * step as u64 % 50;
                    let mut e = entry(&name, expires);
                    if sub {
                        e.sub = Subscription::SeedList;
                    }
                    let r = reg.insert(e);
                    if m.entries.len() == cap {
                        prop_assert_eq!(r, Err(Full));
                    } else {
                        let h = r.map_err(|_| TestCaseError::fail("full too early"))?;
                        prop_assert_eq!(reg.find(id(&name)), Some(h));
                        m.entries.push((name.clone(), expires));
                        if sub {
                            m.subs.push(name);
                        }
                    }
                }
                Op::Remove(k) => {
                    let name = format!("k{k}");
                    if let Some(h) = reg.find(id(&name)) {
                        let e = reg.remove(h);
                        prop_assert_eq!(e.id.as_bytes(), name.as_bytes());
                        prop_assert!(reg.find(id(&name)).is_none());
                        m.remove(&name);
                    } else {
                        prop_assert!(!m.entries.iter().any(|(n, _)| *n == name));
                    }
                }
                Op::Find(k) => {
                    let name = format!("k{k}");
                    let got = reg.find(id(&name)).map(|h| reg.get(h).expires.0);
                    let want = m.entries.iter().find(|(n, _)| *n == name).map(|e| e.1);
                    prop_assert_eq!(got, want);
                }
                Op::Subscribe(k, on) => {
                    let name = format!("k{k}");
                    if let Some(h) = reg.find(id(&name)) {
                        let sub = if on {
                            Subscription::Events
                        } else {
                            Subscription::None
                        };
                        reg.set_subscription(h, sub);
                        let listed = m.subs.contains(&name);
                        if on && !listed {
                            m.subs.push(name);
                        } else if !on {
                            m.unsubscribe(&name);
                        }
                    }
                }
                Op::NextSubscriber => {
                    let got = reg.next_subscriber().map(|h| name(reg, h));
                    prop_assert_eq!(got, m.next_subscriber());
                }
                Op::Expire(now) => {
                    // A budget of the whole capacity visits every slot once,
                    // so it finds an expired entry exactly when one exists.
                    let any = m.entries.iter().any(|(_, t)| *t <= now);
                    match reg.next_expired(Instant(now), cap) {
                        Some(h) => {
                            prop_assert!(any);
                            prop_assert!(reg.get(h).expires.0 <= now);
                            let n = name(reg, h);
                            reg.remove(h);
                            m.remove(&n);
                        }
                        None => prop_assert!(!any),
                    }
                }
            }
            prop_assert_eq!(reg.len(), m.entries.len());
            prop_assert_eq!(reg.is_empty(), m.entries.is_empty());
            prop_assert_eq!(reg.subscriber_count(), m.subs.len());
            let want: Vec<String> = m.entries.iter().map(|(n, _)| n.clone()).collect();
            prop_assert_eq!(order_names(reg), want);
            for (n, _) in &m.entries {
                prop_assert!(reg.find(id(n)).is_some());
            }
            if let Err(e) = reg.audit() {
                return Err(TestCaseError::fail(e));
            }
        }
        Ok(())
    })
}

proptest! {
    /// Random operations agree with a plain list at every step, in a table
    /// roomy enough to rarely fill.
    #[test]
    fn behaves_like_a_list(ops in proptest::collection::vec(op(), 1..300)) {
        run_model(32, ops)?;
    }

    /// The same in tiny tables: always full, long probe runs, wrapping.
    #[test]
    fn behaves_like_a_list_when_tiny(cap in 1usize..6, ops in proptest::collection::vec(op(), 1..200)) {
        run_model(cap, ops)?;
    }

    /// And when every tag collides, so lookups must tell ids apart by
    /// the ids themselves.
    #[test]
    fn behaves_like_a_list_when_tags_collide(cap in 1usize..40, ops in proptest::collection::vec(op(), 1..200)) {
        run_model_tagged(cap, ops, false)?;
    }
}

#[test]
fn hints_name_the_cell_and_the_slot_a_lookup_reads() {
    with_registry(64, |reg| {
        // Empty table: every id has a home cell and no slot.
        assert!(reg.cell_hint(&reg.plan(b"alice")).is_some());
        assert!(reg.slot_hint(&reg.plan(b"alice")).is_none());
        // Ids that share a home cell share the first hint; the next cell is 4 bytes on.
        let five = ids_at_home(reg, 5, 2);
        let six = ids_at_home(reg, 6, 1);
        let cell = |reg: &Registry<'_>, s: &str| {
            core::ptr::from_ref(reg.cell_hint(&reg.plan(s.as_bytes())).unwrap()) as usize
        };
        assert_eq!(cell(reg, &five[0]), cell(reg, &five[1]));
        assert_eq!(cell(reg, &six[0]), cell(reg, &five[0]) + 4);
        // A stored id: the second hint is the slot that holds its entry.
        let h = reg.insert(entry(&five[0], 10)).unwrap();
        let hint = reg.slot_hint(&reg.plan(five[0].as_bytes())).unwrap();
        let at = core::ptr::from_ref(reg.get(h)) as usize;
        let slot = core::ptr::from_ref(hint) as usize;
        assert!((slot..slot + core::mem::size_of::<Slot>()).contains(&at));
        // The id homed at the same cell but not stored: its tag differs
        // from the stored one's (but for 1 in 2^25), so no slot is named.
        assert!(reg.slot_hint(&reg.plan(five[1].as_bytes())).is_none());
    });
}

#[test]
fn a_plan_answers_only_for_its_own_id() {
    with_registry(64, |reg| {
        let a = reg.insert(entry("alice", 10)).unwrap();
        let b = reg.insert(entry("bob", 10)).unwrap();
        let plan = reg.plan(b"alice");
        let p = Some(&plan);
        assert_eq!(reg.find_planned(id("alice"), p), Some(a));
        assert_eq!(reg.find_planned(id("bob"), p), Some(b));
        assert_eq!(reg.find_planned(id("alic"), p), None);
        assert_eq!(reg.find_planned(id("alicex"), p), None);
        // Still right after the table changed under it, and when it
        // places what it was made for.
        reg.remove_planned(a, p);
        assert_eq!(reg.find_planned(id("alice"), p), None);
        let a2 = reg.insert_planned(entry("alice", 10), p).unwrap();
        assert_eq!(reg.find_planned(id("alice"), p), Some(a2));
        assert_eq!(reg.find(id("alice")), Some(a2));
        reg.audit().unwrap();
        // A word too long to be an id makes a plan that is never used.
        let long = [b'x'; 40];
        let plan = reg.plan(&long);
        assert_eq!(reg.find_planned(id("bob"), Some(&plan)), Some(b));
        assert!(reg.slot_hint(&plan).is_none());
    });
}
