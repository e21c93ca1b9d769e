//! What a supervisor sees of a running engine: Prometheus metrics, a health check and a status
//! document, served over HTTP by one thread of their own.
//!
//! | file | job |
//! |---|---|
//! | `health.rs` | which feeds are required, which of them are not streaming and fresh, whether all have failed for good; the `/healthz` and `/status` bodies |
//! | `exporter.rs` | the Prometheus text of every feed's counters, gauges and histograms (`/metrics`) |
//! | `observed.rs` | what they read: the feeds' counters, the strategy's latency, the start |
//! | `server.rs` | the `metrics` thread: a small blocking HTTP server answering the three paths |
//!
//! Nothing here runs on a feed thread. Feed threads keep their counters in relaxed atomics
//! ([`crate::metrics::FeedStats`]); reconnect and gap histograms are recorded on the feed's own
//! thread and handed over with a `try_lock` that never waits (figures a scrape kept from going
//! stay on the thread and go with its next turn); the strategy merges its latency histogram into
//! a shared one every 250 ms. A scrape reads all of that.

mod exporter;
pub mod health;
mod observed;
mod server;

pub use self::observed::Observed;
pub use self::server::Endpoint;
