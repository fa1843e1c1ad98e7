//! The `decode` target: any bytes into every parser.
//!
//! No parser may panic. Whatever parses must re-emit to its canonical form,
//! as the codec documents it (`proto_core::wire` and its modules):
//!
//! - one trailing `\n` or `\r\n` is accepted and never emitted;
//! - `HELLO`'s padding is emitted as as many dots as it had bytes;
//! - `ID2 ` ignores what follows the verb (the seed server matched it by
//!   prefix) and is emitted as `ID2 `;
//! - a seed `Message`'s text is verbatim, a trailing newline included
//!   (in the seed codec and in the peer codec alike);
//! - everything else (numbers, hex, addresses, lists, the sealed peer
//!   framing and its hello) parses only in its canonical spelling, so it
//!   re-emits byte for byte.
//!
//! The canonical form must then parse to an equal message, emitting into a
//! buffer one byte short must fail rather than truncate, and the iterators
//! over a message's runs (list ids, page ids, changes, counters) must yield
//! every item that was validated.

use proto_core::MAX_DATAGRAM;
use proto_core::wire::peer::PeerMsg;
use proto_core::wire::reply::{ChangeSeq, IdSeq, StatSeq};
use proto_core::wire::sealed::{HELLO_MAX, Hello, MAX_INITIATION_NOISE, Sealed, hex_decode};
use proto_core::wire::seed::{MAX_SEED_DATAGRAM, SeedList};
use proto_core::wire::{Reply, Request, SeedReply, SeedRequest};

/// Run every parser over `data` and check what comes out.
pub fn check(data: &[u8]) {
    let body = strip_newline(data);
    match Request::parse(data) {
        Ok(m) => {
            let canon = match m {
                Request::Hello { tx, pad } => {
                    let mut c = format!("HELLO {tx}").into_bytes();
                    if pad > 0 {
                        c.push(b' ');
                        c.extend(std::iter::repeat_n(b'.', usize::from(pad)));
                    }
                    c
                }
                _ => body.to_vec(),
            };
            assert_emits(&canon, MAX_DATAGRAM, |b| m.emit(b));
            assert_eq!(Request::parse(&canon), Ok(m), "canonical form re-parses");
        }
        Err(e) => touch(e),
    }
    match Reply::parse(data) {
        Ok(m) => {
            assert_emits(body, MAX_DATAGRAM, |b| m.emit(b));
            assert_eq!(Reply::parse(body), Ok(m), "canonical form re-parses");
            check_runs(&m);
        }
        Err(e) => touch(e),
    }
    match SeedRequest::parse(data) {
        Ok(m) => {
            let canon = match m {
                SeedRequest::Id2 => &b"ID2 "[..],
                _ => body,
            };
            assert_emits(canon, MAX_SEED_DATAGRAM, |b| m.emit(b));
            assert_eq!(SeedRequest::parse(canon), Ok(m), "canonical form re-parses");
        }
        Err(e) => touch(e),
    }
    match SeedReply::parse(data) {
        Ok(m) => {
            // A message's text is verbatim, newline and all.
            let canon = match m {
                SeedReply::Message(_) => data,
                _ => body,
            };
            assert_emits(canon, MAX_SEED_DATAGRAM, |b| m.emit(b));
            assert_eq!(SeedReply::parse(canon), Ok(m), "canonical form re-parses");
            if let SeedReply::List(list) = m {
                check_list(body, list);
            }
        }
        Err(e) => touch(e),
    }
    match PeerMsg::parse(data) {
        Ok(m) => {
            let (canon, limit) = match m {
                PeerMsg::Seed(_) => (data, MAX_SEED_DATAGRAM),
                _ => (body, MAX_DATAGRAM),
            };
            assert_emits(canon, limit, |b| m.emit(b));
            assert_eq!(PeerMsg::parse(canon), Ok(m), "canonical form re-parses");
        }
        Err(e) => touch(e),
    }
    // The sealed framing has one spelling: whatever parses re-emits
    // byte for byte, and an initiation's hex holds a Noise message that
    // fits what a client decodes it into.
    match Sealed::parse(data) {
        Ok(m) => {
            assert_emits(data, MAX_DATAGRAM, |b| m.emit(b));
            assert_eq!(Sealed::parse(data), Ok(m), "canonical form re-parses");
            assert_eq!(m.len(), data.len());
            if let Sealed::Initiation { hex, .. } = m {
                let mut noise = [0u8; MAX_INITIATION_NOISE];
                assert_eq!(hex_decode(hex, &mut noise), Ok(hex.len() / 2));
            }
        }
        Err(e) => touch(e),
    }
    match Hello::parse(data) {
        Ok(h) => {
            assert_emits(data, HELLO_MAX, |b| h.emit(b));
            assert_eq!(Hello::parse(data), Ok(h), "canonical form re-parses");
        }
        Err(e) => touch(e),
    }
}

/// The codec's rule: one trailing `\n` or `\r\n` comes off, nothing else.
pub fn strip_newline(d: &[u8]) -> &[u8] {
    match d.strip_suffix(b"\n") {
        Some(d) => d.strip_suffix(b"\r").unwrap_or(d),
        None => d,
    }
}

/// `emit` writes exactly `want` into a roomy buffer and into one of exactly
/// its length, and refuses a buffer one byte short; `want` fits `limit`.
pub fn assert_emits<E: core::fmt::Debug>(
    want: &[u8],
    limit: usize,
    emit: impl Fn(&mut [u8]) -> Result<usize, E>,
) {
    assert!(want.len() <= limit, "{} bytes exceed {limit}", want.len());
    let mut buf = vec![0u8; limit + 64];
    let n = emit(&mut buf).expect("a parsed message emits");
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        String::from_utf8_lossy(want),
        "re-emitted form"
    );
    assert_eq!(&buf[..n], want);
    let mut exact = vec![0u8; n];
    assert_eq!(emit(&mut exact).ok(), Some(n), "emit into an exact buffer");
    assert_eq!(exact, want);
    if n > 0 {
        let mut short = vec![0u8; n - 1];
        assert!(emit(&mut short).is_err(), "emit into a short buffer fails");
    }
}

/// Errors must print (Display is what users see) without panicking.
fn touch(e: impl core::fmt::Display) {
    let s = e.to_string();
    assert!(!s.is_empty());
}

/// Each run's iterator yields every item its constructor validated.
fn check_runs(m: &Reply<'_>) {
    match m {
        Reply::Page { ids, .. } => {
            assert_eq!(ids.iter().count(), words(ids.as_str()));
            assert_eq!(IdSeq::new(ids.as_str()), Ok(*ids));
        }
        Reply::Events { changes, .. } => {
            assert!(!changes.as_str().is_empty());
            assert_eq!(changes.iter().count(), words(changes.as_str()));
            assert_eq!(ChangeSeq::new(changes.as_str()), Ok(*changes));
        }
        Reply::Stats { stats, .. } => {
            assert_eq!(stats.iter().count(), words(stats.as_str()));
            assert_eq!(StatSeq::new(stats.as_str()), Ok(*stats));
        }
        Reply::Error { code, .. } => touch(code),
        _ => {}
    }
}

fn check_list(body: &[u8], list: SeedList<'_>) {
    let text = std::str::from_utf8(body).expect("a parsed list is UTF-8");
    let inner = &text["List [".len()..text.len() - 1];
    let n = if inner.is_empty() {
        0
    } else {
        inner.split(", ").count()
    };
    assert_eq!(list.iter().count(), n, "every listed id is iterated");
}

fn words(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.split(' ').count()
    }
}
