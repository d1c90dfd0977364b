//! Line charts as inline SVG, drawn by loadgen itself: the `--html` page
//! needs no chart library and no script, and fetches nothing.
//!
//! A [`Chart`] is data (axes, lines, shaded bands, event marks) and
//! [`Chart::render`] turns it into one `<figure>` holding an `<svg>`. Every
//! line is a `<path class="data" data-points="N">` (plus a dot per point
//! when there are few), so a test can count what was drawn.

use std::fmt::Write as _;

/// Size of every chart's view box, in SVG units.
const W: f64 = 880.0;
const H: f64 = 250.0;
/// The plot area's margins: room for tick labels and axis titles.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 42.0;
/// A line with at most this many points also gets a dot on each.
const DOTS_UP_TO: usize = 90;

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    /// Base-10 logarithm; values <= 0 are not drawn.
    Log,
}

/// One axis: its range, scale and labelled ticks.
#[derive(Debug, Clone)]
pub struct Axis {
    pub title: String,
    pub scale: Scale,
    pub min: f64,
    pub max: f64,
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis from `lo` to a round number at or above `hi`, with
    /// about five ticks at 1, 2 or 5 times a power of ten.
    pub fn linear(title: impl Into<String>, lo: f64, hi: f64, label: fn(f64) -> String) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let step = nice_step((hi - lo) / 5.0);
        let max = (hi / step).ceil() * step;
        let min = (lo / step).floor() * step;
        let n = ((max - min) / step).round() as usize;
        let ticks = (0..=n)
            .map(|i| min + step * i as f64)
            .map(|v| (v, label(v)))
            .collect();
        Axis::custom(title, min, max, ticks)
    }

    /// A linear axis from `lo` to exactly `hi` (a run's length), ticked at
    /// round numbers within it.
    pub fn span(title: impl Into<String>, lo: f64, hi: f64, label: fn(f64) -> String) -> Axis {
        let mut a = Axis::linear(title, lo, hi, label);
        if hi > lo {
            a.max = hi;
            a.ticks.retain(|t| t.0 <= hi + 1e-9);
        }
        a
    }

    /// A log axis over whole decades around `lo..hi` (both > 0), ticked at
    /// each decade (and at 2 and 5 when it spans at most two decades).
    pub fn log(title: impl Into<String>, lo: f64, hi: f64, label: fn(f64) -> String) -> Axis {
        let lo = lo.max(f64::MIN_POSITIVE);
        let hi = hi.max(lo);
        let (a, mut b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        if b <= a {
            b = a + 1;
        }
        let mults: &[f64] = if b - a <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut ticks = Vec::new();
        for e in a..=b {
            for m in mults {
                let v = m * 10f64.powi(e);
                if v <= 10f64.powi(b) {
                    ticks.push((v, label(v)));
                }
            }
        }
        Axis {
            scale: Scale::Log,
            ..Axis::custom(title, 10f64.powi(a), 10f64.powi(b), ticks)
        }
    }

    /// A linear axis with the caller's own ticks.
    pub fn custom(title: impl Into<String>, min: f64, max: f64, ticks: Vec<(f64, String)>) -> Axis {
        Axis {
            title: title.into(),
            scale: Scale::Linear,
            min,
            max,
            ticks,
        }
    }

    /// Where `v` falls, 0..=1 of the axis; `None` when a log axis cannot show it.
    fn frac(&self, v: f64) -> Option<f64> {
        let (v, lo, hi) = match self.scale {
            Scale::Linear => (v, self.min, self.max),
            Scale::Log if v > 0.0 => (v.log10(), self.min.log10(), self.max.log10()),
            Scale::Log => return None,
        };
        if !v.is_finite() || hi <= lo {
            return None;
        }
        Some(((v - lo) / (hi - lo)).clamp(0.0, 1.0))
    }
}

/// 1, 2 or 5 times a power of ten, at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw * 0.999)
        .unwrap_or(10.0 * p)
}

/// One series; a `None` value leaves a gap in the line.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub color: &'static str,
    /// Dashed, so a line that another one covers still shows.
    pub dashed: bool,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded span of the x axis (a phase).
