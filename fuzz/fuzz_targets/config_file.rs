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

#[path = "leak_oracle.rs"]
mod leak_oracle;
use leak_oracle::{hex_runs, shifted};

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
