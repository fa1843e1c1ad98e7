//! The real `parley-server` and `parley` processes, inside lab nodes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bins;
use crate::natlab::{Lab, LabError, Node, SERVER_IP, lab_or_skip, required};
use crate::process::Running;

/// The server's port in the lab.
pub const PORT: u16 = 9999;
/// Its STUN-only second port.
pub const PORT2: u16 = 3479;

/// The server's address in the lab.
pub fn server_addr() -> SocketAddr {
    SocketAddr::from((SERVER_IP, PORT))
}

/// Whether `parley-server` and `parley` are built beside this test; if
/// not it skips, saying why (a failure where the lab is required).
pub fn binaries_or_skip() -> bool {
    for b in ["parley-server", "parley"] {
        if let Err(why) = bins::require(b) {
            assert!(!required(), "{why}");
            eprintln!("skipping: {why}");
            return false;
        }
    }
    true
}

/// A lab with `parley-server` running on its server host.
pub struct Served {
    /// The server; declared first, so it stops before the lab goes.
    pub server: Running,
    /// The lab, to add routers and hosts to.
    pub lab: Lab,
}

/// A lab named `tag` with `parley-server` running in it, or `None` where
/// the test should skip ([`binaries_or_skip`], [`lab_or_skip`]).
pub fn served_lab(tag: &str) -> Option<Served> {
    if !binaries_or_skip() {
        return None;
    }
    let mut lab = lab_or_skip(tag)?;
    let node = lab.server().unwrap_or_else(|e| panic!("{e}"));
    let server = start_server(&node, &[]).unwrap_or_else(|e| panic!("{e}"));
    Some(Served { server, lab })
}

/// Start `parley-server` on `node` at [`SERVER_IP`]:[`PORT`], with the
/// STUN-only port [`PORT2`] and `extra` options; returns once it listens.
pub fn start_server(node: &Node, extra: &[&str]) -> Result<Running, LabError> {
    let bin = bins::require("parley-server").map_err(LabError::Unavailable)?;
    let mut cmd = node.command(&bin.to_string_lossy());
    cmd.args([
        "--bind",
        &server_addr().to_string(),
        "--stun-port2",
        &PORT2.to_string(),
    ])
    .args(extra);
    // Running keeps reading its output, so the server never blocks on a
    // full pipe.
    let server =
        Running::spawn(&mut cmd).map_err(|e| LabError::Io(format!("spawn parley-server: {e}")))?;
    server
        .wait_for("STUN only also on", Duration::from_secs(20))
        .map_err(|e| LabError::Io(format!("parley-server did not start: {e}")))?;
    Ok(server)
}

/// `parley --server <lab server> args...` to run on `node`.
pub fn client(node: &Node, args: &[&str]) -> Result<Command, LabError> {
    let bin = bins::require("parley").map_err(LabError::Unavailable)?;
    let mut cmd = node.command(&bin.to_string_lossy());
    cmd.args(["--server", &server_addr().to_string()])
        .args(args);
    Ok(cmd)
}

/// What `parley netcheck --json` said, the fields the lab checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netcheck {
    /// `"public"`.
    pub public: SocketAddr,
    /// `"mapping"`: none, endpoint-independent, endpoint-dependent, unknown.
    pub mapping: String,
    /// `"nat"`.
    pub nat: bool,
    /// The whole line.
    pub json: String,
}

fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim_matches('"'))
}

/// Run `parley netcheck PORT2 --json` on `node`.
pub fn netcheck(node: &Node) -> Result<Netcheck, String> {
    let out = client(
        node,
        &["--timeout", "10", "netcheck", &PORT2.to_string(), "--json"],
    )
    .map_err(|e| e.to_string())?
    .output()
    .map_err(|e| format!("parley netcheck did not start: {e}"))?;
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "parley netcheck failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bad = || format!("parley netcheck printed {json:?}");
    Ok(Netcheck {
        public: field(&json, "public")
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?,
        mapping: field(&json, "mapping").ok_or_else(bad)?.to_string(),
        nat: field(&json, "nat").ok_or_else(bad)? == "true",
        json,
    })
}

/// Ask a running `parley` chat for its path to `peer` (`/path`) every
/// 100 ms until the answer contains `want`, for at most `limit`: that
/// answer, or the last one.
pub fn path_until(
    chat: &mut Running,
    peer: &str,
    want: &str,
    limit: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    let head = format!("* {peer}: ");
    let mut last = String::new();
    while Instant::now() < deadline {
        chat.type_line(&format!("/path {peer}"))
            .map_err(|e| e.to_string())?;
        last = chat.wait_for(&head, Duration::from_secs(3))?.text;
        if last.contains(want) {
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// A fresh directory of test `tag`'s own (for known-peers files), under
/// the system's temporary directory; the test removes it.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("parley-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}
