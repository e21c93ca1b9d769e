//! `wsfeed::sim`: an embedded exchange simulator speaking Binance, Bybit v5,
//! OKX v5 or a venue defined in config.
//!
//! One simulator speaks one venue's protocol ([`SimConfig::venue`]) on
//! `127.0.0.1` (or [`SimConfig::bind`]), over `ws://` or over `wss://` with a
//! certificate authority generated at start. It is used by the demo
//! (`wsfeed demo`), by integration tests, by benches and standalone by the
//! `wsfeed-sim` binary. `tests/fixtures/README.md` lists every message format
//! with the venue documentation it follows, and `tests/fixtures/` holds the
//! documentation's own example messages the tests compare against.
//!
//! # Architecture
//!
//! * **Acceptor thread** — waits (mio) on a non-blocking listener bound to
//!   `127.0.0.1:0` (by default), accepts as soon as a connection arrives and
//!   spawns one thread per accepted TCP connection. [`Fault::Refuse`] really
//!   closes the listening socket and re-binds the same port (with
//!   `SO_REUSEADDR`) when the period ends.
//! * **Generator thread** — one deterministic synthetic market (random walk
//!   from [`SimConfig::seed`]) with a real order book per symbol (price →
//!   quantity per side, 30 to 50 levels). Each book change is one update id;
//!   depth messages carry the final quantity of every level changed since the
//!   previous one, so a snapshot plus the following diffs rebuilds the book
//!   exactly. Every event is rendered once in the venue's format and
//!   broadcast to every connection through a bounded crossbeam channel, so
//!   all connections see the same sequence numbers at about the same time,
//!   exactly like the real venue.
//!   With [`SimConfig::shared`] the price path is not the simulator's own
//!   but a [`SharedMarket`]'s (see "Several venues, one market" below).
//! * **Connection threads** — non-blocking socket. The request head is read
//!   first: a plain HTTP request (no `Upgrade: websocket`) gets one REST
//!   response and `Connection: close`; an upgrade goes on to the WebSocket
//!   handshake. The thread then waits up to 1 ms on its event channel, writes
//!   the events the client is subscribed to, flushes, then reads whatever the
//!   client sent (requests, venue pings, WebSocket pings/pongs, close) and
//!   applies scripted faults. A data message becomes ground truth when it is
//!   handed to the WebSocket for writing, before anything can reach the
//!   kernel, so [`Sim::sent`] never misses a message a client may already have
//!   read (it is a superset: after an abrupt end the last few recorded
//!   messages may never have arrived).
//!
//! # Binance ([`SimVenue::Binance`], the default)
//!
//! Upgrade paths: `/stream`, `/ws`, `/public/stream`, `/public/ws`,
//! `/market/stream`, `/market/ws`, optionally with `?streams=a/b/c` (the
//! `/ws/<name>/<name>` raw form is accepted too). Other paths get HTTP 404; a
//! pre-subscription naming an unknown stream gets HTTP 400. Data frames on
//! `/stream` paths are wrapped as `{"stream":"<name>","data":<payload>}`, on
//! `/ws` paths the bare payload is sent.
//!
//! Supported streams (lowercase symbol): `<s>@bookTicker`, `<s>@aggTrade`,
//! `<s>@depth@100ms` (and `<s>@depth`), `<s>@markPrice` (and
//! `<s>@markPrice@1s`). Payloads use the USD-M futures field sets.
//!
//! With [`SimConfig::usdm_routing`] the simulator emulates the USD-M "Base
//! URL split": `bookTicker`/`depth` are *public* streams, `aggTrade`/
//! `markPrice` are *market* streams. A `/public/...` connection only delivers
//! public streams, `/market/...` only market streams, and the unrouted
//! `/stream` and `/ws` only public streams. Subscribing on the wrong route is
//! acknowledged with `{"result":null,"id":N}` but never delivers — the venue's
//! silent failure the engine must detect.
//!
//! REST on the same port: `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (spot)
//! and `GET /fapi/v1/depth?symbol=BTCUSDT&limit=N` (USD-M, adds `E`, `T`)
//! return the live book, consistent with the depth diffs (see the REST
//! module for limits and errors).
//!
//! # Bybit v5 ([`SimVenue::BybitSpot`], [`SimVenue::BybitLinear`])
//!
//! Path `/v5/public/spot` or `/v5/public/linear`. Requests
//! `{"op":"subscribe"|"unsubscribe","req_id":"…","args":[topics]}` and
//! `{"op":"ping","req_id":"…"}`; replies
//! `{"success":…,"ret_msg":…,"conn_id":…,"req_id":…,"op":…}`. Topics
//! `orderbook.1.<S>` (snapshots only), `orderbook.50.<S>` (a snapshot when
//! subscribed, then deltas; `u` consecutive per topic, `seq` the cross
//! sequence), `publicTrade.<S>`, `tickers.<S>` (linear: snapshot then deltas
//! with mark/index/funding; spot: snapshots). Spot rejects more than 10 args
//! per request (`"args size >10"`); an unknown topic fails the whole request
//! (`"error:handler not found,topic:<t>"`), as does a topic already
//! subscribed.
//!
//! # OKX v5 ([`SimVenue::Okx`])
//!
//! Path `/ws/v5/public`. Requests `{"id":"…","op":"subscribe"|"unsubscribe",
//! "args":[{"channel":…,"instId":…}]}` and the text `ping` (→ `pong`); one
//! `{"event":"subscribe","arg":…,"connId":…}` per argument, or
//! `{"event":"error","code":"60018",…}` for an argument that does not exist.
//! Channels `bbo-tbt`, `books` (snapshot with `prevSeqId` -1, then updates
//! chained by `prevSeqId`; `checksum` 0 unless [`SimConfig::okx_checksum`]),
//! `trades`, `mark-price`, `funding-rate` (swaps). A configured symbol
//! `BTCUSDT` is served as `BTC-USDT-SWAP` and `BTC-USDT` (same market).
//! Subscribing again to a channel starts it afresh with a new snapshot.
//!
//! # Venues defined in config ([`SimVenue::Defined`])
//!
//! A `[[venues]]` definition (`crate::venue::defined`) is spoken from the
//! definition alone: the upgrade path of its URL (and `/`); a request whose
//! JSON has the structure of its subscribe (or unsubscribe) template with the
//! placeholders filled is answered per stream with an ack made by setting the
//! `ack` pointers, an unknown stream with an error made from the `error`
//! pointers; the keep-alive message with a message meeting `keepalive.pong`;
//! `server_ping` goes out every [`SimConfig::server_ping_interval`] (five
//! unanswered close the connection with 1008). Quotes (one per book change)
//! and trades are made by setting each channel pointer; `+1` numbers count
//! the symbol's book changes / trade messages (`several`: one update per
//! trade id), `increasing` is `n + n/4` of that count (deterministic holes),
//! `none` sends none. Symbols are named [`SimConfig::venue_symbols`]. Book
//! faults other than `SkipSeq` do not apply (no channel is chained).
//!
//! # Private streams ([`SimConfig::accounts`])
//!
//! Each [`SimAccount`] (name, API key, secret, OKX passphrase) has a seeded
//! order flow: every [`SimConfig::account_event_interval`] it takes one step
//! on the configured symbols — a new order (one in ten rejected), a partial
//! fill, a fill or a cancel, and every tenth step a deposit — and each fill
//! moves its USDT balance and its position. Every step is sent to the
//! account's private connections in the venue's documented messages
//! (`tests/fixtures/<venue>/private/`), carrying client order id, price,
//! quantity, filled quantity, last fill price and quantity, fee and the
//! venue's ids and sequence fields. Signatures are checked with `ring`
//! directly, never with the engine's signing code.
//!
//! * Binance USD-M: `POST`/`PUT`/`DELETE /fapi/v1/listenKey` on the REST
//!   port (header `X-MBX-APIKEY`; a `signature` query parameter, when sent,
//!   must be the hex HMAC-SHA256 of the query before it, with a fresh
//!   `timestamp`); keys live [`SimConfig::listen_key_validity`] (default 60
//!   minutes) from the last `POST`/`PUT`. Streams on
//!   `/private/ws?listenKey=<key>`, `/private/ws/<key>` and `/ws/<key>`:
//!   `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE`; when the key expires,
//!   `listenKeyExpired` and nothing more.
//! * Binance spot WebSocket API, `/ws-api/v3`:
//!   `userDataStream.subscribe.signature` (HMAC over the sorted params; the
//!   Ed25519 `session.logon` is not simulated and answers an error), events
//!   wrapped `{"subscriptionId":N,"event":…}`: `executionReport`,
//!   `outboundAccountPosition`, `balanceUpdate`; `eventStreamTerminated`
//!   when the subscription ends (unsubscribe, revoked credentials).
//! * Bybit v5, `/v5/private`: `auth` (HMAC of `"GET/realtime" + expires`),
//!   then topics `order`, `execution`, `position`, `wallet`.
//! * OKX v5, `/ws/v5/private`: `login` (base64 HMAC of
//!   `timestamp + "GET/users/self/verify"`, 30 s skew at most), then
//!   channels `orders`, `positions`, `account`.
//!
//! Unknown or revoked keys, bad signatures and stale timestamps get each
//! venue's documented error. Ground truth: [`Sim::account_sent`] lists every
//! account message handed to a connection ([`AccountSentRecord`]: account,
//! stream, connection, per-account event number, kind, event time), recorded
//! before it is written. Faults: [`Sim::expire_listen_key`],
//! [`Sim::refuse_keepalives`], [`Sim::revoke_account`] (later requests fail,
//! live private connections are closed with 1008), and every connection
//! [`Fault`] through [`Sim::inject_on`] (private connections are listed in
//! [`Sim::snapshot`] with their path).
//!
//! Bybit and OKX connections that send no text frame for
//! [`SimConfig::idle_timeout`] are closed.
//!
//! # Several venues, one market
//!
//! Independent simulators run independent random walks that drift hundreds
//! of basis points apart. For a cross-venue view (arbitrage), start several
//! simulators — one per venue — on one [`SharedMarket`]
//! ([`SimConfig::shared`], or [`start_group`]): each quotes the shared price
//! with its own small mean-reverting offset (a few bp), a lag of a few
//! milliseconds and jittered update times, and now and then one venue is
//! dislocated by 10–40 bp for a fraction of a second (see
//! [`SharedMarketParams`]). Two venues' mids are never further apart than
//! [`SharedMarket::max_divergence_bps`]. Only the price path is shared: each
//! simulator keeps its own books, update ids, sequence numbers, trades and
//! ground truth.
//!
//! # Ground truth and faults
//!
//! [`Sim::sent`] returns every data message that may have reached a client
//! (connection, stream, the venue's sequence number as sent, its chain link,
//! kind, event time) in send order; messages withheld by [`Fault::DropNext`],
//! [`Fault::Mute`] or [`BookFault::SkipSeq`] and the frames of
//! [`Fault::Oversized`], [`Fault::Binary`], [`Fault::UnknownMessage`] and
//! [`Fault::Malformed`] are never recorded. [`SimConfig::max_conn_age`] cuts
//! connections like the venue's 24-hour limit. [`Sim::inject`] and
//! [`Sim::inject_on`] apply scripted [`Fault`]s, [`Sim::inject_book`] and
//! [`Sim::inject_book_on`] order book [`BookFault`]s; [`Sim::snapshot`] and
//! [`Sim::wait_until`] observe connections and counters without sleeping.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsfeed::sim::{Fault, Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig { tls: false, ..SimConfig::default() })?;
//! let url = format!("{}/public/stream?streams=btcusdt@bookTicker", sim.base_url());
//! // ... connect a client to `url` ...
//! assert!(sim.wait_until(Duration::from_secs(2), |s| s.connections.len() == 1));
//! sim.inject(Fault::Close { code: 1001 });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Module map
//!
//! Each file owns one job, and the files form layers: a file names items of
//! the files listed above it only (no child names anything in this file,
//! which only declares and re-exports). The simulator uses nothing of the
//! engine but `crate::json`, `crate::clock` (in `replay.rs`) and a defined
//! venue's definition as written (`crate::venue::defined`), so it keeps
//! checking the engine's parsers from outside.
//!
//! | file | owns |
//! | --- | --- |
//! | `base.rs` | `Kind` of a market event, `now_ms`, `lock` |
//! | `rng.rs` | the seeded `fastrand::Rng` and its draws, `mix` (a hash for seeds and tags) |
//! | `symbol.rs` | a symbol's names on every venue (`SymInfo`), `price_format` |
//! | `format.rs` | fixed-point numbers, JSON strings and values as text |
//! | `book.rs` | one order book (`Book`, `Levels`) |
//! | `observe.rs` | what a test observes: [`ConnId`], [`SentRecord`], [`ConnInfo`], [`SimSnapshot`] |
//! | `tls.rs` | the CA and server certificate generated at start |
//! | `shared.rs` | [`SharedMarket`]: one price path quoted by several simulators |
//! | `private/account.rs` | [`SimAccount`] and the signature checks (`ring`, `base64`) |
//! | `config.rs` | [`SimConfig`], [`SimVenue`] |
//! | `private/observe.rs`, `private/orders.rs`, `private/state.rs` | the accounts' ground truth, their order flow, their shared state (listen keys, listeners, faults) |
//! | `jsonset.rs` | JSON built by setting values at RFC 6901 pointers |
//! | `render.rs` | every built-in venue's data message wire format, the OKX checksum (`crc32fast`) |
//! | `defined.rs` | a defined venue's symbols and data messages, built from its definition |
//! | `market.rs` | the synthetic market: books, ids, trades, marks, snapshots |
//! | `protocol.rs` | what the venue protocols share: `Session`, `Sub`, `Route`, `Out`, `Env` |
//! | `binance.rs`, `bybit.rs`, `okx.rs`, `defined_proto.rs` | each venue's requests: text in, replies out, no I/O |
//! | `fault.rs` | [`Fault`], [`BookFault`], and what each does to a connection, without I/O |
//! | `state.rs` | the state all threads share (`Inner`), the connection registry |
//! | `private/session.rs`, `private/binance.rs`, `private/bybit.rs`, `private/okx.rs`, `private/route.rs`, `private/generator.rs` | a private connection's protocol state; each venue's private requests and messages (no I/O); which upgrades are private; the accounts thread |
//! | `transport.rs` | `SimStream` (plain or TLS) and the request head read off it |
//! | `rest.rs` | the REST responder (Binance depth snapshots, listen keys) |
//! | `end.rs` | how a connection ends: close and linger, reset, stall |
//! | `private/conn.rs` | a private connection's side of the serve loop: requests, account pushes rendered and recorded |
//! | `serve.rs` | the serve loop: delivery, ground truth, requests and faults carried out |
//! | `upgrade.rs` | the upgrade decision (rejections, paths, routes, pre-subscriptions), the handshake |
//! | `conn.rs` | a connection thread from accept to the serve loop |
//! | `acceptor.rs` | the listener and the acceptor thread |
//! | `generator.rs` | the generator thread: the market on schedule, broadcast |
//! | `api.rs` | [`Sim`] and [`start_group`]: start, inject, observe, shut down |
//! | `replay.rs` | [`replay`]: the measuring mode for the benches (on its own) |
//!
//! Their tests: pure parts next to the code (a venue's handler is called
//! with a request string), end to end in `tests/` by venue, by fault and by
//! feature.

mod acceptor;
mod api;
mod base;
mod binance;
mod book;
mod bybit;
mod candle;
mod config;
mod conn;
mod defined;
mod defined_proto;
mod end;
mod fault;
mod format;
mod generator;
mod jsonset;
mod market;
mod observe;
mod okx;
mod private;
mod protocol;
mod render;
pub mod replay;
mod rest;
mod rng;
mod serve;
mod shared;
mod state;
mod symbol;
mod tls;
mod transport;
mod upgrade;

pub use self::api::{start_group, Sim};
pub use self::config::{SimConfig, SimVenue};
pub use self::fault::{BookFault, Fault};
pub use self::observe::{ConnId, ConnInfo, SentKind, SentRecord, SimSnapshot};
pub use self::private::account::SimAccount;
pub use self::private::observe::{AccountEventKind, AccountSentRecord, PrivateStream};
pub use self::shared::{SharedMarket, SharedMarketParams};

#[cfg(test)]
mod tests;
