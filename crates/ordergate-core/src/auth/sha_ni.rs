//! HMAC-SHA-256 for [`TagKey`](super::tag::TagKey) on the x86-64 SHA
//! extensions (SHA-NI): a tag's two compressions with everything between
//! them kept in registers.
//!
//! A compression is a chain of 32 dependent `sha256rnds2` instructions
//! (about 36 ns here), so a tag over a hot-path message cannot cost less
//! than about twice that. Two `sha2::compress256` calls cost 30 ns more:
//! each checks the CPU features, reorders the state into the instructions'
//! layout and back through memory, and reads a block padded in memory; the
//! inner digest goes out to bytes and comes back as the outer block. Here
//! each of those steps is gone or off the chain.
//!
//! **Register layout.** The instructions keep the eight working variables
//! in two registers, ABEF and CDGH, named from lane 3 down: lanes 0..3 hold
//! F, E, B, A and H, G, D, C. [`ShaNi::lanes`] stores the key's two keyed
//! states in that order once, in `TagKey::new`, so a tag starts with two
//! plain loads per state and no shuffles.
//!
//! **The inner block** of a message of at most 55 bytes — the message,
//! 0x80, zeros, the 64-bit big-endian bit length of 64 + len — is built in
//! registers: 16-byte loads inside the message, the last one shifted into
//! place by a `pshufb`, 0x80 and the length or-ed in. Copying the bytes into
//! a stack block would make the block's 16-byte loads wait for several
//! smaller stores, on the chain. Longer messages take their whole blocks
//! straight from the slice and a padded tail block, plus a length-only
//! block when the tail has no room for it, as SHA-256 pads any stream.
//!
//! **The outer block needs no bytes.** Its words 0..7 are the inner digest
//! A..H, and a SHA-256 digest is those state words written big-endian,
//! which is exactly how message words are read: two shuffles of the inner
//! state registers give the outer words 0..3 and 4..7. Words 8..15 are the
//! padding of a 96-byte stream (keyed block + digest), the same for every
//! tag: 0x80000000, six zeros, 0x300 (768 bits). Only the final digest is
//! byte-swapped and stored.
//!
//! **Selection.** A [`ShaNi`] value is the proof that the CPU has `sha`,
//! `sse2`, `ssse3` and `sse4.1`: only [`ShaNi::detect`] makes one.
//! `TagKey::new` detects once and keeps the value, so a tag pays a branch on
//! its key's own field, not a feature check. Every `unsafe` of the tag path
//! is in this file: the call into the `#[target_feature]` function,
//! justified by that value, and 16-byte loads and stores of arrays.

use std::arch::x86_64::{
    __m128i, _mm_add_epi8, _mm_add_epi32, _mm_alignr_epi8, _mm_and_si128, _mm_blend_epi16,
    _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_or_si128, _mm_set_epi8, _mm_set_epi32,
    _mm_set_epi64x, _mm_set1_epi8, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
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

/// One SHA-256 compression of `$state` ([ABEF, CDGH]) with the block's
/// words `$w` ([`load_block`] order). A macro, not a function: a
/// `#[target_feature]` function cannot be forced inline, and LLVM keeps a
/// 64-round body out of line once it has two callers, passing the state and
/// the words through memory on the critical path.
macro_rules! compress {
    ($state:ident, $w:expr) => {{
        let [mut w0, mut w1, mut w2, mut w3]: [__m128i; 4] = $w;
        let saved = $state;
        rounds4(0, &mut $state, w0);
        rounds4(1, &mut $state, w1);
        rounds4(2, &mut $state, w2);
        rounds4(3, &mut $state, w3);
        for i in [4, 8, 12] {
            w0 = schedule(w0, w1, w2, w3);
            rounds4(i, &mut $state, w0);
            w1 = schedule(w1, w2, w3, w0);
            rounds4(i + 1, &mut $state, w1);
            w2 = schedule(w2, w3, w0, w1);
            rounds4(i + 2, &mut $state, w2);
            w3 = schedule(w3, w0, w1, w2);
            rounds4(i + 3, &mut $state, w3);
        }
        $state[0] = _mm_add_epi32($state[0], saved[0]);
        $state[1] = _mm_add_epi32($state[1], saved[1]);
    }};
}

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
    /// the [`lanes`](Self::lanes) order. (A tag is its first 16 bytes: the
    /// other 16 cost two instructions, not worth a second copy of the code.)
    #[inline]
    pub fn mac(self, inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 32] {
        // SAFETY: `self` exists only if `detect` found every feature `hmac`
        // is compiled for (sha, sse2, ssse3, sse4.1) on this CPU.
        unsafe { hmac(inner, outer, msg) }
    }
}

