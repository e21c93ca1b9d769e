//! The report's figures, drawn with plotters' SVG backend into strings: each connection's
//! states and every gap over time, the reconnect and gap distributions against the 5 s target,
//! the tick-latency percentile spectrum, and message rates per stream.
//!
//! Text is written as SVG `<text>` and laid out by whatever shows the page, so no font is read
//! here (plotters without its `ttf` feature).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::{
    bin_counts, bin_width, duration_bins, nines, nines_label, Session, DURATION_EDGES_MS,
};
use crate::metrics::RECONNECT_TARGET;

/// Width of every figure, pixels.
const WIDTH: u32 = 960;
/// Height of one timeline row, pixels.
const ROW: u32 = 22;
/// Most bins of a rate series.
const RATE_BINS: u64 = 240;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// plotters' errors as text.
fn err(e: impl std::fmt::Display) -> String {
    format!("drawing a figure: {e}")
}

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().into()
}

/// Draws into an SVG of `size` and returns its text.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(text)
}

/// A figure that has nothing to show: its title and why.
fn empty(title: &str, why: &str) -> Result<String, String> {
    svg((WIDTH, 90), |root| {
        root.draw_text(title, &font(18), (10, 10)).map_err(err)?;
        root.draw_text(why, &font(14).color(&RGBColor(110, 110, 110)), (10, 50))
            .map_err(err)
    })
}

/// A legend strip: coloured boxes and their names, wrapping at the area's width.
fn legend(area: &Area<'_>, entries: &[(String, RGBColor)]) -> Result<(), String> {
    let width = area.dim_in_pixel().0 as i32;
    let (mut x, mut y) = (10, 6);
    for (name, colour) in entries {
        let w = 24 + 7 * name.chars().count() as i32;
        if x + w > width - 10 && x > 10 {
            x = 10;
            y += 18;
        }
        area.draw(&Rectangle::new(
            [(x, y + 2), (x + 12, y + 12)],
            colour.filled(),
        ))
        .map_err(err)?;
        area.draw_text(name, &font(12), (x + 16, y)).map_err(err)?;
        x += w + 10;
    }
    Ok(())
}

/// Pixel height of a legend of `entries` at `width`.
fn legend_height(entries: &[(String, RGBColor)], width: u32) -> u32 {
    let (mut x, mut lines) = (10i32, 1u32);
    for (name, _) in entries {
        let w = 24 + 7 * name.chars().count() as i32;
        if x + w > width as i32 - 10 && x > 10 {
            x = 10;
            lines += 1;
        }
        x += w + 10;
    }
    12 + 18 * lines
}

/// The colour of a connection state.
pub fn state_colour(state: &str) -> Option<RGBColor> {
    Some(match state {
        "streaming" => RGBColor(46, 160, 67),
        "subscribing" => RGBColor(150, 205, 120),
        "handshaking" => RGBColor(235, 200, 70),
        "connecting" => RGBColor(250, 228, 150),
        "backoff" => RGBColor(240, 140, 50),
        "circuit-open" => RGBColor(215, 60, 40),
        "FAILED" => RGBColor(120, 0, 0),
        "stopped" => RGBColor(170, 170, 170),
        _ => return None,
    })
}

const STATES: [&str; 8] = [
    "streaming",
    "subscribing",
    "handshaking",
    "connecting",
    "backoff",
    "circuit-open",
    "FAILED",
    "stopped",
];

/// The colours of gap categories, by first appearance (a sequence jump is always black).
const GAP_COLOURS: [RGBColor; 8] = [
    RGBColor(125, 60, 170),
    RGBColor(40, 95, 205),
    RGBColor(205, 50, 150),
    RGBColor(20, 150, 150),
    RGBColor(150, 95, 40),
    RGBColor(25, 40, 110),
    RGBColor(230, 90, 90),
    RGBColor(90, 90, 90),
];

/// Every gap category of the session with its colour, in order of first appearance.
pub fn gap_categories(s: &Session) -> Vec<(String, RGBColor)> {
    let mut out: Vec<(String, RGBColor)> = Vec::new();
    for g in s.feeds.iter().flat_map(|f| &f.gaps) {
        let c = g.category();
        if out.iter().all(|(n, _)| *n != c) {
            let colour = if g.is_outage() {
                let outages = out.iter().filter(|(n, _)| n != "sequence jump").count();
                GAP_COLOURS[outages % GAP_COLOURS.len()]
            } else {
                BLACK
            };
            out.push((c, colour));
        }
    }
    out
}

/// Seconds since the session's start.
fn secs(s: &Session, ns: u64) -> f64 {
    ns.saturating_sub(s.start_ns) as f64 / 1e9
}

