//! Shared pieces of the text codec: the field tokenizer (nom), typed field
//! readers with precise errors, and a writer into a caller's buffer.

use core::fmt;

use nom::IResult;
use nom::bytes::complete::{tag, take_while1};

use super::fields::{Cookie, FieldError, Id, Token, TxId, hex64, is_id_byte, parse_hex64};
use super::{EmitError, ParseError};

type NomResult<'a, O> = IResult<&'a [u8], O, nom::error::Error<&'a [u8]>>;

/// One field: a run of bytes up to the next space.
fn word(i: &[u8]) -> NomResult<'_, &[u8]> {
    take_while1(|c| c != b' ')(i)
}

/// A separating space, then one field.
fn spaced_word(i: &[u8]) -> NomResult<'_, &[u8]> {
    let (i, _) = tag(&b" "[..])(i)?;
    word(i)
}

/// Drop one trailing `\n` or `\r\n` (what `nc` sends), nothing else.
pub(crate) fn strip_newline(d: &[u8]) -> &[u8] {
    d.strip_suffix(b"\n")
        .map_or(d, |d| d.strip_suffix(b"\r").unwrap_or(d))
}

/// Check each item of a run separated by `sep` (an empty run has none):
/// the one rule the runs of `PAGE`, `EVENTS`, `STATS` and the seed's
/// `List` share, each with its own `item`.
pub(crate) fn check_run(
    s: &str,
    sep: &str,
    item: impl Fn(&str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if !s.is_empty() {
        for w in s.split(sep) {
            item(w)?;
        }
    }
    Ok(())
}

/// Split a datagram into its verb and the rest, after the common checks.
pub(crate) fn verb_and_rest(d: &[u8], max: usize) -> Result<(&[u8], &[u8]), ParseError> {
    if d.is_empty() {
        return Err(ParseError::Empty);
    }
    if d.len() > max {
        return Err(ParseError::TooLong);
    }
    let d = strip_newline(d);
    let (rest, verb) = word(d).map_err(|_| ParseError::Malformed)?;
    Ok((verb, rest))
}

/// Reads the space-separated fields after a verb, one typed field at a time.
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(rest: &'a [u8]) -> Self {
        Fields { rest }
    }

    /// The next field, which must be there.
    pub fn raw(&mut self) -> Result<&'a [u8], ParseError> {
        let (rest, w) = spaced_word(self.rest).map_err(|_| ParseError::Malformed)?;
        self.rest = rest;
        Ok(w)
    }

    /// The next field if there is one.
    pub fn opt_raw(&mut self) -> Result<Option<&'a [u8]>, ParseError> {
        if self.rest.is_empty() {
            Ok(None)
        } else {
            self.raw().map(Some)
        }
    }

    /// Everything after the next space, unparsed (possibly empty).
    pub fn tail(&mut self) -> Result<&'a [u8], ParseError> {
        match self.rest {
            [] => Ok(&[]),
            [b' ', tail @ ..] if !tail.is_empty() => {
                self.rest = &[];
                Ok(tail)
            }
            _ => Err(ParseError::Malformed),
        }
    }

    /// There must be nothing left.
    pub fn end(&self) -> Result<(), ParseError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ParseError::Malformed)
        }
    }

    /// The next field, found in the same pass that checks its bytes with
    /// `ok` (which must refuse `b' '`), so that a valid field is read once.
    ///
    /// `None`, with nothing consumed, when the field is missing, empty or
    /// holds a byte `ok` refuses: the caller then takes the general path
    /// ([`Fields::raw`] and a full check), which finds the same field and
    /// gives the precise error. When this returns a field, it is the one
    /// `raw` would have returned.
    fn scan(&mut self, ok: impl Fn(u8) -> bool) -> Option<&'a [u8]> {
        let [b' ', rest @ ..] = self.rest else {
            return None;
        };
        let n = rest.iter().position(|&c| !ok(c)).unwrap_or(rest.len());
        match rest.get(n) {
            None | Some(b' ') if n > 0 => {
                let (w, r) = rest.split_at(n);
                self.rest = r;
                Some(w)
            }
            _ => None,
        }
    }

    /// The next field as 16 hex digits, in one pass; `None`, with nothing
    /// consumed, when it is anything else (the general path decides).
    fn scan_hex64(&mut self) -> Option<u64> {
        let [b' ', rest @ ..] = self.rest else {
            return None;
        };
        let (w, r) = rest.split_at_checked(16)?;
        if !matches!(r.first(), None | Some(b' ')) {
            return None;
        }
        // A space inside `w` is not a hex digit, so success means `w` is
        // the whole field.
        let v = parse_hex64(w).ok()?;
        self.rest = r;
        Some(v)
    }

    pub fn tx(&mut self) -> Result<TxId<'a>, ParseError> {
        if let Some(w) = self.scan(|c| c.is_ascii_alphanumeric()) {
            return Ok(TxId::from_checked(w)?);
        }
        Ok(TxId::from_bytes(self.raw()?)?)
    }

    pub fn id(&mut self) -> Result<Id<'a>, ParseError> {
        if let Some(w) = self.scan(is_id_byte) {
            return Ok(Id::from_checked(w)?);
        }
        Ok(Id::from_bytes(self.raw()?)?)
    }

    pub fn token(&mut self) -> Result<Token, ParseError> {
        if let Some(v) = self.scan_hex64() {
            return Ok(Token(v));
        }
        Ok(Token(parse_hex64(self.raw()?)?))
    }

    /// A cookie, or `-` for none.
    pub fn cookie(&mut self) -> Result<Option<Cookie>, ParseError> {
        if let Some(v) = self.scan_hex64() {
            return Ok(Some(Cookie(v)));
        }
        match self.raw()? {
            b"-" => Ok(None),
            w => Ok(Some(Cookie(parse_hex64(w)?))),
        }
    }

    pub fn u32(&mut self) -> Result<u32, ParseError> {
        parse_u32(self.raw()?)
    }
}