#[derive(Debug, Clone)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
    pub color: &'static str,
}

/// A vertical mark at one x (an event).
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: f64,
    pub label: String,
    pub color: &'static str,
}

/// A chart, ready to render.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The `<figure>`'s id.
    pub id: &'static str,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
    /// A sentence under the chart (what it shows, or why it is empty).
    pub note: Option<String>,
}

impl Chart {
    /// Points the chart can draw (inside its axes' reach).
    pub fn drawable(&self) -> usize {
        self.lines
            .iter()
            .flat_map(|l| &l.points)
            .filter(|(x, y)| self.at(*x, *y).is_some())
            .count()
    }

    /// The pixel position of a point, when it can be drawn.
    fn at(&self, x: f64, y: Option<f64>) -> Option<(f64, f64)> {
        let fx = self.x.frac(x)?;
        let fy = self.y.frac(y?)?;
        Some((px(fx), py(fy)))
    }

    /// The chart as a `<figure>`: title, SVG, legend and note.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<figure class="chart" id="{}"><figcaption>{}</figcaption>"#,
            self.id,
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<svg viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
            esc(&self.title)
        );
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        let _ = write!(
            s,
            r#"<rect class="plot" x="{x0}" y="{y1}" width="{:.1}" height="{:.1}"/>"#,
            x1 - x0,
            y0 - y1
        );
        self.draw_bands(&mut s);
        self.draw_grid(&mut s);
        if self.drawable() == 0 {
            let _ = write!(
                s,
                r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">no data</text>"#,
                (x0 + x1) / 2.0,
                (y0 + y1) / 2.0
            );
        }
        self.draw_marks(&mut s);
        for l in &self.lines {
            self.draw_line(&mut s, l);
        }
        s.push_str("</svg>");
        s.push_str(r#"<div class="legend">"#);
        for l in &self.lines {
            let _ = write!(
                s,
                r#"<span><i style="background:{}"></i>{}</span>"#,
                l.color,
                esc(&l.name)
            );
        }
        for b in &self.bands {
            let _ = write!(
                s,
                r#"<span><i class="band" style="background:{}"></i>{}</span>"#,
                b.color,
                esc(&b.label)
            );
        }
        if !self.marks.is_empty() {
            let _ = write!(
                s,
                r#"<span><i class="mark"></i>events: {}</span>"#,
                esc(&summarize_marks(&self.marks))
            );
        }
        s.push_str("</div>");
        if let Some(n) = &self.note {
            let _ = write!(s, r#"<p class="note">{}</p>"#, esc(n));
        }
        s.push_str("</figure>\n");
        s
    }

    fn draw_bands(&self, s: &mut String) {
        for b in &self.bands {
            let (Some(a), Some(z)) = (self.x.frac(b.from), self.x.frac(b.to)) else {
                continue;
            };
            if z <= a {
                continue;
            }
            let _ = write!(
                s,
                r#"<rect class="band" x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                px(a),
                px(z) - px(a),
                H - BOTTOM - TOP,
                b.color,
                esc(&b.label)
            );
            let _ = write!(
                s,
                r#"<text class="band-label" x="{:.1}" y="{:.1}">{}</text>"#,
                px(a) + 4.0,
                TOP + 12.0,
                esc(&b.label)
            );
        }
    }

    fn draw_grid(&self, s: &mut String) {
        for (v, label) in &self.y.ticks {
            let Some(f) = self.y.frac(*v) else { continue };
            let y = py(f);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        for (v, label) in &self.x.ticks {
            let Some(f) = self.x.frac(*v) else { continue };
            let x = px(f);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                H - BOTTOM,
                H - BOTTOM + 16.0,
                esc(label)
            );
        }
        let _ = write!(
            s,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 6.0,
            esc(&self.x.title)
        );
        let _ = write!(
            s,
            r#"<text class="axis" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (TOP + H - BOTTOM) / 2.0,
            esc(&self.y.title)
        );
    }

    fn draw_marks(&self, s: &mut String) {
        for m in &self.marks {
            let Some(f) = self.x.frac(m.at) else { continue };
            let x = px(f);
            let _ = write!(
                s,
                r#"<g class="event"><title>{}</title><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="{}"/><path d="M{:.1} {TOP}l5 -8h-10z" fill="{}"/></g>"#,
                esc(&m.label),
                H - BOTTOM,
                m.color,
                x,
                m.color
            );
        }
    }

    fn draw_line(&self, s: &mut String, l: &Line) {
        let mut d = String::new();
        let mut dots = String::new();
        let mut n = 0;
        let mut pen_down = false;
        for (x, y) in &l.points {
            let Some((cx, cy)) = self.at(*x, *y) else {
                pen_down = false;
                continue;
            };
            let _ = write!(d, "{}{cx:.1} {cy:.1}", if pen_down { "L" } else { "M" });
            pen_down = true;
            n += 1;
            let _ = write!(
                dots,
                r#"<circle class="point" cx="{cx:.1}" cy="{cy:.1}" r="2.2" fill="{}"/>"#,
                l.color
            );
        }
        if n == 0 {
            return;
        }
        let _ = write!(
            s,
            r#"<path class="data" data-points="{n}" d="{d}" stroke="{}"{}><title>{}</title></path>"#,
            l.color,
            if l.dashed {
                r#" stroke-dasharray="7 4""#
            } else {
                ""
            },
            esc(&l.name)
        );
        if n <= DOTS_UP_TO {
            s.push_str(&dots);
        }
    }
}

