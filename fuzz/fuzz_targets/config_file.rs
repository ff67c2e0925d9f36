//! The `serve` config parser on arbitrary text: it never panics, and every
//! refusal names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz-serve.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = ordergate::config::parse(text, ORIGIN) {
        let shown = err.to_string();
        assert!(shown.contains(ORIGIN), "{shown}");
    }
});
