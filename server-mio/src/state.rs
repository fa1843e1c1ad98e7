//! `--state FILE`: the whole table, saved on stop and loaded on start, so
//! a planned restart loses nobody.
//!
//! The file is written to a temporary file in the same directory (mode
//! 0600: it holds the secret behind every cookie and token), synced,
//! renamed over FILE, and the directory synced, so a crash at any point
//! leaves either the old file or the new one. A file that is truncated,
//! corrupt, or of another format or version is refused and left in place;
//! the server then stops rather than start empty by surprise.
//!
//! Format, version 1, all numbers little-endian:
//!
//! ```text
//! header  (96 bytes)
//!   magic          8   "PARLEYST"
//!   version        4   1
//!   header_len     4   96
//!   record_len     4   128
//!   reserved       4   0
//!   saved_wall_ms  8   Unix time of the save, ms
//!   saved_now_ms   8   the core's clock at the save, ms
//!   entropy       32   the server's secret (keys of index, cookies, tokens, limits)
//!   tokens_issued  8
//!   seed_version   4
//!   presence_seq   4
//!   count          8   records that follow
//! records (count x 128 bytes), in registration order
//!   id_len 1, id 32 (zero-padded)
//!   family 1 (4 or 6), ip 16 (IPv4 in the first 4), port 2, flowinfo 4, scope_id 4
//!   expires 8 (the core's clock, ms), lease 4
//!   owner 1 (0: the address, a seed id; 1: a token), token 8
//!   has_key 1, key 32
//!   sub 1 (0 none, 1 seed list, 2 events), sub_seq 4, sub_sent 8
//!   padding to 128
//! checksum (16 bytes): SipHash-1-3-128, key zero, of everything before it
//! ```
//!
//! The checksum guards against truncation and corruption, not against an
//! attacker: whoever can write the file can also read the secret in it.
//! Expiry times are on the core's clock; the restarted server's clock goes
//! on from the saved one plus the wall-clock downtime, so leases keep
//! running while the server is down and cookies keep their windows.

use std::fmt;
use std::fs;
use std::hash::Hasher;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use proto_core::Instant;
use proto_core::registry::{Entry, Owner, Subscription};
use proto_core::server::{Continuity, RestoreError, Server};
use proto_core::wire::{Id, IdBuf, PublicKey, Token};
use siphasher::sip128::{Hasher128, SipHasher13};

const MAGIC: &[u8; 8] = b"PARLEYST";
/// The format this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 96;
const RECORD_LEN: usize = 128;
const SUM_LEN: usize = 16;

