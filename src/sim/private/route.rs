//! Which upgrade requests open a private stream: Binance `/private/ws?listenKey=<key>`,
//! `/private/ws/<key>` and `/ws/<key>` (a live listen key) and `/ws-api/v3`,
//! Bybit `/v5/private`, OKX `/ws/v5/private`.

use std::time::Instant;

use crate::sim::config::SimVenue;
use crate::sim::state::Inner;

use super::observe::PrivateStream;

/// An accepted private upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrivateRoute {
    /// The path shown in `ConnInfo::path` (without the listen key).
    pub path: String,
    pub stream: PrivateStream,
    /// Binance USD-M: the account and its listen key.
    pub listen_key: Option<(usize, String)>,
}

/// The private route of an upgrade of `path?query`: `None` when the path is
/// not a private one (every path, when no account is configured), `Err((status, body))` for a listen key that does not
/// exist (HTTP 400).
pub(crate) fn route(
    inner: &Inner,
    path: &str,
    query: Option<&str>,
) -> Option<Result<PrivateRoute, (u16, String)>> {
    if inner.private.accounts.is_empty() {
        // Without accounts there are no private endpoints.
        return None;
    }
    let plain = |stream| {
        Some(Ok(PrivateRoute {
            path: path.to_string(),
            stream,
            listen_key: None,
        }))
    };
    match (inner.cfg.venue, path) {
        (SimVenue::BybitSpot | SimVenue::BybitLinear, "/v5/private") => {
            return plain(PrivateStream::Bybit)
        }
        (SimVenue::Okx, "/ws/v5/private") => return plain(PrivateStream::Okx),
        (SimVenue::Binance, "/ws-api/v3") => return plain(PrivateStream::BinanceWsApi),
        (SimVenue::Binance, _) => {}
        _ => return None,
    }
    let (base, key) = if path == "/private/ws" {
        let key = query
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("listenKey="))
            .unwrap_or("");
        ("/private/ws", key)
    } else if let Some(key) = path.strip_prefix("/private/ws/") {
        ("/private/ws", key)
    } else if let Some(key) = path.strip_prefix("/ws/") {
        // `/ws/<stream>` is a public raw stream unless it names a live key.
        inner.private.key_account(key, Instant::now())?;
        ("/ws", key)
    } else {
        return None;
    };
    Some(match inner.private.key_account(key, Instant::now()) {
        Some(account) => Ok(PrivateRoute {
            path: base.to_string(),
            stream: PrivateStream::BinanceListenKey,
            listen_key: Some((account, key.to_string())),
        }),
        None => Err((
            400,
            format!("Invalid request: listenKey '{key}' does not exist"),
        )),
    })
}
