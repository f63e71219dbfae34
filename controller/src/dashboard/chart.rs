//! Line charts as inline SVG, drawn on the server: the dashboard runs no script (its CSP
//! forbids any), so its pictures are markup. One chart is a few series over time, an optional
//! threshold line (the minimum a figure should reach) and the axes' extremes as labels. Every
//! text in it is escaped; numbers are the only other input.

use std::fmt::{self, Write as _};

/// Drawing area, in SVG units (the chart scales to the page's width).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// Series colours, in order (readable on the dashboard's light and dark backgrounds).
const COLOURS: [&str; 8] =
    ["#2f7fd1", "#d1792f", "#3a9a4a", "#9a3a8f", "#c33c3c", "#2a9d9d", "#8a6d1f", "#5a5a5a"];

/// One chart.
#[derive(Debug, Clone, Default)]
pub(super) struct LineChart {
    /// Read by screen readers, shown as the SVG's title.
    pub(super) title: String,
    /// After each y value in labels: "", " s", "%"…
    pub(super) unit: String,
    /// Named series of (Unix ms, value) points, drawn in time order.
    pub(super) series: Vec<(String, Vec<(i64, f64)>)>,
    /// A dashed horizontal line with its label (e.g. the minimum relay peers).
    pub(super) threshold: Option<(String, f64)>,
    /// The y axis starts at 0 and ends at least here (e.g. 1.0 for a share).
    pub(super) y_floor_max: f64,
    /// x values are milliseconds of a duration, labelled in seconds (a distribution), not
    /// Unix times.
    pub(super) x_seconds: bool,
}

impl LineChart {
    fn x_label(&self, x: i64) -> String {
        if self.x_seconds {
            format!("{} s", number(x as f64 / 1000.0))
        } else {
            super::view::utc(x)
        }
    }

    fn points(&self) -> impl Iterator<Item = &(i64, f64)> {
        self.series.iter().flat_map(|(_, points)| points).filter(|(_, y)| y.is_finite())
    }
}

impl fmt::Display for LineChart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>"#,
            title = escape(&self.title)
        )?;
        let (Some(x_min), Some(x_max)) =
            (self.points().map(|p| p.0).min(), self.points().map(|p| p.0).max())
        else {
            write!(
                f,
                r#"<text x="{x}" y="{y}" text-anchor="middle" class="muted">no reports kept yet</text></svg>"#,
                x = WIDTH / 2.0,
                y = HEIGHT / 2.0
            )?;
            return Ok(());
        };
        let threshold = self.threshold.as_ref().map(|(_, y)| *y).unwrap_or(0.0);
        let y_max = self
            .points()
            .map(|p| p.1)
            .fold(self.y_floor_max.max(threshold), f64::max)
            .max(f64::MIN_POSITIVE);
        let span = (x_max - x_min).max(1) as f64;
        let x_of = |x: i64| LEFT + (x - x_min) as f64 / span * (WIDTH - LEFT - RIGHT);
        let y_of = |y: f64| TOP + (1.0 - y / y_max) * (HEIGHT - TOP - BOTTOM);
        let base = HEIGHT - BOTTOM;
        write!(
            f,
            r##"<line x1="{LEFT}" y1="{base}" x2="{x2}" y2="{base}" stroke="#888" stroke-width="1"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888" stroke-width="1"/>"##,
            x2 = WIDTH - RIGHT
        )?;
        write!(
            f,
            r#"<text x="{x}" y="{y}" text-anchor="end" font-size="11">{top}{unit}</text><text x="{x}" y="{base}" text-anchor="end" font-size="11">0</text>"#,
            x = LEFT - 4.0,
            y = TOP + 8.0,
            top = number(y_max),
            unit = escape(&self.unit)
        )?;
        write!(
            f,
            r#"<text x="{LEFT}" y="{y}" font-size="11">{from}</text><text x="{x}" y="{y}" text-anchor="end" font-size="11">{to}</text>"#,
            y = HEIGHT - 6.0,
            x = WIDTH - RIGHT,
            from = self.x_label(x_min),
            to = self.x_label(x_max)
        )?;
        if let Some((label, y)) = &self.threshold {
            write!(
                f,
                r##"<line class="threshold" x1="{LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#c33" stroke-width="1" stroke-dasharray="4 3"/><text x="{x2}" y="{ty}" text-anchor="end" font-size="11" fill="#c33">{label}</text>"##,
                y = y_of(*y),
                ty = y_of(*y) - 3.0,
                x2 = WIDTH - RIGHT,
                label = escape(label)
            )?;
        }
        if self.series.len() > 1 {
            // A legend: four entries a row along the top.
            for (i, (name, _)) in self.series.iter().enumerate() {
                write!(
                    f,
                    r#"<text class="legend" x="{x}" y="{y}" font-size="10" fill="{colour}">{name}</text>"#,
                    x = LEFT + 6.0 + (i % 4) as f64 * 130.0,
                    y = TOP + 8.0 + (i / 4) as f64 * 12.0,
                    colour = COLOURS[i % COLOURS.len()],
                    name = escape(name)
                )?;
            }
        }
        for (i, (name, points)) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut sorted: Vec<(i64, f64)> =
                points.iter().copied().filter(|(_, y)| y.is_finite()).collect();
            sorted.sort_by_key(|p| p.0);
            let mut path = String::new();
            for (x, y) in &sorted {
                let _ = write!(path, "{:.1},{:.1} ", x_of(*x), y_of(*y));
            }
            write!(
                f,
                r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
                path.trim_end(),
                escape(name)
            )?;
            if let Some((x, y)) = sorted.last() {
                write!(
                    f,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                    x_of(*x),
                    y_of(*y)
                )?;
            }
        }
        f.write_str("</svg>")
    }
}