/// The timeline: per feed a row per connection role with its states, and a row of its gaps
/// coloured by cause.
pub fn timeline(s: &Session) -> Result<String, String> {
    const ROLES: [&str; 3] = ["primary", "standby", "replacement"];
    struct Row {
        label: String,
        bars: Vec<(f64, f64, RGBColor)>,
    }
    let span = secs(s, s.end_ns).max(1e-3);
    let categories = gap_categories(s);
    let mut rows: Vec<Row> = Vec::new();
    let mut any_states = false;
    for f in &s.feeds {
        match &f.states {
            Some(states) => {
                any_states = true;
                for role in ROLES {
                    let mine: Vec<_> = states.iter().filter(|c| c.role == role).collect();
                    if mine.is_empty() {
                        continue;
                    }
                    let bars = mine
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| {
                            let until = mine.get(i + 1).map_or(s.end_ns, |n| n.at_ns);
                            let colour = state_colour(&c.state)?;
                            Some((secs(s, c.at_ns), secs(s, until), colour))
                        })
                        .collect();
                    rows.push(Row {
                        label: format!("{} · {role}", f.name),
                        bars,
                    });
                }
            }
            None => rows.push(Row {
                label: format!("{} · states not recorded", f.name),
                bars: Vec::new(),
            }),
        }
        // A gap is at least 0.4 % of the span wide, so a sequence jump (an instant) shows; jumps
        // are drawn after the outages, on top of one they fall in.
        let min_w = span * 0.004;
        let mut gaps: Vec<_> = f.gaps.iter().collect();
        gaps.sort_by_key(|g| !g.is_outage());
        let bars = gaps
            .into_iter()
            .map(|g| {
                let colour = categories
                    .iter()
                    .find(|(n, _)| *n == g.category())
                    .map_or(BLACK, |(_, c)| *c);
                let (a, b) = (secs(s, g.start_ns), secs(s, g.end_ns));
                (a, b.max(a + min_w), colour)
            })
            .collect();
        rows.push(Row {
            label: format!("{} · gaps", f.name),
            bars,
        });
    }
    if rows.is_empty() {
        return empty("Connections and gaps", "no feeds in this session");
    }
    let mut entries: Vec<(String, RGBColor)> = STATES
        .iter()
        .filter_map(|n| Some((n.to_string(), state_colour(n)?)))
        .collect();
    entries.extend(categories.iter().map(|(n, c)| (format!("gap: {n}"), *c)));
    let n = rows.len();
    let legend_h = legend_height(&entries, WIDTH);
    let height = 70 + ROW * n as u32 + legend_h;
    let title = if any_states {
        "Connections and gaps".to_string()
    } else {
        "Connections and gaps (connection states not recorded in this session)".to_string()
    };
    svg((WIDTH, height), |root| {
        let (top, bottom) = root.split_vertically(height - legend_h);
        // Row 0 at the top: row i spans [n-1-i, n-i].
        const LABELS: u32 = 230;
        let mut chart = ChartBuilder::on(&top)
            .caption(&title, font(18))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(LABELS)
            .build_cartesian_2d(0f64..span, 0f64..n as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("seconds since the session started")
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        // Each row's name beside it (the y axis has no numbers).
        let right = font(12).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, row) in rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let (x0, py) = chart.backend_coord(&(0.0, y + 0.5));
            top.draw_text(&row.label, &right, (x0 - 6, py))
                .map_err(err)?;
            chart
                .draw_series(
                    row.bars.iter().map(|&(a, b, c)| {
                        Rectangle::new([(a, y + 0.15), (b, y + 0.85)], c.filled())
                    }),
                )
                .map_err(err)?;
        }
        legend(&bottom, &entries)
    })
}

/// Reconnect times and gap durations of every outage, binned on a 1-2-5 scale, with the 5 s
/// target marked.
pub fn distributions(s: &Session) -> Result<String, String> {
    let outages = s
        .feeds
        .iter()
        .flat_map(|f| &f.gaps)
        .filter(|g| g.is_outage());
    let reconnect: Vec<u64> = outages.clone().map(|g| g.reconnect_ms).collect();
    let gap: Vec<u64> = outages.map(|g| g.duration_ms).collect();
    if reconnect.is_empty() {
        return empty(
            "Reconnect time and gap duration",
            "no outage in this session: nothing to reconnect",
        );
    }
    let target_ms = RECONNECT_TARGET.as_millis() as f64;
    svg((WIDTH, 340), |root| {
        let (left, right) = root.split_horizontally(WIDTH / 2);
        for (area, values, what) in [
            (&left, &reconnect, "reconnect time (detection → first data)"),
            (&right, &gap, "gap (last data before → first data after)"),
        ] {
            let bins = duration_bins(values);
            let over = values.iter().filter(|&&v| v as f64 > target_ms).count();
            let top = bins.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.15;
            let lo = DURATION_EDGES_MS[0] as f64;
            let hi = DURATION_EDGES_MS[DURATION_EDGES_MS.len() - 1] as f64;
            let caption = format!("{what}: n={}, {over} over 5 s", values.len());
            let mut chart = ChartBuilder::on(area)
                .caption(caption, font(14))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(40)
                .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_label_formatter(&|ms| axis_ns(*ms * 1e6))
                .y_label_formatter(&|n| {
                    if n.fract() == 0.0 {
                        format!("{n}")
                    } else {
                        String::new()
                    }
                })
                .x_desc("log scale")
                .y_desc("outages")
                .label_style(font(11))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(
                    bins.iter()
                        .enumerate()
                        .filter(|(_, c)| **c > 0)
                        .map(|(i, &c)| {
                            let (a, b) =
                                (DURATION_EDGES_MS[i] as f64, DURATION_EDGES_MS[i + 1] as f64);
                            let colour = if a >= target_ms {
                                RGBColor(215, 60, 40)
                            } else {
                                RGBColor(40, 95, 205)
                            };
                            Rectangle::new([(a, 0.0), (b, c as f64)], colour.mix(0.8).filled())
                        }),
                )
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    [(target_ms, 0.0), (target_ms, top)],
                    RED.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series([Text::new(
                    "5 s target",
                    (target_ms * 1.08, top * 0.95),
                    font(12).color(&RED),
                )])
                .map_err(err)?;
        }
        Ok(())
    })
}

