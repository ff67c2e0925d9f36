//! The `serve` config parser on arbitrary text: it never panics, every
//! refusal names the file and a line (`line N, column M`, which
//! `location()` gives too), and no refusal repeats key material. A config
//! holds no secret (it names the keys file), but an operator may pass the
//! keys file, or paste part of it, where the config belongs: no run of 32 or
//! more hex digits in the input has any 16 of its digits in a row in the
//! error's text or debug form.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz-serve.toml";

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
            if i - start >= 32 {
                runs.push(&text[start..i]);
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
    let Err(err) = ordergate::config::parse(text, ORIGIN) else {
        return;
    };
    let shown = format!("{err} {err:?} {err:#?}");
    assert!(shown.contains(ORIGIN), "{shown}");
    let location = err
        .location()
        .unwrap_or_else(|| panic!("an error without a line: {err}"));
    let line = format!(", line {}, column {}", location.line, location.column);
    assert!(err.to_string().contains(&line), "{err}");
    assert!(location.line <= text.lines().count().max(1) + 1, "{err}");
    for run in hex_runs(text) {
        for window in run.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!shown.contains(window), "key material {window} in: {shown}");
        }
    }
});
