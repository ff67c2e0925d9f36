//! One pass over the record slots, shared by [`Journal::open`]
//! (recovery) and [`verify`](super::verify()): where the chain ends, the
//! first record that does not belong, and what lies after the end.
//!
//! [`Journal::open`]: super::Journal::open

use super::format::{Hash, RECORD_SIZE, Slot, decode_slot};

/// The state of a scan after some slots.
pub struct Scanner {
    /// Records `[0, records)` are committed and chained.
    pub records: u64,
    /// Hash of record `records - 1`, or of the header if none.
    pub last_hash: Hash,
    /// Set at the first slot that is not a committed, chained record: the
    /// chain ends there (`end == records`).
    pub end: Option<u64>,
    /// A committed record that does not belong where it is (wrong index,
    /// wrong `prev_hash`, undefined kind, non-zero reserved bytes): never
    /// crash residue, since every slot is written once, in order, after its
    /// predecessor. The scan stops at it.
    pub misplaced: Option<(u64, String)>,
    /// Non-empty slots at or after `end`: torn or unchained residue (crash)
    /// or edits. First and last index, and how many.
    pub residue: Option<Residue>,
    /// Records whose hash the caller wants (for an anchor): the index, and
    /// the hash once the scan passes it.
    pub watch: Option<(u64, Option<Hash>)>,
    /// A hash the caller wants to find: the first record index with it.
    pub find: Option<(Hash, Option<u64>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Residue {
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

impl Scanner {
    pub fn new(header_hash: Hash) -> Scanner {
        Scanner {
            records: 0,
            last_hash: header_hash,
            end: None,
            misplaced: None,
            residue: None,
            watch: None,
            find: None,
        }
    }

    /// Takes slot `index` (slots must come in order from 0). Returns `false`
    /// once the scan has found a misplaced record and wants no more.
    pub fn slot(&mut self, index: u64, bytes: &[u8; RECORD_SIZE]) -> bool {
        debug_assert!(self.misplaced.is_none());
        let slot = decode_slot(bytes);
        if self.end.is_none() {
            debug_assert_eq!(index, self.records);
            match slot {
                Slot::Committed(record) => {
                    if let Err(problem) = record.check(index, &self.last_hash) {
                        self.misplaced = Some((index, problem));
                        return false;
                    }
                    self.records = index + 1;
                    self.last_hash = record.hash;
                    if let Some((at, hash)) = &mut self.watch
                        && *at == index
                    {
                        *hash = Some(record.hash);
                    }
                    if let Some((want, found)) = &mut self.find
                        && found.is_none()
                        && *want == record.hash
                    {
                        *found = Some(index);
                    }
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
