//! `wsfeed report SESSION_DIR [--out DIR]`: a capture session as one self-contained HTML page
//! (`report.html`, its figures inline as SVG, no external assets) and the figures as SVG files
//! beside it, plus a text summary.
//!
//! The figures ([`figures`]): each feed's connections (one row per role) with their states over
//! time and every gap coloured by cause (`timeline.svg`); the reconnect-time and gap-duration
//! distributions against the 5 s target (`reconnects.svg`); the tick-latency percentile
//! spectrum (`latency.svg`); captured messages per second per stream (`rates.svg`). The session
//! is read by [`model`], which reuses the capture's own reading code.

pub mod figures;
pub mod model;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::clock;
use crate::metrics::{fmt_ns, RECONNECT_TARGET};
use model::Session;

/// The page's file name.
pub const PAGE: &str = "report.html";

/// The figures' file names, in the page's order.
pub const FIGURES: [&str; 4] = ["timeline.svg", "reconnects.svg", "latency.svg", "rates.svg"];

/// A written report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The page.
    pub page: PathBuf,
    /// The figures, in [`FIGURES`]' order.
    pub figures: Vec<PathBuf>,
    /// The session it describes.
    pub session: Session,
}

/// Reads the session folder `dir` and writes the page and the figures into `out` (the session
/// folder when `None`; created when missing). An error names the file and the problem.
pub fn write(dir: &Path, out: Option<&Path>) -> Result<Report, String> {
    let session = model::read(dir)?;
    let out = out.unwrap_or(dir);
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let svgs = [
        figures::timeline(&session)?,
        figures::distributions(&session)?,
        figures::latency(&session)?,
        figures::rates(&session)?,
    ];
    let mut paths = Vec::new();
    for (name, svg) in FIGURES.iter().zip(&svgs) {
        let path = out.join(name);
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        paths.push(path);
    }
    let page = out.join(PAGE);
    std::fs::write(&page, html(&session, &svgs))
        .map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    Ok(Report {
        page,
        figures: paths,
        session,
    })
}

/// `&`, `<`, `>` and `"` escaped.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Outage reconnect times and gap durations (ms), and how many reconnects missed the target.
fn outage_times(s: &Session) -> (Vec<u64>, Vec<u64>, usize) {
    let outages: Vec<_> = s
        .feeds
        .iter()
        .flat_map(|f| &f.gaps)
        .filter(|g| g.is_outage())
        .collect();
    let mut reconnect: Vec<u64> = outages.iter().map(|g| g.reconnect_ms).collect();
    let mut gap: Vec<u64> = outages.iter().map(|g| g.duration_ms).collect();
    reconnect.sort_unstable();
    gap.sort_unstable();
    let target = RECONNECT_TARGET.as_millis() as u64;
    let over = reconnect.iter().filter(|&&r| r > target).count();
    (reconnect, gap, over)
}

/// `n=… p50=… p99=… max=…` of sorted `ms` values (nearest rank).
fn ms_percentiles(sorted: &[u64]) -> String {
    if sorted.is_empty() {
        return "n=0".to_string();
    }
    let at =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    format!(
        "n={} p50={}ms p90={}ms p99={}ms max={}ms",
        sorted.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        sorted[sorted.len() - 1]
    )
}

/// The tick-latency line: the spectrum's p50, p99, p99.9 and max.
fn latency_line(s: &Session) -> String {
    let Some(l) = &s.latency else {
        return "not recorded in this session".to_string();
    };
    if l.count == 0 {
        return "n=0".to_string();
    }
    let pick = |q: f64| {
        l.spectrum
            .iter()
            .find(|(x, _)| (*x - q).abs() < 1e-12)
            .map_or("?".to_string(), |(_, v)| fmt_ns(*v))
    };
    format!(
        "n={} p50={} p99={} p99.9={} max={}",
        l.count,
        pick(0.5),
        pick(0.99),
        pick(0.999),
        pick(1.0)
    )
}

