//! The keys-file parser on arbitrary text: it never panics, every refusal
//! names the file and a line (`line N, column M`, which `location()` gives
//! too) — except the two that are about the file as a whole, no `[[key]]`
//! at all and more than `KEYS_MAX` of them — and no refusal repeats key
//! material: no run of 32 or more hex digits in the input (a secret, or
//! most of one) has any 16 of its digits in a row in the error's text or
//! debug form. A run of decimal
//! digits only, not opened by a quote, is a TOML integer (an `id` out of
//! range, say), which an error rightly names: not key material (a secret
//! is a string, and 32 random hex digits are all decimal with odds of
//! (10/16)^32, about 3 in 10^7). And a window the error still shows when
//! the run's digits are changed (each one step round 0–9a–f) does not come
//! from the run: the fuzzer had written an id, or a bound the error names,
//! into a secret. A leak of the secret changes with the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate::auth::keys::{KeyTable, KeysErrorKind};

const ORIGIN: &str = "fuzz-keys.toml";

#[path = "leak_oracle.rs"]
mod leak_oracle;
use leak_oracle::{hex_runs, shifted};

fn error_text(text: &str) -> Option<String> {
    let err = KeyTable::from_toml_str(text, ORIGIN).err()?;
    Some(format!("{err} {err:?} {err:#?}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(err) = KeyTable::from_toml_str(text, ORIGIN) else {
        return;
    };
    let shown_text = format!("{err} {err:?} {err:#?}");
    assert!(shown_text.contains(ORIGIN), "{shown_text}");
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
    for (at, run) in hex_runs(text) {
        // The error for the same input with this run's digits changed: a
        // window still there does not come from the run (an id or bound
        // the error rightly names, which the fuzzer also wrote into a
        // secret). Computed once per run, only if a window is suspect.
        let mut other: Option<Option<String>> = None;
        for window in run.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            if !shown_text.contains(window) {
                continue;
            }
            let other = other.get_or_insert_with(|| error_text(&shifted(text, at, run.len())));
            if other.as_deref().is_some_and(|o| o.contains(window)) {
                continue;
            }
            panic!("key material {window} in: {shown_text}");
        }
    }
});
