//! `wsfeed demo`: two simulated venues, the engine with the demo strategy, and a fault schedule
//! that covers every fault the simulator can inject, spread over the run (or, for the soak,
//! hundreds of them).

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{Config, ConfigError, FileConfig};
use crate::sim::{ConnId, Fault, Sim, SimConfig};

/// The demo's config, as shipped in `configs/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../configs/demo.toml");

/// Which simulated venue a scheduled fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The spot venue.
    Spot,
    /// The USD-M venue.
    Usdm,
}

/// One scheduled fault.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// When, from the start of the run.
    pub at: Duration,
    /// Which venue.
    pub target: Target,
    /// What.
    pub fault: Fault,
}

/// The two simulated venues.
#[derive(Debug)]
pub struct DemoVenues {
    /// Binance-spot-like venue (one route).
    pub spot: Sim,
    /// Binance-USD-M-like venue (routed `/public` and `/market`).
    pub usdm: Sim,
}

impl DemoVenues {
    /// Starts both, with TLS.
    pub fn start() -> std::io::Result<DemoVenues> {
        let spot = Sim::start(SimConfig {
            usdm_routing: false,
            seed: 11,
            record: false,
            ..SimConfig::default()
        })?;
        let usdm = Sim::start(SimConfig {
            usdm_routing: true,
            seed: 29,
            record: false,
            ..SimConfig::default()
        })?;
        Ok(DemoVenues { spot, usdm })
    }

    /// The venue a fault targets.
    pub fn get(&self, t: Target) -> &Sim {
        match t {
            Target::Spot => &self.spot,
            Target::Usdm => &self.usdm,
        }
    }

    /// The demo config pointed at these venues and trusting their CA in-process.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut file: FileConfig = toml::from_str(DEMO_TOML).map_err(|e| ConfigError {
            file: Some("configs/demo.toml".into()),
            message: e.to_string(),
        })?;
        for feed in &mut file.feeds {
            let sim = if feed.venue == "binance-spot" {
                &self.spot
            } else {
                &self.usdm
            };
            feed.url = Some(sim.base_url());
            if feed.standby_url.is_some() {
                feed.standby_url = Some(sim.base_url());
            }
            feed.ca_pem = sim.ca_pem();
        }
        file.validate()
    }
}

/// How hard the demo hits the feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultLevel {
    /// No faults.
    None,
    /// Every fault kind once or twice, spread over the run.
    Normal,
    /// A fault every [`HEAVY_EVERY`] on average, drawn from every kind: the soak.
    Heavy,
}

/// Mean interval between faults at [`FaultLevel::Heavy`].
pub const HEAVY_EVERY: Duration = Duration::from_millis(1500);

/// The fault schedule of a run of length `run`.
pub fn schedule(run: Duration, level: FaultLevel) -> Vec<Scheduled> {
    match level {
        FaultLevel::None => Vec::new(),
        FaultLevel::Normal => normal_schedule(run),
        FaultLevel::Heavy => heavy_schedule(run, 0x5EED),
    }
}

/// Every fault kind, spread over `run`; the last 20 % of the run is left for recovery.
/// Connection faults hit one connection of the venue, picked at random when injected.
fn normal_schedule(run: Duration) -> Vec<Scheduled> {
    let at = |f: f64| run.mul_f64(f);
    let stall = Duration::from_millis(2500).min(run.mul_f64(0.12));
    let refuse = Duration::from_millis(1500).min(run.mul_f64(0.08));
    let s = |f: f64, target: Target, fault: Fault| Scheduled {
        at: at(f),
        target,
        fault,
    };
    use Target::*;
    vec![
        s(0.08, Usdm, Fault::Close { code: 1001 }),
        s(0.12, Spot, Fault::Malformed),
        s(0.14, Spot, Fault::UnknownMessage),
        s(0.16, Usdm, Fault::Binary),
        s(0.20, Spot, Fault::ServerPing),
        s(0.20, Usdm, Fault::PingFlood { count: 50 }),
        s(0.26, Spot, Fault::Reset),
        s(0.30, Spot, Fault::DropNext { count: 3 }),
        s(0.36, Usdm, Fault::Stall { duration: stall }),
        s(0.44, Spot, Fault::Oversized { bytes: 2 << 20 }),
        // The reconnect after this reset meets two 429s with Retry-After: 1.
        s(
            0.52,
            Spot,
            Fault::Http429 {
                count: 2,
                retry_after_s: 1,
            },
        ),
        s(0.52, Spot, Fault::Reset),
        s(
            0.58,
            Spot,
            Fault::Mute {
                stream: "btcusdt@depth@100ms".into(),
            },
        ),
        s(0.64, Usdm, Fault::Http503 { count: 1 }),
        s(0.64, Usdm, Fault::Close { code: 1011 }),
        s(0.68, Spot, Fault::IgnoreSubscribe { count: 1 }),
        s(0.68, Spot, Fault::Close { code: 1000 }),
        s(0.74, Spot, Fault::Refuse { duration: refuse }),
        s(0.74, Spot, Fault::Close { code: 1012 }),
    ]
}

