//! Private user-data streams: simulated accounts, their deterministic order
//! flow, and each venue's private endpoints (see the simulator's module
//! documentation, "Private streams").
//!
//! | file | owns |
//! | --- | --- |
//! | `account.rs` | `SimAccount`, the HMAC checks (`ring`, `base64`) |
//! | `observe.rs` | `AccountSentRecord`, `AccountEventKind`, `PrivateStream` |
//! | `orders.rs` | each account's seeded order flow and its `AccountEvent`s |
//! | `state.rs` | `Private`: credentials, listen keys, listeners, ground truth, faults |
//! | `session.rs` | a private connection's protocol state, `Act` |
//! | `binance.rs`, `bybit.rs`, `okx.rs` | each venue's private requests and messages, no I/O |
//! | `conn.rs` | a private connection's side of the serve loop |
//! | `generator.rs` | the accounts thread |

pub(crate) mod account;
pub(crate) mod binance;
mod bybit;
pub(crate) mod conn;
pub(crate) mod generator;
pub(crate) mod observe;
mod okx;
pub(crate) mod orders;
pub(crate) mod route;
pub(crate) mod session;
pub(crate) mod state;
