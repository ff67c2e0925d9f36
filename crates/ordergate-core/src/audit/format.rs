//! The on-disk layout: header and record offsets (chained from each other),
//! encoding, decoding and hashing. Pure: no I/O. The diagrams are in the
//! [module docs](super) and `docs/JOURNAL.md`.

use sha2::{Digest, Sha256};

use super::event::{AuditEvent, AuditKind, CheckpointKind};

/// First bytes of every journal file.
pub const MAGIC: [u8; 8] = *b"OGAUDIT1";
/// Format version written; bumped on any layout change. Version 2 gave the
/// header its segment fields (rollover) and the record its `of_kind` and
/// `last_ns` fields (pre-auth aggregates), out of bytes that version 1
/// kept zero. Version 3 stores a LogonAccepted's request time in `last_ns`
/// and adds the Checkpoint kind (15); the layout is otherwise version 2's.
pub const VERSION: u32 = 3;
/// Oldest version this build reads: a version-1 file is a first segment
/// whose segment fields are zero, and is read (and continued) as such.
pub const VERSION_MIN: u32 = 1;

// Header ------------------------------------------------------------------

pub const HEADER_MAGIC_OFFSET: usize = 0;
pub const HEADER_VERSION_OFFSET: usize = HEADER_MAGIC_OFFSET + 8;
pub const HEADER_RECORD_SIZE_OFFSET: usize = HEADER_VERSION_OFFSET + 4;
pub const HEADER_CAPACITY_OFFSET: usize = HEADER_RECORD_SIZE_OFFSET + 4;
pub const HEADER_CREATED_NS_OFFSET: usize = HEADER_CAPACITY_OFFSET + 8;
pub const HEADER_FILE_ID_OFFSET: usize = HEADER_CREATED_NS_OFFSET + 8;
/// Version 2: the segment's number, 0 for the first.
pub const HEADER_SEGMENT_OFFSET: usize = HEADER_FILE_ID_OFFSET + 16;
/// Version 2: the global index of the segment's record 0 (records in every
/// earlier segment).
pub const HEADER_BASE_INDEX_OFFSET: usize = HEADER_SEGMENT_OFFSET + 8;
/// Version 2: the previous segment's `file_id` (zero for the first).
pub const HEADER_PREV_FILE_ID_OFFSET: usize = HEADER_BASE_INDEX_OFFSET + 8;
pub const HEADER_RESERVED_OFFSET: usize = HEADER_PREV_FILE_ID_OFFSET + 16;
pub const HEADER_HASH_OFFSET: usize = HEADER_RESERVED_OFFSET + 16;
pub const HEADER_SIZE: usize = HEADER_HASH_OFFSET + 32;

// Record ------------------------------------------------------------------

pub const RECORD_INDEX_OFFSET: usize = 0;
pub const RECORD_TIME_OFFSET: usize = RECORD_INDEX_OFFSET + 8;
pub const RECORD_KEY_ID_OFFSET: usize = RECORD_TIME_OFFSET + 8;
pub const RECORD_SESSION_OFFSET: usize = RECORD_KEY_ID_OFFSET + 8;
pub const RECORD_ADDR_OFFSET: usize = RECORD_SESSION_OFFSET + 8;
pub const RECORD_DETAIL_OFFSET: usize = RECORD_ADDR_OFFSET + 16;
pub const RECORD_REASON_OFFSET: usize = RECORD_DETAIL_OFFSET + 4;
pub const RECORD_REACTOR_OFFSET: usize = RECORD_REASON_OFFSET + 2;
pub const RECORD_KIND_OFFSET: usize = RECORD_REACTOR_OFFSET + 2;
/// Version 2, PreAuthAggregate only (zero otherwise): the kind folded.
pub const RECORD_OF_KIND_OFFSET: usize = RECORD_KIND_OFFSET + 1;
pub const RECORD_RESERVED_A_OFFSET: usize = RECORD_OF_KIND_OFFSET + 1;
pub const RECORD_PREV_HASH_OFFSET: usize = RECORD_RESERVED_A_OFFSET + 6;
/// Version 2, PreAuthAggregate: the last folded event's time. Version 3,
/// LogonAccepted: the Logon's request time; Checkpoint: the anchor key's
/// tag. Zero for every other kind.
pub const RECORD_LAST_NS_OFFSET: usize = RECORD_PREV_HASH_OFFSET + 32;
pub const RECORD_RESERVED_B_OFFSET: usize = RECORD_LAST_NS_OFFSET + 8;
/// The commit field: written last, after everything before it.
pub const RECORD_COMMIT_OFFSET: usize = RECORD_RESERVED_B_OFFSET + 16;
pub const RECORD_SIZE: usize = RECORD_COMMIT_OFFSET + 8;

