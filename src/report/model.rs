//! A session folder read back for the report: the manifest's feeds, their connection states and
//! gaps, the tick-latency spectrum, and each captured stream's receive times binned into rates.
//! The pure parts (binning, the distribution bins, the spectrum's axis) are here too, tested
//! without files.
//!
//! Older manifests lack `connection_states` and `tick_latency_ns`: those come back as `None`,
//! and the figure that needs them says "not recorded in this session".

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::capture::{read_manifest, stream_file, MANIFEST};
use crate::venue::{defined, Venue};

/// A session folder, read.
#[derive(Debug, Clone)]
pub struct Session {
    /// The folder.
    pub dir: PathBuf,
    /// Its id (the folder's name when the manifest has none).
    pub id: String,
    /// Unix ns of the start: the manifest's, else the earliest time seen.
    pub start_ns: u64,
    /// Unix ns of the end: the manifest's, else the latest time seen.
    pub end_ns: u64,
    /// Whether the session ended cleanly (`"complete": true`).
    pub complete: bool,
    /// The feeds, in the manifest's order.
    pub feeds: Vec<Feed>,
    /// Tick latency `(quantile, ns)`, `None` when the manifest does not record it.
    pub latency: Option<Latency>,
}

/// The strategy's tick latency as the manifest records it.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Ticks measured.
    pub count: u64,
    /// `(quantile, ns)`, quantiles ascending.
    pub spectrum: Vec<(f64, u64)>,
}

/// One feed of the session.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Name.
    pub name: String,
    /// Venue name.
    pub venue: String,
    /// Data messages received.
    pub messages: u64,
    /// Outages recovered.
    pub reconnects: u64,
    /// State changes per role, `None` when the manifest does not record them.
    pub states: Option<Vec<StateRec>>,
    /// Every gap, in order.
    pub gaps: Vec<Gap>,
    /// Captured messages per stream over time.
    pub rates: Vec<StreamTimes>,
}

impl Feed {
    /// Its sequence jumps (gaps on a live connection).
    pub fn jumps(&self) -> usize {
        self.gaps.iter().filter(|g| !g.is_outage()).count()
    }

    /// Ids missed over all its gaps.
    pub fn missed_ids(&self) -> u64 {
        self.gaps.iter().map(|g| g.missed_ids).sum()
    }
}

/// One recorded state change of a connection role.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRec {
    /// Unix ns.
    pub at_ns: u64,
    /// `primary`, `standby`, `replacement`.
    pub role: String,
    /// The state's name (`streaming`, `backoff`, …, `closed`).
    pub state: String,
    /// Connection number.
    pub conn: u64,
}

/// One gap record.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Unix ns of the last data before.
    pub start_ns: u64,
    /// Unix ns of the first data after.
    pub end_ns: u64,
    /// `end - start`, ms.
    pub duration_ms: u64,
    /// Detection → first data, ms (0 for a sequence jump).
    pub reconnect_ms: u64,
    /// `outage` or `sequence_jump`.
    pub cause: String,
    /// Why, in words.
    pub reason: String,
    /// Connection attempts it took.
    pub attempts: u64,
    /// Ids missed, summed over its ranges.
    pub missed_ids: u64,
}

impl Gap {
    /// Whether the gap is an outage (no connection carried the feed).
    pub fn is_outage(&self) -> bool {
        self.cause == "outage"
    }

    /// The colour class of the gap: `sequence jump`, or the outage's reason without its
    /// details in parentheses (`HTTP 429 on upgrade (Retry-After 1 s)` → `HTTP 429 on upgrade`).
    pub fn category(&self) -> String {
        if !self.is_outage() {
            return "sequence jump".to_string();
        }
        let r = self.reason.split(" (").next().unwrap_or_default().trim();
        if r.is_empty() {
            "outage".to_string()
        } else {
            r.to_string()
        }
    }
}

/// The receive times of one captured stream.
#[derive(Debug, Clone)]
pub struct StreamTimes {
    /// Stream name.
    pub stream: String,
    /// Unix ns of each captured message, in file order.
    pub recv_ns: Vec<u64>,
}

