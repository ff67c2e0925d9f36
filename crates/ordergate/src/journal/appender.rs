//! [`Journal`]: open (create, or reopen and recover), append, flush, and
//! roll over to the next segment when one is full.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, fence};

use crate::clock::wall_ns;

use super::RECOVERY_WINDOW_RECORDS;
use super::anchor::{AnchorKey, encode_checkpoint};
use super::event::{AuditEvent, CheckpointKind, OpenKind};
use super::format::{
    BASE_INDEX_MAX, CAPACITY_RECORDS_MAX, Extra, HEADER_INDEX, HEADER_SIZE, Hash, Header,
    RECORD_COMMIT_OFFSET, RECORD_SIZE, SegmentLink, encode_record, encode_record_with,
    record_offset,
};
use super::scan::Scanner;
use super::storage::{
    FileSegments, MmapStorage, SegmentFactory, Storage, latest_segment, segment_path,
};

/// Why the journal cannot take a record, or cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Every slot is used. The journal fails closed: the gateway must stop
    /// admitting logons until an operator rotates the file.
    #[error("audit journal full ({capacity} records)")]
    Full { capacity: u64 },
    /// The storage failed. The record being appended, if any, may be torn;
    /// the journal takes no more appends (`Broken`).
    #[error("audit journal I/O error: {0}")]
    Io(io::Error),
    /// An earlier write failed; nothing more is appended.
    #[error("audit journal stopped after an earlier write error")]
    Broken,
    /// The file is held by another process (exclusive `flock`).
    #[error("audit journal is in use by another process")]
    Locked,
    /// The file is not a journal this build can continue: bad header, a
    /// record that does not belong in the chain, or residue beyond what a
    /// crash can leave. Nothing was changed. `index` is the first bad record
    /// ([`HEADER_INDEX`] for the header).
    #[error("audit journal {}: {problem}", record_name(*index))]
    Corrupt { index: u64, problem: String },
    /// A capacity of 0 or above `CAPACITY_RECORDS_MAX`, or a storage whose
    /// length does not fit the capacity (or, with rollover, a capacity
    /// below 2: a segment holds its SegmentStart and at least one record).
    #[error("audit journal capacity {capacity} records does not fit (1..={CAPACITY_RECORDS_MAX})")]
    BadCapacity { capacity: u64 },
    /// The segment was full and the next one could not be created (a full
    /// disk, a file in the way). Nothing was appended; the journal stays
    /// full (fail closed).
    #[error("audit journal segment full, and segment {segment} cannot be created: {error}")]
    Rollover { segment: u64, error: io::Error },
}

/// `header`, or `record N`: where a corrupt journal goes wrong.
fn record_name(index: u64) -> String {
    if index == HEADER_INDEX {
        "header".to_owned()
    } else {
        format!("record {index}")
    }
}

impl From<io::Error> for JournalError {
    fn from(e: io::Error) -> JournalError {
        if e.kind() == io::ErrorKind::WouldBlock {
            JournalError::Locked
        } else {
            JournalError::Io(e)
        }
    }
}

/// The append end of a journal: its current segment (one file), and
/// optionally how to start the next one when it is full. Owned by the
/// journal thread; see the [module docs](super) for the format and the
/// durability policy.
///
/// Indices are global: a segment's record `slot` has index
/// `base_index + slot`, so [`records`](Self::records) counts the records of
/// every segment and keeps growing across rollovers.
pub struct Journal {
    storage: Box<dyn Storage>,
    header: Header,
    /// Committed, chained records of this segment: slots `[0, records)`.
    /// The next append is slot `records`.
    records: u64,
    /// Hash of record `records - 1`, or of the header when `records == 0`.
    last_hash: Hash,
    /// Slots covered by a completed flush: `flushed <= records`.
    flushed: u64,
    opened: OpenKind,
    /// Residue slots zeroed by `open`.
    discarded: u64,
    /// Set when a write failed; `append` refuses from then on.
    broken: bool,
    /// The segment's file (None: storage in memory).
    path: Option<PathBuf>,
    /// Where the next segment comes from; None: a full segment fails
    /// closed.
    segments: Option<Box<dyn SegmentFactory>>,
    /// Slots of the segments rollover creates.
    next_capacity: u64,
    /// Rollovers done since open.
    rollovers: u64,
    /// The anchor key checkpoints are made with; None: no checkpoints.
    anchor: Option<Anchor>,
    /// Records after the last checkpoint (from the file on open; of every
    /// kind but Checkpoint).
    since_checkpoint: u64,
    /// From the scan on open: the last record is a Close checkpoint; the
    /// segment holds a checkpoint.
    ended_closed: bool,
    had_checkpoint: bool,
}

