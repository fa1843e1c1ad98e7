//! `parley-loadgen state-cost N`: how long `parley-server --state` takes to
//! save and to load a table of N ids, with the server's own code.
//!
//! The table is filled directly through the core's restore path (a mix of
//! token-owned ids with keys, keyless ones and seed ids, some subscribed),
//! then saved with `parley_server::state::save` and loaded into a second
//! server as a restart does (read, checksum, decode, restore). The file is
//! removed afterwards.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Instant as StdInstant;

use parley_server::state;
use proto_core::Instant;
use proto_core::registry::{Entry, Owner, Subscription};
use proto_core::server::{Config, Continuity, Server};
use proto_core::wire::{Id, IdBuf, PublicKey, Token};
use testkit::tables::Tables;

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct StateCost {
    /// Ids saved and loaded.
    pub ids: usize,
    /// Bytes of the file.
    pub bytes: u64,
    /// Seconds to save (encode, write, fsync, rename, fsync the directory).
    pub save: f64,
    /// Seconds to load (read, checksum, decode, restore into the table).
    pub load: f64,
}

impl fmt::Display for StateCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state-cost: {} ids, {:.1} MiB file: save {:.3} s, load {:.3} s",
            self.ids,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.save,
            self.load
        )
    }
}

/// Registration `i` of the synthetic table.
fn entry(i: usize, now: Instant) -> Entry {
    let name = format!("id{i}");
    let addr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff)),
        (i % 60_000) as u16 + 1024,
    ));
    let seed = i % 8 == 0;
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Entry {
        id: IdBuf::from_id(Id::new(&name).expect("a valid id")),
        addr,
        expires: Instant(now.0 + 3_600_000),
        lease: 3600,
        owner: if seed {
            Owner::Address
        } else {
            Owner::Token(Token((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        },
        key: (!seed && i % 8 != 1).then_some(PublicKey(key)),
        sub: match i % 16 {
            0 => Subscription::SeedList,
            3 => Subscription::Events,
            _ => Subscription::None,
        },
        sub_seq: 0,
        sub_sent: Instant(u64::MAX),
    }
}

/// Fill a table of `ids`, save it into `dir`, load it back; the timings.
pub fn run(ids: usize, dir: &Path) -> io::Result<StateCost> {
    let cfg = Config {
        limits: false,
        ..Config::default()
    };
    let now = Instant::from_secs(100);
    let entropy = [7u8; 32];
    let mut a = Tables::new(ids);
    let mut server = Server::new(cfg.clone(), a.storage(), entropy)
        .map_err(|e| io::Error::other(e.to_string()))?;
    server
        .restore(now, Continuity::default(), (0..ids).map(|i| entry(i, now)))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let path = dir.join(format!("parley-state-cost.{}", std::process::id()));

    let t = StdInstant::now();
    let saved = state::save(&path, &server, now, &entropy)?;
    let save = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)?.len();
    drop(server);
    drop(a);

    let mut b = Tables::new(ids);
    let mut server =
        Server::new(cfg, b.storage(), entropy).map_err(|e| io::Error::other(e.to_string()))?;
    let t = StdInstant::now();
    let result = state::load(&path).and_then(|l| {
        let l =
            l.ok_or_else(|| state::StateError::Io(path.clone(), io::ErrorKind::NotFound.into()))?;
        l.restore_into(&mut server, now, ids, 0)
    });
    let load = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let restored = result?;
    if restored.live != saved || saved != ids {
        return Err(io::Error::other(format!(
            "saved {saved} ids and restored {} of {ids}",
            restored.live
        )));
    }
    Ok(StateCost {
        ids,
        bytes,
        save,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_table_round_trips() {
        let r = run(2000, &std::env::temp_dir()).unwrap();
        assert_eq!(r.ids, 2000);
        assert_eq!(r.bytes, 96 + 2000 * 128 + 16);
    }
}
