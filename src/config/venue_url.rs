//! A feed URL checked against its venue: the venue's documented path is taken off (the engine
//! adds the path each connection needs), and another market's path or a stream name in the URL
//! is refused with the expected form, instead of an HTTP 404 at run time.
//!
//! The documented endpoints:
//! - Binance spot: "Raw streams are accessed at `/ws/<streamName>`", "Combined streams are
//!   accessed at `/stream?streams=…`" on `wss://stream.binance.com:9443`.
//! - Binance USD-M: the same on `wss://fstream.binance.com`, and since the "Base URL Split" the
//!   routed `/public/ws`, `/public/stream`, `/market/ws`, `/market/stream`.
//! - Bybit v5: `wss://stream.bybit.com/v5/public/spot`, `…/linear`, `…/inverse`, `…/option`;
//!   private `…/v5/private`, orders `…/v5/trade`.
//! - OKX v5: `wss://ws.okx.com:8443/ws/v5/public`, `…/ws/v5/business`, `…/ws/v5/private`.

use super::endpoint::Endpoint;
use crate::venue::Venue;

/// Paths the engine accepts in a URL and takes off: the ones it would connect to itself.
fn own_paths(venue: Venue) -> &'static [&'static str] {
    match venue {
        Venue::BinanceSpot => &["/ws", "/stream"],
        // Longest first: `/public/stream` before `/stream`.
        Venue::BinanceUsdm => &[
            "/public/stream",
            "/market/stream",
            "/public/ws",
            "/market/ws",
            "/stream",
            "/ws",
        ],
        Venue::BybitSpot => &["/v5/public/spot"],
        Venue::BybitLinear => &["/v5/public/linear"],
        Venue::Okx => &["/ws/v5/public"],
        // A defined venue's URL holds its whole path.
        Venue::Custom(_) => &[],
    }
}

/// Every documented path a feed of this engine cannot use, with what it is.
const OTHER_PATHS: [(&str, &str); 9] = [
    ("/v5/public/spot", "Bybit's spot path"),
    ("/v5/public/linear", "Bybit's linear path"),
    ("/v5/public/inverse", "Bybit's inverse path"),
    ("/v5/public/option", "Bybit's option path"),
    ("/v5/private", "Bybit's private path"),
    ("/v5/trade", "Bybit's order-entry path"),
    ("/ws/v5/business", "OKX's business path"),
    ("/ws/v5/private", "OKX's private path"),
    ("/ws/v5/public", "OKX's public path"),
];

/// The production host names of a venue, on which nothing but the documented path may follow.
fn hosts(venue: Venue) -> &'static [&'static str] {
    match venue {
        Venue::BinanceSpot => &["stream.binance.com", "data-stream.binance.vision"],
        Venue::BinanceUsdm => &["fstream.binance.com"],
        Venue::BybitSpot | Venue::BybitLinear => &["stream.bybit.com", "stream.bytick.com"],
        Venue::Okx => &["ws.okx.com", "wspap.okx.com", "wsaws.okx.com"],
        Venue::Custom(_) => &[],
    }
}

/// The forms a URL of `venue` may take, for errors.
fn expected(venue: Venue) -> String {
    let base = venue.default_base_url();
    let paths: Vec<String> = own_paths(venue)
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    format!(
        "a {} feed takes '{base}' or {} (streams go in streams, not in the URL)",
        venue.name(),
        paths
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

/// Parses `url` as a base URL of `venue`: the venue's own documented path is taken off, a
/// stream name, another market's or venue's path, or any path on the venue's production host
/// is refused naming the expected form.
pub fn parse(venue: Venue, url: &str) -> Result<Endpoint, String> {
    let mut endpoint = Endpoint::parse(url)?;
    if venue.custom().is_some() {
        return Ok(endpoint);
    }
    if !endpoint.query.is_empty() {
        return Err(format!(
            "'{url}': a {venue} URL takes no query; {}",
            expected(venue)
        ));
    }
    let path = endpoint.base_path.clone();
    let production = hosts(venue).contains(&endpoint.host.as_str());
    if let Some(own) = own_paths(venue).iter().find(|p| path.ends_with(*p)) {
        endpoint.base_path.truncate(path.len() - own.len());
        if !production || endpoint.base_path.is_empty() {
            return Ok(endpoint);
        }
    }
    if path.contains('@') {
        return Err(format!(
            "'{url}' names a stream in its path; {}",
            expected(venue)
        ));
    }
    if let Some((_, what)) = OTHER_PATHS.iter().find(|(p, _)| path.ends_with(p)) {
        return Err(format!("'{url}' ends in {what}; {}", expected(venue)));
    }
    let binance = matches!(venue, Venue::BinanceSpot | Venue::BinanceUsdm);
    if binance && (path.contains("/ws/") || path.contains("/stream/")) {
        return Err(format!(
            "'{url}' names a stream in its path; {}",
            expected(venue)
        ));
    }
    if production && !path.is_empty() {
        return Err(format!(
            "'{url}': {} serves no '{path}'; {}",
            endpoint.host,
            expected(venue)
        ));
    }
    Ok(endpoint)
}

/// Checks an OKX instrument id as the venue spells it: `BASE-QUOTE` (spot), `BASE-QUOTE-SWAP`,
/// `BASE-QUOTE-YYMMDD` (futures). A Binance-style symbol (`BTCUSDT`) is refused with the id
/// it probably means.
pub fn check_okx_inst(stream: &str) -> Result<(), String> {
    let Some((channel, inst)) = stream.split_once(':') else {
        return Ok(()); // the venue's own parser names this
    };
    if inst.contains('-') {
        return Ok(());
    }
    let quote = ["USDT", "USDC", "USD", "BTC", "ETH"]
        .into_iter()
        .find(|q| inst.len() > q.len() && inst.ends_with(q));
    let hint = match quote {
        Some(q) => {
            let base = &inst[..inst.len() - q.len()];
            format!(" (perpetual swap: '{channel}:{base}-{q}-SWAP', spot: '{channel}:{base}-{q}')")
        }
        None => " (e.g. 'BTC-USDT-SWAP' or 'BTC-USDT')".to_string(),
    };
    Err(format!(
        "stream '{stream}': '{inst}' is a Binance-style symbol; OKX instrument ids separate \
         base and quote with '-'{hint}"
    ))
}
