//! Offline checks and listing of a journal file: [`verify`] and [`show`].
//! Both read the file with plain buffered reads (no mapping), so they can be
//! pointed at a copy, or at a live journal (where the record being appended
//! at that instant may read as torn).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::appender::JournalError;
use super::event::{AuditEvent, AuditKind, to_ip};
use super::format::{
    HEADER_INDEX, HEADER_SIZE, Hash, Header, RECORD_SIZE, Record, Slot, decode_slot, hex,
};
use super::scan::Scanner;
use crate::engine::SessionId;

/// External anchors that make removal of whole tail records detectable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The journal must hold at least this many records (it may have grown
    /// since the count was taken).
    pub expect_records: Option<u64>,
    /// With `expect_records = N`: the hash of record `N - 1` (of the header
    /// if `N == 0`). Alone: the hash of the last record.
    pub expect_last: Option<Hash>,
}

/// A journal that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Committed, chained records.
    pub records: u64,
    /// Hash of the last record (of the header if `records == 0`): record it
    /// elsewhere, with `records`, as the anchor for the next verify.
    pub last_hash: Hash,
    pub capacity: u64,
    pub created_ns: u64,
    pub file_id: [u8; 16],
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
        )
    }
}

/// The first thing wrong with a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The first bad record, or [`HEADER_INDEX`] for the header (or a file
    /// that cannot be read).
    pub index: u64,
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

