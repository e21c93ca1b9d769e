//! A configured symbol's names on every venue and its price format.

/// Names of one configured symbol on every venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SymInfo {
    /// Binance / Bybit symbol, uppercase (`BTCUSDT`).
    pub name: String,
    /// Binance stream prefix (`btcusdt`).
    pub lower: String,
    /// OKX perpetual swap instrument (`BTC-USDT-SWAP`).
    pub okx_swap: String,
    /// OKX spot instrument (`BTC-USDT`).
    pub okx_spot: String,
    /// Price decimals (prices are integers in units of `10^-decimals`).
    pub decimals: u32,
    /// The name on a defined venue (`SimConfig::venue_symbols`; else `name`).
    pub venue: String,
}

/// Quote currencies recognised when splitting a symbol for OKX, longest first.
const QUOTES: [&str; 10] = [
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "BTC", "ETH", "EUR", "BNB",
];

impl SymInfo {
    /// Derives every venue name of `symbol` (uppercase, e.g. `BTCUSDT`):
    /// OKX instruments are `BASE-QUOTE-SWAP` and `BASE-QUOTE`, the quote being
    /// the longest known quote currency the symbol ends with (`USDT`, `USDC`,
    /// `USD`, `BTC`, …); a symbol without one keeps its name
    /// (`XYZ` → `XYZ-SWAP` / `XYZ`).
    pub(crate) fn new(symbol: &str, decimals: u32) -> SymInfo {
        let name = symbol.to_ascii_uppercase();
        let split = QUOTES.iter().find_map(|q| {
            let base = name.strip_suffix(q)?;
            (!base.is_empty()).then(|| (base.to_string(), q.to_string()))
        });
        let (okx_swap, okx_spot) = match split {
            Some((base, quote)) => (format!("{base}-{quote}-SWAP"), format!("{base}-{quote}")),
            None => (format!("{name}-SWAP"), name.clone()),
        };
        SymInfo {
            lower: name.to_ascii_lowercase(),
            venue: name.clone(),
            name,
            okx_swap,
            okx_spot,
            decimals,
        }
    }

    /// [`SymInfo::new`] with the symbol's own price decimals
    /// ([`price_format`]).
    pub(crate) fn of(symbol: &str) -> SymInfo {
        SymInfo::new(symbol, price_format(symbol).1)
    }

    /// The OKX instrument id (`spot` selects the spot instrument).
    pub(crate) fn okx_inst(&self, spot: bool) -> &str {
        if spot {
            &self.okx_spot
        } else {
            &self.okx_swap
        }
    }
}

/// Start price, price decimals and tick (in price units) of a symbol.
pub(crate) fn price_format(symbol: &str) -> (f64, u32, i64) {
    let upper = symbol.to_ascii_uppercase();
    if upper.starts_with("BTC") {
        (60_000.0, 2, 10)
    } else if upper.starts_with("ETH") {
        (3_000.0, 2, 1)
    } else if upper.starts_with("SOL") {
        (150.0, 3, 10)
    } else {
        (100.0, 4, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_mapping() {
        let b = SymInfo::new("btcusdt", 2);
        assert_eq!(
            (
                b.name.as_str(),
                b.lower.as_str(),
                b.okx_swap.as_str(),
                b.okx_spot.as_str()
            ),
            ("BTCUSDT", "btcusdt", "BTC-USDT-SWAP", "BTC-USDT")
        );
        assert_eq!(SymInfo::new("ETHUSDC", 2).okx_swap, "ETH-USDC-SWAP");
        assert_eq!(SymInfo::new("ETHBTC", 2).okx_spot, "ETH-BTC");
        assert_eq!(SymInfo::new("BTCUSD", 2).okx_swap, "BTC-USD-SWAP");
        assert_eq!(SymInfo::new("XYZ", 2).okx_swap, "XYZ-SWAP");
        assert_eq!(SymInfo::new("USDT", 2).okx_spot, "USDT");
    }
}
