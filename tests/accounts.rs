//! Accounts' private streams against the simulator, per venue: login and subscription, every
//! event delivered in order against the simulator's ground truth, a dropped connection logging
//! in again, a listen key expiring mid-stream, and a refused credential failing only its
//! account while the others stream on.
//!
//! Every wait has a deadline; no sleep stands in for an event.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use util::{account, fast_reconnect, recorder, Probe, Seen};
use wsfeed::account::{AccountEvent, AccountMsg};
use wsfeed::config::{AccountConfig, FileConfig};
use wsfeed::metrics::FeedState;
use wsfeed::sim::{
    AccountEventKind, AccountSentRecord, ConnId, Fault, Sim, SimAccount, SimConfig, SimVenue,
};
use wsfeed::{DisconnectReason, Engine, Health};

/// The venues' private streams: config name, the simulator that speaks it, its private path.
const VENUES: [(&str, SimVenue, &str); 4] = [
    ("binance-usdm", SimVenue::Binance, "/private/ws"),
    ("binance-spot", SimVenue::Binance, "/ws-api/v3"),
    ("bybit-linear", SimVenue::BybitLinear, "/v5/private"),
    ("okx", SimVenue::Okx, "/ws/v5/private"),
];

fn sim_with(venue: SimVenue, accounts: &[&str]) -> Sim {
    Sim::start(SimConfig {
        venue,
        tls: false,
        symbols: vec!["BTCUSDT".into()],
        accounts: accounts.iter().map(|a| SimAccount::named(a)).collect(),
        account_event_interval: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn start(accounts: Vec<AccountConfig>) -> (Engine<util::Recorder>, Probe) {
    let mut file: FileConfig = toml::from_str("").expect("empty config parses");
    file.reconnect = fast_reconnect();
    file.accounts = accounts;
    let config = file.validate().expect("test config is valid");
    let (rec, probe) = recorder();
    (Engine::start(config, rec).expect("engine starts"), probe)
}

/// The account events the strategy saw of feed `feed`.
fn events_of(seen: &[Seen], feed: u16) -> Vec<AccountMsg> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Account(m) if m.feed == feed => Some(**m),
            _ => None,
        })
        .collect()
}

/// Messages received per connection of `feed`: (conn, the kind of each message's first event).
fn messages_by_conn(seen: &[Seen], feed: u16) -> BTreeMap<u32, Vec<AccountEventKind>> {
    let mut out: BTreeMap<u32, Vec<AccountEventKind>> = BTreeMap::new();
    let mut last_message = 0;
    for m in events_of(seen, feed) {
        if m.message == last_message {
            continue;
        }
        last_message = m.message;
        out.entry(m.conn).or_default().push(kind_of(&m.event));
    }
    out
}

/// The simulator's kind of the message an event of this kind starts.
fn kind_of(e: &AccountEvent) -> AccountEventKind {
    match e {
        AccountEvent::Order(_) => AccountEventKind::Order,
        AccountEvent::Balance(_) => AccountEventKind::Balance,
        AccountEvent::Position(_) => AccountEventKind::Position,
    }
}

/// The simulator's records per connection, in connection order, kinds as the engine reads them
/// (a Bybit execution is an order update).
fn sent_by_conn(records: &[AccountSentRecord]) -> Vec<(ConnId, Vec<AccountEventKind>)> {
    let mut out: BTreeMap<ConnId, Vec<AccountEventKind>> = BTreeMap::new();
    for r in records {
        let kind = match r.kind {
            AccountEventKind::Execution => AccountEventKind::Order,
            k => k,
        };
        out.entry(r.conn).or_default().push(kind);
    }
    out.into_iter().collect()
}

