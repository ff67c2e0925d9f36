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

/// Every maximal run of at least 32 hex digits in `text`, with its offset.
fn hex_runs(text: &str) -> Vec<(usize, &str)> {
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
            // Decimal digits not opened by a quote are a TOML integer,
            // which an error may name (as in keys_file).
            let quoted = start > 0 && matches!(bytes[start - 1], b'"' | b'\'');
            let integer = run.bytes().all(|b| b.is_ascii_digit()) && !quoted;
            if run.len() >= 32 && !integer {
                runs.push((start, run));
            }
        } else {
            i += 1;
        }
    }
    runs
}

/// `text` with the `len` digits at `at` each moved one step round
/// 0–9a–f: the same shape, other digits (as in keys_file).
fn shifted(text: &str, at: usize, len: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for b in &mut bytes[at..at + len] {
        *b = match *b {
            b'9' => b'a',
            b'f' | b'F' => b'0',
            b'0'..=b'8' | b'a'..=b'e' | b'A'..=b'E' => *b + 1,
            other => other,
        };
    }
    String::from_utf8(bytes).expect("hex digits stay ASCII")
}

fn error_text(text: &str) -> Option<String> {
    let err = ordergate::config::parse(text, ORIGIN).err()?;
    Some(format!("{err} {err:?} {err:#?}"))
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
    for (at, run) in hex_runs(text) {
        // A window the error still shows with the run's digits changed
        // does not come from the run (see keys_file).
        let mut other: Option<Option<String>> = None;
        for window in run.as_bytes().windows(16) {
            let window = std::str::from_utf8(window).unwrap();
            if !shown.contains(window) {
                continue;
            }
            let other = other.get_or_insert_with(|| error_text(&shifted(text, at, run.len())));
            if other.as_deref().is_some_and(|o| o.contains(window)) {
                continue;
            }
            panic!("key material {window} in: {shown}");
        }
    }
});
