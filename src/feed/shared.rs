//! What every session of a feed shares: the venue's rules, the config, the feed's streams and
//! which are still wanted, the feed's request numbering, and, for an account, its private
//! protocol and the URL its connections use.

use std::sync::Arc;
use std::time::Duration;

use crate::account::AccountParams;
use crate::config::ReconnectConfig;
use crate::venue::{StreamDef, Venue};

/// What every session of a feed shares: the venue's rules, the config, the feed's streams and
/// which of them are still wanted, and the feed's request numbering.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The venue's codec (subscribe requests, pings).
    pub venue: Venue,
    /// Backoff, liveness and limits.
    pub cfg: ReconnectConfig,
    /// The feed's streams.
    pub streams: Vec<StreamDef>,
    /// Silence limit of each stream.
    pub silence: Vec<Duration>,
    /// Streams still wanted (not rejected by the venue).
    pub active: Vec<bool>,
    /// Streams the venue acknowledged on some connection: a later connection may subscribe
    /// them in its URL.
    pub confirmed: Vec<bool>,
    /// Subscribing in the URL is allowed (the venue can, and refused no such URL).
    pub url_subscribe: bool,
    /// The feed's next request id.
    pub next_request_id: u64,
    /// An account's private protocol and credentials (`None`: a market feed).
    pub account: Option<Arc<AccountParams>>,
    /// A listen-key account: the URL with the current key (`None`: no valid key, so no
    /// attempt starts).
    pub private_url: Option<String>,
}

impl Shared {
    /// What the sessions of a feed of `venue` with `streams` (each with its silence limit)
    /// share; `account` for an account's private stream.
    pub(crate) fn new(
        venue: Venue,
        cfg: ReconnectConfig,
        streams: Vec<StreamDef>,
        silence: Vec<Duration>,
        account: Option<Arc<AccountParams>>,
    ) -> Shared {
        Shared {
            venue,
            cfg,
            active: vec![true; streams.len()],
            confirmed: vec![false; streams.len()],
            url_subscribe: true,
            streams,
            silence,
            next_request_id: 1,
            account,
            private_url: None,
        }
    }

    /// The URL that subscribes every wanted stream for a connection to `target_url`, when the
    /// venue takes subscriptions in the URL, every wanted stream was acknowledged before (the
    /// venue answers an unknown stream in the URL with HTTP 400 for the whole connection), and
    /// the URL stays short.
    pub(crate) fn url_subscription(&self, target_url: &str) -> Option<String> {
        /// Longest URL sent (servers commonly refuse request lines over 4 to 8 KiB).
        const MAX_URL: usize = 4096;
        if !self.url_subscribe
            || !self.active.iter().any(|a| *a)
            || self
                .active
                .iter()
                .zip(&self.confirmed)
                .any(|(a, c)| *a && !*c)
        {
            return None;
        }
        let names = self
            .streams
            .iter()
            .zip(&self.active)
            .filter(|(_, a)| **a)
            .map(|(s, _)| s.name.as_str());
        self.venue
            .url_with_streams(target_url, names)
            .filter(|url| url.len() <= MAX_URL)
    }

    /// How often the keep-alive ping goes out: the config's `keepalive_ms`, else the venue's.
    pub(crate) fn keepalive(&self) -> Option<Duration> {
        match self.cfg.keepalive_ms {
            None => self.venue.keepalive(),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        }
    }
}
