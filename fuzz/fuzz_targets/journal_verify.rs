//! `audit verify` (and `audit show`, and the gateway's own reopen, which
//! reads the same files) on arbitrary and on mutated journals.
//!
//! Two kinds of input:
//!
//! - **A file**: an input that starts with the journal magic `OGAUDIT1` is
//!   one segment image as found on disk (the seed corpus holds real
//!   journals written by `Journal::open`). `verify`, `show` and
//!   `Journal::open_in` must not panic on it, and whatever `verify`
//!   accepts the gateway must reopen as it is: the same records, the same
//!   last hash, nothing discarded.
//! - **A journal and its mutations**: any other input builds a valid
//!   journal in memory with the real appender (arbitrary records, small
//!   segments, with or without rollover, so chains of several segment
//!   images), checks that it verifies, then applies arbitrary byte-level
//!   mutations (bit flips, byte writes, truncation, extension, zeroed,
//!   copied and swapped slots, slots from another journal, segments
//!   dropped or swapped). Every mutation that changes the images must be
//!   detected by `verify` given the anchors (`--expect-records N
//!   --expect-last HASH`). Without anchors, `verify` may accept only a
//!   prefix of the true chain (removing records from the tail is what the
//!   anchors are for), and the gateway's reopen of the last segment may
//!   likewise continue only after an original record.
//!
//! Not mutations here: dropping the *first* segments of a chain (archiving
//! them is allowed by design: `verify` checks from the first segment it is
//! given and says so), and appending new records with correct hashes (that
//! is growth, which the anchors allow).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ordergate::journal::format::{
    HEADER_SIZE, Hash, MAGIC, RECORD_SIZE, Slot, decode_slot, encode_record,
};
use ordergate::journal::{
    AuditEvent, AuditKind, Extra, Journal, MemSegments, MemStorage, OpenKind, VerifyOptions,
    show_image, verify_image, verify_images,
};

const T0: u64 = 1_764_000_000_000_000_000;