/// Reads the session folder `dir`: an error names the file and the problem.
pub fn read(dir: &Path) -> Result<Session, String> {
    let manifest = read_manifest(dir)?;
    let defined = defined::in_config(&manifest["config"])?;
    let path = dir.join(MANIFEST);
    let bad = |what: String| format!("{}: {what}", path.display());
    let mut feeds = Vec::new();
    for (i, f) in manifest["feeds"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = f["name"]
            .as_str()
            .ok_or_else(|| bad(format!("feed {} has no name", i + 1)))?
            .to_string();
        let venue = f["venue"].as_str().unwrap_or_default().to_string();
        let states = f.get("connection_states").map(|s| {
            s.as_array()
                .into_iter()
                .flatten()
                .map(|c| StateRec {
                    at_ns: c["at_ns"].as_u64().unwrap_or(0),
                    role: c["role"].as_str().unwrap_or("primary").to_string(),
                    state: c["state"].as_str().unwrap_or("closed").to_string(),
                    conn: c["conn"].as_u64().unwrap_or(0),
                })
                .collect()
        });
        let gaps = f["connection_gaps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| Gap {
                start_ns: g["start_ns"].as_u64().unwrap_or(0),
                end_ns: g["end_ns"].as_u64().unwrap_or(0),
                duration_ms: g["duration_ms"].as_u64().unwrap_or(0),
                reconnect_ms: g["reconnect_ms"].as_u64().unwrap_or(0),
                cause: g["cause"].as_str().unwrap_or("outage").to_string(),
                reason: g["reason"].as_str().unwrap_or_default().to_string(),
                attempts: g["attempts"].as_u64().unwrap_or(0),
                missed_ids: g["missed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| Some(m["to_seq"].as_u64()? + 1 - m["from_seq"].as_u64()?))
                    .sum(),
            })
            .collect();
        let rates = read_rates(dir, &name, defined::find(&defined, &venue), f)?;
        feeds.push(Feed {
            name,
            venue,
            messages: f["messages"].as_u64().unwrap_or(0),
            reconnects: f["total_reconnects"].as_u64().unwrap_or(0),
            states,
            gaps,
            rates,
        });
    }
    let latency = manifest.get("tick_latency_ns").map(|l| Latency {
        count: l["count"].as_u64().unwrap_or(0),
        spectrum: l["percentiles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["q"].as_f64()?, p["ns"].as_u64()?)))
            .collect(),
    });
    let seen = feeds.iter().flat_map(|f| {
        let states = f.states.iter().flatten().map(|s| s.at_ns);
        let gaps = f.gaps.iter().flat_map(|g| [g.start_ns, g.end_ns]);
        let rates = f.rates.iter().flat_map(|r| r.recv_ns.iter().copied());
        states.chain(gaps).chain(rates).filter(|t| *t > 0)
    });
    let (lo, hi) = seen.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let start_ns = manifest["started_unix_ns"].as_u64().unwrap_or(lo.min(hi));
    let end_ns = manifest["ended_unix_ns"]
        .as_u64()
        .unwrap_or(hi)
        .max(start_ns);
    let id = manifest["session_id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    Ok(Session {
        dir: dir.to_path_buf(),
        id,
        start_ns,
        end_ns,
        complete: manifest["complete"].as_bool().unwrap_or(false),
        feeds,
        latency,
    })
}

/// Each stream's receive times from its JSONL file (a stream that never delivered has none).
fn read_rates(
    dir: &Path,
    feed: &str,
    venue: Option<Venue>,
    f: &Value,
) -> Result<Vec<StreamTimes>, String> {
    let Some(v) = venue else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for stream in f["streams"].as_array().into_iter().flatten() {
        let Some(stream) = stream.as_str() else {
            continue;
        };
        let Ok(def) = v.parse_stream(stream) else {
            continue;
        };
        let file = stream_file(dir, v.name(), feed, &def);
        let recv_ns = match File::open(&file) {
            Ok(fh) => read_times(BufReader::new(fh))
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        out.push(StreamTimes {
            stream: stream.to_string(),
            recv_ns,
        });
    }
    Ok(out)
}

/// The `recv_ns` of each capture line (lines without one are passed over).
fn read_times(mut r: impl BufRead) -> std::io::Result<Vec<u64>> {
    const KEY: &[u8] = b"{\"recv_ns\":";
    let mut out = Vec::new();
    let mut line = Vec::new();
    while r.read_until(b'\n', &mut line)? > 0 {
        if let Some(rest) = line.strip_prefix(KEY) {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(t) = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                out.push(t);
            }
        }
        line.clear();
    }
    Ok(out)
}

// ----- pure parts ---------------------------------------------------------------------------

/// Counts of `times` (ns) in `bins` bins of `width_ns` from `start_ns`; times outside are left
/// out.
pub fn bin_counts(times: &[u64], start_ns: u64, width_ns: u64, bins: usize) -> Vec<u64> {
    let mut out = vec![0u64; bins];
    if width_ns == 0 {
        return out;
    }
    for &t in times {
        if let Some(b) = t.checked_sub(start_ns).map(|d| (d / width_ns) as usize) {
            if let Some(c) = out.get_mut(b) {
                *c += 1;
            }
        }
    }
    out
}

