//! What `ordergate-bench load` writes for people and for other tools: the
//! HdrHistogram percentile-distribution text (`.hgrm`) and SVG charts.
//!
//! ```text
//!  hgrm(histogram)            → "Value Percentile TotalCount 1/(1-Percentile)" rows + #[Mean …] footer
//!  percentile_chart(series)   → Chart: x = percentile on the 1/(1-p) log scale, y = latency µs
//!  sweep_chart(steps)         → Chart: x = offered rate (log), y = p50/p99/p99.9 µs (log), SLO line
//!  svg(chart)                 → a standalone SVG document
//! ```
//!
//! The SVG writer is a few hundred lines of string formatting with no
//! dependency: the charts are two fixed kinds (lines on a grid, a legend,
//! reference lines), and a plotting crate would cost more build time than
//! the whole tool. Every number in the document is finite and every text is
//! XML-escaped, so the output is well-formed whatever the data.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Quantile ticks per halving of the distance to 100 %: what
/// `HistogramLogProcessor` and `outputPercentileDistribution` use.
pub const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Nanoseconds per microsecond: `.hgrm` files and the charts are in µs.
pub const NS_PER_US: f64 = 1_000.0;

/// The percentile distribution of `h` as HdrHistogram's text format (what
/// `outputPercentileDistribution` prints, what `HistogramLogProcessor` and
/// hdrhistogram.github.io/HdrHistogram/plotFiles.html read), values divided
/// by `value_unit_ratio` (1000 for a histogram of ns written in µs).
///
/// ```text
///        Value     Percentile TotalCount 1/(1-Percentile)
///
///       12.351 0.000000000000          1           1.00
///       …
///      140.223 1.000000000000      99812
/// #[Mean    =       15.234, StdDeviation   =        8.123]
/// #[Max     =      140.223, Total count    =        99812]
/// #[Buckets =           27, SubBuckets     =         2048]
/// ```
pub fn hgrm(h: &Histogram<u64>, value_unit_ratio: f64) -> String {
    let digits = usize::from(h.sigfig());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / value_unit_ratio;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:12.digits$} {q:2.12} {total:10}");
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean(), h.stdev())
    };
    let _ = writeln!(
        s,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        mean / value_unit_ratio,
        stdev / value_unit_ratio
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        h.max() as f64 / value_unit_ratio,
        h.len()
    );
    // The histogram's sub-bucket count is not public; it is the power of
    // two that holds 2 × 10^digits (HdrHistogram's own rule).
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

// ---------------------------------------------------------------------------
// Charts

/// How an axis maps data to position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Decades take equal room; every value on it must be above 0.
    Log10,
}

/// A labelled position on an axis (a gridline across the plot).
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<Tick>,
}

/// One line of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// `(x, y)` in data units, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// A dot on each point (few points: sweep steps).
    pub markers: bool,
}

/// A reference line across the whole plot: horizontal at `y` or vertical
/// at `x`, dashed, with its label at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub at: f64,
    pub label: String,
    pub color: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    /// Smaller lines under the title (the run's parameters): at most two,
    /// separated by `\n`.
    pub subtitle: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub horizontal: Vec<Rule>,
    pub vertical: Vec<Rule>,
}

/// Line colours, in series order: distinguishable, and still apart for the
/// common forms of colour blindness (blue, orange, red-purple, green).
pub const PALETTE: [&str; 6] = [
    "#1f6fb4", "#e08a00", "#b8336a", "#2a9d4b", "#6a4fb4", "#7f7f7f",
];

const WIDTH: f64 = 960.0;
const PLOT_LEFT: f64 = 84.0;
const PLOT_RIGHT: f64 = WIDTH - 36.0;
/// Height of the plot area itself; the header (title, subtitle, legend)
/// and the x axis's labels come on top of it.
const PLOT_HEIGHT: f64 = 420.0;
/// Below the plot area: tick labels and the axis label.
const FOOTER_HEIGHT: f64 = 66.0;
const FONT: &str = "Helvetica, Arial, sans-serif";
/// Rough width of one character of 12 px text, to lay the legend out.
const CHAR_WIDTH_12PX: f64 = 6.6;
/// One legend entry: its line sample and the gap before the next entry.
const LEGEND_SAMPLE_WIDTH: f64 = 32.0;
const LEGEND_GAP: f64 = 28.0;
const LEGEND_ROW_HEIGHT: f64 = 19.0;
/// A white outline under a label's glyphs, so that it stays legible where
/// it crosses a line or the grid.
const HALO: &str =
    r##"stroke="#ffffff" stroke-width="3.5" stroke-linejoin="round" paint-order="stroke""##;

