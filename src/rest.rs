//! REST depth snapshots for Binance local books.
//!
//! Binance's documented procedure builds a local book from a REST snapshot plus the diff
//! events buffered while it was fetched. The fetch is a blocking HTTPS GET (`ureq` over
//! rustls), run on the engine's `snapshots` helper thread ([`crate::helper`]) so that no feed
//! thread ever blocks: a feed asks for it, keeps buffering diffs, and gets the result on its
//! driver's channel, with its poll woken.
//!
//! [`RestClient`] keeps one agent per host (its connections kept alive between requests) and
//! the host's request-weight budget: Binance counts every request's weight per IP and minute
//! (a 1000-level depth snapshot weighs 50 of spot's 6000, 20 of USD-M's 2400) and answers 429,
//! then 418 (a ban), to clients that go over. A request the budget cannot afford is not sent;
//! the answer says when to try again, as a venue's `Retry-After` does.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::debug;
use rustls::ClientConfig;

use crate::tick::Level;

/// Longest a snapshot request may take (connect, TLS, request, response).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// The window of a REST weight budget.
const WEIGHT_WINDOW: Duration = Duration::from_secs(60);
/// Share of the venue's weight limit this process allows itself (others may share the IP).
const WEIGHT_SHARE: f64 = 0.8;
/// How long a 418 (an IP ban) without `Retry-After` keeps requests away.
const BAN_WAIT: Duration = Duration::from_secs(120);

/// A depth snapshot: `lastUpdateId` and both sides, best first. Captured (serde) into a
/// session's `snapshots.jsonl` for `wsfeed replay`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DepthSnapshot {
    /// The book's update id at the snapshot.
    pub last_update_id: u64,
    /// Bids, best first.
    pub bids: Vec<Level>,
    /// Asks, best first.
    pub asks: Vec<Level>,
}

/// A request that failed, and how long the venue (or the weight budget) asks the next one to
/// wait.
#[derive(Clone, Debug, PartialEq)]
pub struct RestError {
    /// What went wrong.
    pub message: String,
    /// At least this long before the next request: a `Retry-After`, a ban, an empty budget.
    pub retry_after: Option<Duration>,
    /// The HTTP status, when the server answered with an error.
    pub status: Option<u16>,
    /// The start of the error's body (a venue's `{"code":…,"msg":…}`).
    pub body: Option<String>,
}

impl RestError {
    /// An error with no wait asked for.
    pub fn new(message: impl Into<String>) -> Self {
        RestError {
            message: message.into(),
            retry_after: None,
            status: None,
            body: None,
        }
    }
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(w) = self.retry_after {
            write!(f, " (wait {} ms)", w.as_millis())?;
        }
        Ok(())
    }
}

/// Request weight and the venue's limit per minute, for a REST path.
fn weight_of(path: &str) -> Option<(u32, u32)> {
    if path.starts_with("/api/v3/depth") {
        Some((50, 6000))
    } else if path.starts_with("/fapi/v1/depth") {
        Some((20, 2400))
    } else {
        None
    }
}

/// The weight one host's requests spent in the last minute.
#[derive(Debug, Default)]
struct WeightBudget {
    spent: VecDeque<(Instant, u32)>,
    /// What the venue last said this IP had used (`X-MBX-USED-WEIGHT-1M`), and when.
    reported: Option<(Instant, u32)>,
}

impl WeightBudget {
    /// Spends `weight` at `now` if the last minute leaves room under `limit`, else says how long
    /// until it does.
    fn spend(&mut self, weight: u32, limit: u32, now: Instant) -> Result<(), Duration> {
        while self
            .spent
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) >= WEIGHT_WINDOW)
        {
            self.spent.pop_front();
        }
        let ours: u32 = self.spent.iter().map(|&(_, w)| w).sum();
        let reported = match self.reported {
            Some((t, used)) if now.duration_since(t) < WEIGHT_WINDOW => used,
            _ => 0,
        };
        let allowed = (f64::from(limit) * WEIGHT_SHARE) as u32;
        if ours.max(reported) + weight <= allowed {
            self.spent.push_back((now, weight));
            return Ok(());
        }
        let oldest = [
            self.spent.front().map(|&(t, _)| t),
            self.reported.map(|(t, _)| t),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        Err((oldest + WEIGHT_WINDOW).saturating_duration_since(now))
    }
}

/// Agents (kept-alive connections) and weight budgets by host; shared by every feed, used on
/// the snapshot helper thread.
#[derive(Default)]
pub struct RestClient {
    hosts: Mutex<HashMap<String, (ureq::Agent, WeightBudget)>>,
}

impl fmt::Debug for RestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestClient").finish_non_exhaustive()
    }
}