/// "2 drops at 3 s; node2 went away at 7.0 s": every mark, shortened past eight.
fn summarize_marks(marks: &[Mark]) -> String {
    let mut v: Vec<&str> = marks.iter().map(|m| m.label.as_str()).take(8).collect();
    let more = marks.len().saturating_sub(8);
    let tail = format!("and {more} more");
    if more > 0 {
        v.push(&tail);
    }
    v.join("; ")
}

fn px(f: f64) -> f64 {
    LEFT + f * (W - RIGHT - LEFT)
}

fn py(f: f64) -> f64 {
    H - BOTTOM - f * (H - BOTTOM - TOP)
}

/// Text safe inside HTML and SVG elements and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_range() {
        let a = Axis::linear("t", 0.0, 37.0, num);
        assert_eq!(a.min, 0.0);
        assert_eq!(a.max, 40.0);
        let v: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
        assert_eq!(v, [0.0, 10.0, 20.0, 30.0, 40.0]);
    }

    #[test]
    fn log_axis_spans_whole_decades_and_hides_non_positive_values() {
        let a = Axis::log("ms", 3.0, 420.0, num);
        assert_eq!((a.min, a.max), (1.0, 1000.0));
        assert_eq!(a.frac(0.0), None);
        assert!((a.frac(10.0).unwrap() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_line_with_a_gap_is_two_runs_of_one_path_and_text_is_escaped() {
        let c = Chart {
            id: "c",
            title: "a <b> & c".into(),
            x: Axis::linear("s", 0.0, 4.0, num),
            y: Axis::log("ms", 1.0, 100.0, num),
            lines: vec![Line {
                name: "p99".into(),
                color: "#000",
                dashed: false,
                points: vec![
                    (1.0, Some(5.0)),
                    (2.0, None),
                    (3.0, Some(50.0)),
                    (4.0, Some(0.0)),
                ],
            }],
            bands: vec![],
            marks: vec![Mark {
                at: 2.0,
                label: "1 drop at 2 s".into(),
                color: "red",
            }],
            note: None,
        };
        assert_eq!(c.drawable(), 2);
        let svg = c.render();
        assert!(svg.contains(r#"data-points="2""#), "{svg}");
        let d = svg.split(r#"data-points="2" d=""#).nth(1).unwrap();
        let d = &d[..d.find('"').unwrap()];
        assert_eq!(
            (d.matches('M').count(), d.matches('L').count()),
            (2, 0),
            "{d}"
        );
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("1 drop at 2 s"));
    }
}