/// A y label: whole numbers as such, others with two decimals.
fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

/// Text and attribute values safe inside SVG markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<(String, Vec<(i64, f64)>)>) -> LineChart {
        LineChart {
            title: "relay peers".into(),
            unit: String::new(),
            series,
            threshold: Some(("minimum 6".into(), 6.0)),
            y_floor_max: 0.0,
            x_seconds: false,
        }
    }

    #[test]
    fn a_series_is_a_polyline_scaled_into_the_box_with_its_threshold() {
        let points = vec![(1_000, 0.0), (61_000, 12.0), (31_000, 6.0)];
        let svg = chart(vec![("relay peers".into(), points)]).to_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        let polyline = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let coords: Vec<(f64, f64)> = polyline
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        // Time order, left edge to right edge, 0 at the bottom, the maximum at the top.
        assert_eq!(coords.len(), 3);
        assert_eq!(coords[0], (LEFT, HEIGHT - BOTTOM));
        assert_eq!(coords[1].0, ((LEFT + WIDTH - RIGHT) / 2.0 * 10.0).round() / 10.0);
        assert_eq!(coords[2], (WIDTH - RIGHT, TOP));
        // The threshold at half height, where the middle point lies.
        assert!(svg.contains(&format!("y1=\"{}\"", coords[1].1)), "{svg}");
        assert!(svg.contains("minimum 6") && svg.contains(">12<"), "{svg}");
    }

    #[test]
    fn labels_are_escaped_and_no_data_says_so() {
        let mut evil = chart(vec![("<script>alert(1)</script>".into(), vec![(0, 1.0)])]);
        evil.title = "a\" onload=\"x".into();
        let svg = evil.to_string();
        assert!(!svg.contains("<script") && !svg.contains("\" onload"), "{svg}");
        let empty = chart(vec![("relay peers".into(), vec![(5, f64::NAN)])]).to_string();
        assert!(empty.contains("no reports kept yet") && !empty.contains("polyline"), "{empty}");
    }

    #[test]
    fn a_share_keeps_its_scale_to_one() {
        let share = LineChart {
            title: "fleet share".into(),
            unit: String::new(),
            series: vec![("fleet share".into(), vec![(0, 0.25), (10, 0.5)])],
            threshold: None,
            y_floor_max: 1.0,
            x_seconds: true,
        };
        let svg = share.to_string();
        assert!(svg.contains(">1<") && !svg.contains("threshold"), "{svg}");
        // A distribution's x axis is in seconds.
        assert!(svg.contains(">0 s<") && svg.contains(">0.01 s<"), "{svg}");
    }
}
