//! Process-wide clocks.
//!
//! Latency is measured on a monotonic clock (`now_ns`: nanoseconds since the first call in this
//! process). Captures and reports that a person reads want wall-clock time; `unix_ns` gives that,
//! and `mono_to_unix_ns` converts a monotonic stamp using the offset taken at start.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Anchor {
    mono: Instant,
    unix_ns: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        mono: Instant::now(),
        unix_ns: unix_ns(),
    })
}

/// Monotonic nanoseconds since the process's clock anchor. Cheap (vDSO), never goes back.
#[inline]
pub fn now_ns() -> u64 {
    instant_ns(Instant::now())
}

/// Monotonic nanoseconds of an `Instant` on the same scale as [`now_ns`].
#[inline]
pub fn instant_ns(at: Instant) -> u64 {
    at.saturating_duration_since(anchor().mono).as_nanos() as u64
}

/// Wall-clock Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Converts a [`now_ns`] stamp to Unix nanoseconds.
pub fn mono_to_unix_ns(mono_ns: u64) -> u64 {
    anchor().unix_ns + mono_ns
}

/// Forces the anchor to be taken now, so later stamps are never before it.
pub fn init() {
    let _ = anchor();
}
