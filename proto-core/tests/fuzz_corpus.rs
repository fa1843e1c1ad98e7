//! Replays every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`
//! through the same checks as the cargo-fuzz targets, under a stable
//! `cargo test`, so a crash found once stays fixed without nightly.
//!
//! The checks are the fuzz crate's own source files, included by path.

#[path = "../../fuzz/src/decode.rs"]
mod decode;
#[path = "../../fuzz/src/make.rs"]
mod make;
#[path = "../../fuzz/src/peer.rs"]
mod peer;
#[path = "../../fuzz/src/roundtrip.rs"]
mod roundtrip;
#[path = "../../fuzz/src/server.rs"]
#[allow(dead_code)] // `script` is for the fuzz target's users
mod server;

use std::fs;
use std::path::{Path, PathBuf};

fn files(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut v = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let p = e.expect("a readable directory entry").path();
            if p.is_file() {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// A fuzz target's check: it panics on an input that breaks a rule.
type Check = fn(&[u8]);

/// Run `check` over every file of `target`; returns how many there were.
fn replay(target: &str, check: Check) -> usize {
    let all = files(target);
    let mut failed = Vec::new();
    for p in &all {
        let data = match fs::read(p) {
            Ok(data) => data,
            // A fuzzer running beside the test may have just reduced it away.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", p.display()),
        };
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(p.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail their checks: {failed:#?}"
    );
    eprintln!("{target}: {} inputs replayed", all.len());
    all.len()
}

/// Each fuzz target's corpus is there and passes its checks: (target,
/// check, the fewest inputs its corpus holds).
#[test]
fn every_corpus_replays() {
    let targets: [(&str, Check, usize); 4] = [
        ("decode", decode::check, 11),
        ("peer", peer::check, 3),
        ("roundtrip", roundtrip::check, 11),
        ("server", server::check, 3),
    ];
    for (target, check, fewest) in targets {
        assert!(
            replay(target, check) >= fewest,
            "the {target} corpus is there"
        );
    }
}
