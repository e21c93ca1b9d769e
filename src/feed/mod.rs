//! Feeds: a venue's connections, the streams they carry, and the thread that drives them.
//!
//! The shape follows quinn-proto beside quinn: the logic does no I/O, a driver does.
//!
//! ```text
//!  driver (one per thread: mio::Poll, transports, timer table, helper answers)     driver.rs
//!    │ events: frame read, connected/open/failed, resolved, snapshot, time passed
//!    ▼
//!  FeedCore (one per feed)                                                           core.rs
//!    ├─ Connections: sessions, attempts, losses, backoff, rotations               conns.rs
//!    │    └─ Session: one connection's state machine, no I/O                     session.rs
//!    └─ Streams: outages and the data path                                        streams.rs
//!         └─ StreamState: numbering, held messages, book, silence                  stream.rs
//!    │ actions: connect, send, close, abort, resolve, fetch a snapshot            action.rs
//!    ▼ ticks and health events
//!  Sink: the channel to the strategy thread (ChannelSink), or a strategy in place   sink.rs
//! ```
//!
//! | file | owns |
//! | --- | --- |
//! | `params.rs` | what a feed is made of (`FeedParams`, `Target`), built by the engine |
//! | `driver.rs` | the poll loop, transports by token, the timer table, helper replies |
//! | `transport.rs` | one connection's I/O objects and steps; error → reason mapping |
//! | `core.rs` | one feed's logic: dispatches a frame, orders a loss between both sides |
//! | `action.rs` | what the logic asks the driver to do |
//! | `conns.rs` | sessions' attempts, failures, losses, acks and venue errors |
//! | `session.rs` | one connection's state machine: set-up limits, subscriptions, liveness |
//! | `slots.rs` | the set of a feed's sessions: carriers, room, the oldest, publishing |
//! | `subscribe.rs` | one connection's subscribe requests, acks and refusals |
//! | `rotation.rs` | make-before-break replacement of a connection |
//! | `resolve.rs` | each target's address: kept while it works, survives a failed lookup |
//! | `streams.rs` | a feed's streams and outages; parse once → judge → hand over |
//! | `stream.rs` | one stream across connections: dedup, reorder window, gaps, its book |
//! | `book.rs` | a stream's local book and its sync (WebSocket or REST snapshots) |
//! | `outage.rs` | outage records: reconnect time, gap, missed ranges |
//! | `report.rs` | counters, rate-limited logs, the capture hand-off, health stamping |
//! | `replay.rs` | a feed's data path fed captured frames (`wsfeed replay`) |
//! | `sink.rs` | where ticks and health events go |
//! | `backoff.rs`, `liveness.rs`, `watch.rs`, `seq.rs`, `limiter.rs` | pure decisions |

pub mod action;
pub mod backoff;
mod book;
mod conns;
pub mod core;
pub mod driver;
pub mod limiter;
pub mod liveness;
mod login;
mod outage;
pub mod params;
pub(crate) mod replay;
mod report;
mod resolve;
mod rotation;
pub mod seq;
mod session;
mod shared;
pub mod sink;
mod slots;
mod stream;
mod streams;
mod subscribe;
mod top;
pub mod transport;
pub mod watch;

#[cfg(test)]
mod tests;
