//! HMAC-SHA-256 with the keyed states precomputed, for message tags.
//!
//! HMAC(k, m) = H((k ⊕ opad) ‖ H((k ⊕ ipad) ‖ m)). With a 32-byte key, `k ⊕
//! ipad` and `k ⊕ opad` are each exactly one SHA-256 block, so their
//! compressions depend only on the key: [`TagKey::new`] runs them once per
//! session and keeps the two 32-byte chaining states. A tag over a message of
//! at most 55 bytes (every hot-path message) then costs exactly two
//! compressions — one inner block holding the message and its padding, one
//! outer block holding the inner digest and its padding — instead of four.
//!
//! Longer tagged regions take one more inner block: LogonAck (56 bytes) and
//! Fill (68) cost three compressions; OrderCanceled and OrderReplaced (52)
//! still fit in two. The result is cross-checked against the
//! `hmac` crate in the tests below.
//!
//! Tags are compared in constant time: the comparison's time does not depend
//! on where the first differing byte is.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::MAC_SIZE;

const BLOCK: usize = 64;
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A 32-byte HMAC-SHA-256 key with its inner and outer states precomputed.
/// Wiped from memory on drop; `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TagKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(<redacted>)")
    }
}

impl TagKey {
    /// Precomputes the keyed states of `key` (two compressions, once).
    pub fn new(key: &[u8; 32]) -> TagKey {
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for i in 0..32 {
            ipad[i] ^= key[i];
            opad[i] ^= key[i];
        }
        let mut inner = IV;
        let mut outer = IV;
        compress256(&mut inner, &[ipad]);
        compress256(&mut outer, &[opad]);
        ipad.zeroize();
        opad.zeroize();
        TagKey { inner, outer }
    }

    /// The full 32-byte HMAC-SHA-256 of `msg`.
    #[inline]
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        // Inner hash: the keyed block is already absorbed, so the message
        // starts at byte 64 of the hashed stream.
        let mut state = self.inner;
        let mut chunks = msg.chunks_exact(BLOCK);
        for chunk in &mut chunks {
            let block: &[u8; BLOCK] = chunk.try_into().expect("chunks_exact yields 64 bytes");
            compress256(&mut state, std::slice::from_ref(block));
        }
        finish(&mut state, chunks.remainder(), (BLOCK + msg.len()) as u64);
        let mut inner_digest = [0u8; 32];
        store_be(&state, &mut inner_digest);

        // Outer hash: one block, the 32-byte inner digest and its padding.
        let mut state = self.outer;
        finish(&mut state, &inner_digest, (BLOCK + 32) as u64);
        let mut out = [0u8; 32];
        store_be(&state, &mut out);
        out
    }

    /// The 16-byte tag (HMAC-SHA-256-128, RFC 4868) of `msg`.
    #[inline]
    pub fn tag(&self, msg: &[u8]) -> [u8; MAC_SIZE] {
        let full = self.mac(msg);
        let mut t = [0u8; MAC_SIZE];
        t.copy_from_slice(&full[..MAC_SIZE]);
        t
    }

    /// Writes the tag of `frame[..len-16]` into its last 16 bytes.
    #[inline]
    pub fn seal(&self, frame: &mut [u8]) {
        let body = frame.len() - MAC_SIZE;
        let t = self.tag(&frame[..body]);
        frame[body..].copy_from_slice(&t);
    }

    /// Whether the last 16 bytes of `frame` are the tag of the rest,
    /// compared in constant time.
    #[inline]
    pub fn verify(&self, frame: &[u8]) -> bool {
        if frame.len() < MAC_SIZE {
            return false;
        }
        let body = frame.len() - MAC_SIZE;
        let expected = self.tag(&frame[..body]);
        constant_time_eq(&expected, &frame[body..])
    }
}

/// Absorbs the last partial block `rest` (< 64 bytes, or exactly 32 for the
/// outer hash) with SHA-256 padding for a stream of `total_len` bytes.
#[inline(always)]
fn finish(state: &mut [u32; 8], rest: &[u8], total_len: u64) {
    debug_assert!(rest.len() < BLOCK);
    let bits = (total_len * 8).to_be_bytes();
    let mut block = [0u8; BLOCK];
    block[..rest.len()].copy_from_slice(rest);
    block[rest.len()] = 0x80;
    if rest.len() < BLOCK - 8 {
        block[BLOCK - 8..].copy_from_slice(&bits);
        compress256(state, &[block]);
    } else {
        let mut last = [0u8; BLOCK];
        last[BLOCK - 8..].copy_from_slice(&bits);
        compress256(state, &[block, last]);
    }
}

#[inline(always)]
fn store_be(state: &[u32; 8], out: &mut [u8; 32]) {
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
}

/// Compares two byte strings in time that depends only on their length.
#[inline]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA-256 through the `hmac` crate, for the cold paths (logon
/// signature, session key derivation) where clarity beats two saved
/// compressions.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precomputed_states_match_the_hmac_crate_for_every_length_up_to_three_blocks() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let tk = TagKey::new(&key);
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 31 + 5) as u8).collect();
        for len in 0..=msg.len() {
            assert_eq!(
                tk.mac(&msg[..len]),
                hmac_sha256(&key, &[&msg[..len]]),
                "len {len}"
            );
        }
    }

    #[test]
    fn seal_then_verify_and_any_flipped_bit_fails() {
        let key = [9u8; 32];
        let tk = TagKey::new(&key);
        let mut frame = [0u8; 64];
        for (i, b) in frame.iter_mut().enumerate() {
            *b = i as u8;
        }
        tk.seal(&mut frame);
        assert!(tk.verify(&frame));
        for byte in 0..64 {
            for bit in 0..8 {
                let mut f = frame;
                f[byte] ^= 1 << bit;
                assert!(!tk.verify(&f), "flip at byte {byte} bit {bit} verified");
            }
        }
        assert!(!TagKey::new(&[8u8; 32]).verify(&frame));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn debug_shows_nothing_of_the_key() {
        let tk = TagKey::new(&[0xAB; 32]);
        let s = format!("{tk:?}");
        assert_eq!(s, "TagKey(<redacted>)");
    }
}
