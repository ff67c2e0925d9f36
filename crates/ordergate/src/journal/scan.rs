//! One pass over the record slots of one segment, shared by
//! [`Journal::open`] (recovery) and [`verify`](super::verify()): where the
//! chain ends, the first record that does not belong, and what lies after
//! the end.
//!
//! Slots are numbered from 0 in each segment; records carry global indices
//! (`base_index + slot`). `records`, `end` and `residue` count slots;
//! `misplaced`, `watch` and `find` speak global indices.
//!
//! [`Journal::open`]: super::Journal::open

use super::event::{AuditKind, CheckpointKind};
use super::format::{Hash, Header, RECORD_SIZE, Record, Slot, decode_slot};

/// The state of a scan after some slots.
pub struct Scanner {
    /// Global index of slot 0.
    pub base: u64,
    /// Whether this segment continues another: its slot 0, and only that,
    /// must be a SegmentStart.
    pub continuation: bool,
    /// Slots `[0, records)` hold committed, chained records.
    pub records: u64,
    /// Hash of record `records - 1`, or of the header if none.
    pub last_hash: Hash,
    /// Set at the first slot that is not a committed, chained record: the
    /// chain ends there (`end == records`).
    pub end: Option<u64>,
    /// A committed record that does not belong where it is (wrong index,
    /// wrong `prev_hash`, undefined kind, non-zero reserved bytes, a
    /// SegmentStart out of place): global index and problem. Never
    /// crash residue, since every slot is written once, in order, after its
    /// predecessor. The scan stops at it.
    pub misplaced: Option<(u64, String)>,
    /// Non-empty slots at or after `end`: torn or unchained residue (crash)
    /// or edits. First and last index, and how many.
    pub residue: Option<Residue>,
    /// Records whose hash the caller wants (for an anchor): the global
    /// index, and the hash once the scan passes it.
    pub watch: Option<(u64, Option<Hash>)>,
    /// A hash the caller wants to find: the first global index with it.
    pub find: Option<(Hash, Option<u64>)>,
    /// Records after the last Checkpoint of the segment (all of them if it
    /// has none): where the journal's checkpoint count resumes on reopen.
    pub since_checkpoint: u64,
    /// Whether the last record taken is a clean stop's checkpoint.
    pub ended_closed: bool,
    /// The record the last call to [`slot`](Self::slot) took into the
    /// chain, if it took one (so a caller can look at it without hashing
    /// it again).
    pub taken: Option<Record>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Residue {
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

impl Scanner {
    pub fn new(header: &Header, header_hash: Hash) -> Scanner {
        Scanner {
            base: header.base_index(),
            continuation: header.link.is_some(),
            records: 0,
            last_hash: header_hash,
            end: None,
            misplaced: None,
            residue: None,
            watch: None,
            find: None,
            since_checkpoint: 0,
            ended_closed: false,
            taken: None,
        }
    }

    /// Takes slot `index` (slots must come in order from 0). Returns `false`
    /// once the scan has found a misplaced record and wants no more.
    pub fn slot(&mut self, index: u64, bytes: &[u8; RECORD_SIZE]) -> bool {
        debug_assert!(self.misplaced.is_none());
        self.taken = None;
        let slot = decode_slot(bytes);
        if self.end.is_none() {
            debug_assert_eq!(index, self.records);
            let global = self.base + index;
            match slot {
                Slot::Committed(record) => {
                    let problem = match record.check(global, &self.last_hash) {
                        Err(problem) => Some(problem),
                        Ok(()) => {
                            let start = record.kind_code == AuditKind::SegmentStart.code();
                            let wanted = self.continuation && index == 0;
                            match (start, wanted) {
                                (true, false) => Some(
                                    "a SegmentStart that is not the first record of a \
                                     continuation segment"
                                        .to_string(),
                                ),
                                (false, true) => Some(
                                    "the first record of a continuation segment is not its \
                                     SegmentStart"
                                        .to_string(),
                                ),
                                _ => None,
                            }
                        }
                    };
                    if let Some(problem) = problem {
                        self.misplaced = Some((global, problem));
                        return false;
                    }
                    self.records = index + 1;
                    self.last_hash = record.hash;
                    if record.kind_code == AuditKind::Checkpoint.code() {
                        self.since_checkpoint = 0;
                    } else {
                        self.since_checkpoint += 1;
                    }
                    self.ended_closed = record
                        .checkpoint()
                        .is_some_and(|(kind, _, _)| kind == CheckpointKind::Close);
                    if let Some((at, hash)) = &mut self.watch
                        && *at == global
                    {
                        *hash = Some(record.hash);
                    }
                    if let Some((want, found)) = &mut self.find
                        && found.is_none()
                        && *want == record.hash
                    {
                        *found = Some(global);
                    }
                    self.taken = Some(record);
                    return true;
                }
                Slot::Empty | Slot::Uncommitted => self.end = Some(index),
            }
        }
        if slot != Slot::Empty {
            match &mut self.residue {
                None => {
                    self.residue = Some(Residue {
                        first: index,
                        last: index,
                        count: 1,
                    })
                }
                Some(r) => {
                    r.last = index;
                    r.count += 1;
                }
            }
        }
        true
    }
}