/// Checkpointing state: the key, the most records between two
/// checkpoints, and what was written.
struct Anchor {
    key: AnchorKey,
    interval: u64,
    written: u64,
}

impl Journal {
    /// Opens the journal at `path`, creating it with `capacity_records`
    /// slots (preallocated) if it does not exist. An existing file keeps its
    /// own capacity; `capacity_records` is then ignored. One file, no
    /// rollover: see [`Journal::open_segments`] for the gateway's journal.
    ///
    /// On reopen the whole chain is checked. Residue a crash can leave (a
    /// torn record, records written after one that was lost, all within
    /// [`RECOVERY_WINDOW_RECORDS`] of the end) is zeroed and flushed, and
    /// the journal continues after the last good record; anything else is
    /// [`JournalError::Corrupt`] and the file is left untouched.
    pub fn open(path: &Path, capacity_records: u64) -> Result<Journal, JournalError> {
        let create = !path.exists();
        if create {
            check_capacity(capacity_records)?;
            let header = Header {
                capacity: capacity_records,
                created_ns: wall_ns(),
                file_id: random_id(),
                link: None,
            };
            let (bytes, _) = header.encode();
            MmapStorage::create(path, header.file_len(), &bytes)?;
        }
        let storage = MmapStorage::open(path)?;
        let mut journal = Journal::open_in(Box::new(storage), capacity_records, wall_ns())?;
        if create {
            journal.opened = OpenKind::Created;
        }
        journal.path = Some(path.to_path_buf());
        journal.next_capacity = capacity_records;
        Ok(journal)
    }

    /// The gateway's journal: the segments `base`, `base.1`, `base.2`, …
    /// Opens the latest segment present (the highest N of `base.N`, else
    /// `base`, created with `capacity_records` slots if nothing exists),
    /// as [`Journal::open`] does. With `rollover`, a full segment is
    /// followed by the next, of `capacity_records` slots; without, a full
    /// segment fails closed.
    ///
    /// The latest segment's header must name the segment its file name
    /// does: a file renamed into the chain is [`JournalError::Corrupt`].
    pub fn open_segments(
        base: &Path,
        capacity_records: u64,
        rollover: bool,
    ) -> Result<Journal, JournalError> {
        let latest = latest_segment(base)?;
        let path = segment_path(base, latest);
        let journal = Journal::open(&path, capacity_records)?;
        if journal.segment() != latest {
            return Err(JournalError::Corrupt {
                index: HEADER_INDEX,
                problem: format!(
                    "{} is named as segment {latest} but its header says segment {}",
                    path.display(),
                    journal.segment()
                ),
            });
        }
        if rollover {
            return journal.with_rollover(Box::new(FileSegments::new(base)), capacity_records);
        }
        Ok(journal)
    }

    /// Rolls over to segments from `segments`, of `capacity_records` slots
    /// each, when the current one is full (instead of failing closed).
    pub fn with_rollover(
        mut self,
        segments: Box<dyn SegmentFactory>,
        capacity_records: u64,
    ) -> Result<Journal, JournalError> {
        check_capacity(capacity_records)?;
        let least = if self.anchor.is_some() { 3 } else { 2 };
        if capacity_records < least {
            return Err(JournalError::BadCapacity {
                capacity: capacity_records,
            });
        }
        self.segments = Some(segments);
        self.next_capacity = capacity_records;
        Ok(self)
    }

