//! Issue 10, item 6: anchor-key checkpoints. The hash chain alone can be
//! recomputed by whoever can write the file; a checkpoint (HMAC-SHA256
//! under a key the file does not hold, over the chain head) cannot.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::constants::JOURNAL_CHECKPOINT_RECORDS;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::journal::format::{
    HEADER_SIZE, RECORD_COMMIT_OFFSET, RECORD_PREV_HASH_OFFSET, RECORD_SIZE, Slot, decode_slot,
    record_offset,
};
use ordergate::journal::{AnchorKey, AuditEvent, CheckpointKind, Journal, audit_main};
use ordergate::wire::codes::{Environment, Scopes};
use sha2::{Digest, Sha256};

const T0: u64 = 1_764_000_000_000_000_000;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ordergate-anchor-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("{}\n", format!("{byte:02x}").repeat(32))).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn run(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = audit_main(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// What an attacker with write access and no key does: edits record
/// `slot` with `edit`, then recomputes every record's `prev_hash` and
/// commit from there on, so the chain verifies again.
fn rewrite_chain(path: &Path, slot: u64, edit: impl FnOnce(&mut [u8])) {
    let mut image = fs::read(path).unwrap();
    let at = record_offset(slot) as usize;
    edit(&mut image[at..at + RECORD_SIZE]);
    let mut prev: Option<[u8; 32]> = None;
    let mut i = 0u64;
    loop {
        let at = record_offset(i) as usize;
        if at + RECORD_SIZE > image.len() || image[at..at + RECORD_SIZE].iter().all(|&b| b == 0) {
            break;
        }
        let rec = &mut image[at..at + RECORD_SIZE];
        if i >= slot {
            if let Some(p) = prev {
                rec[RECORD_PREV_HASH_OFFSET..RECORD_PREV_HASH_OFFSET + 32].copy_from_slice(&p);
            }
            let h: [u8; 32] = Sha256::digest(&rec[..RECORD_COMMIT_OFFSET]).into();
            rec[RECORD_COMMIT_OFFSET..].copy_from_slice(&h[..8]);
        }
        let Slot::Committed(r) = decode_slot(rec[..].try_into().unwrap()) else {
            panic!("slot {i} not committed after the rewrite")
        };
        prev = Some(r.hash);
        i += 1;
    }
    assert!(image.len() > HEADER_SIZE);
    fs::write(path, image).unwrap();
}

/// A journal of `events` reload records written with the anchor key
/// `key` (checkpoints every 64 records), closed by a clean stop.
fn anchored_journal(path: &Path, key: u8, events: u64) {
    let mut j = Journal::open(path, 1024)
        .unwrap()
        .with_anchor(AnchorKey::from_bytes([key; 32]), JOURNAL_CHECKPOINT_RECORDS)
        .unwrap();
    for n in 0..events {
        j.append(&AuditEvent::reload(T0 + n, n as u32)).unwrap();
    }
    j.checkpoint(CheckpointKind::Close, T0 + events).unwrap();
    j.flush().unwrap();
}

/// Slot `slot` and every later one zeroed: the records removed from the
/// end, the file's length kept (as the chain alone cannot see).
fn chop(path: &Path, slot: u64) {
    let mut image = fs::read(path).unwrap();
    let at = record_offset(slot) as usize;
    image[at..].fill(0);
    fs::write(path, image).unwrap();
}

/// The attacker's other tool: record `slot` deleted, the records after it
/// moved up, re-indexed and re-chained.
fn delete_record(path: &Path, slot: u64) {
    let mut image = fs::read(path).unwrap();
    let at = record_offset(slot) as usize;
    let end = image.len();
    image.copy_within(at + RECORD_SIZE..end, at);
    image[end - RECORD_SIZE..].fill(0);
    let mut i = slot;
    loop {
        let at = record_offset(i) as usize;
        if at + RECORD_SIZE > image.len() || image[at..at + RECORD_SIZE].iter().all(|&b| b == 0) {
            break;
        }
        image[at..at + 8].copy_from_slice(&i.to_le_bytes());
        i += 1;
    }
    fs::write(path, image).unwrap();
    rewrite_chain(path, slot, |_| {});
}

fn verify_args<'a>(file: &'a str, key: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["verify", file, "--anchor-key", key.to_str().unwrap()];
    args.extend_from_slice(more);
    args
}

#[test]
fn a_rewritten_chain_passes_plain_verify_but_not_the_anchor_key() {
    let dir = temp("rewrite");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    // 100 events: checkpoints at 64 (periodic) and 101 (the clean stop).
    anchored_journal(&path, 0x5a, 100);
    let file = path.to_str().unwrap();
    let (code, out, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("records 102 of 1024")
            && out.contains("checkpoints 2 verified with anchor key")
            && out.contains("the last record 101 (CLOSE), closed by a clean stop"),
        "{out}"
    );

    // Record 5's detail edited, the chain recomputed after it.
    rewrite_chain(&path, 5, |r| r[48] ^= 1);
    let (code, out, err) = run(&["verify", file]);
    assert_eq!(code, 0, "the chain alone verifies: {out}{err}");
    assert!(
        out.contains("checkpoints not verified (2 present; give --anchor-key FILE)"),
        "{out}"
    );

    let (code, out, err) = run(&verify_args(file, &key, &[]));
    assert_eq!(code, 1, "the anchor key catches the rewrite: {out}{err}");
    assert!(
        err.contains(&format!(
            "FAILED {file}: record 64: checkpoint MAC does not match: a record before it \
             (from record 0) was changed and the hash chain recomputed"
        )),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_key_fails_naming_the_first_checkpoint() {
    let dir = temp("wrong-key");
    let path = dir.join("audit.journal");
    let wrong = key_file(&dir, "other.key", 0x11);
    anchored_journal(&path, 0x5a, 10);
    let file = path.to_str().unwrap();
    let (code, out, err) = run(&verify_args(file, &wrong, &[]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("record 10: checkpoint made with anchor key")
            && err.contains("not with the key given"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncation_back_to_a_checkpoint_is_caught_by_expect_closed() {
    let dir = temp("truncate");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    anchored_journal(&path, 0x5a, 100);
    let file = path.to_str().unwrap();

    // The closing checkpoint cut off: 36 records after the last one.
    chop(&path, 101);
    let (code, out, _) = run(&["verify", file]);
    assert_eq!(code, 0, "the chain cannot tell: {out}");
    let (code, out, err) = run(&verify_args(file, &key, &[]));
    assert_eq!(code, 0, "within what an unclean stop leaves: {out}{err}");
    assert!(
        out.contains("the last record 64 (PERIODIC), 36 records after it not authenticated"),
        "{out}"
    );
    let (code, _, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "record 64: the journal ends 36 records after this PERIODIC checkpoint, not \
             with a clean stop's (--expect-closed)"
        ),
        "{err}"
    );

    // Cut back to the checkpoint itself: only --expect-closed can tell.
    chop(&path, 65);
    let (code, _, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("record 64: the journal ends right after"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_removed_are_caught() {
    let dir = temp("removed");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    anchored_journal(&path, 0x5a, 200);
    let file = path.to_str().unwrap();

    // The checkpoint at 64 deleted, everything after it moved up and
    // re-chained: the next checkpoint's MAC no longer matches.
    let one = dir.join("one.journal");
    fs::copy(&path, &one).unwrap();
    delete_record(&one, 64);
    let (code, _, _) = run(&["verify", one.to_str().unwrap()]);
    assert_eq!(code, 0, "the chain cannot tell");
    let (code, _, err) = run(&verify_args(one.to_str().unwrap(), &key, &[]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("record 128: checkpoint MAC does not match"),
        "{err}"
    );

    // Every checkpoint deleted: a journal that looks written without a key.
    for slot in [203, 194, 129, 64] {
        delete_record(&path, slot);
    }
    let (code, out, _) = run(&["verify", file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoints not verified (0 present"), "{out}");
    let (code, _, err) = run(&verify_args(file, &key, &[]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("record 0: no checkpoint in 200 records"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_full_segment_ends_with_a_checkpoint_and_the_chain_verifies_across() {
    let dir = temp("segments");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    {
        let mut j = Journal::open_segments(&path, 64, true)
            .unwrap()
            .with_anchor(
                AnchorKey::from_bytes([0x5a; 32]),
                JOURNAL_CHECKPOINT_RECORDS,
            )
            .unwrap();
        for n in 0..300 {
            j.append(&AuditEvent::reload(T0 + n, 1)).unwrap();
        }
        j.checkpoint(CheckpointKind::Close, T0 + 300).unwrap();
        j.flush().unwrap();
        assert!(j.segment() >= 4);
    }
    for segment in 0..4u64 {
        let name = if segment == 0 {
            path.clone()
        } else {
            PathBuf::from(format!("{}.{segment}", path.display()))
        };
        let mut text = Vec::new();
        ordergate::journal::show(&name, false, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let last = text.lines().last().unwrap();
        assert!(
            last.contains(" Checkpoint ") && last.contains("reason=SEGMENT_END"),
            "segment {segment} ends with {last}"
        );
    }
    let file = path.to_str().unwrap();
    let (code, out, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("closed by a clean stop"), "{out}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_anchor_key_file_others_may_read_is_refused_naming_it() {
    let dir = temp("mode");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    anchored_journal(&path, 0x5a, 3);
    let (code, _, err) = run(&verify_args(path.to_str().unwrap(), &key, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "anchor key file {} has mode 0644: it must not be accessible by group or others \
             (chmod 600)",
            key.display()
        )),
        "{err}"
    );

    // The gateway does not start with it either.
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_anchor_key_file: Some(key.clone()),
        ..GatewaySpec::default()
    };
    let keys = KeyTable::from_entries(vec![
        KeyEntry::new(
            1,
            Secret::from_bytes([7; 32]),
            Scopes::TRADE,
            Environment::Production,
        )
        .allow_any(),
    ])
    .unwrap();
    let err = match Gateway::start(spec, keys) {
        Ok(gw) => {
            gw.shutdown();
            panic!("started with a readable anchor key file")
        }
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("anchor key file {} has mode 0644", key.display())),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The gateway with `audit_anchor_key_file`: checkpoints counted (stats id
/// 613), a clean stop closes the journal, and a restart on a journal whose
/// end was cut off says so.
#[test]
fn the_gateway_checkpoints_closes_and_notices_a_cut_end() {
    let dir = temp("gateway");
    let path = dir.join("audit.journal");
    let key = key_file(&dir, "anchor.key", 0x5a);
    let keys = || {
        KeyTable::from_entries(vec![
            KeyEntry::new(
                1,
                Secret::from_bytes([7; 32]),
                Scopes::TRADE,
                Environment::Production,
            )
            .allow_any(),
        ])
        .unwrap()
    };
    // No periodic checkpoint: a run that took over a second on a loaded
    // machine wrote one more and shifted every record counted below.
    let spec = || GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1024,
        audit_anchor_key_file: Some(key.clone()),
        audit_checkpoint_interval: std::time::Duration::from_secs(3600),
        ..GatewaySpec::default()
    };
    let gw = Gateway::start(spec(), keys()).unwrap();
    assert_eq!(gw.anchor_tag, Some(AnchorKey::from_bytes([0x5a; 32]).tag()));
    assert_eq!(gw.previous_run_closed, None, "a new journal");
    let report = gw.shutdown();
    let j = report.journal.unwrap();
    assert_eq!((j.checkpoints, j.records), (1, 2), "JournalOpened, Close");
    assert!(
        ordergate::cli::summary(
            &ordergate::gateway::GatewayReport {
                reactors: Vec::new(),
                engine: Default::default(),
                journal: Some(j),
            },
            std::time::Duration::from_secs(1)
        )
        .contains("journal checkpoints: 1 written with anchor key"),
    );
    let file = path.to_str().unwrap();
    let (code, out, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 0, "{out}{err}");

    // A clean restart: the previous run closed.
    let gw = Gateway::start(spec(), keys()).unwrap();
    assert_eq!(gw.previous_run_closed, Some(true));
    let health = gw.journal_health.clone().unwrap();
    gw.shutdown();
    assert_eq!(health.figures().checkpoints, 1, "this run's close");

    // Its closing checkpoint cut off while the gateway is down: the next
    // start says so, and verify names the run that did not close.
    chop(&path, 3);
    let gw = Gateway::start(spec(), keys()).unwrap();
    assert_eq!(gw.previous_run_closed, Some(false));
    gw.shutdown();
    let (code, out, err) = run(&verify_args(file, &key, &["--expect-closed"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 runs ended without a clean stop (the last before record 3)"),
        "{out}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