const _: () = assert!(HEADER_SIZE == 128);
const _: () = assert!(RECORD_SIZE == 128);
// Version 1 hashed the same 96 bytes and kept zero what version 2 uses.
const _: () = assert!(HEADER_HASH_OFFSET == 96);
const _: () = assert!(RECORD_PREV_HASH_OFFSET == 64 && RECORD_COMMIT_OFFSET == 120);
// Records are 128-aligned in the file and 4096 is a multiple of 128, so no
// record straddles a page (the unit of mmap write-back) or a 512-byte sector.
const _: () = assert!(HEADER_SIZE.is_multiple_of(RECORD_SIZE));
const _: () = assert!(4096 % RECORD_SIZE == 0);
const _: () = assert!(RECORD_PREV_HASH_OFFSET.is_multiple_of(8));

/// `index` of `ordergate::journal::VerifyError` and `JournalError::Corrupt`
/// when the header, not a record, is at fault.
pub const HEADER_INDEX: u64 = u64::MAX;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

#[inline]
fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

/// The decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Record slots in the file; the file is exactly
    /// `HEADER_SIZE + capacity * RECORD_SIZE` bytes.
    pub capacity: u64,
    pub created_ns: u64,
    /// Random, so records copied from another journal break the chain even
    /// if everything else in the two headers is equal.
    pub file_id: [u8; 16],
    /// Where this segment continues the journal; `None` for the first
    /// segment (and every version-1 file).
    pub link: Option<SegmentLink>,
}

/// What a segment after the first says about its place in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentLink {
    /// 1 for the second segment, and so on.
    pub segment: u64,
    /// Global index of this segment's record 0: the records of every
    /// earlier segment.
    pub base_index: u64,
    /// The previous segment's `file_id`.
    pub prev_file_id: [u8; 16],
}

impl Header {
    /// File length the header promises.
    pub const fn file_len(&self) -> u64 {
        HEADER_SIZE as u64 + self.capacity * RECORD_SIZE as u64
    }

    /// The segment's number: 0 for the first.
    pub const fn segment(&self) -> u64 {
        match self.link {
            Some(link) => link.segment,
            None => 0,
        }
    }

    /// Global index of the segment's record 0.
    pub const fn base_index(&self) -> u64 {
        match self.link {
            Some(link) => link.base_index,
            None => 0,
        }
    }

    /// The header's bytes (always the current [`VERSION`]) and its hash
    /// (the `prev_hash` of record 0).
    pub fn encode(&self) -> ([u8; HEADER_SIZE], Hash) {
        let mut b = [0u8; HEADER_SIZE];
        b[HEADER_MAGIC_OFFSET..HEADER_VERSION_OFFSET].copy_from_slice(&MAGIC);
        b[HEADER_VERSION_OFFSET..HEADER_RECORD_SIZE_OFFSET].copy_from_slice(&VERSION.to_le_bytes());
        b[HEADER_RECORD_SIZE_OFFSET..HEADER_CAPACITY_OFFSET]
            .copy_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
        b[HEADER_CAPACITY_OFFSET..HEADER_CREATED_NS_OFFSET]
            .copy_from_slice(&self.capacity.to_le_bytes());
        b[HEADER_CREATED_NS_OFFSET..HEADER_FILE_ID_OFFSET]
            .copy_from_slice(&self.created_ns.to_le_bytes());
        b[HEADER_FILE_ID_OFFSET..HEADER_SEGMENT_OFFSET].copy_from_slice(&self.file_id);
        if let Some(link) = self.link {
            b[HEADER_SEGMENT_OFFSET..HEADER_BASE_INDEX_OFFSET]
                .copy_from_slice(&link.segment.to_le_bytes());
            b[HEADER_BASE_INDEX_OFFSET..HEADER_PREV_FILE_ID_OFFSET]
                .copy_from_slice(&link.base_index.to_le_bytes());
            b[HEADER_PREV_FILE_ID_OFFSET..HEADER_RESERVED_OFFSET]
                .copy_from_slice(&link.prev_file_id);
        }
        let hash = sha256(&b[..HEADER_HASH_OFFSET]);
        b[HEADER_HASH_OFFSET..HEADER_SIZE].copy_from_slice(&hash);
        (b, hash)
    }

