//! A fixed line buffer for the variable parts of replies (pages, events, stats).

use crate::MAX_DATAGRAM;

/// Up to one datagram of ASCII text, built piece by piece.
pub(super) struct Line {
    buf: [u8; MAX_DATAGRAM],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Line {
            buf: [0; MAX_DATAGRAM],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `bytes` whole, or not at all if they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }

    /// The text so far. Only ASCII is ever pushed (ids, names, digits), so
    /// this is always valid; the fallback keeps it panic-free regardless.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Write `v` in decimal into `buf`, returning the digits.
pub(super) fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        let mut b = [0; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(10520, &mut b), b"10520");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn line_refuses_what_does_not_fit() {
        let mut l = Line::new();
        assert!(l.push(&[b'a'; MAX_DATAGRAM - 1]));
        assert!(!l.push(b"bc"));
        assert!(l.push(b"b"));
        assert_eq!(l.len(), MAX_DATAGRAM);
        assert!(!l.push(b"c"));
    }
}