    /// [`Journal::open`] on any storage. If its first `HEADER_SIZE` bytes
    /// are all zero it is formatted: a header for `capacity_records` slots
    /// (the storage must be exactly that long), created at `now_ns`.
    pub fn open_in(
        mut storage: Box<dyn Storage>,
        capacity_records: u64,
        now_ns: u64,
    ) -> Result<Journal, JournalError> {
        let len = storage.len();
        if len < HEADER_SIZE as u64 {
            return Err(JournalError::Corrupt {
                index: HEADER_INDEX,
                problem: format!("{len} bytes is shorter than the header"),
            });
        }
        let mut bytes = [0u8; HEADER_SIZE];
        storage.read_at(0, &mut bytes)?;
        let mut opened = OpenKind::Reopened;
        if bytes.iter().all(|&b| b == 0) {
            check_capacity(capacity_records)?;
            let header = Header {
                capacity: capacity_records,
                created_ns: now_ns,
                file_id: random_id(),
                link: None,
            };
            if header.file_len() != len {
                return Err(JournalError::BadCapacity {
                    capacity: capacity_records,
                });
            }
            bytes = header.encode().0;
            storage.write_at(0, &bytes)?;
            storage.flush(0, HEADER_SIZE as u64)?;
            opened = OpenKind::Created;
        }
        let (header, header_hash) =
            Header::decode(&bytes).map_err(|problem| JournalError::Corrupt {
                index: HEADER_INDEX,
                problem,
            })?;
        if len != header.file_len() {
            return Err(JournalError::Corrupt {
                index: HEADER_INDEX,
                problem: format!(
                    "file is {len} bytes, header says {} ({} records)",
                    header.file_len(),
                    header.capacity
                ),
            });
        }

        let mut scan = Scanner::new(&header, header_hash);
        let mut slot = [0u8; RECORD_SIZE];
        for index in 0..header.capacity {
            storage.read_at(record_offset(index), &mut slot)?;
            if !scan.slot(index, &slot) {
                break;
            }
        }
        if let Some((index, problem)) = scan.misplaced {
            return Err(JournalError::Corrupt { index, problem });
        }
        let mut discarded = 0;
        if let Some(residue) = scan.residue {
            // A crash leaves residue only in slots written since the last
            // flush, and the writer never has more than
            // RECOVERY_WINDOW_RECORDS of those.
            if residue.last - scan.records >= RECOVERY_WINDOW_RECORDS {
                return Err(JournalError::Corrupt {
                    index: header.base_index() + scan.records,
                    problem: format!(
                        "{} non-empty slots after the {} good records, up to slot {}: more than a \
                         crash can leave ({RECOVERY_WINDOW_RECORDS} unflushed records); edited?",
                        residue.count, scan.records, residue.last
                    ),
                });
            }
            let zero = [0u8; RECORD_SIZE];
            for index in residue.first..=residue.last {
                storage.write_at(record_offset(index), &zero)?;
            }
            let from = record_offset(residue.first);
            storage.flush(from, record_offset(residue.last + 1) - from)?;
            discarded = residue.count;
            opened = OpenKind::Recovered;
        }
        if header.link.is_some() && scan.records == 0 {
            // A rollover creates a segment with its SegmentStart in place.
            return Err(JournalError::Corrupt {
                index: header.base_index(),
                problem: "a continuation segment without its SegmentStart record".into(),
            });
        }
        Ok(Journal {
            storage,
            header,
            records: scan.records,
            last_hash: scan.last_hash,
            flushed: scan.records,
            opened,
            discarded,
            broken: false,
            path: None,
            segments: None,
            next_capacity: header.capacity,
            rollovers: 0,
            anchor: None,
            since_checkpoint: scan.since_checkpoint,
            ended_closed: scan.ended_closed,
            had_checkpoint: scan.since_checkpoint < scan.records,
        })
    }

