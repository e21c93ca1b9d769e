//! The deterministic order flow of each simulated account: a seeded state
//! machine that places one order at a time on the configured symbols and
//! walks it through new → partially filled → filled (some cancelled, some
//! rejected), moving a USDT balance and a position per symbol with every
//! fill, plus a deposit every [`DEPOSIT_EVERY`] steps. Each step yields the
//! account events the simulator's venue sends for it, numbered per account
//! (`AccountEvent::n`), in a venue-neutral form the renderers of
//! `binance.rs`, `bybit.rs` and `okx.rs` turn into wire messages. No I/O.

use crate::sim::config::SimVenue;
use crate::sim::rng::{seeded, Draw};
use crate::sim::symbol::{price_format, SymInfo};

use super::observe::AccountEventKind;

/// A deposit every this many steps.
pub(crate) const DEPOSIT_EVERY: u64 = 10;
/// Starting wallet balance: 10 000 USDT in units of 1e-8.
const START_WALLET: i64 = 10_000 * 100_000_000;
/// A deposit: 100 USDT.
const DEPOSIT: i64 = 100 * 100_000_000;
/// Taker fee: 4 bp.
const FEE_BP: i128 = 4;

/// Status of an order in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
}

/// An order as of one event. Prices are integers of `10^-decimals`,
/// quantities of 0.001, money (fees) of 1e-8 USDT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub sym: usize,
    pub decimals: u32,
    pub order_id: u64,
    pub client_id: String,
    pub buy: bool,
    pub price: i64,
    pub qty: u64,
    pub filled: u64,
    /// The fill of this event (0 when the event is not a fill).
    pub last_qty: u64,
    pub last_price: i64,
    /// Quote value filled so far (1e-8).
    pub filled_value: i64,
    pub status: Status,
    pub last_fee: i64,
    pub cum_fee: i64,
    /// The fill's trade id (0 when not a fill).
    pub trade_id: u64,
    pub realized: i64,
    pub created_ms: u64,
}

impl Order {
    /// Average fill price (in price units), 0 before any fill.
    pub(crate) fn avg_price(&self) -> i64 {
        if self.filled == 0 {
            return 0;
        }
        let scale = 10i128.pow(self.decimals + 3);
        (self.filled_value as i128 * scale / (self.filled as i128 * 100_000_000)) as i64
    }
}

/// A position (one-way mode) as of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub sym: usize,
    pub decimals: u32,
    /// Signed size in 0.001.
    pub qty: i64,
    pub entry: i64,
    /// Realized PnL so far (1e-8).
    pub realized: i64,
    /// The venue's position sequence (Bybit `seq`).
    pub seq: u64,
}

/// The USDT balance as of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Balance {
    /// Wallet balance (1e-8).
    pub wallet: i64,
    /// Change of this event (1e-8).
    pub delta: i64,
    /// The change is a deposit (not a trade).
    pub deposit: bool,
}

/// One account event: what the venue sends, numbered per account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountEvent {
    pub account: usize,
    /// Per-account event number: 1, 2, 3, … across every kind.
    pub n: u64,
    pub kind: AccountEventKind,
    pub time_ms: u64,
    pub order: Option<Order>,
    pub position: Option<Position>,
    pub balance: Balance,
}

/// One account's order flow.
#[derive(Debug)]
pub(crate) struct Flow {
    account: usize,
    venue: SimVenue,
    rng: fastrand::Rng,
    n: u64,
    steps: u64,
    next_order: u64,
    next_trade: u64,
    seq: u64,
    open: Option<Order>,
    positions: Vec<Position>,
    prices: Vec<(i64, i64)>,
    wallet: i64,
}

/// Quote value in 1e-8 of `qty` (0.001) at `price` (`10^-decimals`).
pub(crate) fn value(price: i64, qty: u64, decimals: u32) -> i64 {
    (price as i128 * qty as i128 * 100_000_000 / 10i128.pow(decimals + 3)) as i64
}