    /// Checks magic, version, record size, reserved bytes, the segment
    /// fields and the header hash; returns the header and its hash.
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Result<(Header, Hash), String> {
        if b[HEADER_MAGIC_OFFSET..HEADER_VERSION_OFFSET] != MAGIC {
            return Err("not an ordergate audit journal (bad magic)".into());
        }
        let version = u32_at(b, HEADER_VERSION_OFFSET);
        if !(VERSION_MIN..=VERSION).contains(&version) {
            return Err(format!(
                "unsupported version {version} (this build reads {VERSION_MIN}..={VERSION})"
            ));
        }
        let record_size = u32_at(b, HEADER_RECORD_SIZE_OFFSET);
        if record_size as usize != RECORD_SIZE {
            return Err(format!("record size {record_size}, expected {RECORD_SIZE}"));
        }
        let hash = sha256(&b[..HEADER_HASH_OFFSET]);
        if b[HEADER_HASH_OFFSET..HEADER_SIZE] != hash {
            return Err("header hash does not match the header (header edited)".into());
        }
        // Version 1 kept every byte from the segment field on zero.
        let reserved_from = if version == 1 {
            HEADER_SEGMENT_OFFSET
        } else {
            HEADER_RESERVED_OFFSET
        };
        if b[reserved_from..HEADER_HASH_OFFSET].iter().any(|&x| x != 0) {
            return Err("reserved header bytes are not zero".into());
        }
        let segment = u64_at(b, HEADER_SEGMENT_OFFSET);
        let base_index = u64_at(b, HEADER_BASE_INDEX_OFFSET);
        let prev_file_id: [u8; 16] = b[HEADER_PREV_FILE_ID_OFFSET..HEADER_RESERVED_OFFSET]
            .try_into()
            .expect("16 bytes");
        let link = if segment == 0 {
            if base_index != 0 || prev_file_id != [0; 16] {
                return Err(
                    "segment 0 names a base index or a previous file: segment fields edited".into(),
                );
            }
            None
        } else {
            // Every earlier segment holds at least one record.
            if base_index < segment || base_index > BASE_INDEX_MAX || prev_file_id == [0; 16] {
                return Err(format!(
                    "segment {segment} with base index {base_index} and previous file id {}: \
                     not a segment a rollover writes",
                    hex(&prev_file_id)
                ));
            }
            Some(SegmentLink {
                segment,
                base_index,
                prev_file_id,
            })
        };
        let header = Header {
            capacity: u64_at(b, HEADER_CAPACITY_OFFSET),
            created_ns: u64_at(b, HEADER_CREATED_NS_OFFSET),
            file_id: b[HEADER_FILE_ID_OFFSET..HEADER_SEGMENT_OFFSET]
                .try_into()
                .expect("16 bytes"),
            link,
        };
        if header.capacity == 0 || header.capacity > CAPACITY_RECORDS_MAX {
            return Err(format!(
                "capacity {} records is outside 1..={CAPACITY_RECORDS_MAX}",
                header.capacity
            ));
        }
        Ok((header, hash))
    }
}

/// Defined in `constants` with their reasons; here too for the old paths.
pub use crate::constants::{
    JOURNAL_BASE_INDEX_MAX as BASE_INDEX_MAX, JOURNAL_CAPACITY_RECORDS_MAX as CAPACITY_RECORDS_MAX,
};

/// Byte offset of record slot `index`.
#[inline]
pub const fn record_offset(index: u64) -> u64 {
    HEADER_SIZE as u64 + index * RECORD_SIZE as u64
}