/// HMAC(`msg`) from the keyed states, in the [`ShaNi::lanes`] order. One
/// function holds the whole tag: a call would pass the state through
/// memory.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn hmac(inner: &[u32; 8], outer: &[u32; 8], msg: &[u8]) -> [u8; 32] {
    // Inner hash: the keyed block is absorbed, the message starts at byte
    // 64. Its padding takes 9 bytes (0x80 and the length); the blocks are
    // built in one loop so that the compression is written out once here.
    let n = msg.len();
    let bits = (BLOCK + n) as u64 * 8;
    let blocks = (n + 8) / BLOCK + 1;
    let mut state = load_state(inner);
    for b in 0..blocks {
        let start = b * BLOCK;
        let mut w = if start + BLOCK <= n {
            load_block(msg[start..start + BLOCK].try_into().expect("64 bytes"))
        } else if start <= n {
            tail_block(&msg[start..])
        } else {
            // The tail left no room for the length: a block of its own.
            [_mm_setzero_si128(); 4]
        };
        if b == blocks - 1 {
            // Words 14 and 15 (lanes 2 and 3 of the last register) are zero
            // in the last block: the length goes there.
            w[3] = _mm_or_si128(w[3], _mm_set_epi32(bits as i32, (bits >> 32) as i32, 0, 0));
        }
        compress!(state, w);
    }

    // Outer hash: the digest words are the message words, straight from the
    // registers; the padding of a 96-byte stream is constant.
    let [w0, w1] = digest_words(state);
    let w2 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let w3 = _mm_set_epi32(((BLOCK + 32) * 8) as i32, 0, 0, 0);
    let mut state = load_state(outer);
    compress!(state, [w0, w1, w2, w3]);

    let [dcba, hgfe] = digest_words(state);
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

/// The words of the block holding `rest` (under 64 bytes), 0x80 and zeros,
/// built in registers. A byte copy into a stack block and a 16-byte reload
/// would stall: the loads cannot take their bytes from several smaller
/// pending stores. Each register is a 16-byte load inside `rest`: a whole
/// one, or for the register where `rest` ends, the last 16 bytes of `rest`
/// shifted down to their place, with 0x80 put after them.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn tail_block(rest: &[u8]) -> [__m128i; 4] {
    let n = rest.len();
    debug_assert!(n < BLOCK);
    let zero = _mm_setzero_si128();
    if n < 16 {
        return [short_tail(rest), zero, zero, zero];
    }
    let last = load16(rest[n - 16..].try_into().expect("16 bytes"));
    let reg = |at: usize| {
        if at + 16 <= n {
            load16(rest[at..at + 16].try_into().expect("16 bytes"))
        } else if at <= n {
            let r = n - at;
            _mm_or_si128(_mm_shuffle_epi8(last, shift_down(r)), marker(r))
        } else {
            zero
        }
    };
    [reg(0), reg(16), reg(32), reg(48)].map(|r| _mm_shuffle_epi8(r, bswap_mask()))
}

/// The first register of a tail shorter than 16 bytes, from scalar loads
/// that stay inside it, with 0x80 after it. No OGP frame tags so few bytes
/// (Heartbeat, the shortest, tags 20); this is for the other lengths `mac`
/// must get right.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn short_tail(rest: &[u8]) -> __m128i {
    let n = rest.len();
    // Two loads of `k` bytes, from the start and up to the end, overlap or
    // meet; or-ing them in place gives every byte.
    let two = |k: usize, read: fn(&[u8]) -> u64| {
        read(rest) as u128 | (read(&rest[n - k..]) as u128) << (8 * (n - k))
    };
    let bytes = match n {
        8.. => two(8, |b| {
            u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
        }),
        4.. => two(4, |b| {
            u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as u64
        }),
        2.. => two(2, |b| {
            u16::from_le_bytes(b[..2].try_into().expect("2 bytes")) as u64
        }),
        1 => rest[0] as u128,
        0 => 0,
    } | 0x80 << (8 * n);
    let block = _mm_set_epi64x((bytes >> 64) as i64, bytes as i64);
    _mm_shuffle_epi8(block, bswap_mask())
}

/// A `pshufb` mask moving bytes 16-r..16 of a register to 0..r and zeroing
/// the rest (an index with its top bit set selects zero).
#[inline]
#[target_feature(enable = "sse2")]
fn shift_down(r: usize) -> __m128i {
    let iota = _mm_set_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let index = _mm_add_epi8(iota, _mm_set1_epi8((16 - r) as i8));
    _mm_or_si128(index, _mm_cmpgt_epi8(index, _mm_set1_epi8(15)))
}

/// 0x80 at byte `r` of a register, zeros elsewhere.
#[inline]
#[target_feature(enable = "sse2")]
fn marker(r: usize) -> __m128i {
    let iota = _mm_set_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    _mm_and_si128(
        _mm_cmpeq_epi8(iota, _mm_set1_epi8(r as i8)),
        _mm_set1_epi8(0x80u8 as i8),
    )
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
    std::array::from_fn(|i| {
        let chunk = block[16 * i..16 * i + 16].try_into().expect("16 bytes");
        _mm_shuffle_epi8(load16(chunk), bswap_mask())
    })
}

/// 16 bytes in a register, byte 0 in the lowest lane.
#[inline]
#[target_feature(enable = "sse2")]
fn load16(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    #[test]
    fn one_compression_matches_sha2_for_random_states_and_blocks() {
        let Some(ni) = ShaNi::detect() else {
            eprintln!("no SHA-NI on this CPU: nothing to compare");
            return;
        };
        let mut rng = SplitMix(0x9E37_79B9_7F4A_7C15);
        for _ in 0..1000 {
            let state: [u32; 8] = std::array::from_fn(|_| rng.next_u64() as u32);
            let block: [u8; 64] = std::array::from_fn(|_| rng.next_u64() as u8);
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
            compress!(s, load_block(block));
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