impl Flow {
    /// The flow of account number `account` on `symbols`, from `seed`.
    pub(crate) fn new(account: usize, venue: SimVenue, seed: u64, symbols: &[SymInfo]) -> Flow {
        let prices = symbols
            .iter()
            .map(|s| {
                let (start, decimals, tick) = price_format(&s.name);
                ((start * 10f64.powi(decimals as i32)) as i64, tick)
            })
            .collect();
        let positions = symbols
            .iter()
            .enumerate()
            .map(|(sym, s)| Position {
                sym,
                decimals: s.decimals,
                qty: 0,
                entry: 0,
                realized: 0,
                seq: 0,
            })
            .collect();
        Flow {
            account,
            venue,
            rng: seeded(seed ^ (account as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            n: 0,
            steps: 0,
            next_order: 1_000_000 * (account as u64 + 1),
            next_trade: 1,
            seq: 1,
            open: None,
            positions,
            prices,
            wallet: START_WALLET,
        }
    }

    fn event(
        &mut self,
        kind: AccountEventKind,
        time_ms: u64,
        order: &Order,
        delta: i64,
    ) -> AccountEvent {
        self.n += 1;
        AccountEvent {
            account: self.account,
            n: self.n,
            kind,
            time_ms,
            order: Some(order.clone()),
            position: Some(self.positions[order.sym].clone()),
            balance: Balance {
                wallet: self.wallet,
                delta,
                deposit: false,
            },
        }
    }

    /// One step of the flow at `time_ms`: the events the venue sends for it.
    pub(crate) fn step(&mut self, symbols: &[SymInfo], time_ms: u64) -> Vec<AccountEvent> {
        let mut out = Vec::new();
        if symbols.is_empty() {
            return out;
        }
        self.steps += 1;
        if self.steps % DEPOSIT_EVERY == 0 {
            self.wallet += DEPOSIT;
            self.n += 1;
            out.push(AccountEvent {
                account: self.account,
                n: self.n,
                kind: AccountEventKind::Balance,
                time_ms,
                order: None,
                position: None,
                balance: Balance {
                    wallet: self.wallet,
                    delta: DEPOSIT,
                    deposit: true,
                },
            });
            return out;
        }
        match self.open.take() {
            None => {
                let order = self.place(symbols, time_ms);
                out.push(self.event(AccountEventKind::Order, time_ms, &order, 0));
                if order.status == Status::New {
                    self.open = Some(order);
                }
            }
            Some(mut order) => {
                order.last_qty = 0;
                order.last_fee = 0;
                order.trade_id = 0;
                order.realized = 0;
                if self.rng.chance(0.15) {
                    order.status = Status::Canceled;
                    out.push(self.event(AccountEventKind::Order, time_ms, &order, 0));
                    return out;
                }
                let rest = order.qty - order.filled;
                let fill = if order.filled == 0 && rest > 1 && self.rng.chance(0.6) {
                    rest / 2
                } else {
                    rest
                };
                let delta = self.fill(&mut order, fill);
                out.push(self.event(AccountEventKind::Order, time_ms, &order, delta));
                let mut more = match self.venue {
                    // A defined venue has no accounts (refused at start).
                    SimVenue::Binance | SimVenue::Defined(_) => vec![AccountEventKind::Balance],
                    SimVenue::Okx => vec![AccountEventKind::Position, AccountEventKind::Balance],
                    SimVenue::BybitSpot | SimVenue::BybitLinear => vec![
                        AccountEventKind::Execution,
                        AccountEventKind::Position,
                        AccountEventKind::Balance,
                    ],
                };
                for kind in more.drain(..) {
                    out.push(self.event(kind, time_ms, &order, delta));
                }
                if order.status == Status::PartiallyFilled {
                    self.open = Some(order);
                }
            }
        }
        out
    }

    /// A new order (or a rejected one, one in ten).
    fn place(&mut self, symbols: &[SymInfo], time_ms: u64) -> Order {
        let sym = self.rng.range(0, symbols.len() as u64 - 1) as usize;
        let (price, tick) = &mut self.prices[sym];
        *price = (*price + *tick * (self.rng.range(0, 4) as i64 - 2)).max(*tick);
        let buy = self.rng.chance(0.5);
        let price = *price - if buy { *tick } else { -*tick };
        self.next_order += 1;
        let status = if self.rng.chance(0.1) {
            Status::Rejected
        } else {
            Status::New
        };
        Order {
            sym,
            decimals: symbols[sym].decimals,
            order_id: self.next_order,
            client_id: format!("sim{}x{}", self.account, self.next_order),
            buy,
            price,
            qty: self.rng.range(2, 40),
            filled: 0,
            last_qty: 0,
            last_price: 0,
            filled_value: 0,
            status,
            last_fee: 0,
            cum_fee: 0,
            trade_id: 0,
            realized: 0,
            created_ms: time_ms,
        }
    }

    /// Fills `qty` of `order` at its price: fee, position, realized PnL and
    /// wallet move. Returns the wallet change.
    fn fill(&mut self, order: &mut Order, qty: u64) -> i64 {
        let worth = value(order.price, qty, order.decimals);
        let fee = (worth as i128 * FEE_BP / 10_000) as i64;
        order.filled += qty;
        order.filled_value += worth;
        order.last_qty = qty;
        order.last_price = order.price;
        order.last_fee = fee;
        order.cum_fee += fee;
        order.trade_id = self.next_trade;
        self.next_trade += 1;
        order.status = if order.filled == order.qty {
            Status::Filled
        } else {
            Status::PartiallyFilled
        };
        let pos = &mut self.positions[order.sym];
        let signed = if order.buy { qty as i64 } else { -(qty as i64) };
        let mut realized = 0;
        if pos.qty == 0 || pos.qty.signum() == signed.signum() {
            let total = pos.qty.abs() + qty as i64;
            pos.entry = ((pos.entry as i128 * pos.qty.abs() as i128
                + order.price as i128 * qty as i128)
                / total as i128) as i64;
        } else {
            let closed = pos.qty.abs().min(qty as i64);
            let per = (order.price - pos.entry) * pos.qty.signum();
            realized = value(per, closed as u64, order.decimals);
            if qty as i64 > pos.qty.abs() {
                pos.entry = order.price;
            }
        }
        pos.qty += signed;
        if pos.qty == 0 {
            pos.entry = 0;
        }
        pos.realized += realized;
        pos.seq = self.seq;
        self.seq += 1;
        order.realized = realized;
        let delta = realized - fee;
        self.wallet += delta;
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms() -> Vec<SymInfo> {
        vec![SymInfo::of("BTCUSDT"), SymInfo::of("ETHUSDT")]
    }

    #[test]
    fn flows_are_deterministic_numbered_and_walk_the_lifecycle() {
        let s = syms();
        let run = || {
            let mut f = Flow::new(0, SimVenue::BybitLinear, 7, &s);
            (0..200).flat_map(|i| f.step(&s, i)).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        for (i, e) in a.iter().enumerate() {
            assert_eq!(e.n, i as u64 + 1);
        }
        let statuses: Vec<Status> = a
            .iter()
            .filter_map(|e| e.order.as_ref())
            .map(|o| o.status)
            .collect();
        for st in [
            Status::New,
            Status::PartiallyFilled,
            Status::Filled,
            Status::Canceled,
            Status::Rejected,
        ] {
            assert!(statuses.contains(&st), "{st:?} never happened");
        }
        assert!(a.iter().any(|e| e.balance.deposit));
        // Every fill on Bybit: order, execution, position, wallet.
        let fills = a
            .iter()
            .filter(|e| {
                e.kind == AccountEventKind::Order
                    && e.order.as_ref().is_some_and(|o| o.last_qty > 0)
            })
            .count();
        let execs = a
            .iter()
            .filter(|e| e.kind == AccountEventKind::Execution)
            .count();
        assert_eq!(fills, execs);
        assert!(fills > 20);
    }

    #[test]
    fn fills_move_position_and_wallet() {
        let s = syms();
        let mut f = Flow::new(1, SimVenue::Okx, 3, &s);
        let events: Vec<_> = (0..300).flat_map(|i| f.step(&s, i)).collect();
        let net: i64 = events
            .iter()
            .filter(|e| e.kind == AccountEventKind::Order)
            .filter_map(|e| e.order.as_ref())
            .filter(|o| o.sym == 0)
            .map(|o| {
                if o.buy {
                    o.last_qty as i64
                } else {
                    -(o.last_qty as i64)
                }
            })
            .sum();
        assert_eq!(f.positions[0].qty, net);
        let moved: i64 = events
            .iter()
            .filter(|e| e.kind == AccountEventKind::Balance)
            .map(|e| e.balance.delta)
            .sum();
        assert_eq!(f.wallet, START_WALLET + moved);
        assert_eq!(value(6_000_000, 1_000, 2), 60_000 * 100_000_000);
    }
}