/// The version-2 record fields an [`AuditEvent`] does not carry: only the
/// journal thread's [`PreAuthAggregate`](AuditKind::PreAuthAggregate)
/// records set them; every other record has [`Extra::NONE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// The kind the aggregate folds.
    pub of_kind: u8,
    /// The last folded event's time.
    pub last_ns: u64,
}

impl Extra {
    pub const NONE: Extra = Extra {
        of_kind: 0,
        last_ns: 0,
    };
}

/// Record `index` of `event`, chained to `prev_hash`: its bytes and its
/// hash. The hash covers bytes `[0, RECORD_COMMIT_OFFSET)`; the commit
/// field is the hash's first 8 bytes, so all 128 bytes are bound by it.
pub fn encode_record(index: u64, prev_hash: &Hash, e: &AuditEvent) -> ([u8; RECORD_SIZE], Hash) {
    encode_record_with(index, prev_hash, e, &Extra::NONE)
}

/// [`encode_record`] with the aggregate fields.
pub fn encode_record_with(
    index: u64,
    prev_hash: &Hash,
    e: &AuditEvent,
    extra: &Extra,
) -> ([u8; RECORD_SIZE], Hash) {
    let mut b = [0u8; RECORD_SIZE];
    b[RECORD_INDEX_OFFSET..RECORD_TIME_OFFSET].copy_from_slice(&index.to_le_bytes());
    b[RECORD_TIME_OFFSET..RECORD_KEY_ID_OFFSET].copy_from_slice(&e.time_ns.to_le_bytes());
    b[RECORD_KEY_ID_OFFSET..RECORD_SESSION_OFFSET].copy_from_slice(&e.key_id.to_le_bytes());
    b[RECORD_SESSION_OFFSET..RECORD_ADDR_OFFSET].copy_from_slice(&e.session.to_le_bytes());
    b[RECORD_ADDR_OFFSET..RECORD_DETAIL_OFFSET].copy_from_slice(&e.addr);
    b[RECORD_DETAIL_OFFSET..RECORD_REASON_OFFSET].copy_from_slice(&e.detail.to_le_bytes());
    b[RECORD_REASON_OFFSET..RECORD_REACTOR_OFFSET].copy_from_slice(&e.reason.to_le_bytes());
    b[RECORD_REACTOR_OFFSET..RECORD_KIND_OFFSET].copy_from_slice(&e.reactor.to_le_bytes());
    b[RECORD_KIND_OFFSET] = e.kind.code();
    b[RECORD_OF_KIND_OFFSET] = extra.of_kind;
    b[RECORD_PREV_HASH_OFFSET..RECORD_LAST_NS_OFFSET].copy_from_slice(prev_hash);
    let second = if e.kind == AuditKind::LogonAccepted {
        e.request_time_ns
    } else {
        extra.last_ns
    };
    b[RECORD_LAST_NS_OFFSET..RECORD_RESERVED_B_OFFSET].copy_from_slice(&second.to_le_bytes());
    commit(b)
}

/// Hashes bytes `[0, RECORD_COMMIT_OFFSET)` and writes the commit.
pub(crate) fn commit(mut b: [u8; RECORD_SIZE]) -> ([u8; RECORD_SIZE], Hash) {
    let hash = sha256(&b[..RECORD_COMMIT_OFFSET]);
    b[RECORD_COMMIT_OFFSET..RECORD_SIZE].copy_from_slice(&hash[..8]);
    (b, hash)
}

/// What a record slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// All zero: never written (the file is preallocated with zeros).
    Empty,
    /// Not all zero, but the commit field does not match the hash of the
    /// rest: torn by a crash, or edited.
    Uncommitted,
    /// The commit field matches: the record is whole as written (or was
    /// rewritten by someone who recomputed the commit; the chain checks
    /// that).
    Committed(Record),
}

