//! The simulation's pictures: CDFs as standalone SVG files, and the HTML page that shows them
//! with the results. No scripts, no external resources: the files open from disk.

use std::fmt::Write as _;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 48.0;

/// The empirical CDF of `values` (any order; NaNs ignored): x in `unit`, y the share of nodes
/// at or below it. One step per value.
pub(crate) fn cdf_svg(title: &str, unit: &str, values: &[f64]) -> String {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let max = sorted.last().copied().unwrap_or(0.0).max(f64::MIN_POSITIVE);
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let x = |v: f64| MARGIN + v / max * plot_w;
    let y = |share: f64| HEIGHT - MARGIN - share * plot_h;
    let mut points = String::new();
    let n = sorted.len().max(1) as f64;
    let mut previous = 0.0;
    for (i, v) in sorted.iter().enumerate() {
        let share = (i + 1) as f64 / n;
        let _ = write!(points, "{:.1},{:.1} {:.1},{:.1} ", x(*v), y(previous), x(*v), y(share));
        previous = share;
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>{}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{MARGIN}\" y=\"24\" font-size=\"14\">{}</text>\n",
        escape(title),
        escape(title)
    );
    // Axes, with the share at 0, 50 and 100 % and the value at 0 and the maximum.
    let _ = write!(
        svg,
        "<line x1=\"{MARGIN}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{MARGIN}\" y1=\"{MARGIN}\" x2=\"{MARGIN}\" y2=\"{b}\" stroke=\"black\"/>\n",
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
    for share in [0.0, 0.5, 1.0] {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>",
            MARGIN - 6.0,
            y(share) + 4.0,
            share * 100.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{MARGIN}\" y=\"{ty}\">0</text>\n<text x=\"{r}\" y=\"{ty}\" text-anchor=\"end\">{max:.3} {}</text>\n",
        escape(unit),
        ty = HEIGHT - MARGIN + 18.0,
        r = WIDTH - MARGIN
    );
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>\n</svg>\n",
        points.trim_end()
    );
    svg
}

/// The report page: the results as a table and the pictures beside it.
pub(crate) fn report_html(results_json: &serde_json::Value, pictures: &[(&str, &str)]) -> String {
    let mut rows = String::new();
    if let Some(fields) = results_json.as_object() {
        for (key, value) in fields {
            let _ = writeln!(
                rows,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(key),
                escape(&value.to_string())
            );
        }
    }
    let mut figures = String::new();
    for (file, caption) in pictures {
        let _ = writeln!(
            figures,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            escape(file),
            escape(caption),
            escape(caption)
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>wakufleet sim</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}figure{{display:inline-block;margin:1em}}</style>\n\
         </head><body><h1>wakufleet sim</h1>\n<table>\n{rows}</table>\n{figures}</body></html>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdf_has_one_step_per_value_and_ends_at_one_hundred_percent() {
        let svg = cdf_svg("boot <time>", "s", &[0.5, 0.1, 2.0, f64::NAN]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("boot &lt;time&gt;"), "titles are escaped");
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 6, "two points per finite value: {points}");
        let last = points.split(' ').next_back().unwrap();
        let (x, y) = last.split_once(',').unwrap();
        assert_eq!(
            (x, y),
            (format!("{:.1}", WIDTH - MARGIN).as_str(), format!("{MARGIN:.1}").as_str())
        );
    }

    #[test]
    fn the_report_lists_every_field_and_shows_every_picture() {
        let results = serde_json::json!({ "nodes": 60, "scenario": "cold-start" });
        let html = report_html(&results, &[("a.svg", "A"), ("b.svg", "B")]);
        assert!(html.contains("<th>nodes</th><td>60</td>"));
        assert!(html.contains("<img src=\"a.svg\"") && html.contains("<img src=\"b.svg\""));
        assert!(!html.contains("<script"));
    }
}