/// A decimal `u32` in canonical form (no sign, no leading zeros).
pub(crate) fn parse_u32(w: &[u8]) -> Result<u32, ParseError> {
    if w.is_empty() || w.len() > 10 || (w.len() > 1 && w[0] == b'0') {
        return Err(ParseError::Malformed);
    }
    let mut v: u64 = 0;
    for &c in w {
        if !c.is_ascii_digit() {
            return Err(ParseError::Malformed);
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).map_err(|_| ParseError::Malformed)
}

/// Writes a message into a caller's buffer, failing cleanly when it is full.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<&mut Self, EmitError> {
        let end = self.pos + bytes.len();
        let dst = self.buf.get_mut(self.pos..end).ok_or(EmitError::TooLong)?;
        copy_short(dst, bytes);
        self.pos = end;
        Ok(self)
    }

    /// A space, then `bytes`.
    pub fn field(&mut self, bytes: &[u8]) -> Result<&mut Self, EmitError> {
        self.put(b" ")?.put(bytes)
    }

    pub fn u64(&mut self, v: u64) -> Result<&mut Self, EmitError> {
        // Two digits a step (itoa): a port, a lease and a sequence number
        // are in most replies.
        self.put(itoa::Buffer::new().format(v).as_bytes())
    }

    /// A space, then `v` in decimal.
    pub fn num(&mut self, v: u32) -> Result<&mut Self, EmitError> {
        self.put(b" ")?.u64(u64::from(v))
    }

    /// A space, then 16 hex digits.
    pub fn hex(&mut self, v: u64) -> Result<&mut Self, EmitError> {
        self.field(&hex64(v))
    }

    pub fn finish(&self) -> usize {
        self.pos
    }
}

/// `dst.copy_from_slice(src)` (same lengths) without a call to `memcpy`
/// for the short fields replies are made of: two fixed-size copies that
/// overlap cover any length from half their size to their size. A reply
/// is a dozen such fields, and a library call for each is a visible share
/// of what a reply costs.
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        // Unequal lengths: let `copy_from_slice` report them.
        _ if n != dst.len() => dst.copy_from_slice(src),
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes()).map(|_| ()).map_err(|_| fmt::Error)
    }
}

