//! The logon signature and the two per-direction session keys (PROTOCOL.md,
//! "Authentication").
//!
//! ```text
//!  Logon.signature = HMAC-SHA256(secret, logon_frame[0..48])
//!  tail            = client_nonce(16) ‖ server_nonce(16) ‖ session_id (u64 LE)
//!  client_key      = HMAC-SHA256(secret, "OGP1 client"  ‖ tail)   tags what the client sends
//!  gateway_key     = HMAC-SHA256(secret, "OGP1 gateway" ‖ tail)   tags what the gateway sends
//! ```
//!
//! The long-term secret signs only the Logon. Each session has its own keys
//! (a captured frame cannot be replayed into another session) and each
//! direction its own (a frame cannot be reflected back to its sender).

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::tag::{TagKey, constant_time_eq, hmac_sha256};
use crate::wire::LOGON_SIGNED_LEN;

const CLIENT_LABEL: &[u8; 11] = b"OGP1 client";
const GATEWAY_LABEL: &[u8; 12] = b"OGP1 gateway";

/// The signature a Logon frame must carry: HMAC over its first 48 bytes.
pub fn logon_signature(secret: &[u8; 32], logon_frame: &[u8]) -> [u8; 32] {
    TagKey::new(secret).mac(&logon_frame[..LOGON_SIGNED_LEN])
}

/// Whether a Logon frame's signature (bytes 48..80) is right, in constant time.
pub fn verify_logon(secret: &[u8; 32], logon_frame: &[u8; crate::wire::LOGON_SIZE]) -> bool {
    let expected = logon_signature(secret, logon_frame);
    constant_time_eq(&expected, &logon_frame[LOGON_SIGNED_LEN..])
}

/// The raw 32-byte session keys. Wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RawSessionKeys {
    pub client: [u8; 32],
    pub gateway: [u8; 32],
}

impl std::fmt::Debug for RawSessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSessionKeys(<redacted>)")
    }
}

/// Derives the two session keys.
pub fn derive_raw(
    secret: &[u8; 32],
    client_nonce: &[u8; 16],
    server_nonce: &[u8; 16],
    session_id: u64,
) -> RawSessionKeys {
    let sid = session_id.to_le_bytes();
    RawSessionKeys {
        client: hmac_sha256(secret, &[CLIENT_LABEL, client_nonce, server_nonce, &sid]),
        gateway: hmac_sha256(secret, &[GATEWAY_LABEL, client_nonce, server_nonce, &sid]),
    }
}

/// A session's two tag keys, states precomputed.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    /// Verifies what the client sends (gateway side) / seals it (client side).
    pub client: TagKey,
    /// Seals what the gateway sends / verifies it (client side).
    pub gateway: TagKey,
}

impl SessionKeys {
    pub fn derive(
        secret: &[u8; 32],
        client_nonce: &[u8; 16],
        server_nonce: &[u8; 16],
        session_id: u64,
    ) -> SessionKeys {
        let raw = derive_raw(secret, client_nonce, server_nonce, session_id);
        SessionKeys {
            client: TagKey::new(&raw.client),
            gateway: TagKey::new(&raw.gateway),
        }
    }
}