impl Axis {
    fn to_unit(&self, v: f64) -> f64 {
        let (lo, hi, v) = match self.scale {
            Scale::Linear => (self.min, self.max, v),
            Scale::Log10 => (
                self.min.max(f64::MIN_POSITIVE).log10(),
                self.max.max(f64::MIN_POSITIVE).log10(),
                v.max(f64::MIN_POSITIVE).log10(),
            ),
        };
        if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
    }
}

/// Where things go: the plot area's edges in px, and the document height.
struct Frame {
    top: f64,
    bottom: f64,
    height: f64,
}

impl Frame {
    /// The legend's entries laid out under the subtitle: in one row when
    /// they fit across the plot, else one per row. Returns the frame and
    /// each entry's (x, baseline y).
    fn layout(chart: &Chart) -> (Frame, Vec<(f64, f64)>) {
        let subtitle_lines = chart.subtitle.lines().take(2).count() as f64;
        let legend_top = 52.0 + 17.0 * subtitle_lines + 8.0;
        let widths: Vec<f64> = chart
            .series
            .iter()
            .map(|s| LEGEND_SAMPLE_WIDTH + 8.0 + s.name.chars().count() as f64 * CHAR_WIDTH_12PX)
            .collect();
        let one_row =
            widths.iter().sum::<f64>() + LEGEND_GAP * widths.len() as f64 <= PLOT_RIGHT - PLOT_LEFT;
        let mut at = Vec::with_capacity(widths.len());
        let mut x = PLOT_LEFT;
        for (i, w) in widths.iter().enumerate() {
            if one_row {
                at.push((x, legend_top + 12.0));
                x += w + LEGEND_GAP;
            } else {
                at.push((PLOT_LEFT, legend_top + 12.0 + LEGEND_ROW_HEIGHT * i as f64));
            }
        }
        let rows = match (widths.len(), one_row) {
            (0, _) => 0.0,
            (_, true) => 1.0,
            (n, false) => n as f64,
        };
        let top = legend_top + LEGEND_ROW_HEIGHT * rows + 14.0;
        let bottom = top + PLOT_HEIGHT;
        (
            Frame {
                top,
                bottom,
                height: bottom + FOOTER_HEIGHT,
            },
            at,
        )
    }

    fn x(&self, axis: &Axis, v: f64) -> f64 {
        PLOT_LEFT + axis.to_unit(v).clamp(-0.05, 1.05) * (PLOT_RIGHT - PLOT_LEFT)
    }

    fn y(&self, axis: &Axis, v: f64) -> f64 {
        self.bottom - axis.to_unit(v).clamp(-0.05, 1.05) * (self.bottom - self.top)
    }
}

