//! Offline checks and listing of a journal: [`verify`] and [`show`].
//! Both read files with plain buffered reads (no mapping), so they can be
//! pointed at a copy, or at a live journal (where the record being appended
//! at that instant may read as torn).
//!
//! [`verify`] follows the chain from the segment it is given through every
//! later one (`base.N`, `base.N+1`, … while they exist); [`show`] lists one
//! segment file.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::anchor::AnchorKey;
use super::appender::JournalError;
use super::event::{AuditEvent, AuditKind, CheckpointKind, to_ip};
use super::format::{
    HEADER_INDEX, HEADER_SIZE, Hash, Header, RECORD_SIZE, Record, Slot, decode_slot, hex,
};
use super::scan::Scanner;
use super::storage::{segment_base, segment_path};
use crate::engine::SessionId;

/// External anchors that make removal of whole tail records detectable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The journal must hold at least this many records (it may have grown
    /// since the count was taken). Global: every segment's records.
    pub expect_records: Option<u64>,
    /// With `expect_records = N`: the hash of record `N - 1` (of the header
    /// if `N == 0`). Alone: the hash of the last record.
    pub expect_last: Option<Hash>,
}

/// A journal that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Committed, chained records: the global index after the last one
    /// (every segment's records, the archived ones before the first
    /// verified segment included).
    pub records: u64,
    /// Hash of the last record (of the header if `records == 0`): record it
    /// elsewhere, with `records`, as the anchor for the next verify.
    pub last_hash: Hash,
    /// Global index the journal reaches when the last segment is full.
    pub capacity: u64,
    /// Creation time of the first verified segment.
    pub created_ns: u64,
    /// `file_id` of the last segment.
    pub file_id: [u8; 16],
    /// Segment files verified, and the first one's number (segments before
    /// it, archived elsewhere, were not checked).
    pub segments: u64,
    pub first_segment: u64,
    /// Checkpoint records in the verified segments (verified or not).
    pub checkpoint_records: u64,
    /// What the anchor key proved; None: no key given, checkpoints not
    /// verified.
    pub anchor: Option<AnchorReport>,
}

/// The anchor key `verify` checks the checkpoints with, and whether the
/// journal must end with a clean stop's checkpoint (`--expect-closed`: a
/// stopped gateway's journal, or an archived one).
#[derive(Clone, Copy, Debug)]
pub struct Anchoring<'k> {
    pub key: &'k AnchorKey,
    pub expect_closed: bool,
}

impl<'k> Anchoring<'k> {
    pub fn new(key: &'k AnchorKey) -> Anchoring<'k> {
        Anchoring {
            key,
            expect_closed: false,
        }
    }
}

/// What `verify` with an anchor key found: every checkpoint's MAC right,
/// no stretch between two longer than their writer allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorReport {
    /// The key's tag.
    pub tag: u64,
    /// Checkpoints verified.
    pub checkpoints: u64,
    /// The last checkpoint: its global index and kind.
    pub last: u64,
    pub last_kind: CheckpointKind,
    /// Records after the last checkpoint: not authenticated by the key (an
    /// unclean stop, or a gateway still writing, leaves at most the
    /// checkpoint interval of them).
    pub after_last: u64,
    /// Runs of the gateway (with checkpoints) that did not end with a
    /// clean stop's checkpoint, and the JournalOpened record after the
    /// last of them: a crash — or records removed from the end of that run
    /// while the gateway was down.
    pub unclean_ends: u64,
    pub last_unclean: Option<u64>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "records {} of {} last-hash {} file-id {} created {}",
            self.records,
            self.capacity,
            hex(&self.last_hash),
            hex(&self.file_id),
            rfc3339(self.created_ns)
        )?;
        if self.segments > 1 || self.first_segment > 0 {
            write!(
                f,
                " segments {} ({}..={})",
                self.segments,
                self.first_segment,
                self.first_segment + self.segments - 1
            )?;
        }
        if self.first_segment > 0 {
            write!(f, " (segments before {} not checked)", self.first_segment)?;
        }
        match &self.anchor {
            Some(a) => {
                write!(
                    f,
                    "; checkpoints {} verified with anchor key {:016x}, the last record {} ({})",
                    a.checkpoints,
                    a.tag,
                    a.last,
                    a.last_kind.name()
                )?;
                if a.after_last > 0 {
                    write!(
                        f,
                        ", {} records after it not authenticated (an unclean stop, or a gateway \
                         still writing)",
                        a.after_last
                    )?;
                } else if a.last_kind == CheckpointKind::Close {
                    write!(f, ", closed by a clean stop")?;
                }
                if let Some(at) = a.last_unclean {
                    write!(
                        f,
                        "; {} runs ended without a clean stop (the last before record {at}): a \
                         crash, or records removed from the end of that run",
                        a.unclean_ends
                    )?;
                }
            }
            None => write!(
                f,
                "; checkpoints not verified ({} present; give --anchor-key FILE)",
                self.checkpoint_records
            )?,
        }
        Ok(())
    }
}

