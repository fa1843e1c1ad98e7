//! The workspace's binaries (`parley-server`, `parley`) as the same cargo
//! run built them: a test or binary of this crate cannot name another
//! package's binary through `CARGO_BIN_EXE_*`, so it looks beside itself
//! in the target directory. `cargo test --workspace` builds them all.

use std::path::PathBuf;

/// The path of the workspace binary `name` in the target directory this
/// program was built into, if it is there.
pub fn path(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    // Tests live in target/<profile>/deps, binaries in target/<profile>.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join(name);
    p.is_file().then_some(p)
}

/// [`path`], or `Err` with a sentence saying how to build it.
pub fn require(name: &str) -> Result<PathBuf, String> {
    path(name).ok_or_else(|| {
        format!("the binary {name} is not built beside this program: run `cargo build --bins` (or `cargo test --workspace`) first")
    })
}
