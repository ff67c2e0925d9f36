//! The secret-leak oracle the keys_file and config_file targets share: the
//! long hex runs of an input (candidate secrets) and the input with one
//! run's digits shifted, so a window of an error message counts as a leak
//! only if it moves with the secret. Included by each with `#[path]`.

/// Every maximal run of at least 32 hex digits in `text`, with its offset.
pub fn hex_runs(text: &str) -> Vec<(usize, &str)> {
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
            // which an error may name.
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
/// 0–9a–f: the same shape, other digits.
pub fn shifted(text: &str, at: usize, len: usize) -> String {
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