/// Why a state file was refused, or could not be written.
#[derive(Debug)]
pub enum StateError {
    /// Reading or writing failed.
    Io(PathBuf, io::Error),
    /// Shorter than its header says it is (or than a header).
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header implies.
        expected: u64,
    },
    /// Longer than its header says it is.
    TrailingBytes(PathBuf),
    /// Not a Parley state file.
    BadMagic(PathBuf),
    /// A Parley state file of a format this build does not read.
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The checksum does not match the contents.
    Checksum(PathBuf),
    /// The checksum matched, yet a record is not one this build writes.
    Corrupt(PathBuf, &'static str),
    /// The table is smaller than the live registrations saved.
    TooMany {
        /// The file.
        path: PathBuf,
        /// Live registrations in it.
        live: usize,
        /// `--capacity`.
        capacity: usize,
    },
    /// The core refused the registrations.
    Restore(PathBuf, RestoreError),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io(p, e) => write!(f, "state file {}: {e}", p.display()),
            StateError::Truncated {
                path,
                len,
                expected,
            } => write!(
                f,
                "state file {} is truncated: {len} bytes where {expected} were expected; it was left in place",
                path.display()
            ),
            StateError::TrailingBytes(p) => write!(
                f,
                "state file {} is longer than its header says; it was left in place",
                p.display()
            ),
            StateError::BadMagic(p) => write!(
                f,
                "{} is not a Parley state file; it was left in place",
                p.display()
            ),
            StateError::Version { path, found } => write!(
                f,
                "state file {} is of format version {found}, and this parley-server reads version {VERSION}; it was left in place",
                path.display()
            ),
            StateError::Checksum(p) => write!(
                f,
                "state file {} is corrupt (its checksum does not match); it was left in place",
                p.display()
            ),
            StateError::Corrupt(p, what) => write!(
                f,
                "state file {} is corrupt ({what}); it was left in place",
                p.display()
            ),
            StateError::TooMany {
                path,
                live,
                capacity,
            } => write!(
                f,
                "state file {} holds {live} live registrations, more than --capacity {capacity}: start with --capacity {live} or more",
                path.display()
            ),
            StateError::Restore(p, e) => write!(f, "state file {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StateError {}

impl From<StateError> for io::Error {
    fn from(e: StateError) -> Self {
        let kind = match &e {
            StateError::Io(_, e) => e.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// A state file read and checked, ready to restore.
pub struct Loaded {
    /// The saved server's secret: build the new server with it.
    pub entropy: [u8; 32],
    /// The core's clock when it was saved.
    pub saved_now: Instant,
    /// Unix time of the save, in ms.
    pub saved_wall_ms: u64,
    /// The counters the core carries on with.
    pub continuity: Continuity,
    /// The whole file (records are decoded from it as they are restored).
    bytes: Vec<u8>,
    count: usize,
    path: PathBuf,
}

/// Unix time now, in ms.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Save `server`'s whole state to `path` atomically; `now` is its clock,
/// `entropy` the secret it was built with. Returns the records written.
pub fn save(
    path: &Path,
    server: &Server<'_>,
    now: Instant,
    entropy: &[u8; 32],
) -> Result<usize, StateError> {
    let io_err = |e| StateError::Io(path.to_owned(), e);
    let tmp = temp_path(path, "tmp").map_err(io_err)?;
    let dir = tmp
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let written = write_file(&tmp, server, now, entropy).and_then(|n| {
        fs::rename(&tmp, path)?;
        fs::File::open(&dir)?.sync_all()?;
        Ok(n)
    });
    match written {
        Ok(n) => Ok(n),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io_err(e))
        }
    }
}

fn write_file(
    tmp: &Path,
    server: &Server<'_>,
    now: Instant,
    entropy: &[u8; 32],
) -> io::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let mut sum = SipHasher13::new();
    let count = server.entries().count();
    let c = server.continuity();
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h.extend_from_slice(&(RECORD_LEN as u32).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&wall_ms().to_le_bytes());
    h.extend_from_slice(&now.0.to_le_bytes());
    h.extend_from_slice(entropy);
    h.extend_from_slice(&c.tokens_issued.to_le_bytes());
    h.extend_from_slice(&c.seed_version.to_le_bytes());
    h.extend_from_slice(&c.presence_seq.to_le_bytes());
    h.extend_from_slice(&(count as u64).to_le_bytes());
    debug_assert_eq!(h.len(), HEADER_LEN);
    sum.write(&h);
    out.write_all(&h)?;
    let mut n = 0;
    for e in server.entries() {
        let r = encode(e);
        sum.write(&r);
        out.write_all(&r)?;
        n += 1;
    }
    debug_assert_eq!(n, count);
    out.write_all(&sum.finish128().as_bytes())?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    Ok(n)
}

fn encode(e: &Entry) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    let mut w = Put { buf: &mut r, at: 0 };
    let id = e.id.as_bytes();
    w.u8(id.len() as u8);
    let mut idb = [0u8; 32];
    idb[..id.len()].copy_from_slice(id);
    w.bytes(&idb);
    let (family, ip, flow, scope) = match e.addr {
        SocketAddr::V4(a) => {
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&a.ip().octets());
            (4, ip, 0, 0)
        }
        SocketAddr::V6(a) => (6, a.ip().octets(), a.flowinfo(), a.scope_id()),
    };
    w.u8(family);
    w.bytes(&ip);
    w.bytes(&e.addr.port().to_le_bytes());
    w.bytes(&flow.to_le_bytes());
    w.bytes(&scope.to_le_bytes());
    w.bytes(&e.expires.0.to_le_bytes());
    w.bytes(&e.lease.to_le_bytes());
    match e.owner {
        Owner::Address => {
            w.u8(0);
            w.bytes(&[0; 8]);
        }
        Owner::Token(t) => {
            w.u8(1);
            w.bytes(&t.0.to_le_bytes());
        }
    }
    match e.key {
        Some(k) => {
            w.u8(1);
            w.bytes(&k.0);
        }
        None => {
            w.u8(0);
            w.bytes(&[0; 32]);
        }
    }
    w.u8(match e.sub {
        Subscription::None => 0,
        Subscription::SeedList => 1,
        Subscription::Events => 2,
    });
    w.bytes(&e.sub_seq.to_le_bytes());
    w.bytes(&e.sub_sent.0.to_le_bytes());
    r
}

