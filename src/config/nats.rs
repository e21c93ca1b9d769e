//! `[sink.nats]`: fan-out of ticks and health events to NATS JetStream (see docs/NATS.md), as
//! written and as checked.

use serde::{Deserialize, Serialize};

/// `[sink]`: where else the strategy's ticks and health events go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `[sink.nats]`; no NATS sink when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsConfig>,
}

/// `[sink.nats]`: a JetStream stream fed from a thread of its own.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server, `nats://host:port` (e.g. `nats://127.0.0.1:4222`). Required.
    pub url: String,
    /// The JetStream stream, created when missing over `<subject_prefix>.>`. Default `WSFEED`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First token(s) of every subject. Default `wsfeed`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Events the strategy side may queue for the sink thread; past that each new one is
    /// dropped and counted. Default 65536 (about 15 MiB, allocated up front: an event slot
    /// takes the size of a tick). At most 1 048 576.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Publishes awaiting JetStream's acknowledgement at once (events held by the sink thread on
    /// top of `buffer`). Default 1024, at most 65536.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// How long a publish waits for its acknowledgement before it counts as not acknowledged
    /// and is sent again, ms. Default 5000.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_ms: u64,
    /// At stop, how long the sink keeps publishing what is still unacknowledged, ms; what is
    /// left after it is counted as abandoned. Default 5000.
    #[serde(default = "default_drain")]
    pub drain_timeout_ms: u64,
    /// Age after which the stream discards messages, s; 0 keeps them. Applied when the sink
    /// creates the stream. Default 86400 (a day).
    #[serde(default = "default_max_age")]
    pub max_age_s: u64,
    /// Core to pin the sink thread to, away from the strategy's and the feeds'. Default: not
    /// pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<usize>,
}

fn default_stream() -> String {
    "WSFEED".into()
}
fn default_prefix() -> String {
    "wsfeed".into()
}
fn default_buffer() -> usize {
    65536
}
fn default_in_flight() -> usize {
    1024
}
fn default_ack_timeout() -> u64 {
    5000
}
fn default_drain() -> u64 {
    5000
}
fn default_max_age() -> u64 {
    86_400
}

/// Most slots of the sink's channel.
pub const MAX_NATS_BUFFER: usize = 1 << 20;

