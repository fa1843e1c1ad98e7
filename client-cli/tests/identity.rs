//! The identity and the known-peers file, with real `parley` processes:
//! made once, kept private, reused, and refused when damaged.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The `name: value` line of `whoami`'s output.
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name:?} in {out:?}"))
}

#[test]
fn made_private_on_first_run_and_reused() {
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("parley").join("identity");
    let first = parley_at(cfg.path(), &["whoami", "--id", "alice"], T).ok();
    assert!(
        first.stderr.contains("made a new identity"),
        "{}",
        first.stderr
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(field(&first.stdout, "id"), "alice");
    assert_eq!(field(&first.stdout, "identity"), path.to_str().unwrap());
    let fp = field(&first.stdout, "fingerprint");
    assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 43, "{fp}");
    assert_eq!(field(&first.stdout, "key").len(), 64);
    let bytes = fs::read(&path).unwrap();

    let again = parley_at(cfg.path(), &["whoami"], T).ok();
    assert!(!again.stderr.contains("made a new identity"));
    assert_eq!(field(&again.stdout, "fingerprint"), fp, "stable");
    assert_eq!(fs::read(&path).unwrap(), bytes, "not rewritten");

    // Another file is another identity.
    let other = cfg.path().join("elsewhere").join("me.key");
    let o = parley_at(
        cfg.path(),
        &["whoami", "--identity", other.to_str().unwrap()],
        T,
    )
    .ok();
    assert_ne!(field(&o.stdout, "fingerprint"), fp);
    assert_eq!(mode(&other), 0o600);
}

#[test]
fn without_xdg_config_home_it_lives_in_home_dot_config() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(PARLEY)
        .arg("whoami")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let path = home.path().join(".config/parley/identity");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        field(&String::from_utf8_lossy(&out.stdout), "identity"),
        path.to_str().unwrap()
    );
}

#[test]
fn a_damaged_or_exposed_identity_is_refused_with_a_sentence() {
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("parley").join("identity");
    parley_at(cfg.path(), &["whoami"], T).ok();

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let r = parley_at(cfg.path(), &["whoami"], T);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with("parley: identity file ")
            && r.stderr.contains("can be read by others (mode 0644)")
            && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );

    fs::write(&path, "not a key\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    // Every command that uses the key refuses, before it talks to anyone.
    let srv = server();
    let server = srv.addr.to_string();
    for args in [
        &["whoami"][..],
        &["listen", "--server", &server, "--id", "bob"],
        &send_args(&server, "al", "bob", &["hi"]),
        &["--server", &server, "--id", "al"],
    ] {
        let r = parley_at(cfg.path(), args, T);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("is not a parley identity")
                && r.stderr.contains("first line")
                && !r.stderr.contains("panicked"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // The damaged file is left as it was, for its owner to look at.
    assert_eq!(fs::read_to_string(&path).unwrap(), "not a key\n");
    let r = parley(&["lookup", "--server", &server, "bob"], T);
    assert_eq!(r.code, Some(1), "bob never registered: {}", r.stdout);
}

#[test]
fn a_damaged_known_peers_file_is_refused_with_its_line() {
    let cfg = tempfile::tempdir().unwrap();
    let known = cfg.path().join("parley").join("known_peers");
    fs::create_dir_all(known.parent().unwrap()).unwrap();
    fs::write(&known, format!("alice {}\nbob xyz\n", "00".repeat(32))).unwrap();
    let srv = server();
    let server = srv.addr.to_string();
    parley_at(cfg.path(), &send_args(&server, "al", "bob", &["hi"]), T)
        .fails_with(1, "known_peers line 2 is not `ID KEY`");
}

#[test]
fn verify_gives_both_sides_the_same_number_and_a_swapped_key_another() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = |dir: &Path| {
        let r = parley_at(dir, &["whoami"], T).ok();
        field(&r.stdout, "key").to_string()
    };
    let (ka, kb) = (key(a.path()), key(b.path()));
    let known = |dir: &Path, text: String| fs::write(dir.join("parley/known_peers"), text).unwrap();
    known(a.path(), format!("bob {kb}\n"));
    known(b.path(), format!("alice {ka}\n"));
    let verify = |dir: &Path, peer: &str| parley_at(dir, &["verify", peer], T);
    let at_a = verify(a.path(), "bob").ok();
    let at_b = verify(b.path(), "alice").ok();
    let groups: Vec<&str> = at_a.stdout.split(' ').collect();
    assert_eq!(groups.len(), 12, "{}", at_a.stdout);
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
    );
    assert_eq!(at_a.stdout, at_b.stdout, "both people read the same digits");
    assert!(at_a.stderr.contains("compare these digits with bob"));

    // Someone gave alice another key for bob: the numbers no longer agree.
    let other = tempfile::tempdir().unwrap();
    known(a.path(), format!("bob {}\n", key(other.path())));
    let swapped = verify(a.path(), "bob");
    assert_eq!(swapped.code, Some(0));
    assert_ne!(swapped.stdout, at_b.stdout);

    verify(a.path(), "carol").fails_with(1, "no key is known for carol yet");
}

#[test]
fn the_chat_s_whoami_and_help() {
    let cfg = tempfile::tempdir().unwrap();
    let r = parley_at(cfg.path(), &["whoami"], T);
    let fp = field(&r.stdout, "fingerprint").to_string();
    let srv = server();
    let server = srv.addr.to_string();
    let mut p = Parley::spawn_at(cfg.path(), &["--server", &server, "--id", "ann"]);
    wait_line(&p.out, "You are ann", T);
    let line = p.ask("/whoami", "you are ann");
    assert!(
        line.contains(&format!("key fingerprint {fp}")),
        "{line} / {fp}"
    );
    p.type_line("/help");
    for needle in ["/whoami", "/verify ID", "/accept ID"] {
        wait_line(&p.out, needle, T);
    }
    p.ask("/verify zed", "no key is known for zed yet");
    p.ask("/accept zed", "zed's key has not changed");
    p.type_line("/quit");
    assert_eq!(p.wait_exit(T), Some(0));
}

#[test]
fn parleys_started_together_agree_on_one_identity() {
    let cfg = tempfile::tempdir().unwrap();
    let runs: Vec<Parley> = (0..6)
        .map(|_| Parley::spawn_at(cfg.path(), &["whoami"]))
        .collect();
    let mut fps = Vec::new();
    for mut p in runs {
        assert_eq!(p.wait_exit(T), Some(0));
        std::thread::sleep(Duration::from_millis(50));
        let out = p.out_seen.lock().unwrap().join("\n");
        fps.push(field(&out, "fingerprint").to_string());
    }
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 1, "one identity for all: {fps:?}");
    let names: Vec<_> = fs::read_dir(cfg.path().join("parley"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["identity"], "no temporary file left behind");
}