struct Put<'a> {
    buf: &'a mut [u8; RECORD_LEN],
    at: usize,
}

impl Put<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
}

/// Reads fixed-size fields from a checked record or header.
struct Get<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Get<'a> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}

fn decode(r: &[u8]) -> Result<Entry, &'static str> {
    let mut g = Get { buf: r, at: 0 };
    let len = usize::from(g.u8());
    let idb: [u8; 32] = g.bytes();
    let id = idb
        .get(..len)
        .and_then(|b| Id::from_bytes(b).ok())
        .ok_or("a record's id is not a valid id")?;
    let family = g.u8();
    let ip: [u8; 16] = g.bytes();
    let port = g.u16();
    let flow = g.u32();
    let scope = g.u32();
    let addr = match family {
        4 => {
            let v4 = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            SocketAddr::V4(SocketAddrV4::new(v4, port))
        }
        6 => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)),
        _ => return Err("a record's address family is neither 4 nor 6"),
    };
    let expires = Instant(g.u64());
    let lease = g.u32();
    let owner = match (g.u8(), g.u64()) {
        (0, _) => Owner::Address,
        (1, t) => Owner::Token(Token(t)),
        _ => return Err("a record's owner is neither an address nor a token"),
    };
    let key = match (g.u8(), g.bytes::<32>()) {
        (0, _) => None,
        (1, k) => Some(PublicKey(k)),
        _ => return Err("a record's key flag is neither 0 nor 1"),
    };
    let sub = match g.u8() {
        0 => Subscription::None,
        1 => Subscription::SeedList,
        2 => Subscription::Events,
        _ => return Err("a record's subscription is unknown"),
    };
    let sub_seq = g.u32();
    let sub_sent = Instant(g.u64());
    Ok(Entry {
        id: IdBuf::from_id(id),
        addr,
        expires,
        lease,
        owner,
        key,
        sub,
        sub_seq,
        sub_sent,
    })
}

/// Check at start that `path`'s directory takes new files, so a server
/// that could not save on stop says so now, not when it is too late.
pub fn check_writable(path: &Path) -> Result<(), StateError> {
    let probe = temp_path(path, "probe").map_err(|e| StateError::Io(path.to_owned(), e))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| StateError::Io(path.to_owned(), e))
}

/// `path`'s directory, and a file name beside `path` for this process.
fn temp_path(path: &Path, what: &str) -> io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut tmp = name.to_owned();
    tmp.push(format!(".{what}.{}", std::process::id()));
    Ok(dir.join(tmp))
}

/// Read and check the state file at `path`: `Ok(None)` if there is none
/// (a first start).
pub fn load(path: &Path) -> Result<Option<Loaded>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::Io(path.to_owned(), e)),
    };
    check(path, bytes).map(Some)
}