    /// Makes checkpoints with `key` from now on (see [`super::anchor`]): at
    /// least every `interval` records (a checkpoint is written before the
    /// record that would make more), in the last slot of every segment,
    /// and on [`checkpoint`](Self::checkpoint) (the journal thread: at stop,
    /// and a second after the last one). The count of records since the
    /// last checkpoint resumes from the file. Every segment needs room for
    /// a record between its first and last slot: capacities below 3, and
    /// an interval below 2, are refused ([`JournalError::BadCapacity`]).
    pub fn with_anchor(mut self, key: AnchorKey, interval: u64) -> Result<Journal, JournalError> {
        for capacity in [self.header.capacity, self.next_capacity] {
            if capacity < 3 || interval < 2 {
                return Err(JournalError::BadCapacity { capacity });
            }
        }
        self.anchor = Some(Anchor {
            key,
            interval,
            written: 0,
        });
        Ok(self)
    }

    /// Appends `event` as record [`records()`](Self::records) and returns
    /// its (global) index. Visible to readers at once; durable after the
    /// next [`flush`](Self::flush). A full segment rolls over first if
    /// rollover is on ([`JournalError::Full`] otherwise). With an anchor
    /// key a checkpoint goes first when the segment's last slot is next or
    /// the records since the last checkpoint reached the interval, so the
    /// index returned may be past the one `records()` said.
    ///
    /// Store order: the record's bytes `[0, RECORD_COMMIT_OFFSET)` first,
    /// then a Release fence, then the commit field. A reader or write-back
    /// that sees the commit sees the bytes before it; if write-back still
    /// tears the record, the commit (a hash of those bytes) does not match
    /// and the slot reads as not written.
    pub fn append(&mut self, event: &AuditEvent) -> Result<u64, JournalError> {
        self.append_with(event, &Extra::NONE)
    }

    /// [`append`](Self::append) with the aggregate fields (the journal
    /// thread's PreAuthAggregate records).
    pub fn append_with(&mut self, event: &AuditEvent, extra: &Extra) -> Result<u64, JournalError> {
        if self.broken {
            return Err(JournalError::Broken);
        }
        loop {
            if let Some(anchor) = &self.anchor
                && self.records < self.header.capacity
            {
                // The segment's last slot, or the stretch at its most: a
                // checkpoint goes first.
                let last_slot = self.records + 1 == self.header.capacity;
                if last_slot || self.since_checkpoint >= anchor.interval {
                    let kind = if last_slot {
                        CheckpointKind::SegmentEnd
                    } else {
                        CheckpointKind::Periodic
                    };
                    self.append_checkpoint(kind, wall_ns())?;
                    continue;
                }
            }
            if self.records == self.header.capacity {
                if self.segments.is_none() {
                    return Err(JournalError::Full {
                        capacity: self.header.capacity,
                    });
                }
                self.roll_over(wall_ns())?;
                continue;
            }
            break;
        }
        let slot = self.records;
        let index = self.header.base_index() + slot;
        let (bytes, hash) = encode_record_with(index, &self.last_hash, event, extra);
        self.write(slot, &bytes)?;
        self.records = slot + 1;
        self.last_hash = hash;
        self.since_checkpoint += 1;
        Ok(index)
    }

    /// Appends a checkpoint of `kind` at `now_ns` (no-op without an anchor
    /// key): the journal thread's at stop ([`CheckpointKind::Close`]) and a
    /// second after the last one ([`CheckpointKind::Periodic`], only if
    /// records followed it). A full segment is not rolled over for it: its
    /// last record is a checkpoint already.
    pub fn checkpoint(&mut self, kind: CheckpointKind, now_ns: u64) -> Result<(), JournalError> {
        if self.anchor.is_none() || (kind == CheckpointKind::Periodic && self.since_checkpoint == 0)
        {
            return Ok(());
        }
        if self.broken {
            return Err(JournalError::Broken);
        }
        if self.records == self.header.capacity {
            // Full: its last record is a checkpoint already. A periodic
            // one waits for the next record; a closing one starts the next
            // segment (which the next start would), so that a clean stop
            // always ends with one. Without rollover the journal is full:
            // nothing more is written.
            if kind == CheckpointKind::Periodic || self.segments.is_none() {
                return Ok(());
            }
            self.roll_over(now_ns)?;
        }
        self.append_checkpoint(kind, now_ns)
    }