/// The first thing wrong with a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The first bad record (global index), or [`HEADER_INDEX`] for a
    /// header (or a file that cannot be read).
    pub index: u64,
    /// What is wrong; a problem in a segment after the first verified one,
    /// or between two segments, names the file.
    pub problem: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == HEADER_INDEX {
            write!(f, "header: {}", self.problem)
        } else {
            write!(f, "record {}: {}", self.index, self.problem)
        }
    }
}

impl std::error::Error for VerifyError {}

fn header_error(problem: impl Into<String>) -> VerifyError {
    VerifyError {
        index: HEADER_INDEX,
        problem: problem.into(),
    }
}

/// [`verify_with`] without anchors.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    verify_with(path, &VerifyOptions::default())
}

/// Checks the segment at `path` and every later segment of the same
/// journal, in order, then the anchors in `opts`. In each segment: the
/// header, then every slot: committed records must have consecutive global
/// indices from the segment's base and each must carry the hash of the one
/// before; a continuation segment's first record, and only it, is its
/// SegmentStart; after the first empty slot every slot must be empty; the
/// file must be exactly as long as the header says. Between segments: the
/// next one's header names this one's file id and continues from its
/// record count, and its SegmentStart carries this one's last hash. Names
/// the first bad record. See `docs/JOURNAL.md`, "Verification".
pub fn verify_with(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_anchored(path, opts, None)
}

/// [`verify_with`], and with `key` every checkpoint: its MAC under the key
/// (so no record before it was changed, whatever was recomputed), no more
/// records between two checkpoints than their writer allows (none
/// removed), at least one checkpoint, and no more records after the last
/// than an unclean stop leaves (the journal was not cut back). The first
/// checkpoint problem is named after every chain check has passed. See
/// `docs/JOURNAL.md`, "Checkpoints".
pub fn verify_anchored(
    path: &Path,
    opts: &VerifyOptions,
    key: Option<Anchoring<'_>>,
) -> Result<VerifyReport, VerifyError> {
    let mut anchors = Anchors::new(key);
    let mut visit =
        |index: u64, raw: &[u8; RECORD_SIZE], record: &Record| anchors.record(index, raw, record);
    let first = scan_file_with(path, opts, &mut visit)?;
    let base = segment_base(path, first.header.segment());
    let mut chain = Chain::new(first);
    loop {
        let next = segment_path(&base, chain.last.header.segment() + 1);
        if std::fs::symlink_metadata(&next).is_err() {
            break;
        }
        let in_file = |e: VerifyError| VerifyError {
            index: e.index,
            problem: format!("in {}: {}", next.display(), e.problem),
        };
        let scan = scan_file_with(&next, opts, &mut visit).map_err(in_file)?;
        chain.link(scan, &next)?;
    }
    chain.finish(opts, anchors)
}

/// [`verify_with`] on one segment's image in memory (a `MemStorage`'s, in
/// tests).
pub fn verify_image(image: &[u8], opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_images_anchored(&[image], opts, None)
}

/// [`verify_with`] on a chain of segment images in memory, first to last.
pub fn verify_images(images: &[&[u8]], opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_images_anchored(images, opts, None)
}

/// [`verify_anchored`] on a chain of segment images in memory.
pub fn verify_images_anchored(
    images: &[&[u8]],
    opts: &VerifyOptions,
    key: Option<Anchoring<'_>>,
) -> Result<VerifyReport, VerifyError> {
    let (first, rest) = images
        .split_first()
        .ok_or_else(|| header_error("no segments"))?;
    let mut anchors = Anchors::new(key);
    let mut visit =
        |index: u64, raw: &[u8; RECORD_SIZE], record: &Record| anchors.record(index, raw, record);
    let mut chain = Chain::new(scan_segment(*first, first.len() as u64, opts, &mut visit)?);
    for (i, image) in rest.iter().enumerate() {
        let name = PathBuf::from(format!("image {}", i + 1));
        let scan = scan_segment(*image, image.len() as u64, opts, &mut visit).map_err(|e| {
            VerifyError {
                index: e.index,
                problem: format!("in {}: {}", name.display(), e.problem),
            }
        })?;
        chain.link(scan, &name)?;
    }
    chain.finish(opts, anchors)
}

/// What is called with each committed, chained record of a segment, in
/// order: its global index, its bytes, and the record.
pub(super) type Visit<'v> = dyn FnMut(u64, &[u8; RECORD_SIZE], &Record) + 'v;

