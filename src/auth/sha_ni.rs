//! The HMAC-SHA-256 finalisation of [`TagKey`](super::tag::TagKey) on the
//! x86-64 SHA extensions (SHA-NI): both compressions of a tag kept in
//! registers.
//!
//! A tag over a hot-path message is two compressions, and one `compress256`
//! call costs about as much as the whole budget for its share: each call
//! checks the CPU features, loads and byte-swaps a block built in memory,
//! reorders the state into the instruction's layout and back, and stores
//! it; between the two calls the inner digest goes out to bytes and is read
//! back as the outer block. This module does the same arithmetic with none
//! of that around it.
//!
//! **Register layout.** `sha256rnds2` keeps the eight working variables in
//! two 128-bit registers, ABEF and CDGH, lane 3 first: lanes 0..3 hold
//! F, E, B, A and H, G, D, C. [`ShaNi::lanes`] puts the key's two
//! precomputed states in that order once, in `TagKey::new`, so a tag loads
//! each state with two plain loads and never shuffles it in.
//!
//! **The inner block** (message of at most 55 bytes) is built on the stack —
//! the message, 0x80, zeros, the 64-bit big-endian bit length of 64 + len —
//! and loaded as four registers of big-endian words. Longer messages take
//! their full 64-byte blocks straight from the slice and one or two padded
//! tail blocks, as SHA-256 pads any stream.
//!
//! **The outer block needs no bytes.** Its message words 0..7 are the inner
//! digest words A..H, big-endian words being exactly what SHA-256 reads, so
//! two shuffles of the inner state registers give words 0..3 and 4..7. Words
//! 8..15 are the same for every tag — the padding of a 96-byte stream
//! (keyed block + 32-byte digest): 0x80000000, six zeros, 0x300 bits — and
//! are constants. Only the final outer words A..D (the 16-byte tag) or A..H
//! are byte-swapped and stored.
//!
//! **Selection.** A [`ShaNi`] value is the proof that the CPU has the `sha`,
//! `sse2`, `ssse3` and `sse4.1` features: only [`ShaNi::detect`] makes one.
//! `TagKey::new` detects once and keeps the value, so a tag pays a branch on
//! the key's own field, not a feature check. Every `unsafe` of the tag path
//! is here: the calls into the `#[target_feature]` functions, justified by
//! that value, and the loads and stores of 16 bytes at in-bounds offsets.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_or_si128,
    _mm_set_epi32, _mm_set_epi64x, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
};

const BLOCK: usize = 64;

/// The SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Proof that this CPU has SHA-NI and the SSE levels the code below uses.
/// Zero-sized; only [`ShaNi::detect`] constructs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShaNi(());

impl ShaNi {
    /// `Some` when the CPU has `sha`, `sse2`, `ssse3` and `sse4.1`. The
    /// standard library caches the CPUID answer, but callers keep the value
    /// rather than asking per tag.
    pub fn detect() -> Option<ShaNi> {
        let has = std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1");
        has.then_some(ShaNi(()))
    }

    /// A chaining state `a..h` reordered into the two registers' lanes:
    /// F, E, B, A then H, G, D, C.
    pub fn lanes(self, s: &[u32; 8]) -> [u32; 8] {
        [s[5], s[4], s[1], s[0], s[7], s[6], s[3], s[2]]
    }

    /// The 32-byte HMAC of `msg`, given the keyed inner and outer states in
    /// the [`lanes`](Self::lanes) order.
    #[inline]
    pub fn mac(self, inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 32] {
        // SAFETY: `self` exists only if `detect` found every feature `mac`
        // is compiled for (sha, sse2, ssse3, sse4.1) on this CPU.
        unsafe { mac(inner, outer, msg) }
    }

    /// The first 16 bytes of [`mac`](Self::mac).
    #[inline]
    pub fn tag(self, inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 16] {
        // SAFETY: as in `mac`: `self` proves the CPU has the features.
        unsafe { tag(inner, outer, msg) }
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn mac(inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 32] {
    let [dcba, hgfe] = digest_words(hmac(inner, outer, msg));
    let mut out = [0u8; 32];
    let p: *mut __m128i = out.as_mut_ptr().cast();
    // SAFETY: `out` is 32 bytes, so both unaligned 16-byte stores, at
    // offsets 0 and 16, are inside it.
    unsafe {
        _mm_storeu_si128(p, _mm_shuffle_epi8(dcba, bswap_mask()));
        _mm_storeu_si128(p.add(1), _mm_shuffle_epi8(hgfe, bswap_mask()));
    }
    out
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn tag(inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 16] {
    let [dcba, _] = digest_words(hmac(inner, outer, msg));
    let mut out = [0u8; 16];
    // SAFETY: `out` is 16 bytes: one unaligned 16-byte store fills it.
    unsafe {
        _mm_storeu_si128(
            out.as_mut_ptr().cast(),
            _mm_shuffle_epi8(dcba, bswap_mask()),
        )
    };
    out
}

/// The final outer state (ABEF, CDGH) of HMAC(`msg`).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn hmac(inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [__m128i; 2] {
    // Inner hash: the keyed block is absorbed, the message starts at byte 64.
    let mut state = load_state(inner);
    let mut blocks = msg.chunks_exact(BLOCK);
    for block in &mut blocks {
        let block: &[u8; BLOCK] = block.try_into().expect("chunks_exact yields 64 bytes");
        compress(&mut state, load_block(block));
    }
    let rest = blocks.remainder();
    let bits = (BLOCK + msg.len()) as u64 * 8;
    let mut tail = [0u8; BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let mut w = load_block(&tail);
    if rest.len() >= BLOCK - 8 {
        // No room for the length: it goes alone in one more block.
        compress(&mut state, w);
        w = [_mm_setzero_si128(); 4];
    }
    // Words 14 and 15 (lanes 2 and 3 of the last register) are zero here.
    w[3] = _mm_or_si128(w[3], _mm_set_epi32(bits as i32, (bits >> 32) as i32, 0, 0));
    compress(&mut state, w);

    // Outer hash: the digest words are the message words, straight from the
    // registers; the padding of a 96-byte stream is constant.
    let [w0, w1] = digest_words(state);
    let w2 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let w3 = _mm_set_epi32(((BLOCK + 32) * 8) as i32, 0, 0, 0);
    let mut state = load_state(outer);
    compress(&mut state, [w0, w1, w2, w3]);
    state
}

/// ABEF, CDGH → the digest words in order: lanes a, b, c, d and e, f, g, h.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn digest_words([abef, cdgh]: [__m128i; 2]) -> [__m128i; 2] {
    let feba = _mm_shuffle_epi32::<0x1B>(abef);
    let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
    [
        _mm_blend_epi16::<0xF0>(feba, dchg),
        _mm_alignr_epi8::<8>(dchg, feba),
    ]
}

/// Byte order of each 32-bit lane reversed: big-endian words ⇄ lanes.
#[inline]
#[target_feature(enable = "sse2")]
fn bswap_mask() -> __m128i {
    _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203)
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_state(s: &[u32; 8]) -> [__m128i; 2] {
    let p: *const __m128i = s.as_ptr().cast();
    // SAFETY: `s` is 32 bytes, so both unaligned 16-byte loads, at offsets
    // 0 and 16, are inside it.
    unsafe { [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))] }
}