    /// Whether the last record of the segment opened is a clean stop's
    /// checkpoint ([`CheckpointKind::Close`]), and whether the segment
    /// holds any checkpoint: how the previous run ended.
    pub fn ended_closed(&self) -> (bool, bool) {
        (self.ended_closed, self.had_checkpoint)
    }

    fn append_checkpoint(&mut self, kind: CheckpointKind, now_ns: u64) -> Result<(), JournalError> {
        let anchor = self
            .anchor
            .as_ref()
            .expect("checkpoints need the anchor key");
        let slot = self.records;
        let index = self.header.base_index() + slot;
        let (bytes, hash) = encode_checkpoint(
            index,
            &self.last_hash,
            now_ns,
            kind,
            anchor.interval,
            &anchor.key,
        );
        self.write(slot, &bytes)?;
        self.records = slot + 1;
        self.last_hash = hash;
        self.since_checkpoint = 0;
        if let Some(anchor) = &mut self.anchor {
            anchor.written += 1;
        }
        Ok(())
    }

    /// Stores a record's bytes into `slot`, commit last.
    fn write(&mut self, slot: u64, bytes: &[u8; RECORD_SIZE]) -> Result<(), JournalError> {
        let offset = record_offset(slot);
        let written = self
            .storage
            .write_at(offset, &bytes[..RECORD_COMMIT_OFFSET])
            .and_then(|()| {
                fence(Ordering::Release);
                self.storage.write_at(
                    offset + RECORD_COMMIT_OFFSET as u64,
                    &bytes[RECORD_COMMIT_OFFSET..],
                )
            });
        if let Err(e) = written {
            self.broken = true;
            return Err(JournalError::Io(e));
        }
        Ok(())
    }

    /// Ends this (full) segment and continues in the next:
    ///
    /// 1. flush this segment, so everything the next one chains to is
    ///    durable;
    /// 2. build the next header (segment + 1, base index = records so far,
    ///    previous file id) and its record 0, a SegmentStart carrying this
    ///    segment's last hash;
    /// 3. have the factory create the file with both in place (atomic:
    ///    whole or absent after a crash) and switch to it.
    ///
    /// On failure nothing changes: this segment stays full and current.
    fn roll_over(&mut self, now_ns: u64) -> Result<(), JournalError> {
        self.flush()?;
        let segment = self.header.segment() + 1;
        let base_index = self.records();
        if base_index > BASE_INDEX_MAX {
            return Err(JournalError::Rollover {
                segment,
                error: io::Error::other("the journal's record index is exhausted"),
            });
        }
        let header = Header {
            capacity: self.next_capacity,
            created_ns: now_ns,
            file_id: random_id(),
            link: Some(SegmentLink {
                segment,
                base_index,
                prev_file_id: self.header.file_id,
            }),
        };
        let (header_bytes, header_hash) = header.encode();
        let start = AuditEvent::segment_start(now_ns, &self.last_hash);
        let (record, hash) = encode_record(base_index, &header_hash, &start);
        let mut prefix = [0u8; HEADER_SIZE + RECORD_SIZE];
        prefix[..HEADER_SIZE].copy_from_slice(&header_bytes);
        prefix[HEADER_SIZE..].copy_from_slice(&record);
        let factory = self.segments.as_mut().expect("rollover is on");
        let (storage, path) = factory
            .create(segment, header.file_len(), &prefix)
            .map_err(|error| JournalError::Rollover { segment, error })?;
        self.storage = storage;
        self.header = header;
        self.records = 1;
        self.flushed = 1;
        self.last_hash = hash;
        self.path = path;
        self.rollovers += 1;
        self.since_checkpoint += 1;
        Ok(())
    }