/// Checks the header, then every slot in order: committed records must have
/// consecutive indices from 0 and each must carry the hash of the one
/// before; after the first empty slot every slot must be empty; the file
/// must be exactly as long as the header says; then the anchors in `opts`.
/// Names the first bad record. See `docs/JOURNAL.md`, "Verification".
pub fn verify_with(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let file = File::open(path).map_err(|e| header_error(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| header_error(format!("cannot stat: {e}")))?
        .len();
    verify_reader(BufReader::with_capacity(1 << 16, file), len, opts)
}

/// [`verify_with`] on an image in memory (a `MemStorage`'s, in tests).
pub fn verify_image(image: &[u8], opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_reader(image, image.len() as u64, opts)
}

fn read_failed(e: io::Error) -> VerifyError {
    header_error(format!("read failed: {e}"))
}

fn verify_reader(
    mut r: impl Read,
    len: u64,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    if len < HEADER_SIZE as u64 {
        return Err(header_error(format!(
            "file is {len} bytes, shorter than the header"
        )));
    }
    let mut bytes = [0u8; HEADER_SIZE];
    r.read_exact(&mut bytes).map_err(read_failed)?;
    let (header, header_hash) = Header::decode(&bytes).map_err(header_error)?;

    let mut scan = Scanner::new(header_hash);
    match (opts.expect_records, opts.expect_last) {
        (Some(n), Some(_)) if n > 0 => scan.watch = Some((n - 1, None)),
        (None, Some(hash)) => scan.find = Some((hash, None)),
        _ => {}
    }
    let present = ((len - HEADER_SIZE as u64) / RECORD_SIZE as u64).min(header.capacity);
    let mut slot = [0u8; RECORD_SIZE];
    for index in 0..present {
        r.read_exact(&mut slot).map_err(read_failed)?;
        if !scan.slot(index, &slot) {
            break;
        }
    }

    if let Some((index, problem)) = scan.misplaced {
        return Err(VerifyError { index, problem });
    }
    if let Some(residue) = scan.residue {
        return Err(if residue.first == scan.records {
            VerifyError {
                index: residue.first,
                problem: "commit field does not match the record: edited, or torn by a crash \
                          (the gateway discards a torn tail when it reopens the journal)"
                    .into(),
            }
        } else {
            VerifyError {
                index: scan.records,
                problem: format!(
                    "slot is empty but slot {} after it holds data: record deleted or zeroed \
                     (or lost in a power failure before the gateway reopened the journal)",
                    residue.first
                ),
            }
        });
    }
    if present < header.capacity {
        let into = (len - HEADER_SIZE as u64) % RECORD_SIZE as u64;
        return Err(VerifyError {
            index: present,
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
            index: header.capacity,
            problem: format!("{} bytes after the last slot", len - header.file_len()),
        });
    }

    if let Some(n) = opts.expect_records {
        if scan.records < n {
            return Err(VerifyError {
                index: scan.records,
                problem: format!(
                    "journal holds {} records, the anchor says at least {n}: records {}..{} removed",
                    scan.records,
                    scan.records,
                    n - 1
                ),
            });
        }
        if let Some(want) = opts.expect_last {
            let (index, got) = if n == 0 {
                (HEADER_INDEX, header_hash)
            } else {
                (
                    n - 1,
                    scan.watch
                        .and_then(|(_, h)| h)
                        .expect("records >= n were hashed"),
                )
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
        && scan.last_hash != want
    {
        return Err(match scan.find.and_then(|(_, found)| found) {
            Some(at) => VerifyError {
                index: at + 1,
                problem: format!(
                    "the anchor is the hash of record {at}, and records follow it \
                         (to allow growth, pass --expect-records {})",
                    at + 1
                ),
            },
            None if want == header_hash => VerifyError {
                index: 0,
                problem:
                    "the anchor is the header's hash (an empty journal), and records follow it"
                        .into(),
            },
            None => VerifyError {
                index: scan.records,
                problem: format!(
                    "last hash {} is not the anchor {} and no record has it: \
                         records removed from the tail, or the chain rewritten",
                    hex(&scan.last_hash),
                    hex(&want)
                ),
            },
        });
    }

    Ok(VerifyReport {
        records: scan.records,
        last_hash: scan.last_hash,
        capacity: header.capacity,
        created_ns: header.created_ns,
        file_id: header.file_id,
    })
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
    for _ in 0..present {
        r.read_exact(&mut slot)?;
        let Slot::Committed(record) = decode_slot(&slot) else {
            break;
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

/// The reason's name for its kind, `None` for a kind without reasons and
/// reason 0, the bare number for an undefined code.
fn reason_text(record: &Record) -> Option<String> {
    let named = AuditKind::from_code(record.kind_code).and_then(|k| k.reason_name(record.reason));
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

fn write_line(record: &Record, out: &mut dyn Write) -> io::Result<()> {
    let dash = || "-".to_string();
    writeln!(
        out,
        "{} {} {} key={} addr={} reason={} session={} reactor={} detail={}",
        record.index,
        rfc3339(record.time_ns),
        kind_name(record.kind_code),
        record.key_id,
        to_ip(record.addr).map_or_else(dash, |ip| ip.to_string()),
        reason_text(record).unwrap_or_else(dash),
        session_text(record.session).unwrap_or_else(dash),
        if record.reactor == AuditEvent::REACTOR_NONE {
            dash()
        } else {
            record.reactor.to_string()
        },
        record.detail,
    )
}

/// Every string written is ASCII with no `"` or `\` (kind and reason names,
/// IP addresses, digits, the time), so no escaping is needed: the JSON is
/// written by hand and `serde_json` stays a dev-dependency.
fn write_json(record: &Record, out: &mut dyn Write) -> io::Result<()> {
    fn string_or_null(s: Option<String>) -> String {
        s.map_or_else(|| "null".to_string(), |s| format!("\"{s}\""))
    }
    writeln!(
        out,
        "{{\"index\":{},\"time\":\"{}\",\"time_ns\":{},\"kind\":\"{}\",\"key_id\":{},\"addr\":{},\
         \"reason\":{},\"reason_code\":{},\"session\":{},\"reactor\":{},\"detail\":{},\"hash\":\"{}\"}}",
        record.index,
        rfc3339(record.time_ns),
        record.time_ns,
        kind_name(record.kind_code),
        record.key_id,
        string_or_null(to_ip(record.addr).map(|ip| ip.to_string())),
        string_or_null(reason_text(record)),
        record.reason,
        string_or_null(session_text(record.session)),
        if record.reactor == AuditEvent::REACTOR_NONE {
            "null".to_string()
        } else {
            record.reactor.to_string()
        },
        record.detail,
        hex(&record.hash),
    )
}

/// `time_ns` (Unix epoch) as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, UTC.
pub fn rfc3339(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let nanos = time_ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1..=12), day (1..=31) of the proleptic Gregorian calendar
/// for `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_walk() {
        let mut ymd = (1970i64, 1u32, 1u32);
        for days in 0..200_000i64 {
            assert_eq!(civil_from_days(days), ymd, "day {days}");
            let leap = ymd.0 % 4 == 0 && (ymd.0 % 100 != 0 || ymd.0 % 400 == 0);
            let month_days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            ymd.2 += 1;
            if ymd.2 > month_days[ymd.1 as usize - 1] {
                ymd.2 = 1;
                ymd.1 += 1;
                if ymd.1 > 12 {
                    ymd.1 = 1;
                    ymd.0 += 1;
                }
            }
        }
    }
}