/// Text safe inside an XML element or a double-quoted attribute.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The chart as a standalone SVG document, 960 px wide: title, subtitle,
/// legend, then the plot area (420 px high) with its grid, reference
/// lines and series.
pub fn svg(chart: &Chart) -> String {
    let (f, legend_at) = Frame::layout(chart);
    let (top, bottom, height) = (f.top, f.bottom, f.height);
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">"#
    );
    let _ = writeln!(s, "<title>{}</title>", xml_escape(&chart.title));
    let _ = writeln!(
        s,
        r#"<defs><clipPath id="plot-area"><rect x="{PLOT_LEFT}" y="{}" width="{}" height="{}"/></clipPath></defs>"#,
        top - 4.0,
        PLOT_RIGHT - PLOT_LEFT + 4.0,
        bottom - top + 8.0
    );
    let _ = writeln!(
        s,
        r##"<rect class="background" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text class="title" x="{PLOT_LEFT}" y="30" font-size="18" font-weight="bold" fill="#222222">{}</text>"##,
        xml_escape(&chart.title)
    );
    for (i, line) in chart.subtitle.lines().take(2).enumerate() {
        let _ = writeln!(
            s,
            r##"<text class="subtitle" x="{PLOT_LEFT}" y="{}" font-size="12" fill="#555555">{}</text>"##,
            52 + 17 * i,
            xml_escape(line)
        );
    }

    // The legend, above the plot so that it never hides a line.
    if !chart.series.is_empty() {
        let _ = writeln!(s, r#"<g class="legend" font-size="12">"#);
        for (i, (series, &(x, y))) in chart.series.iter().zip(&legend_at).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3" stroke-linecap="round"/>"#,
                y - 4.0,
                x + LEGEND_SAMPLE_WIDTH - 6.0,
                y - 4.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{y:.1}" fill="#222222">{}</text>"##,
                x + LEGEND_SAMPLE_WIDTH + 2.0,
                xml_escape(&series.name)
            );
        }
        let _ = writeln!(s, "</g>");
    }

    // Grid and tick labels.
    let _ = writeln!(s, r##"<g class="grid" stroke="#e3e3e3" stroke-width="1">"##);
    for t in &chart.x.ticks {
        let x = f.x(&chart.x, t.value);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}"/>"#
        );
    }
    for t in &chart.y.ticks {
        let y = f.y(&chart.y, t.value);
        let _ = writeln!(
            s,
            r#"<line x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}"/>"#
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<g class="ticks" font-size="12" fill="#444444">"##);
    for t in &chart.x.ticks {
        let x = f.x(&chart.x, t.value);
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            xml_escape(&t.label)
        );
    }
    for t in &chart.y.ticks {
        let y = f.y(&chart.y, t.value);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            PLOT_LEFT - 8.0,
            y + 4.0,
            xml_escape(&t.label)
        );
    }
    let _ = writeln!(s, "</g>");

    // Axes and their labels.
    let _ = writeln!(
        s,
        r##"<rect class="frame" x="{PLOT_LEFT}" y="{top}" width="{}" height="{}" fill="none" stroke="#888888" stroke-width="1"/>"##,
        PLOT_RIGHT - PLOT_LEFT,
        bottom - top
    );
    let _ = writeln!(
        s,
        r##"<text class="axis-label" x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle" fill="#222222">{}</text>"##,
        (PLOT_LEFT + PLOT_RIGHT) / 2.0,
        height - 20.0,
        xml_escape(&chart.x.label)
    );
    let mid_y = (top + bottom) / 2.0;
    let _ = writeln!(
        s,
        r##"<text class="axis-label" x="22" y="{mid_y:.1}" font-size="13" text-anchor="middle" fill="#222222" transform="rotate(-90 22 {mid_y:.1})">{}</text>"##,
        xml_escape(&chart.y.label)
    );

    // Reference lines, under the series.
    for r in &chart.horizontal {
        let y = f.y(&chart.y, r.at);
        let _ = writeln!(
            s,
            r#"<line class="rule" x1="{PLOT_LEFT}" y1="{y:.1}" x2="{PLOT_RIGHT}" y2="{y:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="7 4"/>"#,
            r.color
        );
        // At the left: latency curves rise to the right, so the left end
        // of a horizontal line is the least crowded.
        let _ = writeln!(
            s,
            r#"<text class="rule-label" x="{:.1}" y="{:.1}" font-size="12" text-anchor="start" fill="{}" {HALO}>{}</text>"#,
            PLOT_LEFT + 6.0,
            y - 6.0,
            r.color,
            xml_escape(&r.label)
        );
    }
    for r in &chart.vertical {
        let x = f.x(&chart.x, r.at);
        let _ = writeln!(
            s,
            r#"<line class="rule" x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{}" stroke-width="1.5" stroke-dasharray="7 4"/>"#,
            r.color
        );
        let (lx, ly) = (x - 6.0, top + 8.0);
        let _ = writeln!(
            s,
            r#"<text class="rule-label" x="{lx:.1}" y="{ly:.1}" font-size="12" text-anchor="end" fill="{}" {HALO} transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
            r.color,
            xml_escape(&r.label)
        );
    }

    // The series.
    let _ = writeln!(s, r#"<g clip-path="url(#plot-area)">"#);
    for (i, series) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let mut d = String::new();
        for (k, &(x, y)) in points.clone().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if k == 0 { "M" } else { " L" },
                f.x(&chart.x, x),
                f.y(&chart.y, y)
            );
        }
        let _ = writeln!(
            s,
            r#"<path class="series" data-name="{}" d="{d}" fill="none" stroke="{color}" stroke-width="2.2" stroke-linejoin="round" stroke-linecap="round"/>"#,
            xml_escape(&series.name)
        );
        if series.markers {
            for &(x, y) in points {
                let _ = writeln!(
                    s,
                    r##"<circle class="marker" cx="{:.1}" cy="{:.1}" r="4" fill="{color}" stroke="#ffffff" stroke-width="1.2"/>"##,
                    f.x(&chart.x, x),
                    f.y(&chart.y, y)
                );
            }
        }
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, "</svg>");
    s
}

