//! What every command shares and that the modules of `telemetry` use as
//! well: the exit codes, the duration flag's parser and the short duration
//! formatter of the stop summary and `stat`. Below `cli`, so that `stat`
//! does not import from the command line that calls it.

use std::time::Duration;

/// The gateway could not start, or failed while running.
pub const EXIT_FAILURE: u8 = 1;
/// The command line, the config file or the keys file was refused.
pub const EXIT_USAGE: u8 = 2;
/// Bound on any duration flag: a day.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// A duration in ns in the unit that keeps it short, `sep` between number
/// and unit: the stop summary's and `stat`'s one formatter.
pub(crate) fn short_ns(ns: u64, sep: &str) -> String {
    match ns {
        0..1_000 => format!("{ns}{sep}ns"),
        1_000..1_000_000 => format!("{:.1}{sep}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}{sep}ms", ns as f64 / 1e6),
        _ => format!("{:.2}{sep}s", ns as f64 / 1e9),
    }
}

// ---------------------------------------------------------------------------
// Flag values

/// A duration flag: a whole number and a unit, `ms`, `s`, `m` or `h`
/// ("500ms", "10s", "2m"); more than zero and at most [`DURATION_MAX`].
///
/// # Errors
///
/// What is wrong, for clap to print with the flag's name.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const FORM: &str = "give a whole number and a unit: ms, s, m or h (e.g. 500ms, 10s, 2m)";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!("not a duration; {FORM}"));
    }
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("no unit; {FORM}")),
        _ => return Err(format!("unknown unit `{unit}`; {FORM}")),
    };
    let max_ms = DURATION_MAX.as_millis() as u64;
    let ms = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(ms_per_unit))
        .filter(|ms| *ms <= max_ms)
        .ok_or_else(|| format!("longer than the most allowed, {}h", max_ms / 3_600_000))?;
    if ms == 0 {
        return Err("must be longer than zero".to_owned());
    }
    Ok(Duration::from_millis(ms))
}
