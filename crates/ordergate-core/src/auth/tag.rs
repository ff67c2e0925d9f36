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
//! still fit in two.
//!
//! Two engines compute the same function. On x86-64 CPUs with the SHA
//! extensions, [`sha_ni`](super::sha_ni) runs both compressions in
//! registers, the outer block built from the inner state without going
//! through bytes: about the cost of the two compressions alone (NewOrder:
//! ≈ 73 ns, against ≈ 37 ns for one compression and ≈ 105 ns portable;
//! `cargo bench --bench core -- 'tag|sha256'`). Elsewhere the portable code
//! below pads in memory and calls `sha2`'s `compress256`, which uses SHA-NI
//! itself when it can but pays a feature check, block loads and state
//! reordering per call. [`TagKey::new`] picks once, per key, and keeps the
//! states in the order its engine reads; a tag then costs one predictable
//! branch on that choice. Both engines are cross-checked against the `hmac`
//! crate in the tests below.
//!
//! Tags are compared in constant time: the comparison's time does not depend
//! on where the first differing byte is.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

#[cfg(target_arch = "x86_64")]
use super::sha_ni::ShaNi;
use crate::wire::MAC_SIZE;

const BLOCK: usize = 64;
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A 32-byte HMAC-SHA-256 key with its inner and outer states precomputed.
/// Wiped from memory on drop; `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TagKey {
    inner: State,
    outer: State,
    /// Which code computes the tags; it also fixes the order of the state
    /// words. Not secret. (A zeroized state is all zeros in either order.)
    #[zeroize(skip)]
    engine: Engine,
}

/// A chaining state. Aligned so the SHA-NI engine's 16-byte loads never
/// straddle a cache line.
#[derive(Clone, Zeroize)]
#[repr(align(32))]
struct State([u32; 8]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// `sha2::compress256` on blocks padded in memory; states in `a..h`
    /// order.
    Portable,
    /// [`sha_ni`](super::sha_ni); states in its register lane order.
    #[cfg(target_arch = "x86_64")]
    ShaNi(ShaNi),
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(<redacted>)")
    }
}

impl TagKey {
    /// Precomputes the keyed states of `key` (two compressions, once) and
    /// picks the fastest engine this CPU has.
    pub fn new(key: &[u8; 32]) -> TagKey {
        #[cfg(target_arch = "x86_64")]
        if let Some(ni) = ShaNi::detect() {
            let mut key = TagKey::new_portable(key);
            key.inner.0 = ni.lanes(&key.inner.0);
            key.outer.0 = ni.lanes(&key.outer.0);
            key.engine = Engine::ShaNi(ni);
            return key;
        }
        TagKey::new_portable(key)
    }

    /// As [`new`](Self::new) but always on the portable engine: for the
    /// tests and benches that compare the two. Same tags, slower.
    pub fn new_portable(key: &[u8; 32]) -> TagKey {
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
        TagKey {
            inner: State(inner),
            outer: State(outer),
            engine: Engine::Portable,
        }
    }

    /// Whether this key's tags run on SHA-NI ([`sha_ni`](super::sha_ni)).
    pub fn uses_sha_ni(&self) -> bool {
        self.engine != Engine::Portable
    }

    /// The full 32-byte HMAC-SHA-256 of `msg`.
    #[inline]
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        match self.engine {
            Engine::Portable => portable_mac(&self.inner.0, &self.outer.0, msg),
            #[cfg(target_arch = "x86_64")]
            Engine::ShaNi(ni) => ni.mac(&self.inner.0, &self.outer.0, msg),
        }
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
        let got: &[u8; MAC_SIZE] = frame[body..].try_into().expect("the last 16 bytes");
        tags_eq(&expected, got)
    }
}

/// The portable HMAC: the message's blocks and the padded tail through
/// `compress256`, the inner digest to bytes, the outer block from those.
#[inline(always)]
fn portable_mac(inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 32] {
    // Inner hash: the keyed block is already absorbed, so the message
    // starts at byte 64 of the hashed stream.
    let mut state = *inner;
    let mut chunks = msg.chunks_exact(BLOCK);
    for chunk in &mut chunks {
        let block: &[u8; BLOCK] = chunk.try_into().expect("chunks_exact yields 64 bytes");
        compress256(&mut state, std::slice::from_ref(block));
    }
    finish(&mut state, chunks.remainder(), (BLOCK + msg.len()) as u64);
    let mut inner_digest = [0u8; 32];
    store_be(&state, &mut inner_digest);

    // Outer hash: one block, the 32-byte inner digest and its padding.
    let mut state = *outer;
    finish(&mut state, &inner_digest, (BLOCK + 32) as u64);
    let mut out = [0u8; 32];
    store_be(&state, &mut out);
    out
}