/// The 16 message words of a block, four to a register, lane 0 first.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn load_block(block: &[u8; BLOCK]) -> [__m128i; 4] {
    let p: *const __m128i = block.as_ptr().cast();
    // SAFETY: `block` is 64 bytes, so the unaligned 16-byte loads at
    // offsets 0, 16, 32 and 48 are inside it.
    let raw = unsafe {
        [
            _mm_loadu_si128(p),
            _mm_loadu_si128(p.add(1)),
            _mm_loadu_si128(p.add(2)),
            _mm_loadu_si128(p.add(3)),
        ]
    };
    raw.map(|r| _mm_shuffle_epi8(r, bswap_mask()))
}

/// Four rounds, `i*4 .. i*4+4`, with message words `w`.
#[inline]
#[target_feature(enable = "sha,sse2")]
fn rounds4(i: usize, [abef, cdgh]: &mut [__m128i; 2], w: __m128i) {
    let k = _mm_set_epi32(
        K[4 * i + 3] as i32,
        K[4 * i + 2] as i32,
        K[4 * i + 1] as i32,
        K[4 * i] as i32,
    );
    let wk = _mm_add_epi32(w, k);
    // Two rounds on lanes 0 and 1, then two on lanes 2 and 3; the
    // registers swap roles each time, so after four they are back.
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32::<0x0E>(wk));
}

/// The next four message words from the previous sixteen, `w0` oldest.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2));
    _mm_sha256msg2_epu32(t, w3)
}

/// One SHA-256 compression of the state (ABEF, CDGH) with the block's words.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn compress(state: &mut [__m128i; 2], [mut w0, mut w1, mut w2, mut w3]: [__m128i; 4]) {
    let saved = *state;
    rounds4(0, state, w0);
    rounds4(1, state, w1);
    rounds4(2, state, w2);
    rounds4(3, state, w3);
    for i in [4, 8, 12] {
        w0 = schedule(w0, w1, w2, w3);
        rounds4(i, state, w0);
        w1 = schedule(w1, w2, w3, w0);
        rounds4(i + 1, state, w1);
        w2 = schedule(w2, w3, w0, w1);
        rounds4(i + 2, state, w2);
        w3 = schedule(w3, w0, w1, w2);
        rounds4(i + 3, state, w3);
    }
    state[0] = _mm_add_epi32(state[0], saved[0]);
    state[1] = _mm_add_epi32(state[1], saved[1]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), for test inputs.
    fn next(s: &mut u64) -> u64 {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn one_compression_matches_sha2_for_random_states_and_blocks() {
        let Some(ni) = ShaNi::detect() else {
            eprintln!("no SHA-NI on this CPU: nothing to compare");
            return;
        };
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..1000 {
            let state: [u32; 8] = std::array::from_fn(|_| next(&mut seed) as u32);
            let block: [u8; 64] = std::array::from_fn(|_| next(&mut seed) as u8);
            let mut expected = state;
            sha2::block_api::compress256(&mut expected, &[block]);
            let got = compress_for_test(ni, &state, &block);
            assert_eq!(got, expected);
        }
    }

    /// `compress` on a state in `a..h` order, back in that order.
    fn compress_for_test(ni: ShaNi, state: &[u32; 8], block: &[u8; 64]) -> [u32; 8] {
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        fn run(lanes: &[u32; 8], block: &[u8; 64]) -> [u32; 8] {
            let mut s = load_state(lanes);
            compress(&mut s, load_block(block));
            let [dcba, hgfe] = digest_words(s);
            let mut out = [0u32; 8];
            let p: *mut __m128i = out.as_mut_ptr().cast();
            // SAFETY: `out` is 32 bytes: stores at offsets 0 and 16 fit.
            unsafe {
                _mm_storeu_si128(p, dcba);
                _mm_storeu_si128(p.add(1), hgfe);
            }
            out
        }
        // SAFETY: `ni` proves the CPU has the features `run` is built for.
        unsafe { run(&ni.lanes(state), block) }
    }
}