    /// Makes every appended record durable (`msync(MS_SYNC)` of the
    /// unflushed records' range on a file). Blocks for the disk; only the
    /// journal thread calls it.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.flushed == self.records {
            return Ok(());
        }
        let from = record_offset(self.flushed);
        let len = record_offset(self.records) - from;
        if let Err(e) = self.storage.flush(from, len) {
            self.broken = true;
            return Err(JournalError::Io(e));
        }
        self.flushed = self.records;
        Ok(())
    }

    /// Committed records of every segment: the global index the next append
    /// gets.
    pub fn records(&self) -> u64 {
        self.header.base_index() + self.records
    }

    /// Records covered by a completed flush (global, as `records`).
    pub fn flushed_records(&self) -> u64 {
        self.header.base_index() + self.flushed
    }

    /// Appended since the last flush.
    pub fn unflushed_records(&self) -> u64 {
        self.records - self.flushed
    }

    /// Slots of the current segment.
    pub fn capacity(&self) -> u64 {
        self.header.capacity
    }

    /// Records in the current segment (its slots in use).
    pub fn segment_records(&self) -> u64 {
        self.records
    }

    /// The current segment's number: 0 for the first.
    pub fn segment(&self) -> u64 {
        self.header.segment()
    }

    /// The current segment's file (None for storage in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether a full segment rolls over (else it fails closed).
    pub fn rolls_over(&self) -> bool {
        self.segments.is_some()
    }

    /// Rollovers since open.
    pub fn rollovers(&self) -> u64 {
        self.rollovers
    }

    /// Hash of the last record (of the header if there is none): the anchor
    /// an operator records elsewhere.
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    pub fn file_id(&self) -> [u8; 16] {
        self.header.file_id
    }

    pub fn created_ns(&self) -> u64 {
        self.header.created_ns
    }

    /// Checkpoints written since open (0 without an anchor key).
    pub fn checkpoints(&self) -> u64 {
        self.anchor.as_ref().map_or(0, |a| a.written)
    }

    /// The anchor key's tag, if checkpoints are made.
    pub fn anchor_tag(&self) -> Option<u64> {
        self.anchor.as_ref().map(|a| a.key.tag())
    }

    /// Records after the last checkpoint.
    pub fn since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// How `open` found the file, and how many residue slots it zeroed.
    pub fn opened(&self) -> (OpenKind, u64) {
        (self.opened, self.discarded)
    }

    /// The [`JournalOpened`](super::AuditKind::JournalOpened) record that
    /// says how this journal was opened; the writer thread appends it first.
    pub fn opened_event(&self, time_ns: u64) -> AuditEvent {
        let discarded = u32::try_from(self.discarded).unwrap_or(u32::MAX);
        AuditEvent::journal_opened(time_ns, self.opened, discarded)
    }
}

fn check_capacity(capacity: u64) -> Result<(), JournalError> {
    if capacity == 0 || capacity > CAPACITY_RECORDS_MAX {
        return Err(JournalError::BadCapacity { capacity });
    }
    Ok(())
}