/// On every connection, what the strategy received is what the simulator sent there, in order:
/// a prefix (a connection that ended may not have delivered the last few messages sent), and
/// the whole of it on connections in `lossless` (by the engine's connection number).
fn assert_delivered(sim: &Sim, name: &str, seen: &[Seen], feed: u16, lossless: &[u32]) {
    let sent = sent_by_conn(&sim.account_sent(name));
    let got = messages_by_conn(seen, feed);
    for (conn, kinds) in &got {
        let Some((_, sent_kinds)) = sent.get(*conn as usize - 1) else {
            panic!(
                "{name}: connection {conn} delivered {} messages the simulator never sent",
                kinds.len()
            );
        };
        assert!(
            sent_kinds.starts_with(kinds),
            "{name}: connection {conn} delivered {kinds:?}\nbut the simulator sent {sent_kinds:?}"
        );
        if lossless.contains(conn) {
            assert_eq!(
                kinds.len(),
                sent_kinds.len(),
                "{name}: connection {conn} lost messages"
            );
        }
    }
}

fn private_conns(sim: &Sim, path: &str) -> Vec<ConnId> {
    sim.snapshot()
        .open_connections()
        .filter(|c| c.path.starts_with(path))
        .map(|c| c.id)
        .collect()
}

fn connected(seen: &[Seen], feed: u16, conn: u32) -> bool {
    util::has_health_of(seen, feed, |h| *h == Health::Connected { conn })
}

#[test]
fn each_venue_logs_in_and_delivers_every_event_in_order() {
    for (venue, sim_venue, _) in VENUES {
        let sim = sim_with(sim_venue, &["alice"]);
        let (engine, probe) = start(vec![account("alice", venue, &sim)]);
        probe.wait(&format!("{venue}: 30 messages"), |s| {
            connected(s, 0, 1)
                && messages_by_conn(s, 0)
                    .get(&1)
                    .is_some_and(|m| m.len() >= 30)
        });
        let (summary, _) = engine.stop();
        let seen = probe.seen();
        assert_delivered(&sim, "alice", &seen, 0, &[]);
        let a = summary.feeds[0].account.expect("an account's figures");
        assert!(a.events >= 30 && a.logins == 1, "{venue}: {a:?}");
        if venue == "binance-usdm" {
            assert_eq!(a.keys_created, 1, "{venue}: {a:?}");
        }
        // Order updates carry what a strategy acts on.
        let order = events_of(&seen, 0).into_iter().find_map(|m| match m.event {
            AccountEvent::Order(o) if o.quantity > 0.0 => Some(o),
            _ => None,
        });
        let order = order.unwrap_or_else(|| panic!("{venue}: no order update"));
        assert!(
            !order.symbol.is_empty() && !order.order_id.is_empty(),
            "{venue}: {order:?}"
        );
        assert!(!order.client_order_id.is_empty(), "{venue}: {order:?}");
        assert!(order.price > 0.0 && order.time_ms > 0, "{venue}: {order:?}");
    }
}

#[test]
fn a_dropped_private_connection_logs_in_again_and_loses_nothing_sent_after() {
    for (venue, sim_venue, path) in VENUES {
        let sim = sim_with(sim_venue, &["alice"]);
        let (engine, probe) = start(vec![account("alice", venue, &sim)]);
        probe.wait(&format!("{venue}: streaming"), |s| {
            messages_by_conn(s, 0).get(&1).is_some_and(|m| m.len() >= 5)
        });
        let conns = private_conns(&sim, path);
        assert_eq!(conns.len(), 1, "{venue}: one private connection");
        sim.inject_on(conns[0], Fault::Reset);
        probe.wait(&format!("{venue}: logged in again, streaming"), |s| {
            connected(s, 0, 2)
                && messages_by_conn(s, 0)
                    .get(&2)
                    .is_some_and(|m| m.len() >= 20)
        });
        let (summary, _) = engine.stop();
        let seen = probe.seen();
        assert!(util::has_health_of(&seen, 0, |h| matches!(
            h,
            Health::Disconnected {
                conn: 1,
                reason: DisconnectReason::Reset
            }
        )));
        assert!(util::has_health_of(&seen, 0, |h| matches!(
            h,
            Health::Recovered { .. }
        )));
        assert_delivered(&sim, "alice", &seen, 0, &[]);
        let f = &summary.feeds[0];
        assert_eq!(f.account.unwrap().logins, 2, "{venue}");
        assert_eq!(f.gaps.len(), 1, "{venue}: the outage is a recorded gap");
    }
}