/// A committed record, decoded. Its fields are not yet checked against the
/// chain: see [`Record::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub index: u64,
    pub prev_hash: Hash,
    /// SHA-256 of bytes `[0, RECORD_COMMIT_OFFSET)`: the next record's
    /// `prev_hash`.
    pub hash: Hash,
    pub time_ns: u64,
    pub key_id: u64,
    pub session: u64,
    pub addr: [u8; 16],
    pub detail: u32,
    pub reason: u16,
    pub reactor: u16,
    /// Raw: may be undefined in an edited record; [`Record::check`] refuses.
    pub kind_code: u8,
    /// PreAuthAggregate: the kind folded (raw); 0 for every other kind.
    pub of_kind: u8,
    /// PreAuthAggregate: the last folded event's time; 0 otherwise.
    pub last_ns: u64,
    reserved_zero: bool,
}

impl Record {
    /// The event, if the kind byte is defined.
    pub fn event(&self) -> Option<AuditEvent> {
        Some(AuditEvent {
            time_ns: self.time_ns,
            key_id: self.key_id,
            session: self.session,
            addr: self.addr,
            detail: self.detail,
            reason: self.reason,
            reactor: self.reactor,
            kind: AuditKind::from_code(self.kind_code)?,
            request_time_ns: self.request_time_ns().unwrap_or(0),
        })
    }

    /// A LogonAccepted's request time; `None` for other kinds, and for a
    /// LogonAccepted written before version 3 (0 there).
    pub fn request_time_ns(&self) -> Option<u64> {
        (self.kind_code == AuditKind::LogonAccepted.code() && self.last_ns != 0)
            .then_some(self.last_ns)
    }

    /// A Checkpoint's kind, the records its writer lets pass between two
    /// checkpoints, and its key's tag; `None` for other kinds.
    pub fn checkpoint(&self) -> Option<(CheckpointKind, u64, u64)> {
        if self.kind_code != AuditKind::Checkpoint.code() {
            return None;
        }
        Some((
            CheckpointKind::from_code(self.reason)?,
            u64::from(self.detail),
            self.last_ns,
        ))
    }

    /// The aggregate fields.
    pub fn extra(&self) -> Extra {
        Extra {
            of_kind: self.of_kind,
            last_ns: self.last_ns,
        }
    }

    /// The previous segment's last hash, for a SegmentStart record.
    pub fn prev_segment_hash(&self) -> Option<Hash> {
        self.event().and_then(|e| e.prev_segment_hash())
    }

    /// Checks that this record is the one that belongs at global index
    /// `index` after a record (or header) whose hash is `prev_hash`. (Where
    /// a SegmentStart may stand is the scan's check: it depends on the
    /// slot.)
    pub fn check(&self, index: u64, prev_hash: &Hash) -> Result<(), String> {
        if self.index != index {
            return Err(format!(
                "index field says {}: a record was deleted, inserted or moved here",
                self.index
            ));
        }
        if self.prev_hash != *prev_hash {
            return Err(if index == 0 {
                "prev_hash is not the header's hash: the record belongs to another \
                 journal, or the header was rewritten"
                    .to_string()
            } else {
                format!(
                    "prev_hash is not the hash of record {}: it or this record was rewritten \
                     with a recomputed commit",
                    index - 1
                )
            });
        }
        let Some(kind) = AuditKind::from_code(self.kind_code) else {
            return Err(format!("undefined kind {}", self.kind_code));
        };
        if !self.reserved_zero {
            return Err("reserved record bytes are not zero".into());
        }
        if kind == AuditKind::PreAuthAggregate {
            if !AuditKind::from_code(self.of_kind).is_some_and(AuditKind::is_pre_auth) {
                return Err(format!(
                    "aggregate of kind {}, which is not a pre-auth kind",
                    self.of_kind
                ));
            }
            if self.detail == 0 || self.last_ns < self.time_ns {
                return Err(format!(
                    "aggregate of {} events from {} to {}: not an aggregate the journal writes",
                    self.detail, self.time_ns, self.last_ns
                ));
            }
        } else if matches!(kind, AuditKind::LogonAccepted | AuditKind::Checkpoint) {
            // `last_ns` holds the request time, or the key's tag.
            if self.of_kind != 0 {
                return Err("reserved record bytes are not zero".into());
            }
            if kind == AuditKind::Checkpoint
                && (CheckpointKind::from_code(self.reason).is_none() || self.detail < 2)
            {
                return Err(format!(
                    "checkpoint of kind {} every {} records: not one the journal writes",
                    self.reason, self.detail
                ));
            }
        } else if self.extra() != Extra::NONE {
            return Err("reserved record bytes are not zero".into());
        }
        Ok(())
    }
}

