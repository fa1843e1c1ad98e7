//! Codec bugs the fuzz targets found, pinned down as plain assertions (the
//! inputs that found them are in `fuzz/regressions/`, replayed by
//! `fuzz_corpus.rs`).

use proto_core::wire::{Id, Request, SeedReply};

fn emit_request(r: &Request<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1200];
    let n = r.emit(&mut buf).expect("fits");
    buf[..n].to_vec()
}

/// roundtrip target: `REG <tx> - -` (id `-`, no lease, no token) was
/// refused as malformed, because the parser took the id `-` for the lease
/// placeholder that must be followed by a token.
#[test]
fn an_id_of_a_dash_registers_without_a_lease() {
    let r = Request::parse(b"REG 1 - -").expect("id '-' is a valid id");
    let Request::Register {
        id, lease, token, ..
    } = r
    else {
        panic!("{r:?}");
    };
    assert_eq!((id, lease, token), (Id::new("-").unwrap(), None, None));
    assert_eq!(emit_request(&r), b"REG 1 - -");
    // The placeholder itself still needs its token.
    assert!(Request::parse(b"REG 1 - alice -").is_err());
    assert!(Request::parse(b"REG 1 - alice - 00000000000000ff").is_ok());
    assert!(Request::parse(b"REG 1 - - - 00000000000000ff").is_ok());
}

/// decode and roundtrip targets: a `Message` whose text ended in a newline
/// lost it on parsing, so `Message a\n\n` re-emitted as `Message a\n`,
/// which parsed as another text. The text is now carried verbatim.
#[test]
fn message_text_keeps_its_trailing_newline() {
    for text in ["a\n", "a\n\n", "\n", "a\r\n", "hi"] {
        let m = SeedReply::Message(text);
        let mut buf = [0u8; 64];
        let n = m.emit(&mut buf).unwrap();
        assert_eq!(SeedReply::parse(&buf[..n]), Ok(m), "{text:?}");
    }
    assert_eq!(
        SeedReply::parse(b"Message hi\n"),
        Ok(SeedReply::Message("hi\n"))
    );
    // Everything else still drops one trailing newline.
    assert_eq!(SeedReply::parse(b"NoPeer\n"), Ok(SeedReply::NoPeer));
}