/// One segment file, checked on its own (as in [`verify`], but not linked
/// to its neighbours), each record given to `visit`.
pub(super) fn scan_file_with(
    path: &Path,
    opts: &VerifyOptions,
    visit: &mut Visit<'_>,
) -> Result<Segment, VerifyError> {
    let file = File::open(path).map_err(|e| header_error(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| header_error(format!("cannot stat: {e}")))?
        .len();
    scan_segment(BufReader::with_capacity(1 << 16, file), len, opts, visit)
}

/// The checkpoint checks of [`verify_anchored`], record by record. The
/// first problem is kept and named at the end, after the chain's own
/// checks (which name structural damage more precisely).
struct Anchors<'k> {
    key: Option<&'k AnchorKey>,
    expect_closed: bool,
    /// The last record was a clean stop's checkpoint (a SegmentStart
    /// after it changes nothing).
    closed: bool,
    unclean_ends: u64,
    last_unclean: Option<u64>,
    /// Checkpoint records seen.
    seen: u64,
    /// Records since the last checkpoint (or the first record verified).
    since: u64,
    first: Option<u64>,
    /// The last checkpoint: global index, kind, interval.
    last: Option<(u64, CheckpointKind, u64)>,
    problem: Option<VerifyError>,
}

impl<'k> Anchors<'k> {
    fn new(anchoring: Option<Anchoring<'k>>) -> Anchors<'k> {
        Anchors {
            key: anchoring.map(|a| a.key),
            expect_closed: anchoring.is_some_and(|a| a.expect_closed),
            closed: false,
            unclean_ends: 0,
            last_unclean: None,
            seen: 0,
            since: 0,
            first: None,
            last: None,
            problem: None,
        }
    }

    fn record(&mut self, index: u64, raw: &[u8; RECORD_SIZE], record: &Record) {
        self.first.get_or_insert(index);
        let Some((kind, interval, tag)) = record.checkpoint() else {
            self.since += 1;
            let code = record.kind_code;
            if code == AuditKind::JournalOpened.code() {
                // A start: did the run before it (one with checkpoints)
                // end with a clean stop's?
                if self.last.is_some() && !self.closed {
                    self.unclean_ends += 1;
                    self.last_unclean = Some(index);
                }
                self.closed = false;
            } else if code != AuditKind::SegmentStart.code() {
                self.closed = false;
            }
            return;
        };
        // A checkpoint right after a clean stop's (the last slot of its
        // segment, say) leaves it clean.
        self.closed = kind == CheckpointKind::Close || (self.closed && self.since == 0);
        self.seen += 1;
        if let Some(key) = self.key
            && self.problem.is_none()
        {
            let from = match self.last {
                Some((at, _, _)) => format!("after checkpoint {at}"),
                None => format!("from record {}", self.first.unwrap_or(index)),
            };
            let problem = if tag != key.tag() {
                Some(format!(
                    "checkpoint made with anchor key {tag:016x}, not with the key given \
                     ({:016x}): the wrong key file, or a checkpoint copied from another journal",
                    key.tag()
                ))
            } else if !key.verifies(raw) {
                Some(format!(
                    "checkpoint MAC does not match: a record before it ({from}) was changed and \
                     the hash chain recomputed, or the checkpoint itself was edited or moved"
                ))
            } else if self.since > interval {
                Some(format!(
                    "{} records {from} without a checkpoint, more than the {interval} the writer \
                     lets pass: checkpoints were removed",
                    self.since
                ))
            } else {
                None
            };
            self.problem = problem.map(|problem| VerifyError { index, problem });
        }
        self.since = 0;
        self.last = Some((index, kind, interval));
    }

    /// With a key: the first problem, or what the checkpoints proved.
    fn finish(self, records: u64) -> Result<Option<AnchorReport>, VerifyError> {
        let Some(key) = self.key else {
            return Ok(None);
        };
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let Some((last, last_kind, interval)) = self.last else {
            return Err(VerifyError {
                index: self.first.unwrap_or(records),
                problem: format!(
                    "no checkpoint in {} records: a journal written with an anchor key has one \
                     at least every {} records; this one was written without the key, or its \
                     checkpoints were removed",
                    self.since,
                    crate::constants::JOURNAL_CHECKPOINT_RECORDS
                ),
            });
        };
        if self.expect_closed && !(self.closed && self.since == 0) {
            return Err(VerifyError {
                index: last,
                problem: format!(
                    "the journal ends {} after this {} checkpoint, not with a clean stop's \
                     (--expect-closed): the records after it were removed back to it, or the \
                     gateway did not stop cleanly",
                    match self.since {
                        0 => "right".to_string(),
                        n => format!("{n} records"),
                    },
                    last_kind.name()
                ),
            });
        }
        if self.since > interval {
            return Err(VerifyError {
                index: last + interval + 1,
                problem: format!(
                    "{} records after the last checkpoint (record {last}), more than the \
                     {interval} an unclean stop can leave: from this record on nothing is \
                     authenticated; checkpoints were removed from the end",
                    self.since
                ),
            });
        }
        Ok(Some(AnchorReport {
            tag: key.tag(),
            checkpoints: self.seen,
            last,
            last_kind,
            after_last: self.since,
            unclean_ends: self.unclean_ends,
            last_unclean: self.last_unclean,
        }))
    }
}

fn read_failed(e: io::Error) -> VerifyError {
    header_error(format!("read failed: {e}"))
}

/// One verified segment.
#[derive(Clone, Copy)]
pub(super) struct Segment {
    header: Header,
    header_hash: Hash,
    /// Committed, chained slots.
    records: u64,
    last_hash: Hash,
    /// The previous segment's hash its SegmentStart carries.
    prev_segment_hash: Option<Hash>,
    /// The hash of the anchor record `expect_records - 1`, if here.
    watched: Option<Hash>,
    /// The first global index whose hash is `expect_last`, if here.
    found: Option<u64>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.header.base_index() + self.records
    }
}

