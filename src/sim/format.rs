//! Text the venues' messages are made of: fixed-point numbers (prices and
//! quantities are integers in the simulator) and JSON strings and values.

use serde_json::Value;

/// Formats an integer amount of `10^-decimals` units as a fixed-point string.
pub(crate) fn fixed(units: i64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{abs}");
    }
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = decimals as usize
    )
}

/// Quantities are integers in units of 0.001.
pub(crate) fn qty(units: u64) -> String {
    fixed(units as i64, 3)
}

/// `s` as a JSON string literal, quotes included.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `v` as JSON text (`null` if it cannot be written).
pub(crate) fn json_val(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_formats() {
        assert_eq!(fixed(6_000_010, 2), "60000.10");
        assert_eq!(fixed(5, 3), "0.005");
        assert_eq!(fixed(-1234, 2), "-12.34");
        assert_eq!(fixed(7, 0), "7");
    }
}
