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

/// Splits Unix nanoseconds into UTC calendar fields: (year, month, day, hour, minute, second,
/// millisecond). Proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
pub fn utc_fields(unix_ns: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = (unix_ns / 1_000_000_000) as i64;
    let ms = ((unix_ns / 1_000_000) % 1000) as u32;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60, ms)
}

/// `2026-11-23T00:09:31.123Z`.
pub fn utc_string(unix_ns: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_fields(unix_ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_from_unix_time() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(
            utc_string(1_709_251_199_999_000_000),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            utc_string(1_795_392_571_000_000_000),
            "2026-11-23T00:09:31.000Z"
        );
    }
}
