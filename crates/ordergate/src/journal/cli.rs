//! `ordergate audit ...`: argument handling for the two offline commands, so
//! the CLI only forwards its arguments.
//!
//! ```text
//! ordergate audit verify FILE [--expect-records N] [--expect-last HASH] [--anchor-key KEYFILE [--expect-closed]]
//! ordergate audit show FILE [--json]
//! ```
//!
//! With `--anchor-key`, `verify` also checks every checkpoint against the
//! key (docs/JOURNAL.md, "Checkpoints"); without it, it says that they
//! were not verified.
//!
//! `verify` checks FILE and every later segment of its journal (`FILE.1`,
//! `FILE.2`, … given the first; `base.N+1`, … given `base.N`); `show` lists
//! the one segment FILE.
//!
//! Exit codes: 0 success; 1 the journal failed verification (or could not be
//! read); 2 bad arguments (an anchor key file that cannot be used among
//! them).

use std::io::Write;
use std::path::Path;

use super::format::parse_hash;
use super::verify::{Anchoring, VerifyOptions, show, verify_anchored};

pub const USAGE: &str = "usage: ordergate audit verify FILE [--expect-records N] [--expect-last HASH] [--anchor-key KEYFILE [--expect-closed]]\n       \
                         ordergate audit show FILE [--json]\n";

/// Runs `audit` with `args` (the words after `audit`); reports go to `out`,
/// problems to `err`. Returns the exit code.
pub fn audit_main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run(args, out, err) {
        Ok(code) => code,
        Err(usage) => {
            let _ = write!(err, "{usage}\n{USAGE}");
            2
        }
    }
}

fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    let (command, rest) = args.split_first().ok_or("audit: missing command")?;
    match command.as_str() {
        "verify" => {
            let mut file = None;
            let mut opts = VerifyOptions::default();
            let mut key = None;
            let mut expect_closed = false;
            let mut words = rest.iter();
            while let Some(word) = words.next() {
                match word.as_str() {
                    "--expect-records" => {
                        let n = words.next().ok_or("--expect-records needs a count")?;
                        opts.expect_records = Some(
                            n.parse()
                                .map_err(|_| format!("--expect-records: bad count {n:?}"))?,
                        );
                    }
                    "--expect-last" => {
                        let h = words.next().ok_or("--expect-last needs a hash")?;
                        opts.expect_last =
                            Some(parse_hash(h).ok_or_else(|| {
                                format!("--expect-last: not 64 hex digits: {h:?}")
                            })?);
                    }
                    "--anchor-key" => {
                        let path = words.next().ok_or("--anchor-key needs a key file")?;
                        key = Some(crate::keys_file::load_anchor_key(Path::new(path))?);
                    }
                    "--expect-closed" => expect_closed = true,
                    w if w.starts_with('-') => return Err(format!("verify: unknown option {w}")),
                    w if file.is_none() => file = Some(w.to_string()),
                    w => return Err(format!("verify: unexpected argument {w}")),
                }
            }
            let file = file.ok_or("verify: missing FILE")?;
            if expect_closed && key.is_none() {
                return Err(
                    "--expect-closed needs --anchor-key: only a checkpoint can show a \
                            clean stop"
                        .into(),
                );
            }
            let anchoring = key.as_ref().map(|key| Anchoring { key, expect_closed });
            match verify_anchored(Path::new(&file), &opts, anchoring) {
                Ok(report) => {
                    let _ = writeln!(out, "ok {file}: {report}");
                    Ok(0)
                }
                Err(e) => {
                    let _ = writeln!(err, "FAILED {file}: {e}");
                    Ok(1)
                }
            }
        }
        "show" => {
            let mut file = None;
            let mut json = false;
            for word in rest {
                match word.as_str() {
                    "--json" => json = true,
                    w if w.starts_with('-') => return Err(format!("show: unknown option {w}")),
                    w if file.is_none() => file = Some(w.to_string()),
                    w => return Err(format!("show: unexpected argument {w}")),
                }
            }
            let file = file.ok_or("show: missing FILE")?;
            match show(Path::new(&file), json, out) {
                Ok(_) => Ok(0),
                Err(e) => {
                    let _ = writeln!(err, "{file}: {e}");
                    Ok(1)
                }
            }
        }
        other => Err(format!("audit: unknown command {other:?}")),
    }
}