impl From<FieldError> for EmitError {
    fn from(_: FieldError) -> Self {
        EmitError::TooLong
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn short_copies_copy_every_byte_and_nothing_more() {
        let src: [u8; 40] = core::array::from_fn(|i| i as u8 + 1);
        for n in 0..=40 {
            let mut dst = [0u8; 42];
            copy_short(&mut dst[1..n + 1], &src[..n]);
            assert_eq!(dst[1..n + 1], src[..n], "length {n}");
            assert_eq!((dst[0], dst[n + 1]), (0, 0), "length {n}");
        }
    }

    #[test]
    fn fields_split_on_single_spaces() {
        let mut f = Fields::new(b" a bb ccc");
        assert_eq!(f.raw(), Ok(&b"a"[..]));
        assert_eq!(f.raw(), Ok(&b"bb"[..]));
        assert_eq!(f.opt_raw(), Ok(Some(&b"ccc"[..])));
        assert_eq!(f.opt_raw(), Ok(None));
        assert!(f.end().is_ok());
        let mut f = Fields::new(b"  a");
        assert_eq!(f.raw(), Err(ParseError::Malformed));
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(parse_u32(b"0"), Ok(0));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        assert!(parse_u32(b"4294967296").is_err());
        assert!(parse_u32(b"007").is_err());
        assert!(parse_u32(b"-1").is_err());
        assert!(parse_u32(b"").is_err());
    }

    #[test]
    fn newline_stripping_is_exactly_one() {
        assert_eq!(strip_newline(b"x\n"), b"x");
        assert_eq!(strip_newline(b"x\r\n"), b"x");
        assert_eq!(strip_newline(b"x\n\n"), b"x\n");
        assert_eq!(strip_newline(b"x\r"), b"x\r");
    }

    /// The general path alone: split the field, then check it.
    fn slow_tx<'a>(f: &mut Fields<'a>) -> Result<TxId<'a>, ParseError> {
        Ok(TxId::from_bytes(f.raw()?)?)
    }
    fn slow_id<'a>(f: &mut Fields<'a>) -> Result<Id<'a>, ParseError> {
        Ok(Id::from_bytes(f.raw()?)?)
    }
    fn slow_token(f: &mut Fields<'_>) -> Result<Token, ParseError> {
        Ok(Token(parse_hex64(f.raw()?)?))
    }
    fn slow_cookie(f: &mut Fields<'_>) -> Result<Option<Cookie>, ParseError> {
        match f.raw()? {
            b"-" => Ok(None),
            w => Ok(Some(Cookie(parse_hex64(w)?))),
        }
    }

    /// Field text made mostly of the bytes the readers decide on: spaces,
    /// hex digits, other letters, id bytes that are not alphanumeric, bytes
    /// no field allows.
    fn near_fields() -> impl proptest::strategy::Strategy<Value = std::vec::Vec<u8>> {
        use proptest::prelude::*;
        let byte = prop_oneof![
            4 => Just(b' '),
            8 => proptest::sample::select(&b"0123456789abcdef"[..]),
            2 => proptest::sample::select(&b"ABFgzZ"[..]),
            2 => proptest::sample::select(&b"-!~#."[..]),
            1 => proptest::sample::select(&b"'\\\"\n\x00\x7f\xff"[..]),
        ];
        prop_oneof![
            proptest::collection::vec(byte.clone(), 0..48),
            // one space and about 16 hex digits, then anything
            (
                "[0-9a-f]{15,17}",
                proptest::collection::vec(byte.clone(), 0..4)
            )
                .prop_map(|(hex, tail)| {
                    let mut v = std::vec![b' '];
                    v.extend_from_slice(hex.as_bytes());
                    v.extend_from_slice(&tail);
                    v
                }),
            // one space, then a field of about the lengths that matter
            (proptest::collection::vec(byte, 0..40), 0usize..3).prop_map(|(mut v, k)| {
                v.insert(0, b' ');
                if k == 0 {
                    v.truncate(17);
                }
                v
            }),
        ]
    }

    proptest::proptest! {
        #[test]
        fn one_pass_readers_agree_with_the_general_path(rest in near_fields()) {
            macro_rules! same {
                ($fast:ident, $slow:ident) => {{
                    let mut a = Fields::new(&rest);
                    let mut b = Fields::new(&rest);
                    let fa = a.$fast();
                    let fb = $slow(&mut b);
                    proptest::prop_assert_eq!(fa, fb);
                    if fa.is_ok() {
                        proptest::prop_assert_eq!(a.rest, b.rest);
                    }
                }};
            }
            same!(tx, slow_tx);
            same!(id, slow_id);
            same!(token, slow_token);
            same!(cookie, slow_cookie);
        }

        #[test]
        fn numbers_are_byte_for_byte_display(
            v in proptest::prop_oneof![
                proptest::strategy::Just(0u64),
                proptest::strategy::Just(u64::MAX),
                0u64..100_000,
                proptest::prelude::any::<u64>()
            ]
        ) {
            let mut buf = [0u8; 21];
            let mut w = Writer::new(&mut buf);
            let n = w.u64(v).unwrap().finish();
            let want = std::format!("{v}");
            proptest::prop_assert_eq!(&buf[..n], want.as_bytes());
            if let Ok(v32) = u32::try_from(v) {
                let mut buf = [0u8; 21];
                let mut w = Writer::new(&mut buf);
                let n = w.num(v32).unwrap().finish();
                let want = std::format!(" {v32}");
                proptest::prop_assert_eq!(&buf[..n], want.as_bytes());
            }
        }
    }

    #[test]
    fn writer_refuses_overflow() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        assert!(w.put(b"abc").is_ok());
        assert_eq!(w.finish(), 3);
        assert!(w.num(12).is_err());
        assert!(w.put(b"xy").is_err());
    }
}
