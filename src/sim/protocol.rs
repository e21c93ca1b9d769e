//! What the three venue protocols (`binance.rs`, `bybit.rs`, `okx.rs`) share.
//!
//! A venue's request handler is pure: it takes the client's request text, the
//! connection's protocol state ([`Session`]: its subscriptions, route and
//! venue connection id) and an [`Env`] (the configuration, the symbols, the
//! market's subscription snapshots and the counters a request touches), and
//! returns what to send, in order ([`Out`]). It changes the session's
//! subscriptions itself; it never touches a socket, a WebSocket or a thread.
//! The serve loop (`serve.rs`) carries the replies out over the transport.

use super::base::Kind;
use super::config::{SimConfig, SimVenue};
use super::market::Snap;
use super::rng::mix;
use super::symbol::SymInfo;

/// USD-M route of an upgrade path (Binance's "Base URL split").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/public/...`: `bookTicker` and depth.
    Public,
    /// `/market/...`: `aggTrade` and `markPrice`.
    Market,
    /// `/stream`, `/ws`, and every Bybit / OKX path.
    Unrouted,
}

impl Route {
    /// Whether a stream of `kind` subscribed on this route delivers. With
    /// `usdm_routing` the unrouted paths deliver public streams only; a
    /// stream on the wrong route is acknowledged but silent.
    pub(crate) fn delivers(self, kind: Kind, usdm_routing: bool) -> bool {
        if !usdm_routing {
            return true;
        }
        match self {
            Route::Public | Route::Unrouted => kind.is_public(),
            Route::Market => !kind.is_public(),
        }
    }
}

/// A parsed stream name: a Binance stream, a Bybit topic or an OKX channel
/// argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    pub sym: usize,
    pub kind: Kind,
    /// Canonical name: the Binance stream with a lowercase symbol
    /// (`btcusdt@depth@100ms`), the Bybit topic (`orderbook.50.BTCUSDT`) or
    /// OKX `<channel>:<instId>` (`books:BTC-USDT-SWAP`).
    pub name: String,
    /// OKX spot instrument (else the swap).
    pub spot: bool,
}

/// One subscription of a connection.
#[derive(Debug)]
pub(crate) struct Sub {
    pub name: String,
    pub sym: usize,
    pub kind: Kind,
    /// False for a Binance stream subscribed on the wrong USD-M route.
    pub delivers: bool,
    /// Silenced by `Fault::Mute`.
    pub muted: bool,
    /// OKX: the spot instrument (else the swap).
    pub spot: bool,
    /// Only events generated after this one are delivered (the subscription's
    /// snapshot covers the earlier ones); 0 on Binance.
    pub min_gen: u64,
}

impl Sub {
    /// A delivering, unmuted subscription of `t` for events after `min_gen`.
    pub(crate) fn from_topic(t: Topic, min_gen: u64) -> Sub {
        Sub {
            name: t.name,
            sym: t.sym,
            kind: t.kind,
            delivers: true,
            muted: false,
            spot: t.spot,
            min_gen,
        }
    }
}

/// The protocol state of one connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub venue: SimVenue,
    /// The venue's connection id (Bybit `conn_id`, OKX `connId`).
    pub tag: String,
    pub route: Route,
    /// Binance: data frames wrapped as `{"stream":…,"data":…}`.
    pub wrapped: bool,
    pub subs: Vec<Sub>,
    /// Streams muted by `Fault::Mute` (normalised names), in mute order; a
    /// muted stream stays muted when subscribed again.
    pub muted: Vec<String>,
    /// The subscription in the upgrade URL was ignored (`Fault::IgnoreSubscribe`):
    /// the next request gets no answer either.
    pub deaf: bool,
}

impl Session {
    /// The session of connection number `id` (its tag derived from `seed`),
    /// with the subscriptions made in the upgrade URL.
    pub(crate) fn new(
        venue: SimVenue,
        seed: u64,
        id: u64,
        route: Route,
        wrapped: bool,
        subs: Vec<Sub>,
    ) -> Session {
        Session {
            venue,
            tag: conn_tag(venue, seed, id),
            route,
            wrapped,
            subs,
            muted: Vec::new(),
            deaf: false,
        }
    }

    /// The subscribed stream names, in subscription order.
    pub(crate) fn stream_names(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.name.clone()).collect()
    }

    /// Adds `sub`, muted if its stream was muted before. Returns whether it
    /// is muted.
    pub(crate) fn push(&mut self, mut sub: Sub) -> bool {
        sub.muted = self.muted.contains(&sub.name);
        let muted = sub.muted;
        self.subs.push(sub);
        muted
    }

    /// Mutes the stream `name` (normalised) on this connection, now and if
    /// subscribed again.
    pub(crate) fn mute(&mut self, name: String) {
        for sub in self.subs.iter_mut().filter(|s| s.name == name) {
            sub.muted = true;
        }
        if !self.muted.contains(&name) {
            self.muted.push(name);
        }
    }
}

/// One thing a request handler asks the serve loop to do, in order.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send a reply (an ack, an error, a pong): never ground truth.
    Reply(String),
    /// Send a subscription's first data message (ground truth, subject to
    /// `Fault::DropNext`, not to book faults).
    Snapshot {
        stream: String,
        kind: Kind,
        snap: Snap,
    },
    /// The subscriptions changed: publish them (`ConnInfo::streams`) now.
    Streams,
}

