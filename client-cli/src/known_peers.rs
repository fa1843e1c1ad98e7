//! The keys this client has seen for its peers, as SSH's `known_hosts`
//! holds servers' keys: the first key seen for an id is kept, and a
//! different one later is a warning, never a silent change.
//!
//! The file sits beside the identity (`known_peers`), one peer a line:
//!
//! ```text
//! # comments and blank lines are kept out of the way
//! alice 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
//! ```
//!
//! Every change re-reads the file and writes it whole under a new name,
//! so two `parley`s sharing it lose neither's peers to a race of reads
//! and a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use proto_core::wire::Id;

use crate::files;

const HEADER: &str = "# parley known peers: one `ID KEY` a line, the X25519 key in hex.\n\
# A peer whose key differs from the one here is warned about; `/accept ID` updates it.\n";

/// Peers' pinned keys, by id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KnownPeers {
    path: PathBuf,
    keys: BTreeMap<String, [u8; 32]>,
}

/// Why the known-peers file could not be read or written.
#[derive(Debug)]
pub enum KnownError {
    /// Reading or writing failed.
    Io(PathBuf, io::Error),
    /// A line is not `ID KEY`.
    Malformed(PathBuf, usize, &'static str),
}

impl fmt::Display for KnownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnownError::Io(p, e) => write!(f, "known-peers file {}: {e}", p.display()),
            KnownError::Malformed(p, line, why) => write!(
                f,
                "known-peers file {} line {line} is not `ID KEY` ({why}); fix or delete that line",
                p.display()
            ),
        }
    }
}

impl KnownPeers {
    /// The peers in the file at `path`; none if there is no file yet.
    pub fn load(path: &Path) -> Result<KnownPeers, KnownError> {
        let keys = read(path)?;
        Ok(KnownPeers {
            path: path.to_path_buf(),
            keys,
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key pinned for `id`.
    pub fn get(&self, id: &str) -> Option<[u8; 32]> {
        self.keys.get(id).copied()
    }

    /// Every pinned peer, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.keys.iter().map(|(id, k)| (id.as_str(), k))
    }

    /// How many peers are pinned.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Pin `key` for `id` (replacing any earlier key) and write the file.
    /// Peers that another process added meanwhile are kept.
    pub fn set(&mut self, id: &str, key: [u8; 32]) -> Result<(), KnownError> {
        self.write_with(id, key, true).map(|_| ())
    }

    /// Pin a key seen for the first time, unless the file (which another
    /// `parley` may have written since this one read it) already holds
    /// another key for `id`: that one stays, and is returned, because a
    /// pinned key is replaced only by the person's decision.
    pub fn add_new(&mut self, id: &str, key: [u8; 32]) -> Result<Option<[u8; 32]>, KnownError> {
        self.write_with(id, key, false)
    }

    fn write_with(
        &mut self,
        id: &str,
        key: [u8; 32],
        replace: bool,
    ) -> Result<Option<[u8; 32]>, KnownError> {
        let mut keys = read(&self.path)?;
        match keys.get(id) {
            Some(old) if *old == key => {
                self.keys = keys;
                return Ok(None);
            }
            Some(old) if !replace => {
                let old = *old;
                self.keys = keys;
                return Ok(Some(old));
            }
            _ => {}
        }
        keys.insert(id.to_string(), key);
        let mut text = String::from(HEADER);
        for (id, k) in &keys {
            text.push_str(id);
            text.push(' ');
            files::push_hex(&mut text, k);
            text.push('\n');
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| KnownError::Io(self.path.clone(), e))?;
        }
        files::write_replace(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| KnownError::Io(self.path.clone(), e))?;
        self.keys = keys;
        Ok(None)
    }
}

fn read(path: &Path) -> Result<BTreeMap<String, [u8; 32]>, KnownError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(KnownError::Io(path.to_path_buf(), e)),
    };
    parse(&text).map_err(|(line, why)| KnownError::Malformed(path.to_path_buf(), line, why))
}