/// Checks one segment on its own: everything but the links to its
/// neighbours and the anchors.
fn scan_segment(
    mut r: impl Read,
    len: u64,
    opts: &VerifyOptions,
    visit: &mut Visit<'_>,
) -> Result<Segment, VerifyError> {
    if len < HEADER_SIZE as u64 {
        return Err(header_error(format!(
            "file is {len} bytes, shorter than the header"
        )));
    }
    let mut bytes = [0u8; HEADER_SIZE];
    r.read_exact(&mut bytes).map_err(read_failed)?;
    let (header, header_hash) = Header::decode(&bytes).map_err(header_error)?;
    let base = header.base_index();

    let mut scan = Scanner::new(&header, header_hash);
    match (opts.expect_records, opts.expect_last) {
        (Some(n), Some(_)) if n > 0 => scan.watch = Some((n - 1, None)),
        (None, Some(hash)) => scan.find = Some((hash, None)),
        _ => {}
    }
    let present = ((len - HEADER_SIZE as u64) / RECORD_SIZE as u64).min(header.capacity);
    let mut slot = [0u8; RECORD_SIZE];
    let mut prev_segment_hash = None;
    for index in 0..present {
        r.read_exact(&mut slot).map_err(read_failed)?;
        if !scan.slot(index, &slot) {
            break;
        }
        if let Some(record) = &scan.taken {
            visit(base + index, &slot, record);
            if index == 0 && header.link.is_some() {
                prev_segment_hash = record.prev_segment_hash();
            }
        }
    }

    if let Some((index, problem)) = scan.misplaced {
        return Err(VerifyError { index, problem });
    }
    if let Some(residue) = scan.residue {
        return Err(if residue.first == scan.records {
            VerifyError {
                index: base + residue.first,
                problem: "commit field does not match the record: edited, or torn by a crash \
                          (the gateway discards a torn tail when it reopens the journal)"
                    .into(),
            }
        } else {
            VerifyError {
                index: base + scan.records,
                problem: format!(
                    "slot is empty but record {} after it holds data: record deleted or zeroed \
                     (or lost in a power failure before the gateway reopened the journal)",
                    base + residue.first
                ),
            }
        });
    }
    if present < header.capacity {
        let into = (len - HEADER_SIZE as u64) % RECORD_SIZE as u64;
        return Err(VerifyError {
            index: base + present,
            problem: if into == 0 {
                format!(
                    "file ends before this slot: truncated (header says {} slots)",
                    header.capacity
                )
            } else {
                format!(
                    "file ends {into} bytes into this slot: truncated (header says {} slots)",
                    header.capacity
                )
            },
        });
    }
    if len > header.file_len() {
        return Err(VerifyError {
            index: base + header.capacity,
            problem: format!("{} bytes after the last slot", len - header.file_len()),
        });
    }
    if header.link.is_some() && scan.records == 0 {
        return Err(VerifyError {
            index: base,
            problem: "a continuation segment without its SegmentStart record: zeroed".into(),
        });
    }
    Ok(Segment {
        header,
        header_hash,
        records: scan.records,
        last_hash: scan.last_hash,
        prev_segment_hash,
        watched: scan.watch.and_then(|(_, h)| h),
        found: scan.find.and_then(|(_, f)| f),
    })
}

/// Segments verified so far, linked.
struct Chain {
    first: Segment,
    last: Segment,
    segments: u64,
    watched: Option<Hash>,
    found: Option<u64>,
}

impl Chain {
    fn new(first: Segment) -> Chain {
        Chain {
            watched: first.watched,
            found: first.found,
            segments: 1,
            last: first,
            first,
        }
    }