fn check(path: &Path, bytes: Vec<u8>) -> Result<Loaded, StateError> {
    let p = || path.to_owned();
    let len = bytes.len() as u64;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // Too short for the magic is as likely a truncated file as another
        // one; say which when the bytes that are there fit.
        if !bytes.is_empty() && MAGIC.starts_with(&bytes) {
            return Err(StateError::Truncated {
                path: p(),
                len,
                expected: (HEADER_LEN + SUM_LEN) as u64,
            });
        }
        return Err(StateError::BadMagic(p()));
    }
    if bytes.len() < 12 {
        return Err(StateError::Truncated {
            path: p(),
            len,
            expected: (HEADER_LEN + SUM_LEN) as u64,
        });
    }
    let mut g = Get {
        buf: &bytes,
        at: MAGIC.len(),
    };
    let version = g.u32();
    if version != VERSION {
        return Err(StateError::Version {
            path: p(),
            found: version,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(StateError::Truncated {
            path: p(),
            len,
            expected: (HEADER_LEN + SUM_LEN) as u64,
        });
    }
    let header_len = g.u32() as usize;
    let record_len = g.u32() as usize;
    let _reserved = g.u32();
    if header_len != HEADER_LEN || record_len != RECORD_LEN {
        return Err(StateError::Corrupt(
            p(),
            "its header is not of version 1's layout",
        ));
    }
    let saved_wall_ms = g.u64();
    let saved_now = Instant(g.u64());
    let entropy: [u8; 32] = g.bytes();
    let continuity = Continuity {
        tokens_issued: g.u64(),
        seed_version: g.u32(),
        presence_seq: g.u32(),
    };
    let count = g.u64();
    let expected = count
        .checked_mul(RECORD_LEN as u64)
        .and_then(|r| r.checked_add((HEADER_LEN + SUM_LEN) as u64))
        .ok_or(StateError::Corrupt(p(), "its record count is impossible"))?;
    if len < expected {
        return Err(StateError::Truncated {
            path: p(),
            len,
            expected,
        });
    }
    if len > expected {
        return Err(StateError::TrailingBytes(p()));
    }
    let body = bytes.len() - SUM_LEN;
    let mut sum = SipHasher13::new();
    sum.write(&bytes[..body]);
    if sum.finish128().as_bytes() != bytes[body..] {
        return Err(StateError::Checksum(p()));
    }
    Ok(Loaded {
        entropy,
        saved_now,
        saved_wall_ms,
        continuity,
        count: count as usize,
        bytes,
        path: path.to_owned(),
    })
}

impl Loaded {
    /// Registrations in the file.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The core's clock for a server started now: the saved clock moved on
    /// by the wall-clock time since the save (none if the wall clock went
    /// back).
    pub fn resume_at(&self, wall_now_ms: u64) -> Instant {
        Instant(
            self.saved_now
                .0
                .saturating_add(wall_now_ms.saturating_sub(self.saved_wall_ms)),
        )
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bytes[HEADER_LEN..HEADER_LEN + self.count * RECORD_LEN].chunks_exact(RECORD_LEN)
    }

    /// Fill `server` (new, built with [`Self::entropy`]) at `now` (from
    /// [`Self::resume_at`]). Returns the live and expired counts.
    ///
    /// `token_jump` (random, from the caller) moves the token counter on:
    /// the file is the last clean stop's, so after a crash it is older
    /// than the tokens issued since, and carrying on from its counter
    /// would issue some of them again (perhaps for the same ids, in the
    /// same order). Tokens already held are stored values, not recomputed,
    /// so they stay valid.
    pub fn restore_into(
        &self,
        server: &mut Server<'_>,
        now: Instant,
        capacity: usize,
        token_jump: u64,
    ) -> Result<proto_core::server::Restored, StateError> {
        // Every record is checked before anything is restored, and the
        // live ones counted, so a small table is refused with the number
        // it would need.
        let mut live = 0usize;
        for r in self.records() {
            let e = decode(r).map_err(|w| StateError::Corrupt(self.path.clone(), w))?;
            live += usize::from(e.expires > now);
        }
        if live > capacity {
            return Err(StateError::TooMany {
                path: self.path.clone(),
                live,
                capacity,
            });
        }
        // Decoding cannot fail now: it succeeded just above.
        let entries = self.records().filter_map(|r| decode(r).ok());
        let mut c = self.continuity;
        c.tokens_issued = c.tokens_issued.wrapping_add(token_jump);
        server
            .restore(now, c, entries)
            .map_err(|e| StateError::Restore(self.path.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::server::{Config, VecOutbox};

    use testkit::tables::leaked as storage;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "parley-state-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A server for `capacity` ids with `entropy`, after the seed
    /// registrations `ID s` from each `(from, s)` at `now`; its state saved
    /// to `state` in a fresh [`dir`]. The directory, the path, the server
    /// and how many entries were saved.
    fn saved<'a>(
        capacity: usize,
        entropy: [u8; 32],
        now: Instant,
        ids: impl IntoIterator<Item = (SocketAddr, &'a str)>,
    ) -> (PathBuf, PathBuf, Server<'static>, usize) {
        let d = dir();
        let path = d.join("state");
        let mut a = Server::new(Config::default(), storage(capacity), entropy).unwrap();
        let mut out = VecOutbox::<8>::new();
        for (from, id) in ids {
            a.handle(now, from, format!("ID {id}").as_bytes(), &mut out);
        }
        let count = save(&path, &a, now, &entropy).unwrap();
        (d, path, a, count)
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn every_field_of_every_kind_of_entry_round_trips() {
        let entries = [
            Entry {
                id: IdBuf::from_id(Id::new("x-very-long-id-of-32-characters-").unwrap()),
                addr: "[2001:db8::7%3]:40001".parse().unwrap(),
                expires: Instant(123_456_789),
                lease: 3600,
                owner: Owner::Token(Token(0xdead_beef_0123_4567)),
                key: Some(PublicKey(std::array::from_fn(|i| i as u8))),
                sub: Subscription::Events,
                sub_seq: u32::MAX,
                sub_sent: Instant(u64::MAX),
            },
            Entry {
                id: IdBuf::from_id(Id::new("120").unwrap()),
                addr: "192.0.2.9:10520".parse().unwrap(),
                expires: Instant(1),
                lease: 15,
                owner: Owner::Address,
                key: None,
                sub: Subscription::SeedList,
                sub_seq: 7,
                sub_sent: Instant(99),
            },
        ];
        for e in entries {
            assert_eq!(decode(&encode(&e)), Ok(e));
        }
        let mut flow = entries[0];
        flow.addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0x12345, 0));
        assert_eq!(decode(&encode(&flow)), Ok(flow));
        let mut bad = encode(&entries[1]);
        bad[33] = 5;
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn a_saved_server_loads_into_a_new_one() {
        let entropy = [9u8; 32];
        let now = Instant::from_secs(50);
        let (d, path, a, count) = saved(1024, entropy, now, [(at(1), "alice"), (at(2), "bob")]);
        assert_eq!(count, 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );

        let l = load(&path).unwrap().unwrap();
        assert_eq!(l.entropy, entropy);
        assert_eq!(l.count(), 2);
        let at = l.resume_at(l.saved_wall_ms + 5_000);
        assert_eq!(at, Instant::from_secs(55));
        let mut b = Server::new(Config::default(), storage(1024), l.entropy).unwrap();
        let r = l.restore_into(&mut b, at, 1024, 0).unwrap();
        assert_eq!((r.live, r.expired), (2, 0));
        let ids: Vec<String> = b.entries().map(|e| format!("{:?}", e.id)).collect();
        assert_eq!(ids, ["IdBuf(alice)", "IdBuf(bob)"]);
        assert_eq!(b.continuity(), a.continuity());
        // Saved again over the old file.
        assert_eq!(save(&path, &b, at, &entropy).unwrap(), 2);
        assert!(load(&path).unwrap().is_some());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn no_file_is_a_first_start() {
        let d = dir();
        assert!(load(&d.join("none")).unwrap().is_none());
        check_writable(&d.join("none")).unwrap();
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            0,
            "the probe was removed"
        );
        let e = check_writable(&d.join("no-such-dir/state")).unwrap_err();
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_files_are_refused_with_what_is_wrong() {
        let (d, path, _, _) = saved(1024, [3u8; 32], Instant(1), [(at(1), "alice")]);
        let good = fs::read(&path).unwrap();
        let refuse = |bytes: &[u8]| -> String {
            fs::write(&path, bytes).unwrap();
            match load(&path) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted"),
            }
        };
        let e = refuse(&good[..good.len() - 1]);
        assert!(e.contains("truncated"), "{e}");
        let e = refuse(&good[..HEADER_LEN + 10]);
        assert!(e.contains("truncated"), "{e}");
        let e = refuse(&good[..4]);
        assert!(e.contains("truncated"), "{e}");
        let e = refuse(&[]);
        assert!(e.contains("not a Parley state file"), "{e}");
        let mut flipped = good.clone();
        flipped[HEADER_LEN + 5] ^= 1;
        let e = refuse(&flipped);
        assert!(e.contains("checksum"), "{e}");
        let mut v2 = good.clone();
        v2[8] = 2;
        let e = refuse(&v2);
        assert!(e.contains("version 2"), "{e}");
        let e = refuse(b"{\"ids\": []}");
        assert!(e.contains("not a Parley state file"), "{e}");
        let mut longer = good.clone();
        longer.push(0);
        let e = refuse(&longer);
        assert!(e.contains("longer"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_small_table_is_told_how_large_it_must_be() {
        let names: Vec<String> = (0..1500).map(|i| format!("s{i}")).collect();
        let ids = names.iter().enumerate().map(|(i, id)| {
            let src = SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 1000));
            (src, id.as_str())
        });
        let (d, path, _, _) = saved(2048, [4u8; 32], Instant(1), ids);
        let l = load(&path).unwrap().unwrap();
        let mut b = Server::new(Config::default(), storage(1024), l.entropy).unwrap();
        let e = l.restore_into(&mut b, Instant(2), 1024, 0).unwrap_err();
        assert!(e.to_string().contains("holds 1500 live"), "{e}");
        assert!(e.to_string().contains("--capacity 1500"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
