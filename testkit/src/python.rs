//! Third-party Python clients (from PyPI) in a virtual environment, to
//! check Parley against code that is not Parley's own.
//!
//! The environment is made once per directory and reused. Where Python,
//! `venv` or PyPI cannot be had the caller skips, unless [`REQUIRE_ENV`]
//! is `1` (CI), when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Set (to `1`) where the PyPI clients must be installable: then their
/// absence fails the test instead of skipping it.
pub const REQUIRE_ENV: &str = "PARLEY_REQUIRE_PYPI";

/// The pinned STUN/ICE client: aioice (the ICE agent of aiortc).
pub const AIOICE: &str = "aioice==0.13.0";

static MAKING: Mutex<()> = Mutex::new(());

fn ok(c: &mut Command) -> bool {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python of a venv in `dir` in which `import module` works, after
/// `pip install spec` if needed; `Err` says why not.
pub fn venv_with(dir: &Path, module: &str, spec: &str) -> Result<PathBuf, String> {
    let _guard = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let python = dir.join("bin/python");
    let imports = |p: &Path| ok(Command::new(p).args(["-c", &format!("import {module}")]));
    if python.is_file() && imports(&python) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv", &dir.to_string_lossy()])
        .output()
        .map_err(|e| format!("python3 did not start (install python3 and python3-venv): {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "`python3 -m venv {}` failed (is python3-venv installed?): {}",
            dir.display(),
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    let out = Command::new(dir.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", spec])
        .output()
        .map_err(|e| format!("pip did not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`pip install {spec}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !imports(&python) {
        return Err(format!("{spec} installed but `import {module}` fails"));
    }
    Ok(python)
}

/// [`venv_with`], or `None` after printing why (a skip), or a panic if
/// [`REQUIRE_ENV`] is `1`.
pub fn venv_or_skip(dir: &Path, module: &str, spec: &str) -> Option<PathBuf> {
    match venv_with(dir, module, spec) {
        Ok(p) => Some(p),
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => panic!("{why}"),
        Err(why) => {
            eprintln!("skipping: {why} (set {REQUIRE_ENV}=1 to fail instead)");
            None
        }
    }
}

/// The aioice client script shipped with the kit
/// (`testkit/scripts/aioice_client.py`).
pub fn aioice_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/aioice_client.py")
}

/// Run the aioice client script with `python` (a command, so that it may
/// run inside a lab node) and `args`: the six words it prints, such as
/// `mapped HOST PORT local HOST PORT`. Fails the test, naming `what`, if
/// the script fails or prints anything else.
pub fn aioice(python: &mut Command, args: &[&str], what: &str) -> Vec<String> {
    let out = python
        .arg(aioice_script())
        .args(args)
        .output()
        .expect("run the aioice client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<String> = text.split_whitespace().map(String::from).collect();
    assert_eq!(words.len(), 6, "{what}: {text}");
    words
}
