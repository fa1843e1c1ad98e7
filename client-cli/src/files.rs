//! Files written whole or not at all, and the text encodings of keys.
//!
//! Both writers put the bytes in a temporary file beside the target and
//! sync it before it takes the target's name, so a crash or a full disk
//! leaves the old file or the new one, never half of either.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A new file at `path` holding `bytes`, with permission bits `mode`;
/// fails with `AlreadyExists` rather than replace one.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    // link(2) never replaces its target, unlike rename(2).
    let r = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    r?;
    sync_dir(path);
    Ok(())
}

/// Replace the file at `path` (or make it) with `bytes`, mode `mode`.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path);
    Ok(())
}

/// `bytes` in a fresh, synced file beside `path`; its name.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(io::Error::other)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    let mut tail = String::from(".tmp-");
    push_hex(&mut tail, &suffix);
    tmp_name.push(tail);
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let r = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = r {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Make the new name durable too. Best effort: some file systems cannot
/// sync a directory, and the data itself is already synced.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// `bytes` as lower-case hex, appended to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Fill `out` from exactly `2 * out.len()` hex digits (either case).
pub fn parse_hex(hex: &str, out: &mut [u8]) -> Option<()> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * out.len() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

/// `bytes` in standard base64 without padding, appended to `out`.
pub fn push_base64(out: &mut String, bytes: &[u8]) {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base64_matches_rfc_4648() {
        // RFC 4648 section 10, padding left off.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            push_base64(&mut s, plain.as_bytes());
            assert_eq!(s, enc);
        }
    }

    #[test]
    fn hex_round_trip() {
        let mut s = String::new();
        push_hex(&mut s, &[0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(s, "009fa0ff");
        let mut b = [0u8; 4];
        assert_eq!(parse_hex("009FA0fF", &mut b), Some(()));
        assert_eq!(b, [0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(parse_hex("009fa0f", &mut b), None);
        assert_eq!(parse_hex("009fa0fg", &mut b), None);
        assert_eq!(parse_hex("+09fa0ff", &mut b), None);
    }

    #[test]
    fn writes_are_whole_and_keep_their_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        write_new(&p, b"one", 0o600).unwrap();
        assert_eq!(
            write_new(&p, b"two", 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_replace(&p, b"three", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no temporaries left"
        );
    }
}
