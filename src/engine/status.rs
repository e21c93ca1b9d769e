//! The status line of `run` and `demo`: one line that fits [`STATUS_WIDTH`] columns with the
//! totals, and a second line naming each feed and connection that is not streaming, only while
//! one is not; and the percentiles line printed under it now and then, as wide at most.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::metrics::{fmt_ns, FeedState, SlotRole, RECONNECT_TARGET};

/// The widest a status line gets, in columns (characters).
pub const STATUS_WIDTH: usize = 120;

/// One connection of a feed, as the status line sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnView {
    pub role: SlotRole,
    /// The feed's number of the connection.
    pub number: u64,
    pub state: FeedState,
}

/// One feed, as the status line sees it.
#[derive(Clone, Debug)]
pub(crate) struct FeedView<'a> {
    pub name: &'a str,
    pub state: FeedState,
    pub reconnects: u64,
    pub dropped: u64,
    /// Its connections, when it has more than one (or a standby); empty otherwise.
    pub conns: Vec<ConnView>,
}

/// The status text: the totals line, and a details line while a feed or one of its
/// connections is not streaming; each at most [`STATUS_WIDTH`] columns.
pub(crate) fn format(elapsed: Duration, rate: f64, feeds: &[FeedView<'_>]) -> String {
    let streaming = |s: FeedState| s == FeedState::Streaming;
    let conns: Vec<&ConnView> = feeds.iter().flat_map(|f| &f.conns).collect();
    let mut line = format!(
        "[{:>6.1}s] {:>8.0} msg/s | feeds streaming {}/{}",
        elapsed.as_secs_f64(),
        rate,
        feeds.iter().filter(|f| streaming(f.state)).count(),
        feeds.len()
    );
    if !conns.is_empty() {
        let _ = write!(
            line,
            " | paired connections streaming {}/{}",
            conns.iter().filter(|c| streaming(c.state)).count(),
            conns.len()
        );
    }
    let _ = write!(
        line,
        " | reconnects {}",
        feeds.iter().map(|f| f.reconnects).sum::<u64>()
    );
    let dropped: u64 = feeds.iter().map(|f| f.dropped).sum();
    if dropped > 0 {
        let _ = write!(line, " | drops {dropped}");
    }
    let mut out = fit(line);
    let mut details: Vec<String> = Vec::new();
    for f in feeds {
        let down: Vec<String> = f
            .conns
            .iter()
            .filter(|c| !streaming(c.state))
            .map(|c| format!("{}#{} {}", c.role.name(), c.number, c.state.name()))
            .collect();
        if streaming(f.state) && down.is_empty() {
            continue;
        }
        let mut d = format!("{} {}", f.name, f.state.name());
        if !down.is_empty() {
            let _ = write!(d, " ({})", down.join(", "));
        }
        details.push(d);
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&fit(format!("  not streaming: {}", details.join(" | "))));
    }
    out
}

/// The percentiles line printed now and then under the status line, within
/// [`STATUS_WIDTH`]: reconnect time and gap (µs histograms) with the misses of the 5 s target,
/// and tick latency (ns), each as count, p50 and p99 (the summary has the rest).
pub(crate) fn percentile_line(
    reconnect_us: &Histogram<u64>,
    gap_us: &Histogram<u64>,
    misses: u64,
    latency_ns: &Histogram<u64>,
) -> String {
    let short = |h: &Histogram<u64>, unit_ns: u64| {
        if h.is_empty() {
            return "n=0".to_string();
        }
        let f = |v: u64| fmt_ns(v.saturating_mul(unit_ns));
        format!(
            "n={} p50 {} p99 {}",
            h.len(),
            f(h.value_at_quantile(0.5)),
            f(h.value_at_quantile(0.99))
        )
    };
    fit(format!(
        "  reconnect {} ({misses} over {} s) | gap {} | tick {}",
        short(reconnect_us, 1000),
        RECONNECT_TARGET.as_secs(),
        short(gap_us, 1000),
        short(latency_ns, 1)
    ))
}

