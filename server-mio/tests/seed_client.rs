//! The seed report's own client, unmodified, against parley-server: the
//! three-client session of figures 10 to 13 must play out exactly.
//!
//! The seed client talks to 127.0.0.1:9999, hard-coded. To own that port
//! without clashing with anything on the machine, the session runs in a
//! fresh network namespace when it can (root, `unshare`), else on the
//! host's loopback if 9999 is free.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn seed_client_session_of_figures_10_to_13() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed to run the seed client (CI installs it)");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed");
    let script = format!(
        "{bin} --log-level warn & srv=$!; \
         sleep 0.5; python3 -u session.py; rc=$?; kill $srv; wait $srv; exit $rc",
        bin = common::BIN
    );
    let out = testkit::netns::sh_owning_port(&script, 9999)
        .current_dir(&dir)
        .output()
        .expect("run the session");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "session failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.matches("matches its figure").count(), 3, "{stdout}");
}
