//! The keys-file parser on arbitrary text: it never panics, every refusal
//! names the file, and no refusal repeats key material: no run of 32 or
//! more hex digits in the input (a secret, or most of one) has any 16 of
//! its digits in a row in the error's text or debug form. A run of decimal
//! digits only, not opened by a quote, is a TOML integer (an `id` out of
//! range, say), which an error rightly names: not key material (a secret
//! is a string, and 32 random hex digits are all decimal with odds of
//! (10/16)^32, about 3 in 10^7).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate::auth::keys::KeyTable;

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
    for run in hex_runs(text) {
        for window in run.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!shown.contains(window), "key material {window} in: {shown}");
        }
    }
});