/// The peers in a file's text, or the first bad line (counted from 1) and why.
fn parse(text: &str) -> Result<BTreeMap<String, [u8; 32]>, (usize, &'static str)> {
    let mut keys = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why| (n + 1, why);
        let mut words = line.split_ascii_whitespace();
        let (Some(id), Some(hex), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad("want two words"));
        };
        Id::new(id).map_err(|_| bad("not a valid id"))?;
        let mut key = [0u8; 32];
        files::parse_hex(hex, &mut key).ok_or(bad("the key is not 64 hex digits"))?;
        if keys.insert(id.to_string(), key).is_some() {
            return Err(bad("the id is listed twice"));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known-peers file in a fresh directory, loaded by two parleys
    /// before either wrote to it (the directory goes when dropped).
    fn two_loaded() -> (tempfile::TempDir, PathBuf, KnownPeers, KnownPeers) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_peers");
        let one = KnownPeers::load(&path).unwrap();
        let two = KnownPeers::load(&path).unwrap();
        (tmp, path, one, two)
    }

    #[test]
    fn round_trip_through_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub").join("known_peers");
        let mut k = KnownPeers::load(&path).unwrap();
        assert_eq!(k.len(), 0, "no file is no peers");
        k.set("alice", [1; 32]).unwrap();
        k.set("bob", [2; 32]).unwrap();
        let back = KnownPeers::load(&path).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.get("alice"), Some([1; 32]));
        assert_eq!(back.get("carol"), None);
        // An accepted new key replaces the old one.
        k.set("alice", [3; 32]).unwrap();
        assert_eq!(KnownPeers::load(&path).unwrap().get("alice"), Some([3; 32]));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                format!("alice {}", "03".repeat(32)),
                format!("bob {}", "02".repeat(32))
            ]
        );
    }

    #[test]
    fn another_process_s_peers_are_kept() {
        let (_tmp, path, mut one, mut two) = two_loaded();
        one.set("alice", [1; 32]).unwrap();
        two.set("bob", [2; 32]).unwrap();
        let back = KnownPeers::load(&path).unwrap();
        assert_eq!(back.get("alice"), Some([1; 32]));
        assert_eq!(back.get("bob"), Some([2; 32]));
    }

    #[test]
    fn a_first_seen_key_never_replaces_a_pinned_one() {
        let (_tmp, path, mut one, mut two) = two_loaded();
        assert_eq!(one.add_new("bob", [1; 32]).unwrap(), None);
        assert_eq!(one.add_new("bob", [1; 32]).unwrap(), None, "the same key");
        // Another parley, which read the file before bob was in it.
        assert_eq!(two.add_new("bob", [2; 32]).unwrap(), Some([1; 32]));
        assert_eq!(KnownPeers::load(&path).unwrap().get("bob"), Some([1; 32]));
        assert_eq!(two.get("bob"), Some([1; 32]));
        // The person's decision does replace it.
        two.set("bob", [2; 32]).unwrap();
        assert_eq!(KnownPeers::load(&path).unwrap().get("bob"), Some([2; 32]));
    }

    #[test]
    fn bad_lines_are_named() {
        let key = "ab".repeat(32);
        assert_eq!(
            parse(&format!("# c\n\n  alice {key}  \n")).unwrap().len(),
            1
        );
        for (text, line, why) in [
            (format!("alice {key}\nbob\n"), 2, "two words"),
            (format!("alice {key} extra"), 1, "two words"),
            (format!("al\"ice {key}"), 1, "valid id"),
            ("alice abcd".to_string(), 1, "64 hex"),
            (format!("alice {key}\nalice {key}"), 2, "twice"),
        ] {
            let (n, w) = parse(&text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(w.contains(why), "{w} for {text:?}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_peers");
        fs::write(&path, "x y\n").unwrap();
        let e = KnownPeers::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("64 hex"), "{e}");
    }
}