/// A bin width for a span of `span_ns`: whole seconds, at most `max_bins` bins.
pub fn bin_width(span_ns: u64, max_bins: u64) -> u64 {
    const SECOND: u64 = 1_000_000_000;
    let secs = span_ns.div_ceil(SECOND).div_ceil(max_bins.max(1)).max(1);
    secs * SECOND
}

/// The edges (ms) of the reconnect and gap distributions: 1-2-5 steps from 1 ms to 100 s, so
/// 5 s (the reconnect target) is an edge.
pub const DURATION_EDGES_MS: [u64; 16] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// Counts of `values_ms` per bin `[edges[i], edges[i+1])`; below the first edge counts in the
/// first bin, at or above the last in the last.
pub fn duration_bins(values_ms: &[u64]) -> Vec<u64> {
    let n = DURATION_EDGES_MS.len() - 1;
    let mut out = vec![0u64; n];
    for &v in values_ms {
        let i = DURATION_EDGES_MS[1..]
            .iter()
            .position(|&e| v < e)
            .unwrap_or(n - 1);
        out[i] += 1;
    }
    out
}

/// The spectrum's x position of quantile `q`: its "nines", `-log10(1 - q)` (p90 → 1, p99 → 2);
/// the maximum (q = 1) goes one step beyond the last finite one, `last`.
pub fn nines(q: f64, last: f64) -> f64 {
    if q >= 1.0 {
        last + 1.0
    } else {
        -(1.0 - q).log10()
    }
}

/// The percentile label of `x` nines (0 → `p0`, 1 → `p90`, 2 → `p99`, 3 → `p99.9`).
pub fn nines_label(x: f64) -> String {
    if x <= 0.0 {
        return "p0".to_string();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{p:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_fall_into_their_bins_and_outside_ones_are_left_out() {
        let s = 1_000_000_000u64;
        let times = [s - 1, s, s + 1, 2 * s - 1, 2 * s, 4 * s + 5, 9 * s];
        assert_eq!(bin_counts(&times, s, s, 4), vec![3, 1, 0, 1]);
        assert_eq!(bin_counts(&times, s, 0, 2), vec![0, 0]);
        assert_eq!(bin_width(10 * s, 200), s, "at least a second");
        assert_eq!(bin_width(600 * s, 200), 3 * s);
        assert_eq!(bin_width(601 * s, 200), 4 * s);
    }

    #[test]
    fn durations_fall_into_1_2_5_bins_with_5_s_an_edge() {
        let bins = duration_bins(&[0, 1, 4, 4_999, 5_000, 7_000, 1_000_000]);
        assert_eq!(bins.len(), DURATION_EDGES_MS.len() - 1);
        assert_eq!(bins[0], 2, "0 and 1 ms");
        assert_eq!(bins[1], 1, "4 ms in [2, 5)");
        assert_eq!(bins[10], 1, "4999 ms in [2000, 5000)");
        assert_eq!(bins[11], 2, "5000 and 7000 ms in [5000, 10000)");
        assert_eq!(bins[14], 1, "beyond the last edge: the last bin");
        assert_eq!(bins.iter().sum::<u64>(), 7);
    }

    #[test]
    fn the_spectrum_axis_counts_nines() {
        assert_eq!(nines(0.0, 5.0), 0.0);
        assert!((nines(0.9, 5.0) - 1.0).abs() < 1e-9);
        assert!((nines(0.999, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0, 5.0), 6.0);
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(1.0), "p90");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(3.0), "p99.9");
        assert_eq!(nines_label(5.0), "p99.999");
    }

    #[test]
    fn capture_lines_give_their_receive_times() {
        let text = b"{\"recv_ns\":12,\"conn\":1,\"msg\":{}}\n\n{\"recv_ns\":34,\"conn\":1,\"msg\":{}}\nbad\n";
        assert_eq!(read_times(&text[..]).unwrap(), vec![12, 34]);
    }

    #[test]
    fn a_gap_is_coloured_by_its_cause_and_reason() {
        let gap = |cause: &str, reason: &str| Gap {
            start_ns: 0,
            end_ns: 0,
            duration_ms: 0,
            reconnect_ms: 0,
            cause: cause.into(),
            reason: reason.into(),
            attempts: 0,
            missed_ids: 0,
        };
        assert_eq!(
            gap("outage", "HTTP 429 on upgrade (Retry-After 1 s)").category(),
            "HTTP 429 on upgrade"
        );
        assert_eq!(gap("outage", "").category(), "outage");
        assert_eq!(gap("sequence_jump", "x").category(), "sequence jump");
    }
}