#[test]
fn an_expired_listen_key_is_replaced_and_nothing_sent_after_the_new_connection_is_lost() {
    let sim = sim_with(SimVenue::Binance, &["alice"]);
    let (engine, probe) = start(vec![account("alice", "binance-usdm", &sim)]);
    probe.wait("streaming", |s| {
        messages_by_conn(s, 0).get(&1).is_some_and(|m| m.len() >= 5)
    });
    assert!(sim.expire_listen_key("alice"));
    probe.wait("a new key, a new connection, streaming", |s| {
        connected(s, 0, 2)
            && messages_by_conn(s, 0)
                .get(&2)
                .is_some_and(|m| m.len() >= 30)
    });
    // Stop the flow on the new connection only after checking it: every message the simulator
    // sent there before the last one the strategy saw has arrived, in order.
    let seen = probe.seen();
    let sent = sent_by_conn(&sim.account_sent("alice"));
    let got = messages_by_conn(&seen, 0);
    let on_new = &got[&2];
    assert!(
        sent[1].1.starts_with(on_new),
        "{on_new:?} vs {:?}",
        sent[1].1
    );
    let (summary, _) = engine.stop();
    let a = summary.feeds[0].account.unwrap();
    assert_eq!((a.keys_created, a.expiries), (2, 1), "{a:?}");
    assert!(util::has_health_of(&seen, 0, |h| matches!(
        h,
        Health::Disconnected {
            reason: DisconnectReason::UserStreamExpired,
            ..
        }
    )));
}

#[test]
fn a_refused_credential_fails_only_its_account() {
    for (venue, sim_venue, _) in VENUES {
        let sim = sim_with(sim_venue, &["alice", "bob"]);
        let (engine, probe) = start(vec![
            account("alice", venue, &sim),
            account("bob", venue, &sim),
        ]);
        probe.wait(&format!("{venue}: both stream"), |s| {
            connected(s, 0, 1) && connected(s, 1, 1)
        });
        assert!(sim.revoke_account("bob"));
        probe.wait(&format!("{venue}: bob failed"), |s| {
            util::has_health_of(s, 1, |h| {
                matches!(
                    h,
                    Health::Failed {
                        reason: DisconnectReason::CredentialsRejected { .. }
                    }
                )
            })
        });
        let before = events_of(&probe.seen(), 0).len();
        probe.wait(&format!("{venue}: alice streams on"), |s| {
            events_of(s, 0).len() >= before + 20
        });
        let stats = engine.stats().to_vec();
        assert_eq!(stats[1].state(), FeedState::Failed, "{venue}");
        let why = stats[1].failure.lock().unwrap().clone().unwrap();
        assert!(
            why.contains("account 'bob'") && why.contains(venue),
            "{venue}: {why}"
        );
        assert!(why.contains("IP whitelist"), "{venue}: {why}");
        assert_ne!(stats[0].state(), FeedState::Failed, "{venue}");
        // No retry storm: bob's failure stopped its attempts.
        let attempts = stats[1].attempts.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            attempts <= 3,
            "{venue}: {attempts} attempts for a refused credential"
        );
        let (summary, _) = engine.stop();
        assert!(!summary.failed, "alice is required and streamed");
        // Nor a storm of listen-key calls: alice's key and bob's refused ones, a handful.
        let rest = sim.snapshot().rest_requests;
        assert!(rest <= 10, "{venue}: {rest} REST requests");
    }
}