// ---------------------------------------------------------------------------
// Axes and the two charts

/// A short label for a number: up to 4 significant digits, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A tick label of a latency axis in µs: as [`fmt_num`], whole numbers of
/// five digits and more grouped by thousands ("10 000", "1 000 000").
pub fn fmt_us_tick(v: f64) -> String {
    let s = fmt_num(v);
    if v < 10_000.0 || s.contains('.') {
        return s;
    }
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A latency given in µs, in the unit that keeps it short: "250 µs",
/// "1.5 ms", "2 s".
pub fn fmt_latency_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", fmt_num(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", fmt_num(us / 1e3))
    } else {
        format!("{} µs", fmt_num(us))
    }
}

/// A rate with an SI suffix: 800, 1.5k, 20k, 2M.
pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", fmt_num(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", fmt_num(v / 1e3))
    } else {
        fmt_num(v)
    }
}

/// Ticks at 1, 2 or 5 × 10^k, about `target` of them, from 0 to at least
/// `max`; returns the ticks and the axis top.
pub fn linear_ticks(max: f64, target: usize) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let target = target.max(1) as f64;
    let decade = 10f64.powf((max / target).log10().floor());
    // The finest step that gives at most 1.4 × target intervals.
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|&s| max / s <= target * 1.4)
        .unwrap_or(10.0 * decade);
    let top = (max / step).ceil() * step;
    let n = (top / step).round() as usize;
    ((0..=n).map(|i| i as f64 * step).collect(), top)
}

/// Ticks for a log axis over `[min, max]` (both above 0): 1-2-5 in each
/// decade, decades only when that is too many, every integer multiple when
/// the range is narrow.
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let lo = min.log10().floor() as i32;
    let hi = max.log10().ceil() as i32;
    let within = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for k in lo..=hi {
            for m in mults {
                let v = m * 10f64.powi(k);
                if v >= min * (1.0 - 1e-9) && v <= max * (1.0 + 1e-9) {
                    out.push(v);
                }
            }
        }
        out
    };
    let one_two_five = within(&[1.0, 2.0, 5.0]);
    if one_two_five.len() > 12 {
        within(&[1.0])
    } else if one_two_five.len() < 3 {
        within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    } else {
        one_two_five
    }
}

/// `x` of quantile `q` on the percentile axis: log10(1 / (1 − q)).
pub fn percentile_x(q: f64) -> f64 {
    (1.0 / (1.0 - q)).log10()
}

/// The label of the percentile at `decade` nines: 0 → "0%", 1 → "90%",
/// 2 → "99%", 3 → "99.9%".
pub fn nines_label(decade: u32) -> String {
    match decade {
        0 => "0%".into(),
        1 => "90%".into(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)).replace(".%", "%"),
    }
}

