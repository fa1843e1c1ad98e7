//! Table tests and a model test for the registry.

extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::wire::{Id, IdBuf};

fn entry(id: &str, expires: u64) -> Entry {
    Entry {
        id: IdBuf::from_id(Id::new(id).unwrap()),
        addr: "127.0.0.1:1".parse().unwrap(),
        expires: Instant(expires),
        lease: 60,
        owner: Owner::Address,
        sub: Subscription::None,
        sub_seq: 0,
        sub_sent: Instant(0),
    }
}

fn with_registry<R>(cap: usize, f: impl FnOnce(&mut Registry<'_>) -> R) -> R {
    let mut slots = vec![Slot::EMPTY; cap];
    let mut index = vec![0u32; index_len_for(cap)];
    let mut reg = Registry::new(&mut slots, &mut index, [9; 16]).unwrap();
    f(&mut reg)
}

fn id(s: &str) -> Id<'_> {
    Id::new(s).unwrap()
}

fn order_ids(reg: &Registry<'_>) -> Vec<Vec<u8>> {
    reg.order().map(|(_, e)| e.id.as_bytes().to_vec()).collect()
}

#[test]
fn storage_is_checked() {
    let mut slots = vec![Slot::EMPTY; 8];
    let mut index = vec![0u32; 8];
    assert_eq!(
        Registry::new(&mut slots, &mut index, [0; 16]).err(),
        Some(StorageError::BadIndex)
    );
    let mut index = vec![0u32; 2];
    assert_eq!(
        Registry::new(&mut [], &mut index, [0; 16]).err(),
        Some(StorageError::BadCapacity)
    );
}

#[test]
fn full_table_refuses_and_keeps_everyone() {
    with_registry(4, |reg| {
        for n in ["a", "b", "c", "d"] {
            reg.insert(entry(n, 10)).unwrap();
        }
        assert_eq!(reg.insert(entry("e", 10)), Err(Full));
        for n in ["a", "b", "c", "d"] {
            assert!(reg.find(id(n)).is_some());
        }
        assert!(reg.find(id("e")).is_none());
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
        reg.insert(entry("b", 1)).unwrap();
        reg.insert(entry("c", 1)).unwrap();
        reg.remove(a);
        reg.insert(entry("d", 1)).unwrap(); // reuses a's slot
        assert_eq!(
            order_ids(reg),
            [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
    });
}

#[test]
fn round_robin_visits_each_subscriber_once_per_round() {
    with_registry(8, |reg| {
        let mut subs = Vec::new();
        for n in ["a", "b", "c"] {
            let mut e = entry(n, 1);
            e.sub = Subscription::Events;
            subs.push(reg.insert(e).unwrap());
        }
        reg.insert(entry("quiet", 1)).unwrap();
        assert_eq!(reg.subscriber_count(), 3);
        let round: Vec<Handle> = (0..3).filter_map(|_| reg.next_subscriber()).collect();
        assert_eq!(round, subs);
        // The cursor is on `a` again; removing it must not derail the round.
        assert_eq!(reg.next_subscriber(), Some(subs[0]));
        reg.remove(subs[1]);
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
        assert_eq!(reg.next_subscriber(), Some(subs[0]));
        reg.set_subscription(subs[0], Subscription::None);
        assert_eq!(reg.subscriber_count(), 1);
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
        assert_eq!(reg.next_subscriber(), Some(subs[2]));
    });
}

#[test]
fn clock_hand_is_bounded_and_finds_everything_eventually() {
    with_registry(64, |reg| {
        for i in 0..64 {
            reg.insert(entry(
                &std::format!("x{i}"),
                if i % 3 == 0 { 5 } else { 50 },
            ))
            .unwrap();
        }
        let mut found = 0;
        let mut calls = 0;
        while calls < 1000 {
            calls += 1;
            if let Some(h) = reg.next_expired(Instant(10), 4) {
                reg.remove(h);
                found += 1;
            }
        }
        assert_eq!(found, 22);
        assert_eq!(reg.len(), 42);
        // With a budget of 1 slot, one call finds at most what that slot holds.
        assert!(reg.next_expired(Instant(10), 0).is_none());
    });
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..40).prop_map(Op::Insert),
        (0u8..40).prop_map(Op::Remove)
    ]
}

proptest! {
    /// Random inserts and removals agree with a plain list at every step.
    #[test]
    fn behaves_like_a_list(ops in proptest::collection::vec(op(), 1..300)) {
        with_registry(16, |reg| {
            let mut model: Vec<std::string::String> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let name = std::format!("k{k}");
                        let present = model.contains(&name);
                        if present {
                            continue;
                        }
                        let r = reg.insert(entry(&name, 1));
                        if model.len() == 16 {
                            prop_assert_eq!(r, Err(Full));
                        } else {
                            prop_assert!(r.is_ok());
                            model.push(name);
                        }
                    }
                    Op::Remove(k) => {
                        let name = std::format!("k{k}");
                        if let Some(h) = reg.find(id(&name)) {
                            let e = reg.remove(h);
                            prop_assert_eq!(e.id.as_bytes(), name.as_bytes());
                            model.retain(|m| *m != name);
                        } else {
                            prop_assert!(!model.contains(&name));
                        }
                    }
                }
                prop_assert_eq!(reg.len(), model.len());
                let order: Vec<Vec<u8>> = order_ids(reg);
                let want: Vec<Vec<u8>> = model.iter().map(|m| m.as_bytes().to_vec()).collect();
                prop_assert_eq!(order, want);
                for m in &model {
                    prop_assert!(reg.find(id(m)).is_some());
                }
            }
            Ok(())
        })?;
    }
}
