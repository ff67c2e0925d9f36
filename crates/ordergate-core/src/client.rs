//! The client side of OGP v1, sans-I/O: builds signed Logons and sealed
//! requests with the client's sequence numbers, and checks the gateway's
//! frames (tag, sequence). Used by the tests, the demo and the load
//! generator; an independent client written from PROTOCOL.md does the same.

use zeroize::Zeroizing;

use crate::auth::session_keys::{SessionKeys, logon_signature};
use crate::constants::FRAME_SIZE_MAX;
use crate::engine::Nanos;
use crate::wire::{self, DecodeError, GatewayFrame, WireField};

/// Why a frame from the gateway was not accepted by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    Decode(DecodeError),
    /// The frame's tag is not the gateway key's.
    BadMac,
    /// `seq` is not the next expected.
    Sequence {
        expected: u64,
        found: u64,
    },
    /// A tagged frame arrived before LogonAck.
    NotLoggedOn,
}

pub struct ClientSession {
    key_id: u64,
    secret: Zeroizing<[u8; 32]>,
    client_nonce: [u8; 16],
    keys: Option<SessionKeys>,
    session_id: u64,
    next_out: u64,
    next_in: u64,
}

impl ClientSession {
    pub fn new(key_id: u64, secret: [u8; 32]) -> ClientSession {
        ClientSession {
            key_id,
            secret: Zeroizing::new(secret),
            client_nonce: [0; 16],
            keys: None,
            session_id: 0,
            next_out: 1,
            next_in: 1,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    pub fn is_logged_on(&self) -> bool {
        self.keys.is_some()
    }

    /// The next `seq` this client will send.
    pub fn next_seq(&self) -> u64 {
        self.next_out
    }

    /// A signed Logon.
    pub fn logon(
        &mut self,
        now: Nanos,
        client_nonce: [u8; 16],
        keepalive_ms: u16,
        environment: u8,
        flags: u8,
    ) -> [u8; wire::LOGON_SIZE] {
        self.client_nonce = client_nonce;
        let mut m = wire::Logon {
            key_id: self.key_id,
            request_time_ns: now,
            client_nonce,
            keepalive_ms,
            environment,
            flags,
            signature: [0; 32],
        };
        m.signature = logon_signature(&self.secret, &m.to_bytes());
        m.to_bytes()
    }

    /// Seals a client frame: writes the next `seq` and the client tag.
    pub fn seal<const N: usize>(&mut self, mut frame: [u8; N]) -> [u8; N] {
        let keys = self.keys.as_ref().expect("seal after logon");
        self.next_out.write(&mut frame, wire::SEQ_OFFSET);
        self.next_out += 1;
        keys.client.seal(&mut frame);
        frame
    }

    /// Checks one whole frame from the gateway. A LogonAck derives the
    /// session keys (its own tag proves the gateway holds the secret).
    pub fn receive<'a>(&mut self, frame: &'a [u8]) -> Result<GatewayFrame<'a>, ClientError> {
        let decoded = wire::decode_gateway(frame).map_err(ClientError::Decode)?;
        match decoded {
            GatewayFrame::LogonReject(_) => return Ok(decoded),
            GatewayFrame::LogonAck(ack) => {
                let keys = SessionKeys::derive(
                    &self.secret,
                    &self.client_nonce,
                    &ack.server_nonce(),
                    ack.session_id(),
                );
                if !keys.gateway.verify(frame) {
                    return Err(ClientError::BadMac);
                }
                self.keys = Some(keys);
                self.session_id = ack.session_id();
                self.next_in = 1;
                self.next_out = 1;
            }
            _ => {
                let keys = self.keys.as_ref().ok_or(ClientError::NotLoggedOn)?;
                if !keys.gateway.verify(frame) {
                    return Err(ClientError::BadMac);
                }
            }
        }
        let found = match decoded {
            GatewayFrame::LogonAck(ack) => ack.seq(),
            _ => wire::seq_of(frame),
        };
        if found != self.next_in {
            return Err(ClientError::Sequence {
                expected: self.next_in,
                found,
            });
        }
        self.next_in += 1;
        Ok(decoded)
    }
}

/// Splits a byte stream into whole frames, in fixed memory.
pub struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// `capacity`: the most bytes held at once (at least one frame).
    pub fn new(capacity: usize) -> FrameReader {
        assert!(capacity >= FRAME_SIZE_MAX);
        FrameReader {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Where the next read from the socket goes. Compacts first.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into `spare()`.
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Appends bytes (copying).
    pub fn push(&mut self, bytes: &[u8]) {
        let spare = self.spare();
        assert!(bytes.len() <= spare.len(), "FrameReader overflow");
        spare[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// The size of the whole frame at the front, or the error of a prefix
    /// no frame can start with; `None` while the frame is incomplete.
    fn front(&self) -> Option<Result<usize, DecodeError>> {
        let avail = &self.buf[self.start..self.end];
        match wire::frame_size(avail) {
            Ok(Some(size)) if avail.len() >= size => Some(Ok(size)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Whether [`FrameReader::next_frame`] would return something: a whole
    /// frame, or a prefix no frame can start with.
    pub fn has_frame(&self) -> bool {
        self.front().is_some()
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], DecodeError>> {
        match self.front()? {
            Ok(size) => {
                let s = self.start;
                self.start += size;
                Some(Ok(&self.buf[s..s + size]))
            }
            Err(e) => Some(Err(e)),
        }
    }
}