    /// Checks that `next` (the file `name`) continues the last segment.
    fn link(&mut self, next: Segment, name: &Path) -> Result<(), VerifyError> {
        let prev = &self.last;
        let at = |problem: String| header_error(format!("in {}: {problem}", name.display()));
        let Some(link) = next.header.link else {
            return Err(at(format!(
                "is a first segment (segment 0), where segment {} belongs",
                prev.header.segment() + 1
            )));
        };
        if link.segment != prev.header.segment() + 1 {
            return Err(at(format!(
                "says segment {}, where segment {} belongs",
                link.segment,
                prev.header.segment() + 1
            )));
        }
        if link.prev_file_id != prev.header.file_id {
            return Err(at(format!(
                "continues the segment with file id {}, but the segment before it has file id \
                 {}: a segment was replaced",
                hex(&link.prev_file_id),
                hex(&prev.header.file_id)
            )));
        }
        let end = prev.end();
        if link.base_index > end {
            let removed = if link.base_index - 1 == end {
                format!("record {end} was")
            } else {
                format!("records {end}..={} were", link.base_index - 1)
            };
            return Err(VerifyError {
                index: end,
                problem: format!(
                    "segment {} ends before this record, but {} continues from record {}: \
                     {removed} removed from the end of segment {}",
                    prev.header.segment(),
                    name.display(),
                    link.base_index,
                    prev.header.segment()
                ),
            });
        }
        if link.base_index < end {
            return Err(VerifyError {
                index: link.base_index,
                problem: format!(
                    "segment {} holds records up to {}, but {} continues from record {}: \
                     records were added to segment {} after it was closed",
                    prev.header.segment(),
                    end - 1,
                    name.display(),
                    link.base_index,
                    prev.header.segment()
                ),
            });
        }
        if next.prev_segment_hash != Some(prev.last_hash) {
            return Err(VerifyError {
                index: end.saturating_sub(1),
                problem: format!(
                    "the last record of segment {} has hash {}, but the SegmentStart of {} \
                     carries {}: the end of segment {} was rewritten",
                    prev.header.segment(),
                    hex(&prev.last_hash),
                    name.display(),
                    next.prev_segment_hash
                        .map_or_else(|| "none".into(), |h| hex(&h)),
                    prev.header.segment()
                ),
            });
        }
        self.watched = self.watched.or(next.watched);
        self.found = self.found.or(next.found);
        self.segments += 1;
        self.last = next;
        Ok(())
    }

    /// The anchors, the checkpoints, and the report.
    fn finish(
        self,
        opts: &VerifyOptions,
        anchors: Anchors<'_>,
    ) -> Result<VerifyReport, VerifyError> {
        let records = self.last.end();
        let last_hash = self.last.last_hash;
        let first_hash = self.first.header_hash;
        if let Some(n) = opts.expect_records {
            if records < n {
                return Err(VerifyError {
                    index: records,
                    problem: format!(
                        "journal holds {records} records, the anchor says at least {n}: records \
                         {records}..{} removed",
                        n - 1
                    ),
                });
            }
            if let Some(want) = opts.expect_last {
                let (index, got) = if n == 0 {
                    (HEADER_INDEX, Some(first_hash))
                } else {
                    (n - 1, self.watched)
                };
                let Some(got) = got else {
                    return Err(VerifyError {
                        index: n - 1,
                        problem: format!(
                            "the anchor is record {}, which is in a segment before the first \
                             one verified",
                            n - 1
                        ),
                    });
                };
                if got != want {
                    return Err(VerifyError {
                        index,
                        problem: format!(
                            "hash {} is not the anchor {}: the chain up to here was rewritten",
                            hex(&got),
                            hex(&want)
                        ),
                    });
                }
            }
        } else if let Some(want) = opts.expect_last
            && last_hash != want
        {
            return Err(match self.found {
                Some(at) => VerifyError {
                    index: at + 1,
                    problem: format!(
                        "the anchor is the hash of record {at}, and records follow it \
                         (to allow growth, pass --expect-records {})",
                        at + 1
                    ),
                },
                None if want == first_hash => VerifyError {
                    index: 0,
                    problem:
                        "the anchor is the header's hash (an empty journal), and records follow it"
                            .into(),
                },
                None => VerifyError {
                    index: records,
                    problem: format!(
                        "last hash {} is not the anchor {} and no record has it: \
                         records removed from the tail, or the chain rewritten",
                        hex(&last_hash),
                        hex(&want)
                    ),
                },
            });
        }
        let checkpoint_records = anchors.seen;
        let anchor = anchors.finish(records)?;
        Ok(VerifyReport {
            records,
            last_hash,
            capacity: self.last.header.base_index() + self.last.header.capacity,
            created_ns: self.first.header.created_ns,
            file_id: self.last.header.file_id,
            segments: self.segments,
            first_segment: self.first.header.segment(),
            checkpoint_records,
            anchor,
        })
    }
}

/// Lists the journal at `path`: one line per committed record, in slot
/// order, up to the first slot that is not committed. Human-readable, or
/// one JSON object per line with `json`. Returns the records listed.
///
/// `show` does not check the chain: run [`verify`] for that.
pub fn show(path: &Path, json: bool, out: &mut dyn Write) -> Result<u64, JournalError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    show_reader(BufReader::with_capacity(1 << 16, file), len, json, out)
}

/// [`show`] of an image in memory.
pub fn show_image(image: &[u8], json: bool, out: &mut dyn Write) -> Result<u64, JournalError> {
    show_reader(image, image.len() as u64, json, out)
}

