//! One private connection's side of the serve loop ([`PrivateConn`]): the
//! client's requests handed to the venue's private protocol, and the
//! account pushes turned into the venue's messages — rendered, recorded as
//! ground truth, then handed back to the serve loop to write (in that order,
//! so `Sim::account_sent` never misses a message a client may have read).

use crossbeam_channel::{Receiver, Sender};

use crate::sim::base::now_ms;
use crate::sim::end::End;
use crate::sim::observe::ConnId;
use crate::sim::state::Inner;

use super::binance::{self, WsApi};
use super::observe::{AccountEventKind, AccountSentRecord, PrivateStream};
use super::orders::AccountEvent;
use super::session::{Act, PrivSession};
use super::state::Push;
use super::{bybit, okx};

/// Every kind: what a Binance stream delivers.
const ALL: [AccountEventKind; 4] = [
    AccountEventKind::Order,
    AccountEventKind::Execution,
    AccountEventKind::Position,
    AccountEventKind::Balance,
];

/// What one look at the account pushes gives the serve loop.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// Messages to write, in order (data already recorded).
    pub texts: Vec<String>,
    /// End the connection after writing them.
    pub end: Option<End>,
}

/// The private part of a connection.
#[derive(Debug)]
pub(crate) struct PrivateConn {
    pub session: PrivSession,
    conn: ConnId,
    tx: Sender<Push>,
    rx: Receiver<Push>,
}

impl PrivateConn {
    /// The private side of connection `conn` speaking `stream`; a Binance
    /// listen-key connection listens to `account` on `listen_key` at once.
    pub(crate) fn new(
        inner: &Inner,
        conn: ConnId,
        stream: PrivateStream,
        tag: String,
        listen_key: Option<(usize, String)>,
    ) -> PrivateConn {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut session = PrivSession::new(stream, tag);
        if let Some((account, key)) = listen_key {
            session.account = Some(account);
            session.kinds = ALL.to_vec();
            session.listen_key = Some(key.clone());
            inner.private.listen(conn, account, Some(key), tx.clone());
        }
        PrivateConn {
            session,
            conn,
            tx,
            rx,
        }
    }

    /// Answers one client text frame: the replies to send, in order.
    pub(crate) fn on_text(&mut self, inner: &Inner, text: &str) -> Vec<String> {
        let private = &inner.private;
        let s = &mut self.session;
        let acts = match s.stream {
            // A user data stream on a listen key takes no requests.
            PrivateStream::BinanceListenKey => Vec::new(),
            PrivateStream::BinanceWsApi => {
                match binance::ws_api(private, text, s.next_subscription) {
                    WsApi::Subscribed { reply, account } => {
                        s.account = Some(account);
                        s.kinds = ALL.to_vec();
                        s.subscription = Some(s.next_subscription);
                        s.next_subscription += 1;
                        vec![Act::Reply(reply), Act::Listen]
                    }
                    WsApi::Unsubscribed { reply } => {
                        let mut acts = vec![Act::Reply(reply), Act::Unlisten];
                        if let Some(sub) = s.subscription.take() {
                            acts.push(Act::Reply(binance::event_stream_terminated(sub, now_ms())));
                        }
                        acts
                    }
                    WsApi::Reply(r) => vec![Act::Reply(r)],
                }
            }
            PrivateStream::Bybit => bybit::handle(private, text, s),
            PrivateStream::Okx => okx::handle(private, text, s),
        };
        let mut out = Vec::new();
        for act in acts {
            match act {
                Act::Reply(r) => out.push(r),
                Act::Listen => {
                    if let Some(account) = self.session.account {
                        private.listen(self.conn, account, None, self.tx.clone());
                    }
                }
                Act::Unlisten => private.unlisten(self.conn),
                Act::Ping => inner.update(|st| st.counters.venue_pings += 1),
            }
        }
        out
    }

    /// Takes what the account side pushed: the messages to write (account
    /// events recorded first) and whether to end the connection.
    pub(crate) fn poll(&mut self, inner: &Inner) -> Polled {
        let mut polled = Polled::default();
        while let Ok(push) = self.rx.try_recv() {
            match push {
                Push::Event(e) => {
                    if let Some(text) = self.render(inner, &e) {
                        if inner.cfg.record {
                            inner.private.record(AccountSentRecord {
                                account: inner.private.accounts[e.account].name.clone(),
                                stream: self.session.stream,
                                conn: self.conn,
                                n: e.n,
                                kind: e.kind,
                                event_time_ms: e.time_ms,
                            });
                        }
                        polled.texts.push(text);
                    }
                }
                Push::KeyExpired(key) => {
                    if self.session.listen_key.as_deref() == Some(key.as_str())
                        && !self.session.ended
                    {
                        self.session.ended = true;
                        polled
                            .texts
                            .push(binance::listen_key_expired(&key, now_ms()));
                    }
                }
                Push::Close => {
                    if let Some(sub) = self.session.subscription.take() {
                        polled
                            .texts
                            .push(binance::event_stream_terminated(sub, now_ms()));
                    }
                    polled.end = Some(End::Close(1008, "account stream closed"));
                    break;
                }
            }
        }
        polled
    }

    /// The message of `e` on this connection, if it delivers it.
    fn render(&self, inner: &Inner, e: &AccountEvent) -> Option<String> {
        let s = &self.session;
        if s.ended || s.account != Some(e.account) || !s.kinds.contains(&e.kind) {
            return None;
        }
        let info = &inner.info;
        let order = e.order.as_ref();
        Some(match (s.stream, e.kind) {
            (PrivateStream::BinanceListenKey, AccountEventKind::Order) => {
                let o = order?;
                binance::order_trade_update(e, o, &info[o.sym])
            }
            (PrivateStream::BinanceListenKey, AccountEventKind::Balance) => {
                binance::account_update(e, info)
            }
            (PrivateStream::BinanceWsApi, AccountEventKind::Order) => {
                let o = order?;
                binance::execution_report(e, o, &info[o.sym], s.subscription?)
            }
            (PrivateStream::BinanceWsApi, AccountEventKind::Balance) if e.balance.deposit => {
                binance::balance_update(e, s.subscription?)
            }
            (PrivateStream::BinanceWsApi, AccountEventKind::Balance) => {
                binance::outbound_account_position(e, s.subscription?)
            }
            (PrivateStream::BinanceListenKey | PrivateStream::BinanceWsApi, _) => return None,
            (PrivateStream::Bybit, _) => bybit::render(e, info),
            (PrivateStream::Okx, kind) => {
                let arg = s.okx_args.iter().find(|(k, _)| *k == kind)?;
                okx::render(e, &arg.1, info)
            }
        })
    }
}
