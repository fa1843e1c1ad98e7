//! Relaying through the server, for two peers no direct path joins: the
//! control messages (text) and the data frame (binary).
//!
//! ```text
//! relay    = "RELAY" SP txid SP cookie SP id SP token SP id    ; me, my token, peer
//! relayd   = "RELAYD" SP txid SP id SP channel SP state        ; peer, the session's channel
//! channel  = 16LOWHEX
//! state    = "waiting"     ; the peer has not asked for this relay yet
//!          / "ready"       ; both have: frames are forwarded
//!
//! frame    = %xB7 %x01 channel-bytes payload   ; binary
//! channel-bytes = 8 octets, the channel, big-endian
//! payload  = 0 to 1190 octets, opaque (the peers' encrypted datagram)
//! ```
//!
//! A frame is told from everything else by its first octet: %xB7 is a
//! UTF-8 continuation byte, so no text message starts with it, and its
//! top bits (`10`) are not STUN's (`00`). The server forwards a frame
//! unchanged (same channel, same octets) from one peer of a session to
//! the other, so it never sends more octets than it received.

use super::fields::{Id, Token, TxId};
use super::request::{Header, header};
use super::text::{Fields, Writer, verb_and_rest};
use super::{EmitError, ParseError};
use crate::MAX_DATAGRAM;

/// The fields of a datagram whose verb must be `verb`.
fn fields_after<'a>(d: &'a [u8], verb: &[u8]) -> Result<Fields<'a>, ParseError> {
    let (v, rest) = verb_and_rest(d, MAX_DATAGRAM)?;
    if v != verb {
        return Err(ParseError::UnknownVerb);
    }
    Ok(Fields::new(rest))
}

/// The first octet of a frame.
pub const FRAME_MAGIC: u8 = 0xB7;
/// The frame format's version, its second octet.
pub const FRAME_VERSION: u8 = 1;
/// Octets before the payload.
pub const FRAME_HEADER: usize = 10;
/// The largest payload: a frame is at most one datagram.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM - FRAME_HEADER;

/// Whether `d` is a relay frame (by its first two octets).
#[inline]
pub fn is_frame(d: &[u8]) -> bool {
    d.len() >= FRAME_HEADER && d[0] == FRAME_MAGIC && d[1] == FRAME_VERSION
}

/// `RELAY`: ask for a relay session with `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayRequest<'a> {
    /// Transaction id and cookie.
    pub h: Header<'a>,
    /// The requester's id...
    pub id: Id<'a>,
    /// ...and its owner token.
    pub token: Token,
    /// Who to relay with.
    pub peer: Id<'a>,
}

impl<'a> RelayRequest<'a> {
    /// Parse a `RELAY` request.
    pub fn parse(d: &'a [u8]) -> Result<Self, ParseError> {
        let mut f = fields_after(d, b"RELAY")?;
        let r = RelayRequest {
            h: Header::read(&mut f)?,
            id: f.id()?,
            token: f.token()?,
            peer: f.id()?,
        };
        f.end()?;
        Ok(r)
    }

    /// Write it into `buf`; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let n = buf.len().min(MAX_DATAGRAM);
        let mut w = Writer::new(&mut buf[..n]);
        header(&mut w, b"RELAY", self.h)?
            .field(self.id.as_bytes())?
            .hex(self.token.0)?
            .field(self.peer.as_bytes())?;
        Ok(w.finish())
    }
}

/// `RELAYD`: the session's channel, and whether both peers have asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayReply<'a> {
    /// The request's transaction id.
    pub tx: TxId<'a>,
    /// The peer named in the request.
    pub peer: Id<'a>,
    /// The channel frames of this session carry.
    pub channel: u64,
    /// Both peers have asked: frames are forwarded.
    pub ready: bool,
}

impl<'a> RelayReply<'a> {
    /// Parse a `RELAYD` reply.
    pub fn parse(d: &'a [u8]) -> Result<Self, ParseError> {
        let mut f = fields_after(d, b"RELAYD")?;
        let tx = f.tx()?;
        let peer = f.id()?;
        let channel = f.token()?.0;
        let ready = match f.raw()? {
            b"ready" => true,
            b"waiting" => false,
            _ => return Err(ParseError::Malformed),
        };
        f.end()?;
        Ok(RelayReply {
            tx,
            peer,
            channel,
            ready,
        })
    }

    /// Write it into `buf`; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let n = buf.len().min(MAX_DATAGRAM);
        let mut w = Writer::new(&mut buf[..n]);
        w.put(b"RELAYD")?
            .field(self.tx.as_bytes())?
            .field(self.peer.as_bytes())?
            .hex(self.channel)?
            .field(if self.ready { b"ready" } else { b"waiting" })?;
        Ok(w.finish())
    }
}