/// Classifies and decodes one record slot.
pub fn decode_slot(b: &[u8; RECORD_SIZE]) -> Slot {
    if b.iter().all(|&x| x == 0) {
        return Slot::Empty;
    }
    let hash = sha256(&b[..RECORD_COMMIT_OFFSET]);
    if b[RECORD_COMMIT_OFFSET..RECORD_SIZE] != hash[..8] {
        return Slot::Uncommitted;
    }
    Slot::Committed(Record {
        index: u64_at(b, RECORD_INDEX_OFFSET),
        prev_hash: b[RECORD_PREV_HASH_OFFSET..RECORD_LAST_NS_OFFSET]
            .try_into()
            .expect("32 bytes"),
        hash,
        time_ns: u64_at(b, RECORD_TIME_OFFSET),
        key_id: u64_at(b, RECORD_KEY_ID_OFFSET),
        session: u64_at(b, RECORD_SESSION_OFFSET),
        addr: b[RECORD_ADDR_OFFSET..RECORD_DETAIL_OFFSET]
            .try_into()
            .expect("16 bytes"),
        detail: u32_at(b, RECORD_DETAIL_OFFSET),
        reason: u16_at(b, RECORD_REASON_OFFSET),
        reactor: u16_at(b, RECORD_REACTOR_OFFSET),
        kind_code: b[RECORD_KIND_OFFSET],
        of_kind: b[RECORD_OF_KIND_OFFSET],
        last_ns: u64_at(b, RECORD_LAST_NS_OFFSET),
        reserved_zero: b[RECORD_RESERVED_A_OFFSET..RECORD_PREV_HASH_OFFSET]
            .iter()
            .chain(&b[RECORD_RESERVED_B_OFFSET..RECORD_COMMIT_OFFSET])
            .all(|&x| x == 0),
    })
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Parses 64 hex digits (either case) into a hash.
pub fn parse_hash(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::from_ip;
    use crate::engine::SessionId;

    fn header() -> Header {
        Header {
            capacity: 16,
            created_ns: 7,
            file_id: [9; 16],
            link: None,
        }
    }

    #[test]
    fn header_round_trips_and_refuses_any_edit() {
        let (bytes, hash) = header().encode();
        assert_eq!(&bytes[..8], b"OGAUDIT1");
        assert_eq!(Header::decode(&bytes), Ok((header(), hash)));
        for at in 0..HEADER_SIZE {
            let mut edited = bytes;
            edited[at] ^= 1;
            assert!(
                Header::decode(&edited).is_err(),
                "edit at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn a_continuation_header_round_trips_and_checks_its_link() {
        let h = Header {
            link: Some(SegmentLink {
                segment: 2,
                base_index: 30,
                prev_file_id: [3; 16],
            }),
            ..header()
        };
        let (bytes, hash) = h.encode();
        assert_eq!(Header::decode(&bytes), Ok((h, hash)));
        assert_eq!((h.segment(), h.base_index()), (2, 30));
        // A link no rollover writes: fewer records than segments before it.
        let bad = Header {
            link: Some(SegmentLink {
                segment: 2,
                base_index: 1,
                prev_file_id: [3; 16],
            }),
            ..header()
        };
        assert!(Header::decode(&bad.encode().0).is_err());
    }

    #[test]
    fn a_version_1_header_is_read_as_a_first_segment() {
        let (mut bytes, _) = header().encode();
        bytes[HEADER_VERSION_OFFSET..HEADER_RECORD_SIZE_OFFSET]
            .copy_from_slice(&1u32.to_le_bytes());
        let hash = sha256(&bytes[..HEADER_HASH_OFFSET]);
        bytes[HEADER_HASH_OFFSET..].copy_from_slice(&hash);
        assert_eq!(Header::decode(&bytes), Ok((header(), hash)));
        // Version 1 has no segment fields: a non-zero one is an edit.
        bytes[HEADER_SEGMENT_OFFSET] = 1;
        let hash = sha256(&bytes[..HEADER_HASH_OFFSET]);
        bytes[HEADER_HASH_OFFSET..].copy_from_slice(&hash);
        assert!(Header::decode(&bytes).is_err());
    }

    #[test]
    fn a_version_2_header_still_reads_and_logons_then_had_no_request_time() {
        let (mut bytes, _) = header().encode();
        bytes[HEADER_VERSION_OFFSET..HEADER_RECORD_SIZE_OFFSET]
            .copy_from_slice(&2u32.to_le_bytes());
        let hash = sha256(&bytes[..HEADER_HASH_OFFSET]);
        bytes[HEADER_HASH_OFFSET..].copy_from_slice(&hash);
        assert_eq!(Header::decode(&bytes), Ok((header(), hash)));
        let e = AuditEvent::logon_accepted(5, crate::engine::SessionId::new(0, 1, 1), 9, [0; 16]);
        let (b, _) = encode_record(0, &hash, &e);
        let Slot::Committed(r) = decode_slot(&b) else {
            panic!("not committed")
        };
        assert_eq!((r.request_time_ns(), r.check(0, &hash)), (None, Ok(())));
        let (b, _) = encode_record(0, &hash, &e.with_request_time(4));
        let Slot::Committed(r) = decode_slot(&b) else {
            panic!("not committed")
        };
        assert_eq!((r.request_time_ns(), r.check(0, &hash)), (Some(4), Ok(())));
        assert_eq!(r.event(), Some(e.with_request_time(4)));
    }

    #[test]
    fn aggregate_fields_are_only_for_aggregates() {
        let mut e = AuditEvent::empty(AuditKind::PreAuthAggregate, 10);
        e.detail = 3;
        let extra = Extra {
            of_kind: AuditKind::LogonRejected.code(),
            last_ns: 12,
        };
        let (bytes, _) = encode_record_with(0, &[1; 32], &e, &extra);
        let Slot::Committed(r) = decode_slot(&bytes) else {
            panic!("not committed")
        };
        assert_eq!(r.extra(), extra);
        assert_eq!(r.check(0, &[1; 32]), Ok(()));
        for (of_kind, last_ns) in [(AuditKind::Reload.code(), 12), (2, 9), (0, 12)] {
            let extra = Extra { of_kind, last_ns };
            let (bytes, _) = encode_record_with(0, &[1; 32], &e, &extra);
            let Slot::Committed(r) = decode_slot(&bytes) else {
                panic!("not committed")
            };
            assert!(r.check(0, &[1; 32]).is_err(), "{extra:?}");
        }
        let reload = AuditEvent::reload(10, 1);
        let (bytes, _) = encode_record_with(0, &[1; 32], &reload, &extra);
        let Slot::Committed(r) = decode_slot(&bytes) else {
            panic!("not committed")
        };
        assert!(r.check(0, &[1; 32]).is_err(), "extra on a reload");
    }

    #[test]
    fn record_round_trips_and_any_edit_uncommits_it() {
        let e = AuditEvent::logon_accepted(
            123,
            SessionId::new(1, 2, 3),
            1001,
            from_ip("10.0.0.1".parse().unwrap()),
        );
        let prev = [5u8; 32];
        let (bytes, hash) = encode_record(4, &prev, &e);
        let Slot::Committed(r) = decode_slot(&bytes) else {
            panic!("not committed")
        };
        assert_eq!(r.hash, hash);
        assert_eq!(r.event(), Some(e));
        assert_eq!(r.check(4, &prev), Ok(()));
        assert!(r.check(5, &prev).is_err());
        assert!(r.check(4, &[6u8; 32]).is_err());
        for at in 0..RECORD_SIZE {
            let mut edited = bytes;
            edited[at] ^= 0x80;
            assert_eq!(decode_slot(&edited), Slot::Uncommitted, "edit at {at}");
        }
        assert_eq!(decode_slot(&[0; RECORD_SIZE]), Slot::Empty);
    }

    #[test]
    fn hex_round_trips() {
        let h = [0xa5u8; 32];
        assert_eq!(parse_hash(&hex(&h)), Some(h));
        assert_eq!(parse_hash(&hex(&h).to_uppercase()), Some(h));
        assert_eq!(parse_hash("zz"), None);
    }
}
