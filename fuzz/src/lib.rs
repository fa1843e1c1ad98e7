//! The checks behind Parley's fuzz targets.
//!
//! Each target module has one entry point, `check(data: &[u8])`, that panics
//! when an invariant fails. The cargo-fuzz targets call it with libFuzzer's
//! input; `proto-core/tests/fuzz_corpus.rs` includes these same files with
//! `#[path]` and calls it for every file of `fuzz/corpus/` and
//! `fuzz/regressions/` under a stable `cargo test`, so a crash found once
//! stays fixed.
//!
//! - [`decode`]: any bytes into every parser; what parses re-emits to its
//!   canonical form and that form parses to the same message.
//! - [`roundtrip`]: structure-aware messages; `parse(emit(m)) == m` and
//!   nothing emitted exceeds its datagram limit.
//! - [`peer`]: an attacker between two clients with a Noise session
//!   replays, flips, truncates and redirects their datagrams; only what
//!   alice wrote is shown, once, and nothing larger than it sent (and no
//!   chat) goes to the attacker.
//! - [`server`]: sequences of (time step, source, datagram) into the sans-IO
//!   server, with a model that checks its invariants after every step.

pub mod decode;
pub mod make;
pub mod peer;
pub mod roundtrip;
pub mod server;