/// The percentile distribution of each histogram (ns), one line each: x is
/// the percentile on the usual `1/(1-p)` log scale, y the latency in µs.
pub fn percentile_chart(
    title: &str,
    subtitle: &str,
    series: &[(String, &Histogram<u64>)],
) -> Chart {
    let samples_max = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let decades = ((samples_max.max(100) as f64).log10().ceil() as u32).max(2);
    let mut lines = Vec::new();
    let mut y_max = 0f64;
    for (name, h) in series {
        let mut points = Vec::new();
        if !h.is_empty() {
            let x_end = (h.len() as f64).log10();
            for v in h.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
                let q = v.quantile_iterated_to();
                let x = if q < 1.0 {
                    percentile_x(q).min(x_end)
                } else {
                    x_end
                };
                let y = v.value_iterated_to() as f64 / NS_PER_US;
                points.push((x, y));
            }
            y_max = y_max.max(h.max() as f64 / NS_PER_US);
        }
        lines.push(Series {
            name: name.clone(),
            points,
            markers: false,
        });
    }
    let (y_ticks, y_top) = linear_ticks(y_max * 1.04, 6);
    let mut x_ticks: Vec<Tick> = (0..=decades)
        .map(|d| Tick {
            value: f64::from(d),
            label: nines_label(d),
        })
        .collect();
    x_ticks.insert(
        1,
        Tick {
            value: percentile_x(0.5),
            label: "50%".into(),
        },
    );
    Chart {
        title: title.into(),
        subtitle: subtitle.into(),
        x: Axis {
            label: "percentile".into(),
            scale: Scale::Linear,
            min: 0.0,
            max: f64::from(decades),
            ticks: x_ticks,
        },
        y: Axis {
            label: "latency (µs)".into(),
            scale: Scale::Linear,
            min: 0.0,
            max: y_top,
            ticks: y_ticks
                .into_iter()
                .map(|v| Tick {
                    value: v,
                    label: fmt_us_tick(v),
                })
                .collect(),
        },
        series: lines,
        horizontal: Vec::new(),
        vertical: Vec::new(),
    }
}

/// One step of a sweep, for [`sweep_chart`]: latencies in ns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    pub offered: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
}

