//! This client's long-term identity: an X25519 key pair made the first
//! time `parley` runs and kept in the user's configuration directory, as
//! SSH keeps its keys (the file 0600, its directory 0700).
//!
//! The file is two lines of text, so that a person can see what it is:
//!
//! ```text
//! parley identity v1
//! secret <64 hex digits: the X25519 secret key>
//! ```
//!
//! The public key is derived from the secret, so the two cannot disagree.

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proto_core::secure::{Keypair, PublicKey, safety_number};
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::files;

const MAGIC: &str = "parley identity v1";

/// A long-term key pair.
pub struct Identity {
    secret: StaticSecret,
    public: x25519_dalek::PublicKey,
}

/// Why an identity could not be loaded or made.
#[derive(Debug)]
pub enum IdentityError {
    /// Reading, writing or creating failed.
    Io(PathBuf, io::Error),
    /// The file is not an identity this program wrote.
    Malformed(PathBuf, &'static str),
    /// Others than the owner may read the secret key.
    Exposed(PathBuf, u32),
    /// The operating system gave no random bytes.
    Entropy(getrandom::Error),
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` says where the configuration lives.
    NoConfigDir,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io(p, e) => write!(f, "identity file {}: {e}", p.display()),
            IdentityError::Malformed(p, why) => write!(
                f,
                "identity file {} is not a parley identity ({why}); move it away to make a new one, or pass --identity FILE",
                p.display()
            ),
            IdentityError::Exposed(p, mode) => write!(
                f,
                "identity file {} can be read by others (mode {mode:04o}), so its secret key may be known; if that is fine, run `chmod 600 {}`",
                p.display(),
                p.display()
            ),
            IdentityError::Entropy(e) => {
                write!(f, "the operating system gave no random bytes: {e}")
            }
            IdentityError::NoConfigDir => write!(
                f,
                "neither $XDG_CONFIG_HOME nor $HOME is set, so there is no place for the identity; pass --identity FILE"
            ),
        }
    }
}

/// Where the identity lives by default: `$XDG_CONFIG_HOME/parley/identity`,
/// else `~/.config/parley/identity` (the XDG base directory rules: a
/// relative `$XDG_CONFIG_HOME` is ignored).
pub fn default_path() -> Result<PathBuf, IdentityError> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = nonempty("XDG_CONFIG_HOME").map(PathBuf::from) {
        if x.is_absolute() {
            return Ok(x.join("parley").join("identity"));
        }
    }
    let home = nonempty("HOME").ok_or(IdentityError::NoConfigDir)?;
    Ok(PathBuf::from(home)
        .join(".config")
        .join("parley")
        .join("identity"))
}

impl Identity {
    /// A new key pair from the operating system's randomness.
    pub fn generate() -> Result<Identity, IdentityError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut bytes[..]).map_err(IdentityError::Entropy)?;
        Ok(Identity::from_secret(*bytes))
    }

    fn from_secret(bytes: [u8; 32]) -> Identity {
        let secret = StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret);
        Identity { secret, public }
    }

    /// The identity at `path`, made (with its directory) if there is none.
    /// Whether it was made is the second value.
    pub fn load_or_create(path: &Path) -> Result<(Identity, bool), IdentityError> {
        match Identity::load(path) {
            Err(IdentityError::Io(_, e)) if e.kind() == io::ErrorKind::NotFound => {}
            r => return r.map(|id| (id, false)),
        }
        let id = Identity::generate()?;
        match id.create(path) {
            Ok(()) => Ok((id, true)),
            // Another parley made it first: use that one.
            Err(IdentityError::Io(_, e)) if e.kind() == io::ErrorKind::AlreadyExists => {
                Identity::load(path).map(|id| (id, false))
            }
            Err(e) => Err(e),
        }
    }

    /// The identity at `path`, refused if others can read it.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let io_err = |e| IdentityError::Io(path.to_path_buf(), e);
        let mut file = fs::File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(IdentityError::Malformed(
                path.to_path_buf(),
                "not a regular file",
            ));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed(path.to_path_buf(), mode));
        }
        // An identity is about 90 bytes; read a little more to notice junk.
        let mut text = Zeroizing::new(Vec::with_capacity(256));
        Read::take(&mut file, 1024)
            .read_to_end(&mut text)
            .map_err(io_err)?;
        let secret =
            parse(&text).map_err(|why| IdentityError::Malformed(path.to_path_buf(), why))?;
        Ok(Identity::from_secret(*secret))
    }

    /// Write this identity to a new file at `path`, mode 0600, making its
    /// directory (0700) if needed. Never replaces an existing file
    /// (`AlreadyExists`), and a crash leaves either no file or a whole one.
    pub fn create(&self, path: &Path) -> Result<(), IdentityError> {
        let io_err = |e| IdentityError::Io(path.to_path_buf(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let mut text = Zeroizing::new(String::with_capacity(96));
        text.push_str(MAGIC);
        text.push_str("\nsecret ");
        files::push_hex(&mut text, &self.secret.to_bytes());
        text.push('\n');
        files::write_new(path, text.as_bytes(), 0o600).map_err(io_err)
    }

    /// The public key, as peers and the server know it.
    pub fn public(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The secret key, for the protocol core's handshakes.
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The key pair as the protocol core takes it.
    pub fn keypair(&self) -> Keypair {
        Keypair::from_secret(*self.secret())
    }
}

/// The safety number of `mine` and a peer's key, as a line to read aloud.
pub fn safety_line(mine: &[u8; 32], theirs: &[u8; 32]) -> String {
    safety_number(&PublicKey(*mine), &PublicKey(*theirs)).to_string()
}

/// The secret key in an identity file's text.
fn parse(text: &[u8]) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?;
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some(MAGIC) {
        return Err("its first line is not `parley identity v1`");
    }
    let hex = lines
        .next()
        .and_then(|l| l.trim_end().strip_prefix("secret "))
        .ok_or("no `secret` line")?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("more than two lines");
    }
    let mut out = Zeroizing::new([0u8; 32]);
    files::parse_hex(hex, &mut out[..]).ok_or("the secret is not 64 hex digits")?;
    Ok(out)
}

/// A key's fingerprint as OpenSSH prints one: `SHA256:` and the SHA-256
/// of the key in unpadded base64.
pub fn fingerprint(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    let mut out = String::from("SHA256:");
    files::push_base64(&mut out, &digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_in_a_0700_directory_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("deep").join("parley").join("identity");
        let (a, made) = Identity::load_or_create(&path).unwrap();
        assert!(made);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let (b, made) = Identity::load_or_create(&path).unwrap();
        assert!(!made);
        assert_eq!(a.public(), b.public());
        assert_eq!(*a.secret(), *b.secret());
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["identity"]);
    }

    #[test]
    fn create_never_replaces_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity");
        let a = Identity::generate().unwrap();
        a.create(&path).unwrap();
        let b = Identity::generate().unwrap();
        match b.create(&path) {
            Err(IdentityError::Io(_, e)) => assert_eq!(e.kind(), io::ErrorKind::AlreadyExists),
            _ => panic!("a second create must fail"),
        }
        assert_eq!(Identity::load(&path).unwrap().public(), a.public());
    }

    #[test]
    fn readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity");
        Identity::generate().unwrap().create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = Identity::load(&path).err().expect("refused");
            assert!(matches!(e, IdentityError::Exposed(_, m) if m == mode));
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Identity::load(&path).is_ok());
    }

    #[test]
    fn malformed_files_are_refused_with_a_reason() {
        let good = format!("{MAGIC}\nsecret {}\n", "ab".repeat(32));
        assert!(parse(good.as_bytes()).is_ok());
        assert!(parse(good.trim_end().as_bytes()).is_ok());
        let bad: [(&[u8], &str); 6] = [
            (b"", "first line"),
            (b"\xff\xfe", "not text"),
            (b"parley identity v2\nsecret 00\n", "first line"),
            (b"parley identity v1\n", "no `secret`"),
            (b"parley identity v1\nsecret 0123\n", "64 hex"),
            (b"parley identity v1\nsecret zz\n", "64 hex"),
        ];
        for (text, why) in bad {
            let e = parse(text).expect_err("refused");
            assert!(e.contains(why), "{e:?} for {text:?}");
        }
        let long = format!("{good}junk\n");
        assert_eq!(parse(long.as_bytes()).err(), Some("more than two lines"));
    }

    #[test]
    fn the_default_path_follows_xdg() {
        // One test owns these variables, so no other test races it.
        let (x, h) = (
            std::env::var_os("XDG_CONFIG_HOME"),
            std::env::var_os("HOME"),
        );
        // SAFETY: this is the only test in this binary that reads or
        // writes these variables.
        unsafe {
            std::env::set_var("XDG_CONFIG_HOME", "/x/cfg");
            std::env::set_var("HOME", "/home/u");
        }
        assert_eq!(
            default_path().unwrap(),
            PathBuf::from("/x/cfg/parley/identity")
        );
        unsafe { std::env::set_var("XDG_CONFIG_HOME", "relative") };
        assert_eq!(
            default_path().unwrap(),
            PathBuf::from("/home/u/.config/parley/identity")
        );
        unsafe { std::env::remove_var("XDG_CONFIG_HOME") };
        assert_eq!(
            default_path().unwrap(),
            PathBuf::from("/home/u/.config/parley/identity")
        );
        unsafe { std::env::remove_var("HOME") };
        assert!(matches!(default_path(), Err(IdentityError::NoConfigDir)));
        unsafe {
            match x {
                Some(v) => std::env::set_var("XDG_CONFIG_HOME", v),
                None => std::env::remove_var("XDG_CONFIG_HOME"),
            }
            match h {
                Some(v) => std::env::set_var("HOME", v),
                None => std::env::remove_var("HOME"),
            }
        }
    }

    #[test]
    fn the_core_derives_the_same_public_key() {
        let a = Identity::generate().unwrap();
        assert_eq!(a.keypair().public().0, a.public());
    }

    #[test]
    fn fingerprints_are_openssh_style() {
        // SHA-256 of 32 zero bytes is 66687aad...; its base64 (by Python) is below.
        assert_eq!(
            fingerprint(&[0; 32]),
            "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
        );
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(fingerprint(&a.public()), fingerprint(&b.public()));
    }
}
