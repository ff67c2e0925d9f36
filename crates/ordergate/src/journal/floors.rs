//! Reading the logon replay floors back from the journal at start-up.
//!
//! The nonce cache that refuses a replayed Logon is in memory: after a
//! restart it is empty, and a Logon captured within the skew window before
//! the restart would be accepted again. What survives the restart is the
//! journal: every accepted logon is a LogonAccepted record with the Logon's
//! request time (format version 3). [`read_logon_floors`] reads every
//! segment present and gives each key's latest one; the gateway starts
//! each key's nonce cache with it as the key's floor
//! ([`LogonFloor`](crate::limits::LogonFloor)), and a Logon whose request
//! time is not later is refused STALE_LOGON.
//!
//! ```text
//!  record                          floor it gives
//!  LogonAccepted, version 3        key_id: the Logon's request time
//!  LogonAccepted, older            key_id: the record's time + skew (the latest
//!                                  request time the gateway could have accepted then)
//!  Gap (events lost, ring full)    every key: the Gap's time + skew (the lost
//!                                  events were logons, perhaps, before it)
//! ```
//!
//! Every segment from 0 to the latest is read (those moved away to an
//! archive are skipped and counted), each checked as `verify` checks one
//! segment. One that does not read to its end — a bad header, a record
//! out of the chain, data after the end — stops the start: the floors it
//! holds cannot be known, and a journal somebody edited is not one to trust
//! for them. The latest segment has been opened (and any crash residue
//! discarded) before this runs.

use std::path::Path;

use super::event::AuditKind;
use super::format::{RECORD_SIZE, Record};
use super::storage::{latest_segment, segment_path};
use super::verify::{VerifyOptions, scan_file_with};
use crate::limits::FloorBook;

use crate::constants::AHEAD_NAMED_MAX;

/// What [`read_logon_floors`] found.
#[derive(Clone, Debug, Default)]
pub struct LogonFloors {
    /// The floors, by key id, and the one every key shares.
    pub book: FloorBook,
    /// Segment files read, and segment numbers before the latest whose
    /// file is not there (archived).
    pub segments: u64,
    pub segments_missing: u64,
    /// Records read, LogonAccepted among them, and those of them written
    /// before version 3 (no request time: the record's time + skew used).
    pub records: u64,
    pub logons: u64,
    pub logons_without_request_time: u64,
    /// Gap records read (each raised every key's floor).
    pub gaps: u64,
    /// Keys whose floor is later than the clock at start plus the skew
    /// (the clock was ahead when they logged on): their logons are refused
    /// STALE_LOGON until the clock passes it. At most `AHEAD_NAMED_MAX`.
    pub ahead: Vec<(u64, u64)>,
}

impl LogonFloors {
    /// The start-up line: what was read, and what stands out.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "logon replay floors: {} keys from {} accepted logons in {} records, {} segments read",
            self.book.len(),
            self.logons,
            self.records,
            self.segments
        );
        if self.segments_missing > 0 {
            s.push_str(&format!(
                " ({} earlier segments not present: archived, not read)",
                self.segments_missing
            ));
        }
        if self.logons_without_request_time > 0 {
            s.push_str(&format!(
                "; {} logons written before version 3 counted at their time + the skew",
                self.logons_without_request_time
            ));
        }
        if self.book.all_keys() > 0 {
            s.push_str(&format!(
                "; every key's logons from before {} are refused ({} audit gaps, {} floors folded)",
                super::rfc3339(self.book.all_keys()),
                self.gaps,
                self.book.folded()
            ));
        }
        for (key, floor) in &self.ahead {
            s.push_str(&format!(
                "; key {key}'s floor {} is ahead of this clock: its logons are refused \
                 STALE_LOGON until then",
                super::rfc3339(*floor)
            ));
        }
        s
    }
}

/// Reads every segment of the journal at `base` (segment 0 to the latest
/// present) and returns each key's replay floor. `skew_ns` is the logon
/// skew window (for records without a request time, and gaps), `now_ns`
/// the wall clock (to name floors ahead of it).
///
/// # Errors
///
/// A segment that cannot be read to its end, named, with the first bad
/// record: the gateway does not start on it (docs/JOURNAL.md, "Replay
/// floors").
pub fn read_logon_floors(base: &Path, skew_ns: u64, now_ns: u64) -> Result<LogonFloors, String> {
    let latest = latest_segment(base).map_err(|e| format!("cannot list the segments: {e}"))?;
    let mut found = LogonFloors::default();
    for segment in 0..=latest {
        let path = segment_path(base, segment);
        if std::fs::symlink_metadata(&path).is_err() {
            found.segments_missing += 1;
            continue;
        }
        let mut visit = |_: u64, _: &[u8; RECORD_SIZE], record: &Record| {
            found.records += 1;
            take(&mut found, record, skew_ns);
        };
        scan_file_with(&path, &VerifyOptions::default(), &mut visit).map_err(|e| {
            format!(
                "{}: {e}; the logon replay floors cannot be read from it (move it aside, \
                 `ordergate audit verify` says what is wrong; the logons it recorded are then \
                 not protected against replay)",
                path.display()
            )
        })?;
        found.segments += 1;
    }
    let horizon = now_ns.saturating_add(skew_ns);
    let mut ahead: Vec<(u64, u64)> = found.book.iter().filter(|(_, f)| *f > horizon).collect();
    ahead.sort_unstable();
    ahead.truncate(AHEAD_NAMED_MAX);
    found.ahead = ahead;
    Ok(found)
}

fn take(found: &mut LogonFloors, record: &Record, skew_ns: u64) {
    match AuditKind::from_code(record.kind_code) {
        Some(AuditKind::LogonAccepted) => {
            found.logons += 1;
            let floor = match record.request_time_ns() {
                Some(request) => request,
                None => {
                    found.logons_without_request_time += 1;
                    record.time_ns.saturating_add(skew_ns)
                }
            };
            found.book.raise(record.key_id, floor);
        }
        Some(AuditKind::Gap) => {
            found.gaps += 1;
            found.book.raise_all(record.time_ns.saturating_add(skew_ns));
        }
        _ => {}
    }
}
