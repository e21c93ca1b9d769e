//! A parsed `ws://` or `wss://` base URL.

/// A parsed `ws://` or `wss://` base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `wss`.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix before the venue's own path, without a trailing `/` (often empty).
    pub base_path: String,
    /// The query, with its `?` (empty without one): venues defined in config may need one
    /// (`?version=1.0`); a built-in venue's URL takes none.
    pub query: String,
}

impl Endpoint {
    /// Parses `ws[s]://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(format!("'{url}' must start with ws:// or wss://"));
        };
        if rest.contains('#') {
            return Err(format!("'{url}': a base URL takes no fragment"));
        }
        let (rest, query) = match rest.find('?') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{url}': unclosed '[' in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("'{url}': port '{p}' is not a number in 1..65535"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            base_path: path.trim_end_matches('/').to_string(),
            query: query.to_string(),
        })
    }

    /// The full URL of `path` on this endpoint.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{host}:{}{}{path}{}",
            self.port, self.base_path, self.query
        )
    }
}
