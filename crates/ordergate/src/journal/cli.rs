//! `ordergate audit ...`: the two offline commands as clap subcommands
//! ([`AuditCommand`], part of the binary's parser, so `ordergate audit
//! verify --help` works), and [`audit_main`], which parses the words after
//! `audit` with the same definitions (tests call it in-process).
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
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::format::{Hash, parse_hash};
use super::verify::{Anchoring, VerifyOptions, show, verify_anchored};

pub const USAGE: &str = "usage: ordergate audit verify FILE [--expect-records N] [--expect-last HASH] [--anchor-key KEYFILE [--expect-closed]]\n       \
                         ordergate audit show FILE [--json]\n";

/// `ordergate audit`'s commands, parsed by clap like every other command
/// (so `ordergate audit verify --help` works).
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum AuditCommand {
    /// Check FILE and every later segment of its journal (exit 1 if it fails)
    Verify(VerifyArgs),
    /// Print the records of the one segment FILE, as text or JSON lines
    Show(ShowArgs),
}

/// `ordergate audit verify`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct VerifyArgs {
    /// The journal's segment to start from (`FILE.1`, `FILE.2`, … follow)
    pub file: PathBuf,
    /// Fail unless the journal holds at least N records
    #[arg(long, value_name = "N")]
    pub expect_records: Option<u64>,
    /// Fail unless record N-1's hash (with --expect-records N), or else the last one's, is HASH (64 hex digits)
    #[arg(long, value_name = "HASH", value_parser = parse_expect_last)]
    pub expect_last: Option<Hash>,
    /// Check every checkpoint against this anchor key file (0600)
    #[arg(long, value_name = "KEYFILE")]
    pub anchor_key: Option<PathBuf>,
    /// Fail unless the last run ended with a clean stop (needs --anchor-key)
    #[arg(long)]
    pub expect_closed: bool,
}

/// `ordergate audit show`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ShowArgs {
    /// The one segment to print
    pub file: PathBuf,
    /// One JSON object a line instead of text
    #[arg(long)]
    pub json: bool,
}

fn parse_expect_last(text: &str) -> Result<Hash, String> {
    parse_hash(text).ok_or_else(|| format!("not 64 hex digits: {text:?}"))
}

/// `audit` alone, for [`audit_main`].
#[derive(Debug, Parser)]
#[command(name = "ordergate audit", about = "Check or print an audit journal")]
struct AuditCli {
    #[command(subcommand)]
    command: AuditCommand,
}

/// Runs `audit` with `args` (the words after `audit`); reports go to `out`,
/// problems to `err`. Returns the exit code.
pub fn audit_main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let words = std::iter::once("audit").chain(args.iter().map(String::as_str));
    match AuditCli::try_parse_from(words) {
        Ok(cli) => audit_run(&cli.command, out, err),
        Err(e) if !e.use_stderr() => {
            let _ = write!(out, "{}", e.render());
            0
        }
        Err(e) => {
            let _ = write!(err, "{}", e.render());
            2
        }
    }
}

/// Runs a parsed `audit` command. Returns the exit code.
pub fn audit_run(command: &AuditCommand, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match command {
        AuditCommand::Verify(args) => verify(args, out, err),
        AuditCommand::Show(args) => Ok(show_file(args, out, err)),
    };
    match result {
        Ok(code) => code,
        Err(usage) => {
            let _ = write!(err, "{usage}\n{USAGE}");
            2
        }
    }
}

fn verify(args: &VerifyArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    let opts = VerifyOptions {
        expect_records: args.expect_records,
        expect_last: args.expect_last,
    };
    let key = match &args.anchor_key {
        Some(path) => Some(crate::keys_file::load_anchor_key(path)?),
        None => None,
    };
    if args.expect_closed && key.is_none() {
        return Err(
            "--expect-closed needs --anchor-key: only a checkpoint can show a clean stop".into(),
        );
    }
    let expect_closed = args.expect_closed;
    let anchoring = key.as_ref().map(|key| Anchoring { key, expect_closed });
    let file = args.file.display();
    match verify_anchored(&args.file, &opts, anchoring) {
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

fn show_file(args: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match show(&args.file, args.json, out) {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", args.file.display());
            1
        }
    }
}
