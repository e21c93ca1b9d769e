//! What both examples' `main` do around their strategy: read the command line (a config file,
//! and optionally how many seconds to run), and wait until Ctrl-C, SIGTERM or that time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsfeed::Config;

/// The config named by the first argument (`default` without one) and the run time from the
/// second (none: until Ctrl-C). A config that does not load is printed, as `Err`.
pub fn args(default: &str) -> Result<(Config, Option<Duration>), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| default.into());
    let seconds = match args.next() {
        Some(s) => {
            Some(Duration::from_secs(s.parse().map_err(|_| {
                format!("'{s}' is not a whole number of seconds")
            })?))
        }
        None => None,
    };
    let config = Config::load(path.as_ref()).map_err(|e| e.to_string())?;
    Ok((config, seconds))
}

/// Calls `wait` (which should return within about 100 ms) until Ctrl-C, SIGTERM or `limit`.
pub fn until_stopped(limit: Option<Duration>, mut wait: impl FnMut()) {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| started.elapsed() < l) {
        wait();
    }
}