#[derive(Arbitrary, Debug)]
struct Rec {
    kind: u8,
    time: u16,
    key_id: u64,
    session: u64,
    addr: [u8; 4],
    detail: u32,
    reason: u16,
    reactor: u16,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    FlipBit {
        seg: u8,
        at: u16,
        bit: u8,
    },
    SetByte {
        seg: u8,
        at: u16,
        value: u8,
    },
    Truncate {
        seg: u8,
        to: u16,
    },
    Extend {
        seg: u8,
        bytes: Vec<u8>,
    },
    ZeroSlot {
        seg: u8,
        slot: u8,
    },
    CopySlot {
        from_seg: u8,
        from: u8,
        to_seg: u8,
        to: u8,
    },
    SwapSlots {
        seg: u8,
        a: u8,
        b: u8,
    },
    /// A committed record of another journal (correct commit, foreign
    /// chain) written over a slot.
    Foreign {
        seg: u8,
        slot: u8,
        index: u8,
        prev: u8,
    },
    DropSegment {
        seg: u8,
    },
    SwapSegments {
        a: u8,
        b: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Build {
    capacity: u8,
    rollover: bool,
    records: Vec<Rec>,
    mutations: Vec<Mutation>,
}

/// The kinds a gateway appends in the middle of a segment (SegmentStart
/// is the appender's own, as a continuation segment's first record).
const KINDS: &[AuditKind] = &[
    AuditKind::LogonAccepted,
    AuditKind::LogonRejected,
    AuditKind::Terminated,
    AuditKind::ThrottleBreach,
    AuditKind::Lockout,
    AuditKind::Reload,
    AuditKind::ReloadFailed,
    AuditKind::Revoke,
    AuditKind::Kill,
    AuditKind::Gap,
    AuditKind::JournalOpened,
    AuditKind::LogonTimeout,
    AuditKind::PreAuthAggregate,
];

fn event(r: &Rec) -> (AuditEvent, Extra) {
    let kind = KINDS[r.kind as usize % KINDS.len()];
    let mut addr = [0u8; 16];
    addr[10] = 0xff;
    addr[11] = 0xff;
    addr[12..].copy_from_slice(&r.addr);
    let time_ns = T0 + u64::from(r.time) * 1_000;
    let e = AuditEvent {
        time_ns,
        key_id: r.key_id,
        session: r.session,
        addr,
        detail: r.detail,
        reason: r.reason,
        reactor: r.reactor,
        kind,
        // A LogonAccepted keeps the Logon's request time (the key's replay
        // floor after a restart).
        request_time_ns: if kind == AuditKind::LogonAccepted {
            time_ns - u64::from(r.reactor)
        } else {
            0
        },
    };
    if kind == AuditKind::PreAuthAggregate {
        // What the journal thread writes: a pre-auth kind folded, at least
        // one event, the last one not before the first.
        let of_kind = if r.reason & 1 == 0 {
            AuditKind::LogonRejected
        } else {
            AuditKind::LogonTimeout
        };
        let e = AuditEvent {
            detail: r.detail.max(1),
            ..e
        };
        let extra = Extra {
            of_kind: of_kind.code(),
            last_ns: time_ns + u64::from(r.reactor),
        };
        return (e, extra);
    }
    (e, Extra::NONE)
}

/// Every committed record's hash, by global index, and the first
/// segment's header hash.
fn record_hashes(images: &[Vec<u8>]) -> Vec<Hash> {
    let mut out = Vec::new();
    for image in images {
        for slot in image[HEADER_SIZE..].chunks_exact(RECORD_SIZE) {
            if let Slot::Committed(r) = decode_slot(slot.try_into().expect("a slot")) {
                out.push(r.hash);
            }
        }
    }
    out
}

fn slot_range(image: &[u8], slot: u8) -> Option<std::ops::Range<usize>> {
    let slots = image.len().saturating_sub(HEADER_SIZE) / RECORD_SIZE;
    if slots == 0 {
        return None;
    }
    let at = HEADER_SIZE + (slot as usize % slots) * RECORD_SIZE;
    Some(at..at + RECORD_SIZE)
}

fn mutate(images: &mut Vec<Vec<u8>>, m: &Mutation) {
    let n = images.len();
    if n == 0 {
        return;
    }
    let seg = |s: u8| s as usize % n;
    match *m {
        Mutation::FlipBit { seg: s, at, bit } => {
            let image = &mut images[seg(s)];
            if !image.is_empty() {
                let at = at as usize % image.len();
                image[at] ^= 1 << (bit % 8);
            }
        }
        Mutation::SetByte { seg: s, at, value } => {
            let image = &mut images[seg(s)];
            if !image.is_empty() {
                let at = at as usize % image.len();
                image[at] = value;
            }
        }
        Mutation::Truncate { seg: s, to } => {
            let image = &mut images[seg(s)];
            let to = to as usize % (image.len() + 1);
            image.truncate(to);
        }
        Mutation::Extend { seg: s, ref bytes } => {
            let bytes = if bytes.is_empty() {
                &[0u8][..]
            } else {
                &bytes[..]
            };
            images[seg(s)].extend_from_slice(&bytes[..bytes.len().min(512)]);
        }
        Mutation::ZeroSlot { seg: s, slot } => {
            let image = &mut images[seg(s)];
            if let Some(r) = slot_range(image, slot) {
                image[r].fill(0);
            }
        }
        Mutation::CopySlot {
            from_seg,
            from,
            to_seg,
            to,
        } => {
            let Some(src) = slot_range(&images[seg(from_seg)], from) else {
                return;
            };
            let bytes = images[seg(from_seg)][src].to_vec();
            let image = &mut images[seg(to_seg)];
            if let Some(dst) = slot_range(image, to) {
                image[dst].copy_from_slice(&bytes);
            }
        }
        Mutation::SwapSlots { seg: s, a, b } => {
            let image = &mut images[seg(s)];
            if let (Some(a), Some(b)) = (slot_range(image, a), slot_range(image, b)) {
                let bytes = image[a.clone()].to_vec();
                image.copy_within(b.clone(), a.start);
                image[b].copy_from_slice(&bytes);
            }
        }
        Mutation::Foreign {
            seg: s,
            slot,
            index,
            prev,
        } => {
            let image = &mut images[seg(s)];
            if let Some(r) = slot_range(image, slot) {
                let event = AuditEvent::empty(AuditKind::Reload, T0);
                let (bytes, _) = encode_record(u64::from(index), &[prev; 32], &event);
                image[r].copy_from_slice(&bytes);
            }
        }
        Mutation::DropSegment { seg: s } => {
            // Not the first: archiving the first segments is allowed.
            if n > 1 {
                images.remove(1 + s as usize % (n - 1));
            }
        }
        Mutation::SwapSegments { a, b } => images.swap(seg(a), seg(b)),
    }
}

/// Reopens `image` as the gateway would (recovery included).
fn views(images: &[Vec<u8>]) -> Vec<&[u8]> {
    images.iter().map(Vec::as_slice).collect()
}

fn reopen(image: &[u8]) -> Option<Journal> {
    Journal::open_in(Box::new(MemStorage::from_image(image.to_vec())), 8, T0).ok()
}

fn file_input(image: &[u8]) {
    let verified = verify_image(image, &VerifyOptions::default());
    let _ = show_image(image, false, &mut std::io::sink());
    let _ = show_image(image, true, &mut std::io::sink());
    let reopened = reopen(image);
    if let Ok(report) = verified {
        let j = reopened.expect("the gateway reopens a journal that verifies");
        assert_eq!(
            j.records(),
            report.records,
            "records: verify and reopen differ"
        );
        assert_eq!(j.last_hash(), report.last_hash);
        assert_eq!(j.opened().0, OpenKind::Reopened, "nothing to recover");
    }
}

fn built_input(b: &Build) {
    let capacity = 2 + u64::from(b.capacity % 6);
    let len = (HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64) as usize;
    let first = MemStorage::new(len as u64);
    let segments = MemSegments::new();
    let mut journal =
        Journal::open_in(Box::new(first.clone()), capacity, T0).expect("a new journal opens");
    if b.rollover {
        journal = journal
            .with_rollover(Box::new(segments.clone()), capacity)
            .expect("rollover on");
    }
    for r in b.records.iter().take(3 * capacity as usize) {
        let (e, extra) = event(r);
        if journal.append_with(&e, &extra).is_err() {
            break;
        }
    }
    let records = journal.records();
    let last = journal.last_hash();
    let mut images: Vec<Vec<u8>> = vec![first.live_image()];
    images.extend(segments.created().iter().map(MemStorage::live_image));
    drop(journal);

    let anchors = VerifyOptions {
        expect_records: Some(records),
        expect_last: Some(last),
    };
    let report = verify_images(&views(&images), &VerifyOptions::default())
        .expect("the appender's journal verifies");
    assert_eq!((report.records, report.last_hash), (records, last));
    verify_images(&views(&images), &anchors).expect("and verifies against its own anchors");
    let hashes = record_hashes(&images);
    assert_eq!(hashes.len() as u64, records);

    let original = images.clone();
    for m in b.mutations.iter().take(6) {
        mutate(&mut images, m);
    }
    for image in &images {
        let _ = show_image(image, false, &mut std::io::sink());
    }
    // Unchanged, or only the first segments gone (archived): nothing to
    // detect.
    if (0..original.len()).any(|k| images[..] == original[k..]) {
        return;
    }
    let mutated = views(&images);
    if let Ok(r) = verify_images(&mutated, &anchors) {
        panic!(
            "mutation not detected with anchors ({records} records): verify says {r}\n\
             mutations: {:?}",
            b.mutations
        );
    }
    // Without anchors: at most a prefix of the original chain.
    if let Ok(r) = verify_images(&mutated, &VerifyOptions::default()) {
        assert!(
            r.records <= records,
            "verify vouches for records never written: {r}"
        );
        if r.records > 0 {
            assert_eq!(
                r.last_hash,
                hashes[r.records as usize - 1],
                "verify vouches for a changed record: {r}"
            );
        }
    }
    // The gateway reopening the last segment continues after an original
    // record, or refuses.
    if let Some(image) = images.last()
        && let Some(j) = reopen(image)
        && j.records() > 0
    {
        let index = j.records() - 1;
        assert!(
            index < records,
            "reopen continues after record {index}, never written"
        );
        assert_eq!(
            j.last_hash(),
            hashes[index as usize],
            "reopen continues after a changed record {index}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(&MAGIC) {
        return file_input(data);
    }
    let Ok(build) = Build::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    built_input(&build);
});
