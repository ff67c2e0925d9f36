//! The keys-file parser on arbitrary text: it never panics, every refusal
//! names the file and a line (`line N, column M`, which `location()` gives
//! too) — except the two that are about the file as a whole, no `[[key]]`
//! at all and more than `KEYS_MAX` of them — and no refusal repeats key
//! material: no run of 32 or more hex digits in the input (a secret, or
//! most of one) has any 16 of its digits in a row in the error's text or
//! debug form. A run of decimal digits only, not opened by a quote, is a
//! TOML integer (an `id` out of range, say), which an error rightly names:
//! not key material (a secret is a string, and 32 random hex digits are
//! all decimal with odds of (10/16)^32, about 3 in 10^7).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate::auth::keys::{KeyTable, KeysErrorKind};

const ORIGIN: &str = "fuzz-keys.toml";

/// Every maximal run of at least 32 hex digits in `text`.
fn hex_runs(text: &str) -> Vec<&str> {
    let mut runs = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                i += 1;
            }
            let run = &text[start..i];
            let quoted = start > 0 && matches!(bytes[start - 1], b'"' | b'\'');
            let integer = run.bytes().all(|b| b.is_ascii_digit()) && !quoted;
            if run.len() >= 32 && !integer {
                runs.push(run);
            }
        } else {
            i += 1;
        }
    }
    runs
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(err) = KeyTable::from_toml_str(text, ORIGIN) else {
        return;
    };
    let shown = format!("{err} {err:?} {err:#?}");
    assert!(shown.contains(ORIGIN), "{shown}");
    let whole_file = matches!(
        err.kind(),
        KeysErrorKind::Empty | KeysErrorKind::TooManyKeys { .. }
    );
    if !whole_file {
        let location = err
            .location()
            .unwrap_or_else(|| panic!("an error without a line: {err}"));
        let line = format!(", line {}, column {}", location.line, location.column);
        assert!(err.to_string().contains(&line), "{err}");
        assert!(location.line <= text.lines().count().max(1) + 1, "{err}");
    }
    for run in hex_runs(text) {
        for window in run.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            // The same digits elsewhere in the input (an id the error
            // rightly names, which the fuzzer also wrote into a secret)
            // are not evidence of a leak.
            if text.matches(window).count() > run.matches(window).count() {
                continue;
            }
            assert!(!shown.contains(window), "key material {window} in: {shown}");
        }
    }
});
