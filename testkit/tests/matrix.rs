//! Real `parley send` to real `parley listen` through the lab's NATs.
//!
//! A peer on the public segment reaches a peer behind every NAT kind,
//! both ways; and every pair of places delivers on every try, by the path
//! it should take: directly or over the LAN wherever such a path exists,
//! through the relay where none does (`testkit::matrix::expected`;
//! `every_pair_delivers_every_time`,
//! two tries a pair here so that the suite stays short; the 20-try run is
//! `cargo run -p testkit --bin natlab 20`, whose table is in the README).

use std::time::Duration;

use testkit::matrix::{Place, World, row, try_pair};
use testkit::natlab::lab_or_skip;
use testkit::parley;

fn world(tag: &str) -> Option<World> {
    if !parley::binaries_or_skip() {
        return None;
    }
    Some(World::build(lab_or_skip(tag)?).unwrap())
}

#[test]
fn a_public_peer_and_a_peer_behind_any_nat_reach_each_other() {
    let Some(w) = world("public") else {
        return;
    };
    let mut n = 0;
    for place in Place::all() {
        for (x, y) in [(Place::Public, place), (place, Place::Public)] {
            let pair = w.pair(x, y).unwrap();
            n += 1;
            let o = try_pair(&pair, n, Duration::from_secs(15)).unwrap();
            eprintln!("{}", row(&pair.name, std::slice::from_ref(&o)));
            assert!(pair.as_expected(&o), "{}: {o:?}", pair.name);
        }
    }
}

/// Tries per pair in the default suite.
const TRIES: usize = 2;

#[test]
fn every_pair_delivers_every_time() {
    let Some(w) = world("allpairs") else {
        return;
    };
    let mut n = 0;
    let mut failed = Vec::new();
    for pair in w.pairs() {
        let mut outcomes = Vec::new();
        for _ in 0..TRIES {
            n += 1;
            outcomes.push(try_pair(&pair, n, Duration::from_secs(15)).unwrap());
        }
        let r = row(&pair.name, &outcomes);
        eprintln!("{r}");
        if !outcomes.iter().all(|o| pair.as_expected(o)) {
            failed.push(format!("{r} (expected {})", pair.expect.join(" or ")));
        }
    }
    assert!(
        failed.is_empty(),
        "pairs that missed:\n{}",
        failed.join("\n")
    );
}