/// 16 random bytes from the kernel (getrandom); if that fails, a hash of
/// the time, pid and a stack address: a file id needs to be unique, not
/// secret.
fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_ok() {
        return id;
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(wall_ns().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update((&id as *const _ as usize).to_le_bytes());
    let digest: [u8; 32] = h.finalize().into();
    id.copy_from_slice(&digest[..16]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::storage::MemStorage;

    fn mem(capacity: u64) -> MemStorage {
        MemStorage::new(HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64)
    }

    #[test]
    fn formats_a_zeroed_storage_and_appends_in_order() {
        let s = mem(4);
        let mut j = Journal::open_in(Box::new(s.clone()), 4, 1).unwrap();
        assert_eq!(j.opened(), (OpenKind::Created, 0));
        let h0 = j.last_hash();
        for i in 0..4 {
            assert_eq!(j.append(&AuditEvent::reload(i, 1)).unwrap(), i);
        }
        assert_ne!(j.last_hash(), h0);
        assert!(matches!(
            j.append(&AuditEvent::reload(9, 1)),
            Err(JournalError::Full { capacity: 4 })
        ));
        assert_eq!(j.unflushed_records(), 4);
        j.flush().unwrap();
        assert_eq!(s.pending_writes(), 0);
    }

    #[test]
    fn refuses_a_storage_that_does_not_fit_the_capacity() {
        assert!(matches!(
            Journal::open_in(Box::new(mem(4)), 5, 1),
            Err(JournalError::BadCapacity { capacity: 5 })
        ));
        assert!(matches!(
            Journal::open_in(Box::new(mem(0)), 0, 1),
            Err(JournalError::BadCapacity { capacity: 0 })
        ));
    }

    #[test]
    fn a_full_segment_rolls_over_and_the_chain_continues() {
        use crate::journal::format::{Slot, decode_slot};
        use crate::journal::storage::MemSegments;
        let first = mem(4);
        let segments = MemSegments::new();
        let mut j = Journal::open_in(Box::new(first.clone()), 4, 1)
            .unwrap()
            .with_rollover(Box::new(segments.clone()), 3)
            .unwrap();
        for i in 0..4 {
            assert_eq!(j.append(&AuditEvent::reload(i, 1)).unwrap(), i);
        }
        let head = j.last_hash();
        let first_id = j.file_id();
        // The fifth record starts segment 1: its SegmentStart is index 4.
        assert_eq!(j.append(&AuditEvent::reload(4, 1)).unwrap(), 5);
        assert_eq!((j.segment(), j.segment_records(), j.records()), (1, 2, 6));
        assert_eq!((j.capacity(), j.rollovers()), (3, 1));
        assert_eq!(first.pending_writes(), 0, "segment 0 was flushed first");
        let created = segments.created();
        assert_eq!(created.len(), 1);
        let image = created[0].live_image();
        let (header, header_hash) =
            Header::decode(image[..HEADER_SIZE].try_into().unwrap()).unwrap();
        let link = header.link.unwrap();
        assert_eq!((link.segment, link.base_index), (1, 4));
        assert_eq!(link.prev_file_id, first_id);
        let Slot::Committed(start) = decode_slot(
            image[HEADER_SIZE..HEADER_SIZE + RECORD_SIZE]
                .try_into()
                .unwrap(),
        ) else {
            panic!("no SegmentStart")
        };
        assert_eq!(start.prev_segment_hash(), Some(head));
        assert_eq!(start.check(4, &header_hash), Ok(()));
        // Reopened, the segment continues where it was.
        let again = Journal::open_in(Box::new(created[0].clone()), 3, 9).unwrap();
        assert_eq!((again.records(), again.segment()), (6, 1));
    }

    #[test]
    fn a_rollover_that_cannot_create_the_next_segment_stays_full() {
        use crate::journal::storage::MemSegments;
        let segments = MemSegments::new();
        segments.set_failing(true);
        let mut j = Journal::open_in(Box::new(mem(2)), 2, 1)
            .unwrap()
            .with_rollover(Box::new(segments.clone()), 2)
            .unwrap();
        j.append(&AuditEvent::reload(0, 1)).unwrap();
        j.append(&AuditEvent::reload(1, 1)).unwrap();
        assert!(matches!(
            j.append(&AuditEvent::reload(2, 1)),
            Err(JournalError::Rollover { segment: 1, .. })
        ));
        assert_eq!((j.segment(), j.records()), (0, 2));
        segments.set_failing(false);
        assert_eq!(j.append(&AuditEvent::reload(3, 1)).unwrap(), 3);
        assert!(
            Journal::open_in(Box::new(mem(2)), 2, 1)
                .unwrap()
                .with_rollover(Box::new(MemSegments::new()), 1)
                .is_err(),
            "a segment must hold its SegmentStart and a record"
        );
    }

    #[test]
    fn a_write_error_breaks_the_journal() {
        let s = mem(4);
        let mut j = Journal::open_in(Box::new(s.clone()), 4, 1).unwrap();
        s.set_failing(true, false);
        assert!(matches!(
            j.append(&AuditEvent::reload(1, 1)),
            Err(JournalError::Io(_))
        ));
        s.set_failing(false, false);
        assert!(matches!(
            j.append(&AuditEvent::reload(1, 1)),
            Err(JournalError::Broken)
        ));
    }

    fn anchored(s: &MemStorage, capacity: u64) -> Journal {
        Journal::open_in(Box::new(s.clone()), capacity, 1)
            .unwrap()
            .with_anchor(AnchorKey::from_bytes([5; 32]), 4)
            .unwrap()
    }

    fn kinds(j_image: &[u8]) -> Vec<u8> {
        use crate::journal::format::{Slot, decode_slot};
        let mut out = Vec::new();
        for slot in 0.. {
            let at = record_offset(slot) as usize;
            if at + RECORD_SIZE > j_image.len() {
                break;
            }
            match decode_slot(j_image[at..at + RECORD_SIZE].try_into().unwrap()) {
                Slot::Committed(r) => out.push(r.kind_code),
                _ => break,
            }
        }
        out
    }

    #[test]
    fn an_anchored_journal_checkpoints_before_the_stretch_grows_too_long() {
        let s = mem(16);
        let mut j = anchored(&s, 16);
        for i in 0..9 {
            j.append(&AuditEvent::reload(i, 1)).unwrap();
        }
        // 4 records, a checkpoint, 4 more, a checkpoint, the 9th.
        assert_eq!(kinds(&s.live_image()), [6, 6, 6, 6, 15, 6, 6, 6, 6, 15, 6]);
        assert_eq!((j.checkpoints(), j.since_checkpoint()), (2, 1));
        // A periodic checkpoint only if records followed the last.
        j.checkpoint(CheckpointKind::Periodic, 20).unwrap();
        j.checkpoint(CheckpointKind::Periodic, 21).unwrap();
        assert_eq!(j.checkpoints(), 3);
        j.checkpoint(CheckpointKind::Close, 22).unwrap();
        assert_eq!((j.checkpoints(), j.records()), (4, 13));
        // Reopened (as after a crash, 2 records after the last checkpoint),
        // the count resumes from the file.
        j.append(&AuditEvent::reload(30, 1)).unwrap();
        j.append(&AuditEvent::reload(31, 1)).unwrap();
        drop(j);
        let again = anchored(&s, 16);
        assert_eq!(again.since_checkpoint(), 2);
        assert_eq!(again.ended_closed(), (false, true));
    }

    #[test]
    fn every_full_segment_ends_with_a_checkpoint_and_a_close_starts_the_next() {
        use crate::journal::storage::MemSegments;
        let segments = MemSegments::new();
        let first = mem(3);
        let mut j = anchored(&first, 3)
            .with_rollover(Box::new(segments.clone()), 3)
            .unwrap();
        for i in 0..4 {
            j.append(&AuditEvent::reload(i, 1)).unwrap();
        }
        // Each segment's last slot took a checkpoint before the rollover.
        assert_eq!(kinds(&first.live_image()), [6, 6, 15]);
        let created = segments.created();
        assert_eq!(kinds(&created[0].live_image()), [14, 6, 15]);
        assert_eq!(kinds(&created[1].live_image()), [14, 6]);
        j.checkpoint(CheckpointKind::Close, 9).unwrap();
        assert_eq!(kinds(&created[1].live_image()), [14, 6, 15]);

        // A segment full when opened (written without the key): the
        // closing checkpoint starts the next one.
        let full = mem(3);
        let mut plain = Journal::open_in(Box::new(full.clone()), 3, 1).unwrap();
        for i in 0..3 {
            plain.append(&AuditEvent::reload(i, 1)).unwrap();
        }
        drop(plain);
        let segments = MemSegments::new();
        let mut j = anchored(&full, 3)
            .with_rollover(Box::new(segments.clone()), 3)
            .unwrap();
        assert_eq!(j.ended_closed(), (false, false));
        j.checkpoint(CheckpointKind::Close, 9).unwrap();
        assert_eq!(kinds(&segments.created()[0].live_image()), [14, 15]);
        // Without rollover a full journal takes no closing checkpoint.
        let mut j = anchored(&full, 3);
        j.checkpoint(CheckpointKind::Close, 9).unwrap();
        assert_eq!(kinds(&full.live_image()), [6, 6, 6]);
        // An anchored segment needs three slots.
        assert!(matches!(
            Journal::open_in(Box::new(mem(2)), 2, 1)
                .unwrap()
                .with_anchor(AnchorKey::from_bytes([5; 32]), 4),
            Err(JournalError::BadCapacity { capacity: 2 })
        ));
    }
}