/// A relay frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The session's channel.
    pub channel: u64,
    /// The peers' datagram, opaque to the server.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parse a frame.
    pub fn parse(d: &'a [u8]) -> Result<Self, ParseError> {
        if !is_frame(d) {
            return Err(ParseError::UnknownVerb);
        }
        if d.len() > MAX_DATAGRAM {
            return Err(ParseError::TooLong);
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&d[2..FRAME_HEADER]);
        Ok(Frame {
            channel: u64::from_be_bytes(c),
            payload: &d[FRAME_HEADER..],
        })
    }

    /// Octets [`Frame::emit`] writes.
    pub fn len(&self) -> usize {
        FRAME_HEADER + self.payload.len()
    }

    /// Never empty: a frame is at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Write the frame into `buf`; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let n = self.len();
        if n > MAX_DATAGRAM {
            return Err(EmitError::TooLong);
        }
        let out = buf.get_mut(..n).ok_or(EmitError::TooLong)?;
        out[0] = FRAME_MAGIC;
        out[1] = FRAME_VERSION;
        out[2..FRAME_HEADER].copy_from_slice(&self.channel.to_be_bytes());
        out[FRAME_HEADER..].copy_from_slice(self.payload);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testgen;

    #[test]
    fn relay_requests_and_replies_roundtrip() {
        let d = b"RELAY 7 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d bob";
        let r = RelayRequest::parse(d).unwrap();
        assert_eq!(r.id.as_str(), "alice");
        assert_eq!(r.peer.as_str(), "bob");
        assert_eq!(r.token, Token(0x8c1d2e3f4a5b6c7d));
        let mut buf = [0u8; 128];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], d);

        for d in [
            &b"RELAYD 7 bob 00a1b2c3d4e5f607 waiting"[..],
            b"RELAYD 8 bob 00a1b2c3d4e5f607 ready",
        ] {
            let r = RelayReply::parse(d).unwrap();
            assert_eq!(r.channel, 0x00a1_b2c3_d4e5_f607);
            let n = r.emit(&mut buf).unwrap();
            assert_eq!(&buf[..n], d);
        }
    }

    /// Every `RELAY` and `RELAYD` line of docs/PROTOCOL.md parses and
    /// re-emits byte for byte (the document checker does not know relay).
    #[test]
    fn the_protocol_doc_lines_parse_and_reemit() {
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let mut buf = [0u8; 256];
        let mut seen = 0;
        for line in doc.lines() {
            let n = if let Some(d) = line.strip_prefix("> RELAY ") {
                let d = &line[line.len() - d.len() - 6..];
                RelayRequest::parse(d.as_bytes())
                    .unwrap()
                    .emit(&mut buf)
                    .unwrap()
            } else if let Some(d) = line.strip_prefix("< RELAYD ") {
                let d = &line[line.len() - d.len() - 7..];
                RelayReply::parse(d.as_bytes())
                    .unwrap()
                    .emit(&mut buf)
                    .unwrap()
            } else {
                continue;
            };
            assert_eq!(&buf[..n], &line.as_bytes()[2..]);
            seen += 1;
        }
        assert!(seen >= 6, "{seen}");
    }

    #[test]
    fn malformed_relay_text_is_refused() {
        testgen::refuses_all(
            |d| RelayRequest::parse(d).is_err() && RelayReply::parse(d).is_err(),
            &[
                b"RELAY 7 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d",
                b"RELAY 7 5f0c2a1b9d8e7f60 alice 8c1d2e3f4a5b6c7d bob extra",
                b"RELAY 7 5f0c2a1b9d8e7f60 alice nottoken bob",
                b"RELAYD 7 bob 00a1b2c3d4e5f607 maybe",
            ],
        );
    }

    #[test]
    fn frames_roundtrip_and_stay_apart_from_text_and_stun() {
        let f = Frame {
            channel: 0x0001_0203_0405_0607,
            payload: b"\x00\xffopaque",
        };
        let mut buf = [0u8; 64];
        let n = f.emit(&mut buf).unwrap();
        assert_eq!(n, f.len());
        assert!(is_frame(&buf[..n]));
        assert!(!crate::wire::stun::is_stun(&buf[..n]));
        assert!(core::str::from_utf8(&buf[..n]).is_err());
        assert_eq!(Frame::parse(&buf[..n]), Ok(f));
        assert!(!is_frame(b"RELAY 1 - a b c"));
        assert!(!is_frame(&buf[..9]));
        let big = [FRAME_MAGIC; MAX_DATAGRAM + 1];
        let mut big = big;
        big[1] = FRAME_VERSION;
        assert_eq!(Frame::parse(&big), Err(ParseError::TooLong));
        let p = [0u8; MAX_PAYLOAD + 1];
        assert!(
            Frame {
                channel: 1,
                payload: &p
            }
            .emit(&mut [0u8; 2048])
            .is_err()
        );
    }
}