impl fmt::Display for Report {
    /// The text summary: the session, per feed its messages, reconnects and gaps, the
    /// distributions' percentiles, and where the page and the figures are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.session;
        writeln!(
            f,
            "session {} ({}), {}, {:.1} s, {} feeds",
            s.id,
            if s.complete {
                "complete"
            } else {
                "incomplete: it did not end cleanly"
            },
            clock::utc_string(s.start_ns),
            s.end_ns.saturating_sub(s.start_ns) as f64 / 1e9,
            s.feeds.len()
        )?;
        for feed in &s.feeds {
            let (jumps, missed) = (feed.jumps(), feed.missed_ids());
            writeln!(
                f,
                "  {:<16} {:<14} messages {:>9}  reconnects {:>3}  gaps {:>3} ({} outages, {jumps} sequence jumps, {missed} ids missed)",
                feed.name,
                feed.venue,
                feed.messages,
                feed.reconnects,
                feed.gaps.len(),
                feed.gaps.len() - jumps
            )?;
        }
        let (reconnect, gap, over) = outage_times(s);
        writeln!(
            f,
            "reconnect time: {} | {over} over the {} s target",
            ms_percentiles(&reconnect),
            RECONNECT_TARGET.as_secs()
        )?;
        writeln!(f, "gap duration:   {}", ms_percentiles(&gap))?;
        writeln!(f, "tick latency:   {}", latency_line(s))?;
        let names: Vec<String> = self
            .figures
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        write!(
            f,
            "report: {} (figures: {})",
            self.page.display(),
            names.join(", ")
        )
    }
}

/// The page: the session's facts, a table of feeds, the figures inline, a table of every gap.
fn html(s: &Session, svgs: &[String; 4]) -> String {
    const TITLES: [&str; 4] = [
        "Connections and gaps",
        "Reconnect time and gap duration against the 5 s target",
        "Tick latency",
        "Message rates",
    ];
    let mut p = String::new();
    let title = format!("wsfeed session {}", esc(&s.id));
    let _ = write!(
        p,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0 24px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}} th{{background:#f3f3f3}}\
         td.n{{text-align:right}} figure{{margin:0 0 28px}} .muted{{color:#777}}</style></head><body>\n\
         <h1>{title}</h1>\n<p>{} to {}, {:.1} s{}</p>\n",
        clock::utc_string(s.start_ns),
        clock::utc_string(s.end_ns),
        s.end_ns.saturating_sub(s.start_ns) as f64 / 1e9,
        if s.complete {
            ""
        } else {
            " — <b>incomplete</b>: the session did not end cleanly"
        }
    );
    p.push_str(
        "<h2>Feeds</h2>\n<table><tr><th>feed</th><th>venue</th><th>messages</th><th>reconnects</th>\
         <th>outages</th><th>sequence jumps</th><th>ids missed</th></tr>\n",
    );
    for feed in &s.feeds {
        let jumps = feed.jumps();
        let _ = writeln!(
            p,
            "<tr class=\"feed\"><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{jumps}</td><td class=\"n\">{}</td></tr>",
            esc(&feed.name),
            esc(&feed.venue),
            feed.messages,
            feed.reconnects,
            feed.gaps.len() - jumps,
            feed.missed_ids()
        );
    }
    p.push_str("</table>\n");
    let (reconnect, gap, over) = outage_times(s);
    let _ = writeln!(
        p,
        "<p>Reconnect time: {} ({over} over the 5 s target). Gap duration: {}. Tick latency: {}.</p>",
        ms_percentiles(&reconnect),
        ms_percentiles(&gap),
        esc(&latency_line(s))
    );
    for (title, svg) in TITLES.iter().zip(svgs) {
        let _ = writeln!(p, "<figure><h2>{title}</h2>\n{svg}\n</figure>");
    }
    let count: usize = s.feeds.iter().map(|f| f.gaps.len()).sum();
    let _ = writeln!(
        p,
        "<h2>Gaps ({count})</h2>\n<table><tr><th>feed</th><th>cause</th><th>reason</th><th>start (s)</th>\
         <th>duration (ms)</th><th>reconnect (ms)</th><th>attempts</th><th>ids missed</th></tr>"
    );
    for feed in &s.feeds {
        for g in &feed.gaps {
            let _ = writeln!(
                p,
                "<tr class=\"gap\"><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.3}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&feed.name),
                esc(&g.cause),
                esc(&g.reason),
                g.start_ns.saturating_sub(s.start_ns) as f64 / 1e9,
                g.duration_ms,
                g.reconnect_ms,
                g.attempts,
                g.missed_ids
            );
        }
    }
    if count == 0 {
        p.push_str("<tr><td colspan=\"8\" class=\"muted\">no gap in this session</td></tr>\n");
    }
    p.push_str("</table>\n</body></html>\n");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_ms_values_take_the_nearest_rank() {
        assert_eq!(ms_percentiles(&[]), "n=0");
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(
            ms_percentiles(&v),
            "n=100 p50=50ms p90=90ms p99=99ms max=100ms"
        );
        assert_eq!(ms_percentiles(&[7]), "n=1 p50=7ms p90=7ms p99=7ms max=7ms");
    }

    #[test]
    fn names_are_escaped_for_the_page() {
        assert_eq!(esc("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