/// p50, p99 and p99.9 against the offered rate, both on log scales (the
/// steps are geometric, latency near saturation grows by decades), with the
/// SLO as a horizontal line and the highest sustainable rate as a vertical
/// one.
pub fn sweep_chart(
    title: &str,
    subtitle: &str,
    steps: &[SweepPoint],
    slo_ns: f64,
    sustainable: Option<f64>,
) -> Chart {
    let us = |ns: f64| (ns / NS_PER_US).max(0.001);
    let series = [
        (
            "p50",
            steps.iter().map(|p| (p.offered, us(p.p50_ns))).collect(),
        ),
        (
            "p99",
            steps.iter().map(|p| (p.offered, us(p.p99_ns))).collect(),
        ),
        (
            "p99.9",
            steps.iter().map(|p| (p.offered, us(p.p999_ns))).collect(),
        ),
    ]
    .into_iter()
    .map(|(name, points): (&str, Vec<(f64, f64)>)| Series {
        name: name.into(),
        points,
        markers: true,
    })
    .collect::<Vec<_>>();
    let rates = steps.iter().map(|p| p.offered.max(1.0));
    let x_lo = rates.clone().fold(f64::INFINITY, f64::min);
    let x_hi = rates.fold(0f64, f64::max);
    let (x_lo, x_hi) = if x_lo.is_finite() {
        (x_lo / 1.25, x_hi * 1.25)
    } else {
        (100.0, 1000.0)
    };
    let values = steps
        .iter()
        .flat_map(|p| [us(p.p50_ns), us(p.p99_ns), us(p.p999_ns)])
        .chain(std::iter::once(us(slo_ns)));
    let y_lo = values.clone().fold(f64::INFINITY, f64::min) / 1.6;
    let y_hi = values.fold(0f64, f64::max) * 1.6;
    let x_ticks = log_ticks(x_lo, x_hi)
        .into_iter()
        .map(|v| Tick {
            value: v,
            label: fmt_rate(v),
        })
        .collect();
    let y_ticks = log_ticks(y_lo, y_hi)
        .into_iter()
        .map(|v| Tick {
            value: v,
            label: fmt_us_tick(v),
        })
        .collect();
    Chart {
        title: title.into(),
        subtitle: subtitle.into(),
        x: Axis {
            label: "offered rate (orders/s)".into(),
            scale: Scale::Log10,
            min: x_lo,
            max: x_hi,
            ticks: x_ticks,
        },
        y: Axis {
            label: "round-trip latency (µs)".into(),
            scale: Scale::Log10,
            min: y_lo,
            max: y_hi,
            ticks: y_ticks,
        },
        series,
        horizontal: vec![Rule {
            at: us(slo_ns),
            label: format!("p99 SLO {}", fmt_latency_us(us(slo_ns))),
            color: "#c0392b",
        }],
        vertical: sustainable
            .map(|r| Rule {
                at: r,
                label: format!("highest sustainable {}/s", fmt_rate(r)),
                color: "#2a7d3b",
            })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn hgrm_has_the_java_layout() {
        let h = histogram((1..=1000).map(|i| i * 1_000));
        let text = hgrm(&h, NS_PER_US);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        let last = lines[lines.len() - 4];
        assert!(last.ends_with(" 1.000000000000       1000"), "{last}");
        assert!(last.trim_start().starts_with("1000.447"), "{last}");
        assert!(lines[lines.len() - 3].starts_with("#[Mean    =      50"));
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =     1000.447, Total count    =         1000]"
        );
        assert!(lines[lines.len() - 1].ends_with("SubBuckets     =         2048]"));
        let empty = hgrm(&histogram([]), NS_PER_US);
        assert_eq!(empty.lines().count(), 5);
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(fmt_num(12.3456), "12.35");
        assert_eq!(fmt_num(2000.0), "2000");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_rate(1500.0), "1.5k");
        assert_eq!(fmt_rate(2_000_000.0), "2M");
        assert_eq!(fmt_rate(800.0), "800");
        assert_eq!(nines_label(0), "0%");
        assert_eq!(nines_label(1), "90%");
        assert_eq!(nines_label(2), "99%");
        assert_eq!(nines_label(4), "99.99%");
        let (ticks, top) = linear_ticks(137.0, 6);
        assert_eq!(top, 140.0);
        assert_eq!(ticks.len(), 8);
        assert_eq!(log_ticks(150.0, 1200.0), vec![200.0, 500.0, 1000.0]);
        assert_eq!(
            log_ticks(210.0, 1000.0),
            vec![300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0]
        );
        assert_eq!(log_ticks(1.0, 1e9).len(), 10);
    }

    #[test]
    fn charts_are_well_formed_and_escape_text() {
        let h = histogram((1..=5000).map(|i| i * 100));
        let chart = percentile_chart(
            "a <title> & more",
            "sub \"quoted\"",
            &[("one".into(), &h), ("two".into(), &h)],
        );
        let doc = svg(&chart);
        assert_eq!(doc.matches(r#"<path class="series""#).count(), 2);
        assert!(doc.contains("a &lt;title&gt; &amp; more"));
        assert!(!doc.contains("NaN") && !doc.contains("inf"));
        let sweep = sweep_chart(
            "sweep",
            "",
            &[
                SweepPoint {
                    offered: 1000.0,
                    p50_ns: 10_000.0,
                    p99_ns: 20_000.0,
                    p999_ns: 40_000.0,
                },
                SweepPoint {
                    offered: 1500.0,
                    p50_ns: 11_000.0,
                    p99_ns: 30_000.0,
                    p999_ns: 90_000.0,
                },
            ],
            50_000.0,
            Some(1500.0),
        );
        let doc = svg(&sweep);
        assert_eq!(doc.matches(r#"<path class="series""#).count(), 3);
        assert_eq!(doc.matches(r#"<circle class="marker""#).count(), 6);
        assert!(doc.contains("p99 SLO 50 µs"));
        assert_eq!(fmt_us_tick(1_000_000.0), "1 000 000");
        assert_eq!(fmt_us_tick(10_000.0), "10 000");
        assert_eq!(fmt_us_tick(2_000.0), "2000");
        assert_eq!(fmt_us_tick(0.5), "0.5");
        assert_eq!(fmt_latency_us(300.0), "300 µs");
        assert_eq!(fmt_latency_us(1_500.0), "1.5 ms");
        assert_eq!(fmt_latency_us(2e6), "2 s");
        assert!(doc.contains("highest sustainable 1.5k/s"));
    }
}