/// `line`, cut to [`STATUS_WIDTH`] characters with `…` when longer.
fn fit(line: String) -> String {
    if line.chars().count() <= STATUS_WIDTH {
        return line;
    }
    let mut cut: String = line.chars().take(STATUS_WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, state: FeedState, conns: &[FeedState]) -> FeedView<'static> {
        FeedView {
            name: Box::leak(name.to_string().into_boxed_str()),
            state,
            reconnects: 3,
            dropped: 0,
            conns: conns
                .iter()
                .enumerate()
                .map(|(i, s)| ConnView {
                    role: if i == 0 {
                        SlotRole::Primary
                    } else {
                        SlotRole::Standby
                    },
                    number: i as u64 + 1,
                    state: *s,
                })
                .collect(),
        }
    }

    /// The demo's eight feeds.
    fn demo(states: [FeedState; 3]) -> Vec<FeedView<'static>> {
        let [a, b, c] = states;
        let mut v = vec![feed("spot", a, &[b, c])];
        for name in [
            "spot-one",
            "usdm-public",
            "usdm-market",
            "bybit",
            "bybit-quotes",
            "okx",
            "okx-quotes",
        ] {
            v.push(feed(name, a, &[]));
        }
        v
    }

    #[test]
    fn the_percentiles_line_fits_the_width() {
        let mut us = crate::metrics::micros_histogram();
        let mut ns = crate::metrics::nanos_histogram();
        for v in [31_600, 47_200, 760_800, 4_900_000, 59_000_000] {
            us.saturating_record(v);
        }
        for v in [12_000, 85_000, 9_500_000] {
            ns.saturating_record(v);
        }
        let line = percentile_line(&us, &us, 12, &ns);
        assert!(line.chars().count() <= STATUS_WIDTH, "{line}");
        assert!(!line.ends_with('…'), "{line}");
        assert!(line.starts_with("  reconnect n=5 p50 "), "{line}");
        assert!(line.contains("(12 over 5 s) | gap n=5 "), "{line}");
        assert!(line.contains("| tick n=3 p50 "), "{line}");
        let empty = crate::metrics::micros_histogram();
        assert_eq!(
            percentile_line(&empty, &empty, 0, &empty),
            "  reconnect n=0 (0 over 5 s) | gap n=0 | tick n=0"
        );
    }

    #[test]
    fn all_streaming_is_one_line_within_the_width() {
        let s = format(
            Duration::from_secs(86_400),
            1.25e6,
            &demo([FeedState::Streaming; 3]),
        );
        assert!(!s.contains('\n'), "{s}");
        assert!(s.chars().count() <= STATUS_WIDTH, "{s}");
        assert!(s.contains("feeds streaming 8/8"), "{s}");
        assert!(s.contains("paired connections streaming 2/2"), "{s}");
        assert!(s.contains("reconnects 24"), "{s}");
    }

    #[test]
    fn what_is_not_streaming_goes_on_a_second_line_within_the_width() {
        let mut feeds = demo([
            FeedState::Streaming,
            FeedState::Streaming,
            FeedState::Backoff,
        ]);
        feeds[3].state = FeedState::CircuitOpen;
        feeds[4].dropped = 7;
        let s = format(Duration::from_secs(12), 5000.0, &feeds);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(lines[0].contains("feeds streaming 7/8 | paired connections streaming 1/2"));
        assert!(lines[0].contains("drops 7"), "{s}");
        assert_eq!(
            lines[1],
            "  not streaming: spot streaming (standby#2 backoff) | usdm-market circuit-open"
        );
        // Everything down: the details are cut at the width.
        let s = format(Duration::from_secs(12), 0.0, &demo([FeedState::Backoff; 3]));
        assert!(s.lines().all(|l| l.chars().count() <= STATUS_WIDTH), "{s}");
        assert!(s.ends_with('…'), "{s}");
    }
}
