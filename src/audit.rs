//! Audit of a capture session: does the manifest account for every update the capture lacks?
//!
//! The capture and the manifest are written separately (the capture thread writes what the
//! strategy was given; the feed thread records what the venue's numbering says was missed).
//! The audit reads both back and, per stream:
//!
//! - counts captured messages and duplicates (there must be none: standby copies are dropped);
//! - finds the holes in the captured numbering: for chained streams (depth, trades) every
//!   message whose predecessor is not the previous captured message; for id streams
//!   (`bookTicker`) every jump of more than one;
//! - compares the holes with the manifest's missed ranges. For chained streams every hole
//!   must be reported and every report must be a hole ("unexplained" and "invented" are both
//!   errors). Id streams have holes in normal operation on a real venue, so only reports that
//!   cover captured ids are errors there.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::venue::{SeqRule, Venue};

/// Inclusive id ranges, sorted and merged.
type Ranges = Vec<(u64, u64)>;

/// The audit of one captured stream.
#[derive(Debug, Clone)]
pub struct StreamAudit {
    /// Feed name.
    pub feed: String,
    /// Stream name.
    pub stream: String,
    /// The JSONL file read.
    pub file: PathBuf,
    /// How the stream is numbered.
    pub rule: SeqRule,
    /// Captured messages.
    pub messages: u64,
    /// Messages whose id was captured before.
    pub duplicates: u64,
    /// Messages below the previous id but never captured before: the venue's numbering went
    /// back and the feed followed it (not an error).
    pub regressions: u64,
    /// First and last captured id.
    pub span: Option<(u64, u64)>,
    /// Holes in the captured numbering.
    pub holes: Ranges,
    /// Ranges the manifest reports missed.
    pub reported: Ranges,
    /// Holes no report covers (chained streams only).
    pub unexplained: Ranges,
    /// Reported ids that were captured after all (chained), or that are captured (id streams).
    pub invented: Ranges,
}

impl StreamAudit {
    /// Whether this stream passes.
    pub fn ok(&self) -> bool {
        self.duplicates == 0 && self.unexplained.is_empty() && self.invented.is_empty()
    }
}

/// The audit of a session.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Per stream.
    pub streams: Vec<StreamAudit>,
    /// Lines that could not be read back.
    pub bad_lines: u64,
}

impl Audit {
    /// Whether every stream passes and every line was readable.
    pub fn ok(&self) -> bool {
        self.bad_lines == 0 && self.streams.iter().all(StreamAudit::ok)
    }
}

fn count(r: &Ranges) -> u64 {
    r.iter().map(|(a, b)| b - a + 1).sum()
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.streams {
            let mut line = format!(
                "{:<4} {:<14} {:<26} msgs {:>8} dup {} holes {:>3} ({:>6} ids) reported {:>3} ({:>6} ids)",
                if s.ok() { "ok" } else { "FAIL" },
                s.feed,
                s.stream,
                s.messages,
                s.duplicates,
                s.holes.len(),
                count(&s.holes),
                s.reported.len(),
                count(&s.reported),
            );
            if !s.unexplained.is_empty() {
                let _ = write!(
                    line,
                    " UNEXPLAINED {} ids {:?}",
                    count(&s.unexplained),
                    &s.unexplained[..s.unexplained.len().min(5)]
                );
            }
            if !s.invented.is_empty() {
                let _ = write!(
                    line,
                    " INVENTED {} ids {:?}",
                    count(&s.invented),
                    &s.invented[..s.invented.len().min(5)]
                );
            }
            if s.regressions > 0 {
                let _ = write!(line, " [numbering went back {} times]", s.regressions);
            }
            if s.rule == SeqRule::Ids {
                line.push_str(" [id stream: holes on one connection are normal]");
            }
            writeln!(f, "{line}")?;
        }
        if self.bad_lines > 0 {
            writeln!(f, "unreadable lines: {}", self.bad_lines)?;
        }
        let unexplained: u64 = self.streams.iter().map(|s| count(&s.unexplained)).sum();
        let invented: u64 = self.streams.iter().map(|s| count(&s.invented)).sum();
        let dups: u64 = self.streams.iter().map(|s| s.duplicates).sum();
        write!(
            f,
            "audit {}: {} streams, {} duplicates, {unexplained} unexplained ids, {invented} invented ids",
            if self.ok() { "passed" } else { "FAILED" },
            self.streams.len(),
            dups
        )
    }
}

