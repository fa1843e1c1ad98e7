//! `cargo run -p testkit --bin natlab [TRIES] [PAIR-FILTER]`: the NAT
//! matrix, printed as a Markdown table (see `testkit::matrix`). Needs
//! root, iproute2 and nftables, and the workspace's binaries built
//! (`cargo build --bins`). Prints every pair, missed tries included, and
//! exits 1 if any try missed: not delivered exactly once, or not by a
//! path `testkit::matrix::expected` allows. The pass/fail form in the suite is
//! `testkit/tests/matrix.rs`.

use std::process::ExitCode;
use std::time::Duration;

use testkit::matrix::{World, row, try_pair};
use testkit::natlab::Lab;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let tries: u32 = match args.next().map(|s| s.parse()) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("natlab: TRIES must be a whole number above 0");
            return ExitCode::from(2);
        }
    };
    let filter = args.next().unwrap_or_default();
    for b in ["parley-server", "parley"] {
        if let Err(why) = testkit::bins::require(b) {
            eprintln!("natlab: {why}");
            return ExitCode::FAILURE;
        }
    }
    let world = match Lab::new("matrix").and_then(World::build) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("natlab: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("| pair (sender -> receiver) | delivered | paths | median time to first message |");
    println!("| --- | --- | --- | --- |");
    let mut n = 0;
    let mut missed = 0;
    for pair in world.pairs() {
        if !pair.name.contains(&filter) {
            continue;
        }
        let mut outcomes = Vec::new();
        for _ in 0..tries {
            n += 1;
            match try_pair(&pair, n, Duration::from_secs(15)) {
                Ok(o) => {
                    missed += usize::from(!pair.as_expected(&o));
                    outcomes.push(o);
                }
                Err(e) => {
                    missed += 1;
                    eprintln!("natlab: {e}");
                }
            }
        }
        println!("{}", row(&pair.name, &outcomes));
    }
    if missed > 0 {
        eprintln!(
            "natlab: {missed} of {n} tries missed (not delivered exactly once, or not by the path expected)"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