/// The tick-latency percentile spectrum: latency (log scale) against the percentile's nines.
pub fn latency(s: &Session) -> Result<String, String> {
    const TITLE: &str = "Tick latency (frame read → on_tick) by percentile";
    let Some(l) = &s.latency else {
        return empty(TITLE, "tick latency not recorded in this session");
    };
    if l.spectrum.is_empty() || l.count == 0 {
        return empty(TITLE, "no tick reached the strategy in this session");
    }
    let last = l
        .spectrum
        .iter()
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, _)| nines(*q, 0.0))
        .fold(0.0, f64::max);
    let points: Vec<(f64, f64)> = l
        .spectrum
        .iter()
        .map(|&(q, ns)| (nines(q, last), (ns.max(1) as f64) / 1e3))
        .collect();
    let lo = points.iter().map(|p| p.1).fold(f64::MAX, f64::min) / 1.5;
    let hi = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.5;
    let max_x = last + 1.0;
    let caption = format!("{TITLE}, n={}", l.count);
    svg((WIDTH, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, font(18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_x + 0.05, (lo.max(1e-3)..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(max_x as usize + 2)
            .x_label_formatter(&|x| {
                if (*x - max_x).abs() < 1e-9 {
                    "max".to_string()
                } else if (*x - x.round()).abs() < 1e-9 {
                    nines_label(*x)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|us| axis_ns(*us * 1e3))
            .x_desc("percentile")
            .y_desc("latency (log scale)")
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
            .map_err(err)?;
        Ok(())
    })
}

/// Captured messages per second per stream over the session.
pub fn rates(s: &Session) -> Result<String, String> {
    const TITLE: &str = "Captured messages per second, per stream";
    let span = s.end_ns.saturating_sub(s.start_ns);
    let width = bin_width(span, RATE_BINS);
    let bins = span.div_ceil(width).max(1) as usize;
    let series: Vec<(String, Vec<(f64, f64)>)> = s
        .feeds
        .iter()
        .flat_map(|f| f.rates.iter().map(move |r| (f, r)))
        .filter(|(_, r)| !r.recv_ns.is_empty())
        .map(|(f, r)| {
            let counts = bin_counts(&r.recv_ns, s.start_ns, width, bins);
            let pts = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    // The last bin may be cut short by the session's end.
                    let from = i as u64 * width;
                    let w = (span - from.min(span)).min(width).max(width / 10);
                    ((from + w / 2) as f64 / 1e9, c as f64 * 1e9 / w as f64)
                })
                .collect();
            (format!("{} · {}", f.name, r.stream), pts)
        })
        .collect();
    if series.is_empty() {
        return empty(TITLE, "nothing was captured in this session");
    }
    let top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let entries: Vec<(String, RGBColor)> = series
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), colour_of(i)))
        .collect();
    let legend_h = legend_height(&entries, WIDTH);
    let height = 380 + legend_h;
    let x_max = span.max(1) as f64 / 1e9;
    svg((WIDTH, height), |root| {
        let (top_area, bottom) = root.split_vertically(height - legend_h);
        let mut chart = ChartBuilder::on(&top_area)
            .caption(
                format!("{TITLE} ({} s bins)", width / 1_000_000_000),
                font(18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the session started")
            .y_desc("messages / s")
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        for (i, (_, pts)) in series.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(pts.clone(), colour_of(i).stroke_width(2)))
                .map_err(err)?;
        }
        legend(&bottom, &entries)
    })
}

/// An axis label for `ns` nanoseconds: `5 ms`, `1 s`, `2.5 µs`.
fn axis_ns(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let text = format!("{v:.1}");
    format!(
        "{} {unit}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

/// A distinct colour for series `i`.
fn colour_of(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_take_the_largest_unit() {
        assert_eq!(axis_ns(1e6), "1 ms");
        assert_eq!(axis_ns(5e9), "5 s");
        assert_eq!(axis_ns(2500.0), "2.5 µs");
        assert_eq!(axis_ns(10.0), "10 ns");
    }
}
