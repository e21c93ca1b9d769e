//! `wsfeed demo`: two simulated venues, the engine with the demo strategy, and a fault schedule
//! that covers every fault the simulator can inject, spread over the run.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{Config, ConfigError, FileConfig};
use crate::sim::{Fault, Sim, SimConfig};

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
            feed.ca_pem = sim.ca_pem();
        }
        file.validate()
    }
}

/// Every fault kind, spread over `run`; the last 20 % of the run is left for recovery.
pub fn schedule(run: Duration) -> Vec<Scheduled> {
    let at = |f: f64| run.mul_f64(f);
    let stall = Duration::from_millis(2500).min(run.mul_f64(0.12));
    let refuse = Duration::from_millis(1500).min(run.mul_f64(0.08));
    use Target::*;
    vec![
        Scheduled {
            at: at(0.10),
            target: Usdm,
            fault: Fault::Close { code: 1001 },
        },
        Scheduled {
            at: at(0.17),
            target: Spot,
            fault: Fault::Malformed,
        },
        Scheduled {
            at: at(0.22),
            target: Spot,
            fault: Fault::ServerPing,
        },
        Scheduled {
            at: at(0.22),
            target: Usdm,
            fault: Fault::ServerPing,
        },
        Scheduled {
            at: at(0.28),
            target: Spot,
            fault: Fault::Reset,
        },
        Scheduled {
            at: at(0.36),
            target: Usdm,
            fault: Fault::Stall { duration: stall },
        },
        // The reconnect after this reset meets two 429s with Retry-After: 1.
        Scheduled {
            at: at(0.52),
            target: Spot,
            fault: Fault::Http429 {
                count: 2,
                retry_after_s: 1,
            },
        },
        Scheduled {
            at: at(0.52),
            target: Spot,
            fault: Fault::Reset,
        },
        Scheduled {
            at: at(0.64),
            target: Usdm,
            fault: Fault::Http503 { count: 1 },
        },
        Scheduled {
            at: at(0.64),
            target: Usdm,
            fault: Fault::Close { code: 1011 },
        },
        Scheduled {
            at: at(0.74),
            target: Spot,
            fault: Fault::Refuse { duration: refuse },
        },
        Scheduled {
            at: at(0.74),
            target: Spot,
            fault: Fault::Close { code: 1012 },
        },
    ]
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