impl NatsConfig {
    /// A sink for `url` with every default.
    pub fn new(url: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            stream: default_stream(),
            subject_prefix: default_prefix(),
            buffer: default_buffer(),
            max_in_flight: default_in_flight(),
            ack_timeout_ms: default_ack_timeout(),
            drain_timeout_ms: default_drain(),
            max_age_s: default_max_age(),
            core: None,
        }
    }

    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        if !cfg!(feature = "nats") {
            return Err(
                "[sink.nats] is set, but this wsfeed was built without the `nats` feature".into(),
            );
        }
        let Some(rest) = self.url.strip_prefix("nats://") else {
            return Err(format!(
                "sink.nats.url '{}' must be nats://host:port",
                self.url
            ));
        };
        let port_ok = rest
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok || rest.contains('/') {
            return Err(format!(
                "sink.nats.url '{}' must be nats://host:port (a host and a port number)",
                self.url
            ));
        }
        let stream_ok = !self.stream.is_empty()
            && self
                .stream
                .chars()
                .all(|c| !c.is_whitespace() && !matches!(c, '.' | '*' | '>' | '/' | '\\'));
        if !stream_ok {
            return Err(format!(
                "sink.nats.stream '{}' must be a non-empty name without white space, '.', '*', \
                 '>', '/' or '\\'",
                self.stream
            ));
        }
        let prefix_ok = self.subject_prefix.split('.').all(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| !c.is_whitespace() && !matches!(c, '*' | '>'))
        });
        if !prefix_ok {
            return Err(format!(
                "sink.nats.subject_prefix '{}' must be subject tokens separated by '.', none \
                 empty, without white space, '*' or '>'",
                self.subject_prefix
            ));
        }
        if !(1..=MAX_NATS_BUFFER).contains(&self.buffer) {
            return Err(format!(
                "sink.nats.buffer is {}; it must be between 1 and {MAX_NATS_BUFFER}",
                self.buffer
            ));
        }
        if !(1..=65536).contains(&self.max_in_flight) {
            return Err(format!(
                "sink.nats.max_in_flight is {}; it must be between 1 and 65536",
                self.max_in_flight
            ));
        }
        for (field, ms) in [
            ("ack_timeout_ms", self.ack_timeout_ms),
            ("drain_timeout_ms", self.drain_timeout_ms),
        ] {
            if !(1..=600_000).contains(&ms) {
                return Err(format!(
                    "sink.nats.{field} is {ms}; it must be between 1 and 600000"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const FEED: &str = r#"
[[feeds]]
name = "spot"
venue = "binance-spot"
streams = ["btcusdt@bookTicker"]
"#;

    fn with_sink(table: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{FEED}[sink.nats]\n{table}\n")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_sink_table_takes_its_defaults_and_no_table_means_no_sink() {
        assert_eq!(Config::from_toml(FEED).expect("valid").nats, None);
        let c = with_sink("url = \"nats://127.0.0.1:4222\"").expect("valid");
        let n = c.nats.expect("the sink");
        assert_eq!(n, super::NatsConfig::new("nats://127.0.0.1:4222"));
        assert_eq!(
            (n.stream.as_str(), n.subject_prefix.as_str()),
            ("WSFEED", "wsfeed")
        );
        assert_eq!((n.buffer, n.max_in_flight), (65536, 1024));
        let c = with_sink(
            "url = \"nats://nats.internal:4222\"\nstream = \"MD\"\nsubject_prefix = \"md.prod\"\n\
             buffer = 100\nmax_in_flight = 10\nack_timeout_ms = 200\ndrain_timeout_ms = 100\n\
             max_age_s = 0\ncore = 0",
        )
        .expect("valid");
        let n = c.nats.expect("the sink");
        assert_eq!(
            (n.stream.as_str(), n.subject_prefix.as_str()),
            ("MD", "md.prod")
        );
        assert_eq!((n.buffer, n.max_in_flight, n.max_age_s), (100, 10, 0));
        assert_eq!(n.core, Some(0));
    }

    #[test]
    fn bad_sink_values_name_the_field() {
        let url = "url = \"nats://127.0.0.1:4222\"\n";
        for (table, field) in [
            ("", "missing field `url`"),
            ("url = \"http://127.0.0.1:4222\"", "sink.nats.url"),
            ("url = \"nats://127.0.0.1\"", "sink.nats.url"),
            ("url = \"nats://:4222\"", "sink.nats.url"),
            (&format!("{url}stream = \"a.b\""), "sink.nats.stream"),
            (&format!("{url}stream = \"\""), "sink.nats.stream"),
            (
                &format!("{url}subject_prefix = \"a..b\""),
                "sink.nats.subject_prefix",
            ),
            (
                &format!("{url}subject_prefix = \"md.>\""),
                "sink.nats.subject_prefix",
            ),
            (&format!("{url}buffer = 0"), "sink.nats.buffer"),
            (&format!("{url}buffer = 2000000"), "sink.nats.buffer"),
            (
                &format!("{url}max_in_flight = 0"),
                "sink.nats.max_in_flight",
            ),
            (
                &format!("{url}ack_timeout_ms = 0"),
                "sink.nats.ack_timeout_ms",
            ),
            (
                &format!("{url}drain_timeout_ms = 0"),
                "sink.nats.drain_timeout_ms",
            ),
            (&format!("{url}bufer = 10"), "unknown field `bufer`"),
            (
                &format!("{url}core = 100000"),
                "sink.nats.core = 100000: no such core",
            ),
        ] {
            let e = with_sink(table).expect_err(table);
            assert!(e.contains(field), "{table:?}: {e}");
        }
    }
}