/// What a request handler may ask of the simulator around it. The serve loop
/// answers from the shared state and the market; unit tests with a market of
/// their own.
pub(crate) trait Env {
    /// The simulator's configuration.
    fn cfg(&self) -> &SimConfig;
    /// Names of each configured symbol on every venue.
    fn info(&self) -> &[SymInfo];
    /// Counts a subscribe request; true when `Fault::IgnoreSubscribe`
    /// swallows it (no ack, no error, nothing subscribed).
    fn subscribe_ignored(&self) -> bool;
    /// Counts an application-level ping (Bybit `{"op":"ping"}`, OKX `ping`).
    fn venue_ping(&self);
    /// For each topic, taken atomically with respect to the generator: the
    /// generation after which live events are delivered and the snapshot
    /// the subscription starts with, if its channel starts with one.
    fn snapshots(&self, topics: &[Topic]) -> Vec<(u64, Option<Snap>)>;
}

/// Subscribes `topics` (with one atomic look at the market): each starts with
/// its snapshot, unless muted; the snapshots go to `out` in topic order.
pub(crate) fn start(session: &mut Session, env: &dyn Env, topics: Vec<Topic>, out: &mut Vec<Out>) {
    let snaps = env.snapshots(&topics);
    for (topic, (gen, snap)) in topics.into_iter().zip(snaps) {
        let (stream, kind) = (topic.name.clone(), topic.kind);
        let muted = session.push(Sub::from_topic(topic, gen));
        if let (Some(snap), false) = (snap, muted) {
            out.push(Out::Snapshot { stream, kind, snap });
        }
    }
}

/// The connection id a venue reports (`conn_id` / `connId`), deterministic
/// in the seed and the connection number.
pub(crate) fn conn_tag(venue: SimVenue, seed: u64, id: u64) -> String {
    let h = mix(seed ^ id.wrapping_mul(0xA24B_AED4_963E_E407));
    match venue {
        SimVenue::Okx => format!("{:08x}", h as u32),
        _ => {
            let h2 = mix(h);
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                (h >> 32) as u32,
                (h >> 16) as u16,
                h & 0xFFF,
                (h2 >> 52) & 0xFFF,
                h2 & 0xFFFF_FFFF_FFFF
            )
        }
    }
}

/// An [`Env`] over a market of its own, for the venues' unit tests.
#[cfg(test)]
pub(crate) mod test_env {
    use std::cell::Cell;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sim::market::Market;

    #[derive(Debug)]
    pub(crate) struct TestEnv {
        pub cfg: SimConfig,
        pub info: Arc<Vec<SymInfo>>,
        pub market: Mutex<Market>,
        /// Subscribe requests still to ignore.
        pub ignore: Cell<u32>,
        pub subscribe_requests: Cell<u32>,
        pub venue_pings: Cell<u32>,
    }

    impl TestEnv {
        pub(crate) fn new(venue: SimVenue) -> TestEnv {
            let cfg = SimConfig {
                venue,
                symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
                ..SimConfig::default()
            };
            let info = Arc::new(cfg.symbols.iter().map(|s| SymInfo::of(s)).collect());
            TestEnv {
                market: Mutex::new(Market::new(Arc::clone(&info), cfg.seed, venue, false)),
                cfg,
                info,
                ignore: Cell::new(0),
                subscribe_requests: Cell::new(0),
                venue_pings: Cell::new(0),
            }
        }

        /// A session on the unrouted path.
        pub(crate) fn session(&self, wrapped: bool) -> Session {
            Session::new(self.cfg.venue, 1, 1, Route::Unrouted, wrapped, Vec::new())
        }
    }

    impl Env for TestEnv {
        fn cfg(&self) -> &SimConfig {
            &self.cfg
        }
        fn info(&self) -> &[SymInfo] {
            &self.info
        }
        fn subscribe_ignored(&self) -> bool {
            self.subscribe_requests
                .set(self.subscribe_requests.get() + 1);
            let ignore = self.ignore.get() > 0;
            if ignore {
                self.ignore.set(self.ignore.get() - 1);
            }
            ignore
        }
        fn venue_ping(&self) {
            self.venue_pings.set(self.venue_pings.get() + 1);
        }
        fn snapshots(&self, topics: &[Topic]) -> Vec<(u64, Option<Snap>)> {
            let market = self.market.lock().expect("market");
            topics
                .iter()
                .map(|t| {
                    let snap = market.snapshot(t.sym, t.kind, t.spot, 1_000);
                    (snap.as_ref().map_or_else(|| market.gen(), |s| s.gen), snap)
                })
                .collect()
        }
    }

    /// The replies in `out` (snapshots and publications left out).
    pub(crate) fn replies(out: &[Out]) -> Vec<&str> {
        out.iter()
            .filter_map(|o| match o {
                Out::Reply(r) => Some(r.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_tags() {
        assert_eq!(conn_tag(SimVenue::Okx, 1, 2).len(), 8);
        assert_eq!(conn_tag(SimVenue::BybitSpot, 1, 2).len(), 36);
        assert_ne!(conn_tag(SimVenue::Okx, 1, 2), conn_tag(SimVenue::Okx, 1, 3));
    }

    #[test]
    fn routes() {
        assert!(Route::Public.delivers(Kind::Depth, true));
        assert!(!Route::Unrouted.delivers(Kind::AggTrade, true));
        assert!(Route::Market.delivers(Kind::MarkPrice, true));
        assert!(!Route::Market.delivers(Kind::BookTicker, true));
        assert!(Route::Market.delivers(Kind::BookTicker, false));
    }
}