/// A fault every [`HEAVY_EVERY`] on average from the second second to 95 % of the run, kinds
/// drawn with fixed weights (deterministic for a given seed).
fn heavy_schedule(run: Duration, seed: u64) -> Vec<Scheduled> {
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let end = run.mul_f64(0.95);
    let mut at = Duration::from_secs(2);
    let mut out = Vec::new();
    while at < end {
        let target = if next() % 2 == 0 {
            Target::Spot
        } else {
            Target::Usdm
        };
        let r = next();
        let fault = match r % 100 {
            0..=19 => Fault::Close {
                code: [1000, 1001, 1011, 1012][(r / 100 % 4) as usize],
            },
            20..=34 => Fault::Reset,
            35..=44 => Fault::Stall {
                duration: Duration::from_millis(1000 + r / 100 % 1500),
            },
            45..=54 => Fault::DropNext {
                count: 1 + (r / 100 % 5) as u32,
            },
            55..=59 => Fault::Malformed,
            60..=64 => Fault::UnknownMessage,
            65..=67 => Fault::Binary,
            68..=71 => Fault::ServerPing,
            72..=74 => Fault::PingFlood { count: 50 },
            75..=79 => Fault::Oversized { bytes: 2 << 20 },
            80..=84 => Fault::Mute {
                stream: match target {
                    Target::Spot => "btcusdt@depth@100ms",
                    Target::Usdm => "btcusdt@markPrice@1s",
                }
                .into(),
            },
            85..=89 => Fault::Refuse {
                duration: Duration::from_millis(300 + r / 100 % 1200),
            },
            90..=93 => Fault::Http429 {
                count: 1,
                retry_after_s: 1,
            },
            94..=96 => Fault::Http503 { count: 1 },
            _ => Fault::IgnoreSubscribe { count: 1 },
        };
        out.push(Scheduled { at, target, fault });
        // Uniform in [0.5, 1.5] × the mean interval.
        at += HEAVY_EVERY.mul_f64(0.5 + (next() % 1000) as f64 / 1000.0);
    }
    out
}

/// What an injection hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// The venue's listener (refusals, rejected upgrades, ignored subscriptions).
    Listener,
    /// One connection.
    Connection(ConnId),
    /// No connection was open to hit.
    Nothing,
}

impl DemoVenues {
    /// Injects a scheduled fault: listener faults on the venue, connection faults on one of
    /// its open connections, picked with `pick` (so a standby pair is hit one at a time unless
    /// the dice say otherwise).
    pub fn inject(&self, s: &Scheduled, pick: u64) -> Injected {
        let sim = self.get(s.target);
        if s.fault.is_listener_fault() {
            sim.inject(s.fault.clone());
            return Injected::Listener;
        }
        let snapshot = sim.snapshot();
        let open: Vec<ConnId> = snapshot.open_connections().map(|c| c.id).collect();
        if open.is_empty() {
            return Injected::Nothing;
        }
        let id = open[(pick % open.len() as u64) as usize];
        sim.inject_on(id, s.fault.clone());
        Injected::Connection(id)
    }
}

/// Resident memory of this process, bytes (Linux `/proc/self/statm`).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Name of a fault's kind, for counts.
pub fn kind_name(f: &Fault) -> &'static str {
    match f {
        Fault::Close { .. } => "close",
        Fault::Reset => "reset",
        Fault::Stall { .. } => "stall",
        Fault::Refuse { .. } => "refuse",
        Fault::Http429 { .. } => "http429",
        Fault::Http503 { .. } => "http503",
        Fault::Reject { .. } => "reject",
        Fault::Malformed => "malformed",
        Fault::ServerPing => "server-ping",
        Fault::Oversized { .. } => "oversized",
        Fault::Binary => "binary",
        Fault::UnknownMessage => "unknown-message",
        Fault::PingFlood { .. } => "ping-flood",
        Fault::DropNext { .. } => "drop-next",
        Fault::IgnoreSubscribe { .. } => "ignore-subscribe",
        Fault::Mute { .. } => "mute",
    }
}

/// One line per scheduled fault, for the demo's banner.
pub fn describe(schedule: &[Scheduled]) -> String {
    let mut out = String::new();
    for s in schedule {
        let _ = writeln!(
            out,
            "  t={:>5.1}s {:?}: {:?}",
            s.at.as_secs_f64(),
            s.target,
            s.fault
        );
    }
    out
}
