//! `[[accounts]]` checked: venue, URLs, the environment variables the credentials come from,
//! the events asked for. Every error names the account and the field.

use std::sync::Arc;
use std::time::Duration;

use super::endpoint::Endpoint;
use super::file::{extra_ca, AccountConfig, KeyType, ReconnectConfig};
use super::spec::{AccountSpec, ConfigError};
use crate::account::{AccountParams, EventKind, Protocol};
use crate::auth::Credentials;
use crate::venue::Venue;

fn err(message: String) -> ConfigError {
    ConfigError {
        file: None,
        message,
    }
}

/// The private WebSocket's endpoint: `url` (or the protocol's default) with the private path
/// taken off when it is written out.
fn private_endpoint(
    at: &str,
    protocol: Protocol,
    url: Option<&str>,
) -> Result<Endpoint, ConfigError> {
    let url = url.unwrap_or(protocol.default_url());
    let mut e = Endpoint::parse(url).map_err(|m| err(format!("{at}.url: {m}")))?;
    if let Some(base) = e.base_path.strip_suffix(protocol.path()) {
        e.base_path = base.to_string();
    }
    if !e.base_path.is_empty() || !e.query.is_empty() {
        return Err(err(format!(
            "{at}.url '{url}': expected a base URL such as '{}' (the private path {} is added)",
            protocol.default_url(),
            protocol.path()
        )));
    }
    Ok(e)
}

/// Checks `[[accounts]]` entry `i` against the feeds' and accounts' names already taken.
pub(super) fn validate(
    i: usize,
    a: AccountConfig,
    base: ReconnectConfig,
    taken: &[&str],
) -> Result<AccountSpec, ConfigError> {
    let at = format!("accounts[{i}] ('{}')", a.name);
    if taken.contains(&a.name.as_str()) {
        return Err(err(format!("{at}.name is used by another feed or account")));
    }
    let venue = Venue::from_name(&a.venue).ok_or_else(|| {
        err(format!(
            "{at}.venue '{}' is unknown (accounts are on: {})",
            a.venue,
            Venue::ALL.map(Venue::name).join(", ")
        ))
    })?;
    let protocol = Protocol::of(venue).ok_or_else(|| {
        err(format!(
            "{at}.venue '{venue}' is a custom venue; private streams are on: {}",
            Venue::ALL.map(Venue::name).join(", ")
        ))
    })?;
    let endpoint = private_endpoint(&at, protocol, a.url.as_deref())?;
    let rest_base = match (protocol.default_rest_url(), &a.rest_url, &a.url) {
        (None, Some(_), _) => {
            return Err(err(format!(
                "{at}.rest_url is set, but {venue} accounts make no REST calls; remove it"
            )))
        }
        (None, None, _) => None,
        (Some(_), Some(r), _) if !(r.starts_with("https://") || r.starts_with("http://")) => {
            return Err(err(format!(
                "{at}.rest_url '{r}' must start with https:// or http://"
            )))
        }
        (Some(_), Some(r), _) => Some(r.trim_end_matches('/').to_string()),
        (Some(_), None, Some(_)) => Some(format!(
            "{}://{}:{}",
            if endpoint.tls { "https" } else { "http" },
            endpoint.host,
            endpoint.port
        )),
        (Some(default), None, None) => Some(default.to_string()),
    };
    if protocol.needs_passphrase() != a.passphrase_env.is_some() {
        return Err(err(match protocol.needs_passphrase() {
            true => format!("{at}.passphrase_env is missing: OKX logins need the passphrase"),
            false => format!("{at}.passphrase_env is set, but {venue} takes no passphrase"),
        }));
    }
    let creds = match &a.credentials {
        Some(c) => c.clone(),
        None => Credentials::from_env(&a.key_env, &a.secret_env, a.passphrase_env.as_deref())
            .map_err(|m| err(format!("{at}: {m}")))?,
    };
    let ed25519 = a.key_type == KeyType::Ed25519;
    if ed25519 && protocol != Protocol::BinanceWsApi {
        return Err(err(format!(
            "{at}.key_type = \"ed25519\": only binance-spot accounts (its WebSocket API's \
             session.logon) take Ed25519 keys"
        )));
    }
    if ed25519 {
        crate::auth::check_ed25519(&creds.secret)
            .map_err(|m| err(format!("{at}: {m} (in {})", a.secret_env)))?;
    }
    let mut events = Vec::new();
    for name in &a.events {
        let kind = EventKind::from_name(name).ok_or_else(|| {
            err(format!(
                "{at}.events names '{name}' (known: {})",
                EventKind::ALL.map(EventKind::name).join(", ")
            ))
        })?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    if events.is_empty() {
        return Err(err(format!(
            "{at}.events is empty: ask for at least one kind"
        )));
    }
    if !(60_000..=3_000_000).contains(&a.listen_key_keepalive_ms) {
        return Err(err(format!(
            "{at}.listen_key_keepalive_ms = {}: must be between 60000 and 3000000 (a listen key \
             lives 60 minutes)",
            a.listen_key_keepalive_ms
        )));
    }
    let reconnect = match &a.reconnect {
        Some(o) => o.apply(base),
        None => base,
    };
    reconnect.validate(&format!("{at}.reconnect"))?;
    let extra_ca_pem = extra_ca(&a.ca_pem, &a.ca_file).map_err(|m| err(format!("{at}.{m}")))?;
    Ok(AccountSpec {
        endpoint,
        extra_ca_pem,
        reconnect,
        required: a.required,
        driver: a.driver,
        params: Arc::new(AccountParams {
            name: a.name,
            venue,
            protocol,
            creds,
            key_env: a.key_env,
            secret_env: a.secret_env,
            events,
            rest_base,
            keepalive_every: Duration::from_millis(a.listen_key_keepalive_ms),
            ed25519,
        }),
    })
}
