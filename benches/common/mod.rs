//! What the end-to-end benches share: options, CPU accounting per thread, percentile output.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

/// `--name value` options after `cargo bench --bench X --`; cargo's own `--bench` is ignored.
pub struct Args(Vec<String>);

impl Args {
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// The value of `--name`, parsed, or `default`; exits with a message naming the option
    /// when the value does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.opt(name).unwrap_or(default)
    }

    /// The value of `--name`, parsed, if given; exits with a message naming the option when
    /// the value does not parse.
    pub fn opt<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        let flag = format!("--{name}");
        let i = self.0.iter().position(|a| *a == flag)?;
        match self.0.get(i + 1).map(|v| v.parse::<T>()) {
            Some(Ok(v)) => Some(v),
            _ => {
                eprintln!("{flag} needs a value of the right type");
                std::process::exit(2)
            }
        }
    }

    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| *a == format!("--{name}"))
    }
}

/// CPU time (ns) used so far by this process's threads whose name starts with one of
/// `prefixes`, from `/proc/self/task/*/schedstat`.
pub fn thread_cpu_ns(prefixes: &[&str]) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| name.trim_end().starts_with(p)) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// A latency histogram in nanoseconds, 1 ns to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Microseconds, three significant figures.
pub fn us(ns: u64) -> String {
    let v = ns as f64 / 1000.0;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Where bench results go: `--out DIR`, default `target/wsfeed-bench`.
pub fn out_dir(args: &Args) -> PathBuf {
    let dir = PathBuf::from(args.get("out", "target/wsfeed-bench".to_string()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Writes a histogram's percentile spectrum as CSV (`percentile,latency_us`), the input of
/// `tools/plot_latency.py`.
pub fn write_percentiles(dir: &Path, name: &str, h: &Histogram<u64>) {
    let mut out = String::from("percentile,latency_us\n");
    if !h.is_empty() {
        for v in h.iter_quantiles(2) {
            let q = v.quantile_iterated_to() * 100.0;
            let _ = writeln!(out, "{q:.6},{:.3}", v.value_iterated_to() as f64 / 1000.0);
        }
    }
    let path = dir.join(format!("{name}.csv"));
    if let Err(e) = std::fs::write(&path, out) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

/// A venue defined by a shipped definition, `configs/venues/<name>.toml`.
pub fn shipped(name: &str) -> wsfeed::venue::Venue {
    let path = format!("{}/configs/venues/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    wsfeed::venue::defined::Defined::load(&spec).unwrap_or_else(|e| panic!("{path}: {e}"))
}
