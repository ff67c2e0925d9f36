//! The client's stream reassembler (`client::FrameReader`) fed the same
//! bytes whole, one byte at a time, and in chunks the input chooses yields
//! the same frames in the same order, and stops on the same error at the
//! same place. Every frame it yields is exactly `message_size` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate::client::FrameReader;

/// Most bytes pushed at once (a receive buffer's worth).
const CHUNK_MAX: usize = 4096;

#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    Error(String),
}

/// Pushes `stream` in the chunk sizes `sizes` yields, draining whole frames
/// after each push; stops at the first error.
fn split(stream: &[u8], mut sizes: impl FnMut() -> usize) -> Vec<Out> {
    let mut reader = FrameReader::new(CHUNK_MAX + 128);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = sizes().clamp(1, CHUNK_MAX).min(rest.len());
        reader.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(next) = reader.next_frame() {
            match next {
                Ok(frame) => {
                    let size = u16::from_le_bytes([frame[0], frame[1]]) as usize;
                    assert_eq!(frame.len(), size);
                    out.push(Out::Frame(frame.to_vec()));
                }
                Err(e) => {
                    out.push(Out::Error(e.to_string()));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the chunk sizes; the rest is the stream.
    if data.len() < 4 {
        return;
    }
    let (choice, stream) = data.split_at(4);
    let whole = split(stream, || CHUNK_MAX);
    let bytewise = split(stream, || 1);
    assert_eq!(whole, bytewise);
    let mut seed = u32::from_le_bytes([choice[0], choice[1], choice[2], choice[3]]) | 1;
    let chunked = split(stream, || {
        // xorshift32: arbitrary, reproducible chunk sizes from 1 to 200.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 200) as usize + 1
    });
    assert_eq!(whole, chunked);
});