/// [`constant_time_eq`] for two tags, as two 128-bit values: one xor, one
/// test, no branch on the contents.
#[inline(always)]
fn tags_eq(a: &[u8; MAC_SIZE], b: &[u8; MAC_SIZE]) -> bool {
    let diff = u128::from_ne_bytes(*a) ^ u128::from_ne_bytes(*b);
    // black_box keeps the optimiser from comparing byte by byte with exits.
    std::hint::black_box(diff) == 0
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
    use crate::rng::SplitMix;

    /// The key on every engine this CPU has: portable always, SHA-NI when
    /// present.
    fn every_engine(key: &[u8; 32]) -> Vec<TagKey> {
        let mut keys = vec![TagKey::new_portable(key)];
        let native = TagKey::new(key);
        if native.uses_sha_ni() {
            keys.push(native);
        }
        keys
    }

    #[test]
    fn precomputed_states_match_the_hmac_crate_for_every_length_up_to_three_blocks() {
        let key: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let msg: Vec<u8> = (0..200u32).map(|i| (i * 31 + 5) as u8).collect();
        for tk in every_engine(&key) {
            let engine = tk.engine;
            for len in 0..=msg.len() {
                let expected = hmac_sha256(&key, &[&msg[..len]]);
                assert_eq!(tk.mac(&msg[..len]), expected, "{engine:?} len {len}");
                assert_eq!(
                    tk.tag(&msg[..len]),
                    expected[..MAC_SIZE],
                    "{engine:?} len {len}"
                );
            }
        }
    }

    #[test]
    fn random_keys_and_messages_match_the_hmac_crate_on_every_engine() {
        let mut rng = SplitMix(0x0123_4567_89AB_CDEF);
        let mut msg = [0u8; 300];
        for round in 0..2000 {
            let key: [u8; 32] = std::array::from_fn(|_| rng.next_u64() as u8);
            msg.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
            // Mostly hot-path lengths, but every length up to 300 occurs.
            let len = match round % 4 {
                0 => rng.below(301) as usize,
                _ => rng.below(56) as usize,
            };
            let m = &msg[..len];
            let expected = hmac_sha256(&key, &[m]);
            for tk in every_engine(&key) {
                assert_eq!(
                    tk.mac(m),
                    expected,
                    "{:?} len {len} round {round}",
                    tk.engine
                );
                let mut frame = [0u8; 316];
                frame[..len].copy_from_slice(m);
                tk.seal(&mut frame[..len + MAC_SIZE]);
                assert_eq!(frame[len..len + MAC_SIZE], expected[..MAC_SIZE]);
                assert!(tk.verify(&frame[..len + MAC_SIZE]));
                frame[rng.below((len + MAC_SIZE) as u64) as usize] ^= 1 << (round % 8);
                assert!(!tk.verify(&frame[..len + MAC_SIZE]));
            }
        }
    }

    #[test]
    fn new_takes_sha_ni_whenever_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        let has = std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        assert_eq!(TagKey::new(&[1; 32]).uses_sha_ni(), has);
        assert!(!TagKey::new_portable(&[1; 32]).uses_sha_ni());
        // Clones keep the engine (and its state order).
        let tk = TagKey::new(&[1; 32]);
        assert_eq!(tk.clone().tag(b"x"), tk.tag(b"x"));
        assert_eq!(tk.clone().uses_sha_ni(), has);
    }

    #[test]
    fn seal_then_verify_and_any_flipped_bit_fails() {
        let key = [9u8; 32];
        for tk in every_engine(&key) {
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
            assert!(!tk.verify(&frame[..MAC_SIZE - 1]));
        }
    }

    /// The cold path's `hmac` state is two SHA-256 cores keyed with the
    /// secret's pads: built with the `zeroize` feature, `sha2`'s core wipes
    /// itself in `Drop` (and says so with `ZeroizeOnDrop`). This does not
    /// compile without the feature.
    #[test]
    fn the_hash_states_keyed_by_a_secret_wipe_themselves_on_drop() {
        fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wipes_on_drop::<sha2::Sha256>();
        wipes_on_drop::<TagKey>();
    }

    #[test]
    fn zeroize_wipes_the_states_in_either_order() {
        for mut tk in every_engine(&[0xC3; 32]) {
            tk.zeroize();
            assert_eq!(tk.inner.0, [0; 8]);
            assert_eq!(tk.outer.0, [0; 8]);
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn debug_shows_nothing_of_the_key() {
        for tk in every_engine(&[0xAB; 32]) {
            assert_eq!(format!("{tk:?}"), "TagKey(<redacted>)");
        }
    }
}