fn show_reader(
    mut r: impl Read,
    len: u64,
    json: bool,
    out: &mut dyn Write,
) -> Result<u64, JournalError> {
    if len < HEADER_SIZE as u64 {
        return Err(JournalError::Corrupt {
            index: HEADER_INDEX,
            problem: format!("file is {len} bytes, shorter than the header"),
        });
    }
    let mut bytes = [0u8; HEADER_SIZE];
    r.read_exact(&mut bytes)?;
    let (header, _) = Header::decode(&bytes).map_err(|problem| JournalError::Corrupt {
        index: HEADER_INDEX,
        problem,
    })?;
    let present = ((len - HEADER_SIZE as u64) / RECORD_SIZE as u64).min(header.capacity);
    let mut slot = [0u8; RECORD_SIZE];
    let mut shown = 0;
    let base = header.link.as_ref().map_or(0, |l| l.base_index);
    for i in 0..present {
        r.read_exact(&mut slot)?;
        let record = match decode_slot(&slot) {
            Slot::Committed(record) => record,
            Slot::Empty => break,
            // Said, not skipped: what follows a bad record cannot be
            // trusted, and a show that stops silently reads as complete.
            Slot::Uncommitted => {
                return Err(JournalError::Corrupt {
                    index: base + i,
                    problem: format!(
                        "commit field does not match the record: edited, or torn by a crash \
                         ({shown} records shown before it; `audit verify` checks the whole file)"
                    ),
                });
            }
        };
        if json {
            write_json(&record, out)?;
        } else {
            write_line(&record, out)?;
        }
        shown += 1;
    }
    Ok(shown)
}

fn kind_name(code: u8) -> String {
    match AuditKind::from_code(code) {
        Some(kind) => kind.name().to_string(),
        None => format!("Kind{code}"),
    }
}

/// The reason's name for its kind (for an aggregate, the kind it folds),
/// `None` for a kind without reasons and reason 0, the bare number for an
/// undefined code.
fn reason_text(record: &Record) -> Option<String> {
    let kind = match AuditKind::from_code(record.kind_code) {
        Some(AuditKind::PreAuthAggregate) => AuditKind::from_code(record.of_kind),
        other => other,
    };
    let named = kind.and_then(|k| k.reason_name(record.reason));
    match named {
        Some(name) => Some(name.to_string()),
        None if record.reason == 0 => None,
        None => Some(record.reason.to_string()),
    }
}

fn session_text(session: u64) -> Option<String> {
    if session == 0 {
        return None;
    }
    let s = SessionId(session);
    Some(format!("{}/{}/{}", s.reactor(), s.slot(), s.generation()))
}

/// The fields of a record as `show` prints them: a SegmentStart's
/// `key_id`, `session` and `addr` hold a hash, shown as such.
struct Shown {
    key_id: u64,
    addr: Option<String>,
    session: Option<String>,
    reactor: Option<u16>,
    /// Extra `name=value` pairs, in order (text) / keys (JSON): strings
    /// or numbers.
    more: Vec<(&'static str, Value)>,
}

fn shown(record: &Record) -> Shown {
    let reactor = (record.reactor != AuditEvent::REACTOR_NONE).then_some(record.reactor);
    let kind = AuditKind::from_code(record.kind_code);
    if let Some(prev) = record.prev_segment_hash() {
        return Shown {
            key_id: 0,
            addr: None,
            session: None,
            reactor,
            more: vec![("prev_segment_hash", hex(&prev).into())],
        };
    }
    if let Some((_, _, tag)) = record.checkpoint() {
        // key_id, session and addr hold the MAC.
        let mut mac = [0u8; 32];
        mac[..8].copy_from_slice(&record.key_id.to_le_bytes());
        mac[8..16].copy_from_slice(&record.session.to_le_bytes());
        mac[16..].copy_from_slice(&record.addr);
        return Shown {
            key_id: 0,
            addr: None,
            session: None,
            reactor,
            more: vec![
                ("key_tag", format!("{tag:016x}").into()),
                ("mac", hex(&mac).into()),
            ],
        };
    }
    let mut more = Vec::new();
    if let Some(request) = record.request_time_ns() {
        more.push(("request_time", rfc3339(request).into()));
        more.push(("request_time_ns", request.into()));
    }
    if kind == Some(AuditKind::PreAuthAggregate) {
        let of = AuditKind::from_code(record.of_kind).map_or_else(
            || format!("Kind{}", record.of_kind),
            |k| k.name().to_string(),
        );
        more.push(("of_kind", of.into()));
        more.push(("last_time", rfc3339(record.last_ns).into()));
        more.push(("last_time_ns", record.last_ns.into()));
    }
    Shown {
        key_id: record.key_id,
        addr: to_ip(record.addr).map(|ip| ip.to_string()),
        session: session_text(record.session),
        reactor,
        more,
    }
}

fn write_line(record: &Record, out: &mut dyn Write) -> io::Result<()> {
    let dash = || "-".to_string();
    let s = shown(record);
    write!(
        out,
        "{} {} {} key={} addr={} reason={} session={} reactor={} detail={}",
        record.index,
        rfc3339(record.time_ns),
        kind_name(record.kind_code),
        s.key_id,
        s.addr.unwrap_or_else(dash),
        reason_text(record).unwrap_or_else(dash),
        s.session.unwrap_or_else(dash),
        s.reactor.map_or_else(dash, |r| r.to_string()),
        record.detail,
    )?;
    for (name, value) in s
        .more
        .iter()
        .filter(|(n, _)| *n != "last_time_ns" && *n != "request_time_ns")
    {
        match value {
            Value::String(text) => write!(out, " {name}={text}")?,
            number => write!(out, " {name}={number}")?,
        }
    }
    writeln!(out)
}

/// One record as a JSON object on one line (serde_json), keys in the
/// order listed: a map serialized entry by entry keeps it.
fn write_json(record: &Record, out: &mut dyn Write) -> io::Result<()> {
    struct Json<'a>(&'a Record);
    impl Serialize for Json<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let record = self.0;
            let s = shown(record);
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("index", &record.index)?;
            map.serialize_entry("time", &rfc3339(record.time_ns))?;
            map.serialize_entry("time_ns", &record.time_ns)?;
            map.serialize_entry("kind", &kind_name(record.kind_code))?;
            map.serialize_entry("key_id", &s.key_id)?;
            map.serialize_entry("addr", &s.addr)?;
            map.serialize_entry("reason", &reason_text(record))?;
            map.serialize_entry("reason_code", &record.reason)?;
            map.serialize_entry("session", &s.session)?;
            map.serialize_entry("reactor", &s.reactor)?;
            map.serialize_entry("detail", &record.detail)?;
            map.serialize_entry("hash", &hex(&record.hash))?;
            for (name, value) in &s.more {
                map.serialize_entry(name, value)?;
            }
            map.end()
        }
    }
    serde_json::to_writer(&mut *out, &Json(record))?;
    writeln!(out)
}

