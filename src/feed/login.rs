//! One private (account) connection's log-in, without I/O: the login request (Bybit `auth`,
//! OKX `login`, Binance's signed `userDataStream.subscribe.signature`), then the subscribe
//! requests once the venue accepted it, each answered within the ack limit. A connection whose
//! URL carries the credential (a Binance listen key) has nothing to do here.

use std::time::{Duration, Instant};

use crate::account::AccountParams;

/// Where a connection's log-in stands.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The login request `id` is out.
    LoggingIn { id: u64 },
    /// Logged in; these subscribe requests are out.
    Subscribing,
    /// Logged in and subscribed.
    Done,
}

/// A refusal of one of this connection's requests, and what it means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not about a request of this connection.
    NotOurs,
    /// The login (or, after it, a subscription) was refused.
    Ours,
}

/// One connection's log-in.
#[derive(Debug)]
pub(crate) struct Login {
    phase: Phase,
    /// Subscribe requests sent and not yet acknowledged, and when the oldest went out.
    pending: Vec<u64>,
    since: Instant,
}

impl Login {
    /// Starts the log-in at `now`: returns it and the messages to send, numbered from
    /// `*next_id`. `unix_ms` is the wall clock (signatures carry it).
    pub(crate) fn start(
        account: &AccountParams,
        now: Instant,
        unix_ms: u64,
        next_id: &mut u64,
    ) -> (Login, Vec<String>) {
        let id = *next_id;
        match account.login_request(id, unix_ms) {
            Some(text) => {
                *next_id += 1;
                let login = Login {
                    phase: Phase::LoggingIn { id },
                    pending: Vec::new(),
                    since: now,
                };
                (login, vec![text])
            }
            None => {
                let mut login = Login {
                    phase: Phase::Subscribing,
                    pending: Vec::new(),
                    since: now,
                };
                let texts = login.subscribe(account, now, next_id);
                (login, texts)
            }
        }
    }

    /// The subscribe requests that follow a login.
    fn subscribe(
        &mut self,
        account: &AccountParams,
        now: Instant,
        next_id: &mut u64,
    ) -> Vec<String> {
        let texts = account.subscribe_requests(*next_id);
        self.pending = (*next_id..*next_id + texts.len() as u64).collect();
        *next_id += texts.len() as u64;
        self.since = now;
        self.phase = if texts.is_empty() {
            Phase::Done
        } else {
            Phase::Subscribing
        };
        texts
    }

    /// The login is out, not yet answered.
    pub(crate) fn logging_in(&self) -> bool {
        matches!(self.phase, Phase::LoggingIn { .. })
    }

    /// Logged in and subscribed: the account streams.
    pub(crate) fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The venue accepted request `id` (`None`: a login reply that echoes no id). Returns the
    /// subscribe requests to send now (after the login).
    pub(crate) fn on_ack(
        &mut self,
        id: Option<u64>,
        account: &AccountParams,
        now: Instant,
        next_id: &mut u64,
    ) -> Vec<String> {
        match self.phase {
            Phase::LoggingIn { id: login } if id.is_none_or(|i| i == login) => {
                self.subscribe(account, now, next_id)
            }
            Phase::Subscribing => {
                if let Some(id) = id {
                    self.pending.retain(|&p| p != id);
                }
                if self.pending.is_empty() {
                    self.phase = Phase::Done;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The venue refused request `id` (`None`: an error that echoes no id, which during the
    /// login is the login's).
    pub(crate) fn on_error(&self, id: Option<u64>) -> Refused {
        match (&self.phase, id) {
            (Phase::LoggingIn { .. }, None) => Refused::Ours,
            (Phase::LoggingIn { id: login }, Some(i)) if i == *login => Refused::Ours,
            (Phase::Subscribing, Some(i)) if self.pending.contains(&i) => Refused::Ours,
            _ => Refused::NotOurs,
        }
    }

    /// When the venue's answer is overdue.
    pub(crate) fn deadline(&self, limit: Duration) -> Option<Instant> {
        match self.phase {
            Phase::Done => None,
            _ => Some(self.since + limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::Venue;

    use crate::account::tests::params as account;

    #[test]
    fn okx_logs_in_then_subscribes_each_channel_and_is_done_when_all_are_acknowledged() {
        let a = account(Venue::Okx);
        let now = Instant::now();
        let mut next = 1;
        let (mut login, first) = Login::start(&a, now, 1_700_000_000_000, &mut next);
        assert_eq!(first.len(), 1);
        assert!(first[0].contains(r#""op":"login""#), "{}", first[0]);
        assert_eq!(
            login.deadline(Duration::from_secs(5)),
            Some(now + Duration::from_secs(5))
        );
        // OKX's login reply echoes no id.
        let subs = login.on_ack(None, &a, now, &mut next);
        assert_eq!(subs.len(), 3, "orders, positions, account");
        assert!(subs[0].contains(r#""id":"2""#) && subs[0].contains("orders"));
        assert!(!login.done());
        assert_eq!(login.on_error(Some(9)), Refused::NotOurs);
        for id in 2..=4 {
            assert!(login.on_ack(Some(id), &a, now, &mut next).is_empty());
        }
        assert!(login.done());
        assert_eq!(login.deadline(Duration::from_secs(5)), None);
    }

    #[test]
    fn an_error_during_the_login_is_the_logins_and_a_listen_key_needs_nothing() {
        let a = account(Venue::BybitLinear);
        let now = Instant::now();
        let mut next = 7;
        let (login, first) = Login::start(&a, now, 1_700_000_000_000, &mut next);
        assert!(first[0].contains(r#""req_id":"7""#) && first[0].contains(r#""op":"auth""#));
        assert_eq!(login.on_error(None), Refused::Ours);
        assert_eq!(login.on_error(Some(7)), Refused::Ours);

        let a = account(Venue::BinanceUsdm);
        let (login, first) = Login::start(&a, now, 1_700_000_000_000, &mut next);
        assert!(first.is_empty());
        assert!(login.done());
    }
}