impl RestClient {
    /// Fetches and parses a depth snapshot (blocking, bounded by [`SNAPSHOT_TIMEOUT`]): run on
    /// a helper thread, never on a feed thread. `tls` verifies `https://` hosts.
    pub fn fetch_depth_snapshot(
        &self,
        url: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<DepthSnapshot, RestError> {
        let result = self
            .get(url, tls)
            .and_then(|body| parse_depth_snapshot(&body).map_err(RestError::new));
        debug!(
            "snapshot {url}: {}",
            match &result {
                Ok(s) => format!("lastUpdateId {}", s.last_update_id),
                Err(e) => e.to_string(),
            }
        );
        result
    }

    /// A `GET` of `url` on its host's agent, within the host's weight budget; the body of a 200.
    fn get(&self, url: &str, tls: Option<&Arc<ClientConfig>>) -> Result<String, RestError> {
        self.send("GET", url, &[], tls)
    }

    /// A `method` request of `url` with `headers`, on its host's agent, within the host's weight
    /// budget (blocking, bounded by [`SNAPSHOT_TIMEOUT`]); the body of a 2xx answer.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<String, RestError> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| RestError::new(format!("'{url}' is not an http(s) URL")))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let now = Instant::now();
        let agent = {
            let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            let (agent, budget) = hosts
                .entry(host.to_string())
                .or_insert_with(|| (agent(tls), WeightBudget::default()));
            if let Some((weight, limit)) = weight_of(path) {
                if let Err(wait) = budget.spend(weight, limit, now) {
                    return Err(RestError {
                        retry_after: Some(wait),
                        ..RestError::new(format!(
                            "{host}: REST weight budget spent for this minute"
                        ))
                    });
                }
            }
            agent.clone()
        };
        let mut request = agent.request(method, url).set("Accept", "application/json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let answer = request.call();
        let response = match answer {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                self.note_used_weight(host, &r, now);
                let retry_after = r
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .or((code == 418).then_some(BAN_WAIT));
                let body: String = r
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                return Err(RestError {
                    message: format!("{url}: HTTP {code}: {body}"),
                    retry_after,
                    status: Some(code),
                    body: Some(body),
                });
            }
            Err(e) => return Err(RestError::new(format!("{url}: {e}"))),
        };
        self.note_used_weight(host, &response, now);
        response
            .into_string()
            .map_err(|e| RestError::new(format!("{url}: {e}")))
    }

    /// Takes the venue's count of the weight this IP used (Binance `X-MBX-USED-WEIGHT-1M`).
    fn note_used_weight(&self, host: &str, r: &ureq::Response, now: Instant) {
        let Some(used) = r
            .header("X-MBX-USED-WEIGHT-1M")
            .and_then(|v| v.trim().parse().ok())
        else {
            return;
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, budget)) = hosts.get_mut(host) {
            budget.reported = Some((now, used));
        }
    }
}

/// An agent for one host: connections kept alive, every step bounded.
fn agent(tls: Option<&Arc<ClientConfig>>) -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(SNAPSHOT_TIMEOUT / 2)
        .timeout(SNAPSHOT_TIMEOUT)
        .max_idle_connections_per_host(2)
        .user_agent(concat!("wsfeed/", env!("CARGO_PKG_VERSION")));
    if let Some(cfg) = tls {
        b = b.tls_config(cfg.clone());
    }
    b.build()
}

/// `{"lastUpdateId":…,"bids":[[p,q],…],"asks":[[p,q],…]}` (USD-M adds `E`, `T`).
pub fn parse_depth_snapshot(body: &str) -> Result<DepthSnapshot, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("snapshot is not JSON: {e}"))?;
    if let (Some(code), Some(msg)) = (v.get("code"), v.get("msg")) {
        return Err(format!("venue error {code}: {msg}"));
    }
    let last_update_id = v["lastUpdateId"]
        .as_u64()
        .ok_or("snapshot has no lastUpdateId")?;
    let side = |name: &str| -> Result<Vec<Level>, String> {
        v[name]
            .as_array()
            .ok_or(format!("snapshot has no {name}"))?
            .iter()
            .map(|l| {
                let num = |i: usize| -> Option<f64> {
                    let x = l.get(i)?;
                    x.as_str()
                        .and_then(|s| s.parse().ok())
                        .or_else(|| x.as_f64())
                };
                Some(Level {
                    price: num(0)?,
                    qty: num(1)?,
                })
            })
            .collect::<Option<Vec<Level>>>()
            .ok_or(format!("snapshot has a bad {name} level"))
    };
    Ok(DepthSnapshot {
        last_update_id,
        bids: side("bids")?,
        asks: side("asks")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_snapshots_parse() {
        for name in ["depth_spot.json", "depth_usdm.json"] {
            let path = format!(
                "{}/tests/fixtures/binance/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let s = parse_depth_snapshot(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert!(s.last_update_id > 0 && !s.bids.is_empty() && !s.asks.is_empty());
        }
        assert!(
            parse_depth_snapshot(r#"{"code":-1121,"msg":"Invalid symbol."}"#)
                .unwrap_err()
                .contains("Invalid symbol")
        );
    }

    #[test]
    fn the_weight_budget_spends_up_to_its_share_and_says_when_it_refills() {
        let t0 = Instant::now();
        let mut b = WeightBudget::default();
        // USD-M: 2400 a minute, 80% of it ours: 96 snapshots of weight 20.
        for _ in 0..96 {
            assert_eq!(b.spend(20, 2400, t0), Ok(()));
        }
        assert_eq!(
            b.spend(20, 2400, t0 + Duration::from_secs(1)),
            Err(Duration::from_secs(59))
        );
        assert_eq!(b.spend(20, 2400, t0 + WEIGHT_WINDOW), Ok(()));
        // The venue's own count of this IP's weight is respected too.
        let mut b = WeightBudget {
            reported: Some((t0, 1910)),
            ..WeightBudget::default()
        };
        assert_eq!(b.spend(20, 2400, t0), Err(WEIGHT_WINDOW));
        assert_eq!(b.spend(20, 2400, t0 + WEIGHT_WINDOW), Ok(()));
    }
}