/// `time_ns` (Unix epoch) as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, UTC: the
/// keys file's [`Rfc3339`](crate::auth::policy::Rfc3339) (jiff) with all
/// nine digits of the fraction, so every line has the same width.
pub fn rfc3339(time_ns: u64) -> String {
    format!("{:.9}", crate::auth::policy::Rfc3339(time_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::format::{RECORD_SIZE, record_offset};
    use crate::journal::storage::{MemSegments, MemStorage};
    use crate::journal::{Journal, format::encode_record};

    /// A journal of segments of `capacity` slots holding `records` reload
    /// records after a first segment of `capacity` slots: the images, first
    /// to last, and the hash after each record (global index order; the
    /// SegmentStarts included).
    fn chain(capacity: u64, records: u64) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let first = MemStorage::new(HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64);
        let segments = MemSegments::new();
        let mut j = Journal::open_in(Box::new(first.clone()), capacity, 1)
            .unwrap()
            .with_rollover(Box::new(segments.clone()), capacity)
            .unwrap();
        let mut hashes = Vec::new();
        for n in 0..records {
            let segment = j.segment();
            j.append(&AuditEvent::reload(n, 1)).unwrap();
            if j.segment() != segment {
                // The SegmentStart before it: its hash is not observable
                // from outside, so recompute from the image later.
                hashes.push([0; 32]);
            }
            hashes.push(j.last_hash());
        }
        j.flush().unwrap();
        let mut images = vec![first.live_image()];
        images.extend(segments.created().iter().map(|s| s.live_image()));
        (images, hashes)
    }

    fn refs(images: &[Vec<u8>]) -> Vec<&[u8]> {
        images.iter().map(|i| i.as_slice()).collect()
    }

    #[test]
    fn a_chain_of_segments_verifies_with_global_indices_and_anchors() {
        // 8 slots: 8 + (1 + 7) + (1 + 4) = 21 records in 3 segments.
        let (images, hashes) = chain(8, 19);
        assert_eq!(images.len(), 3);
        let report = verify_images(&refs(&images), &VerifyOptions::default()).unwrap();
        assert_eq!(
            (report.records, report.segments, report.capacity),
            (21, 3, 24)
        );
        assert_eq!(report.last_hash, *hashes.last().unwrap());
        // An anchor in the middle segment, and the last hash alone.
        let mid = VerifyOptions {
            expect_records: Some(12),
            expect_last: Some(hashes[11]),
        };
        assert!(verify_images(&refs(&images), &mid).is_ok());
        let wrong = VerifyOptions {
            expect_records: Some(12),
            expect_last: Some(hashes[10]),
        };
        assert_eq!(verify_images(&refs(&images), &wrong).unwrap_err().index, 11);
        let last = VerifyOptions {
            expect_records: None,
            expect_last: Some(hashes[11]),
        };
        let e = verify_images(&refs(&images), &last).unwrap_err();
        assert_eq!(e.index, 12, "{e}");
        let more = VerifyOptions {
            expect_records: Some(22),
            expect_last: None,
        };
        assert_eq!(verify_images(&refs(&images), &more).unwrap_err().index, 21);
        // The later segments alone: verifiable, from their base.
        let tail = verify_images(&refs(&images[1..]), &VerifyOptions::default()).unwrap();
        assert_eq!(
            (tail.records, tail.first_segment, tail.segments),
            (21, 1, 2)
        );
        assert!(
            tail.to_string().contains("segments before 1 not checked"),
            "{tail}"
        );
    }

    #[test]
    fn breaks_between_segments_are_named() {
        let (images, _) = chain(8, 12);
        // The last record of segment 0 zeroed: that segment alone verifies.
        let mut cut = images.clone();
        let at = record_offset(7) as usize;
        cut[0][at..at + RECORD_SIZE].fill(0);
        assert!(verify_image(&cut[0], &VerifyOptions::default()).is_ok());
        let e = verify_images(&refs(&cut), &VerifyOptions::default()).unwrap_err();
        assert_eq!(e.index, 7, "{e}");
        assert!(e.problem.contains("record 7 was removed"), "{e}");

        // The last record of segment 0 rewritten with its commit
        // recomputed: segment 0 verifies, the SegmentStart does not match.
        let mut rewritten = images.clone();
        let Slot::Committed(r6) = decode_slot(
            rewritten[0][record_offset(6) as usize..][..RECORD_SIZE]
                .try_into()
                .unwrap(),
        ) else {
            panic!()
        };
        let (bytes, _) = encode_record(7, &r6.hash, &AuditEvent::reload(99, 99));
        rewritten[0][at..at + RECORD_SIZE].copy_from_slice(&bytes);
        assert!(verify_image(&rewritten[0], &VerifyOptions::default()).is_ok());
        let e = verify_images(&refs(&rewritten), &VerifyOptions::default()).unwrap_err();
        assert_eq!(e.index, 7, "{e}");
        assert!(e.problem.contains("was rewritten"), "{e}");

        // A segment missing from the middle, or swapped: the header says so.
        let (three, _) = chain(8, 19);
        let skipped = [three[0].as_slice(), three[2].as_slice()];
        let e = verify_images(&skipped, &VerifyOptions::default()).unwrap_err();
        assert_eq!(e.index, HEADER_INDEX, "{e}");
        assert!(
            e.problem.contains("segment 2, where segment 1 belongs"),
            "{e}"
        );
        let (other, _) = chain(8, 12);
        let replaced = [images[0].as_slice(), other[1].as_slice()];
        let e = verify_images(&replaced, &VerifyOptions::default()).unwrap_err();
        assert!(e.problem.contains("a segment was replaced"), "{e}");

        // A SegmentStart anywhere else is out of place; a continuation
        // segment must start with one.
        let mut moved = images.clone();
        let start = moved[1][record_offset(0) as usize..][..RECORD_SIZE].to_vec();
        moved[1][record_offset(1) as usize..][..RECORD_SIZE].copy_from_slice(&start);
        assert!(verify_images(&refs(&moved), &VerifyOptions::default()).is_err());
        let mut emptied = images;
        let end = emptied[1].len();
        emptied[1][HEADER_SIZE..end].fill(0);
        let e = verify_images(&refs(&emptied), &VerifyOptions::default()).unwrap_err();
        assert_eq!(e.index, 8, "{e}");
    }

    #[test]
    fn show_prints_aggregates_and_segment_starts() {
        let (images, _) = chain(4, 5);
        let mut out = Vec::new();
        show_image(&images[1], false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("4 ")
                && first.contains(" SegmentStart key=0 addr=- reason=- session=- reactor=- detail=0 prev_segment_hash="),
            "{first}"
        );

        let storage = MemStorage::new(HEADER_SIZE as u64 + 4 * RECORD_SIZE as u64);
        let mut j = Journal::open_in(Box::new(storage.clone()), 4, 1).unwrap();
        let mut e = AuditEvent::empty(AuditKind::PreAuthAggregate, 1_764_000_000_000_000_000);
        e.detail = 3000;
        e.reason = crate::wire::codes::LogonRejectReason::MALFORMED.wire();
        e.addr = crate::journal::from_ip("10.0.0.9".parse().unwrap());
        e.reactor = 0;
        let extra = crate::journal::Extra {
            of_kind: AuditKind::LogonRejected.code(),
            last_ns: 1_764_000_000_500_000_000,
        };
        j.append_with(&e, &extra).unwrap();
        let image = storage.live_image();
        let mut out = Vec::new();
        show_image(&image, false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 2025-11-24T16:00:00.000000000Z PreAuthAggregate key=0 addr=10.0.0.9 \
             reason=MALFORMED session=- reactor=0 detail=3000 of_kind=LogonRejected \
             last_time=2025-11-24T16:00:00.500000000Z\n"
        );
        let mut out = Vec::new();
        show_image(&image, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.trim_end().ends_with(
                "\"of_kind\":\"LogonRejected\",\"last_time\":\"2025-11-24T16:00:00.500000000Z\",\
                 \"last_time_ns\":1764000000500000000}"
            ),
            "{text}"
        );
    }

    #[test]
    fn timestamps_print_known_days() {
        const DAY: u64 = 86_400_000_000_000;
        assert_eq!(rfc3339(59 * DAY), "1970-03-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(11_016 * DAY), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(rfc3339(19_782 * DAY), "2024-02-29T00:00:00.000000000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }
}