/// Audits the session folder `dir` (the one holding `session_manifest.json`).
pub fn audit(dir: &Path) -> Result<Audit, String> {
    let manifest = crate::capture::read_manifest(dir)?;
    let feeds = manifest["feeds"].as_array().into_iter().flatten();
    let defined = crate::venue::defined::in_config(&manifest["config"])?;
    let mut out = Audit::default();
    for feed in feeds {
        let name = feed["name"].as_str().unwrap_or_default();
        let venue_name = feed["venue"].as_str().unwrap_or_default();
        let venue = crate::venue::defined::find(&defined, venue_name)
            .ok_or_else(|| format!("feed '{name}': unknown venue '{venue_name}'"))?;
        let streams = feed["streams"].as_array().cloned().unwrap_or_default();
        for stream in streams.iter().filter_map(Value::as_str) {
            let def = venue
                .parse_stream(stream)
                .map_err(|e| format!("feed '{name}': {e}"))?;
            let file = crate::capture::stream_file(dir, venue_name, name, &def);
            let reported = merge(
                feed["connection_gaps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["missed"].as_array().into_iter().flatten())
                    .filter(|m| m["stream"] == stream)
                    .filter_map(|m| Some((m["from_seq"].as_u64()?, m["to_seq"].as_u64()?)))
                    .collect(),
            );
            let mut s = StreamAudit {
                feed: name.to_string(),
                stream: stream.to_string(),
                file,
                rule: def.seq,
                messages: 0,
                duplicates: 0,
                regressions: 0,
                span: None,
                holes: Vec::new(),
                reported,
                unexplained: Vec::new(),
                invented: Vec::new(),
            };
            out.bad_lines += read_stream(venue, def.kind, &mut s)?;
            judge(&mut s);
            out.streams.push(s);
        }
    }
    Ok(out)
}

/// Reads a stream's JSONL file, filling counts, span, holes and the captured coverage.
fn read_stream(
    venue: Venue,
    kind: crate::venue::StreamKind,
    s: &mut StreamAudit,
) -> Result<u64, String> {
    let file = match File::open(&s.file) {
        Ok(f) => f,
        // Nothing captured (the stream never delivered): nothing to check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {}: {e}", s.file.display())),
    };
    let mut bad = 0;
    let mut last: Option<u64> = None;
    let mut seen = std::collections::HashSet::new();
    // A stream numbered by time may send several updates in one millisecond: as on the live
    // path, they are told apart by their text.
    let mut seen_at = std::collections::HashSet::new();
    let mut buf = Vec::new();
    for text in BufReader::new(file).lines() {
        let text = text.map_err(|e| format!("{}: {e}", s.file.display()))?;
        let line = crate::capture::parse_line(&text);
        if line.as_ref().is_some_and(|l| l.again) {
            // Given to a book again after a resync: the numbering has it once already.
            continue;
        }
        let by_time = s.rule == SeqRule::Time;
        let Some((seq, fp)) = line.and_then(|l| message_seq(venue, kind, &l, &mut buf, by_time))
        else {
            bad += 1;
            continue;
        };
        s.messages += 1;
        if s.rule == SeqRule::Chained && seq.prev.is_none() {
            // A snapshot (Bybit, OKX): the book starts over here, whatever its id.
            s.span = Some((s.span.map_or(seq.id, |(a, _)| a.min(seq.id)), seq.id));
            last = Some(seq.id);
            continue;
        }
        if seq.is_unnumbered() {
            // No number and no time: delivered as it came, never a duplicate.
            continue;
        }
        if s.rule == SeqRule::Time {
            if !seen_at.insert((seq.id, fp)) {
                s.duplicates += 1;
            } else if last.is_some_and(|l| seq.id < l) {
                s.regressions += 1;
            }
            s.span = Some((s.span.map_or(seq.id, |(a, _)| a), seq.id));
            last = Some(seq.id);
            continue;
        }
        if !seen.insert(seq.id) {
            s.duplicates += 1;
            continue;
        }
        match last {
            Some(l) if seq.id <= l => {
                // Never captured before, but below the last id: the venue's numbering went
                // back (a reset, or an id far ahead before it), and the feed followed it.
                s.regressions += 1;
                last = Some(seq.id);
                continue;
            }
            Some(l) => {
                let hole = match (s.rule, seq.prev) {
                    (SeqRule::Chained, Some(prev)) if prev > l => Some((l + 1, prev)),
                    (SeqRule::Ids, _) if seq.id > l + 1 => Some((l + 1, seq.id - 1)),
                    _ => None,
                };
                s.holes.extend(hole);
            }
            None => {}
        }
        s.span = Some((s.span.map_or(seq.id, |(a, _)| a), seq.id));
        last = Some(seq.id);
    }
    // A hole found after the numbering started over (a snapshot, or a reset) may cover ids
    // captured before it: those are not missing.
    if !s.holes.is_empty() {
        let mut ids: Vec<u64> = seen.into_iter().collect();
        ids.sort_unstable();
        let captured = merge(ids.into_iter().map(|id| (id, id)).collect());
        s.holes = subtract(&merge(std::mem::take(&mut s.holes)), &captured);
    }
    Ok(bad)
}

/// The numbering of the venue message of one capture line, and (`fingerprint`) its payload's
/// fingerprint, else 0; `buf` holds a binary frame decoded.
fn message_seq(
    venue: Venue,
    kind: crate::venue::StreamKind,
    line: &crate::capture::Line<'_>,
    buf: &mut Vec<u8>,
    fingerprint: bool,
) -> Option<(crate::venue::Seq, u64)> {
    let data = crate::capture::captured_payload(venue, line.msg, line.binary, buf).ok()?;
    let mut seq = None;
    venue
        .parse_payload(kind, data, &mut |s, _, _| {
            seq.get_or_insert(s);
        })
        .ok()?;
    let fp = match fingerprint {
        true => crate::feed::seq::fingerprint(data.bytes()),
        false => 0,
    };
    Some((seq?, fp))
}

/// Compares holes with reports.
fn judge(s: &mut StreamAudit) {
    s.holes = merge(std::mem::take(&mut s.holes));
    match s.rule {
        SeqRule::Chained => {
            s.unexplained = subtract(&s.holes, &s.reported);
            // Reports outside the captured span are about ids before the first or after the
            // last captured message: nothing here can confirm or refute them.
            let inside = clip(&s.reported, s.span);
            s.invented = subtract(&inside, &s.holes);
        }
        SeqRule::Ids => {
            // A report may only cover ids that are not captured: inside holes.
            let inside = clip(&s.reported, s.span);
            s.invented = subtract(&inside, &s.holes);
        }
        SeqRule::Time => {}
    }
}

fn clip(r: &Ranges, span: Option<(u64, u64)>) -> Ranges {
    let Some((lo, hi)) = span else {
        return Vec::new();
    };
    r.iter()
        .filter(|(a, b)| *b >= lo && *a <= hi)
        .map(|&(a, b)| (a.max(lo), b.min(hi)))
        .collect()
}

/// Sorts and merges overlapping or touching ranges.
fn merge(mut r: Ranges) -> Ranges {
    r.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(r.len());
    for (a, b) in r {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `a` minus `b`, both merged.
fn subtract(a: &Ranges, b: &Ranges) -> Ranges {
    let mut out = Vec::new();
    for &(mut lo, hi) in a {
        for &(blo, bhi) in b {
            if bhi < lo || blo > hi {
                continue;
            }
            if blo > lo {
                out.push((lo, blo - 1));
            }
            lo = bhi.saturating_add(1);
            if lo > hi {
                break;
            }
        }
        if lo <= hi {
            out.push((lo, hi));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        assert_eq!(
            merge(vec![(5, 6), (1, 2), (3, 3), (9, 9), (6, 7)]),
            vec![(1, 3), (5, 7), (9, 9)]
        );
        assert_eq!(
            subtract(&vec![(1, 10)], &vec![(3, 4), (8, 12)]),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(subtract(&vec![(1, 3)], &vec![(1, 3)]), vec![]);
        assert_eq!(
            clip(&vec![(1, 3), (8, 20)], Some((2, 10))),
            vec![(2, 3), (8, 10)]
        );
    }

    #[test]
    fn a_session_whose_manifest_explains_its_holes_passes_and_one_that_does_not_fails() {
        let dir = std::env::temp_dir().join(format!("wsfeed-audit-{}", std::process::id()));
        let folder = dir.join("binance-spot").join("BTCUSDT");
        std::fs::create_dir_all(&folder).unwrap();
        let line = |a: u64| {
            format!(
                r#"{{"recv_ns":1,"conn":1,"msg":{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":1,"s":"BTCUSDT","a":{a},"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}}}}}"#
            )
        };
        let lines: Vec<String> = [1, 2, 3, 7, 8].into_iter().map(line).collect();
        std::fs::write(folder.join("aggTrade.jsonl"), lines.join("\n") + "\n").unwrap();
        let manifest = |missed: &str| {
            format!(
                r#"{{"feeds":[{{"name":"f","venue":"binance-spot","streams":["btcusdt@aggTrade"],
                "connection_gaps":[{{"missed":[{missed}]}}]}}]}}"#
            )
        };
        let write = |m: String| std::fs::write(dir.join("session_manifest.json"), m).unwrap();
        write(manifest(
            r#"{"stream":"btcusdt@aggTrade","from_seq":4,"to_seq":6}"#,
        ));
        let a = audit(&dir).unwrap();
        assert!(a.ok(), "{a}");
        assert_eq!(a.streams[0].messages, 5);
        write(manifest(""));
        let a = audit(&dir).unwrap();
        assert_eq!(a.streams[0].unexplained, vec![(4, 6)], "{a}");
        write(manifest(
            r#"{"stream":"btcusdt@aggTrade","from_seq":2,"to_seq":6}"#,
        ));
        let a = audit(&dir).unwrap();
        assert_eq!(a.streams[0].invented, vec![(2, 3)], "{a}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A stream numbered by time (a defined venue's, from the manifest's own definition): two
    /// updates of one millisecond are two messages; the same text twice is a duplicate.
    #[test]
    fn updates_numbered_by_time_are_told_apart_by_their_text() {
        let dir = std::env::temp_dir().join(format!("wsfeed-audit-time-{}", std::process::id()));
        let folder = dir.join("hyperliquid").join("BTC");
        std::fs::create_dir_all(&folder).unwrap();
        let spec: toml::Value =
            toml::from_str(include_str!("../configs/venues/hyperliquid.toml")).unwrap();
        let line = |px: &str, time: u64| {
            format!(
                r#"{{"recv_ns":1,"conn":1,"msg":{{"channel":"bbo","data":{{"coin":"BTC","time":{time},"bbo":[{{"px":"{px}","sz":"1","n":1}},{{"px":"101","sz":"1","n":1}}]}}}}}}"#
            )
        };
        let write = |lines: &[String]| {
            std::fs::write(folder.join("bbo:BTC.jsonl"), lines.join("\n") + "\n").unwrap();
        };
        let manifest = serde_json::json!({
            "config": {"venues": [spec]},
            "feeds": [{"name": "hl", "venue": "hyperliquid", "streams": ["bbo:BTC"]}],
        });
        std::fs::write(dir.join("session_manifest.json"), manifest.to_string()).unwrap();
        write(&[line("100", 5), line("100.5", 5), line("99", 6)]);
        let a = audit(&dir).unwrap();
        assert!(a.ok(), "{a}");
        assert_eq!((a.streams[0].messages, a.streams[0].duplicates), (3, 0));
        write(&[line("100", 5), line("100", 5)]);
        let a = audit(&dir).unwrap();
        assert_eq!(a.streams[0].duplicates, 1, "{a}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A message with no number and no time (Vest's depth) is delivered as it comes: the same
    /// top of book twice is two messages, not a duplicate.
    #[test]
    fn unnumbered_messages_are_never_duplicates() {
        let dir = std::env::temp_dir().join(format!("wsfeed-audit-vest-{}", std::process::id()));
        let folder = dir.join("vest").join("BTC-PERP");
        std::fs::create_dir_all(&folder).unwrap();
        let spec: toml::Value =
            toml::from_str(include_str!("../configs/venues/vest.toml")).unwrap();
        let line = r#"{"recv_ns":1,"conn":1,"msg":{"channel":"BTC-PERP@depth","data":{"bids":[["1","2"]],"asks":[["3","4"]]}}}"#;
        std::fs::write(folder.join("depth.jsonl"), format!("{line}\n{line}\n")).unwrap();
        let manifest = serde_json::json!({
            "config": {"venues": [spec]},
            "feeds": [{"name": "v", "venue": "vest", "streams": ["BTC-PERP@depth"]}],
        });
        std::fs::write(dir.join("session_manifest.json"), manifest.to_string()).unwrap();
        let a = audit(&dir).unwrap();
        assert!(a.ok(), "{a}");
        assert_eq!((a.streams[0].messages, a.streams[0].duplicates), (2, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
