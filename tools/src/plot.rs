//! Small SVG charts: no dependency, readable in any browser.

use std::fmt::Write;

/// A named line of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

impl<'a> Series<'a> {
    pub fn new(name: &'a str, points: &'a [(f64, f64)]) -> Self {
        Series { name, points }
    }
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
/// Canvas size and the margins around the plot area, in pixels.
const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// The (min, max) of values, widened when they are all equal.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Lines on linear axes, with a legend.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(all().map(|p| p.0));
    let (y0, y1) = range(all().map(|p| p.1));
    let (y0, y1) = (y0.min(0.0), y1);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15">{}</text>"#,
        LEFT,
        escape(title)
    );
    axes(&mut svg, x_label, (x0, x1), (y0, y1), &px, &py, false);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for &(x, y) in s.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(x),
                py(y)
            );
        }
        legend(&mut svg, i, s.name, color);
    }
    svg.push_str("</svg>\n");
    svg
}

/// A roofline: measured points (arithmetic intensity, GFLOP/s) under the peak and the
/// bandwidth lines, on log-log axes.
pub fn roofline(
    title: &str,
    peak_gflops: f64,
    bandwidth_gbs: f64,
    points: &[(String, f64, f64)],
) -> String {
    let (ai0, ai1) = range(points.iter().map(|p| p.1).chain([0.1, 100.0]));
    let (ai0, ai1) = (ai0.max(1e-3).log10().floor(), ai1.log10().ceil());
    let g1 = (peak_gflops * 2.0).log10().ceil();
    let g0 = (points.iter().map(|p| p.2).fold(peak_gflops, f64::min) / 2.0)
        .max(1e-3)
        .log10()
        .floor();
    let px = |ai: f64| LEFT + (ai.log10() - ai0) / (ai1 - ai0) * (W - LEFT - RIGHT);
    let py = |g: f64| H - BOTTOM - (g.max(1e-9).log10() - g0) / (g1 - g0) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15">{}</text>"#,
        LEFT,
        escape(title)
    );
    axes(
        &mut svg,
        "arithmetic intensity (flop/byte)",
        (10f64.powf(ai0), 10f64.powf(ai1)),
        (10f64.powf(g0), 10f64.powf(g1)),
        &px,
        &py,
        true,
    );
    // The roof: bandwidth × intensity up to the ridge, then the peak.
    let ridge = peak_gflops / bandwidth_gbs;
    let (a, b) = (10f64.powf(ai0), 10f64.powf(ai1));
    let roof: Vec<String> = [a, ridge.clamp(a, b), b]
        .iter()
        .map(|&ai| {
            format!(
                "{:.1},{:.1}",
                px(ai),
                py((ai * bandwidth_gbs).min(peak_gflops))
            )
        })
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#444" stroke-width="2" points="{}"/><text x="{:.1}" y="{:.1}" fill="#444">peak {:.0} GFLOP/s, {:.0} GB/s</text>"##,
        roof.join(" "),
        px(ridge.clamp(a, b)) + 4.0,
        py(peak_gflops) - 6.0,
        peak_gflops,
        bandwidth_gbs
    );
    for (i, (name, ai, g)) in points.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"#,
            px(*ai),
            py(*g)
        );
        legend(&mut svg, i, name, color);
    }
    svg.push_str("</svg>\n");
    svg
}

fn axes(
    svg: &mut String,
    x_label: &str,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    px: &dyn Fn(f64) -> f64,
    py: &dyn Fn(f64) -> f64,
    log: bool,
) {
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#000"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}" stroke="#000"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        escape(x_label),
        b = H - BOTTOM,
        r = W - RIGHT
    );
    let ticks = |lo: f64, hi: f64| -> Vec<f64> {
        if log {
            let (a, b) = (lo.log10().round() as i32, hi.log10().round() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=4).map(|i| lo + (hi - lo) * i as f64 / 4.0).collect()
        }
    };
    for x in ticks(x0, x1) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            H - BOTTOM + 16.0,
            short(x)
        );
    }
    for y in ticks(y0, y1) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line x1="{LEFT}" y1="{y:.1}" x2="{r}" y2="{y:.1}" stroke="#eee"/>"##,
            LEFT - 6.0,
            py(y) + 4.0,
            short(y),
            r = W - RIGHT,
            y = py(y)
        );
    }
}

fn legend(svg: &mut String, i: usize, name: &str, color: &str) {
    let y = TOP + 18.0 * i as f64;
    let _ = write!(
        svg,
        r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
        W - RIGHT + 12.0,
        y,
        W - RIGHT + 30.0,
        y + 10.0,
        escape(name)
    );
}

fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.abs() < 0.01 {
        format!("{v:.0e}")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_every_series() {
        let pts = [(1.0, 0.5), (2.0, 0.3)];
        let svg = line_chart("t <1>", "epoch", &[Series::new("loss", &pts)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("loss") && svg.contains("t &lt;1&gt;"));
        let roof = roofline("r", 100.0, 20.0, &[("gemm".into(), 50.0, 80.0)]);
        assert!(roof.contains("gemm") && roof.contains("polyline"));
    }
}
