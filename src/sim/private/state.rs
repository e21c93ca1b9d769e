//! The private streams' shared state ([`Private`]): the accounts and whether
//! their credentials were revoked, Binance listen keys and their validity,
//! the connections listening to each account, and the ground truth of every
//! account message sent. Faults act here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::sim::base::lock;
use crate::sim::observe::ConnId;
use crate::sim::rng::mix;

use super::account::SimAccount;
use super::observe::AccountSentRecord;
use super::orders::AccountEvent;

/// What the account side pushes to a listening connection.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    /// An account event.
    Event(Arc<AccountEvent>),
    /// This listen key expired (or was expired by a fault).
    KeyExpired(String),
    /// The account's credentials were revoked or its stream closed: end the
    /// connection.
    Close,
}

/// A Binance listen key.
#[derive(Debug)]
pub(crate) struct ListenKey {
    pub key: String,
    pub account: usize,
    pub expires: Instant,
}

/// A connection listening to an account.
#[derive(Debug)]
struct Listener {
    conn: ConnId,
    account: usize,
    listen_key: Option<String>,
    tx: Sender<Push>,
}

/// Why an API key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// No account has it.
    Unknown,
    /// Its account's credentials were revoked.
    Revoked,
}

/// Mutable part of [`Private`].
#[derive(Debug, Default)]
struct PrivState {
    revoked: Vec<bool>,
    keys: Vec<ListenKey>,
    refuse_keepalives: u32,
    listeners: Vec<Listener>,
    sent: Vec<AccountSentRecord>,
    next_key: u64,
}

/// The private streams' state, shared by all threads.
#[derive(Debug)]
pub(crate) struct Private {
    pub accounts: Vec<SimAccount>,
    validity: Duration,
    seed: u64,
    state: Mutex<PrivState>,
}

impl Private {
    /// The state for `accounts`, listen keys valid for `validity`.
    pub(crate) fn new(accounts: Vec<SimAccount>, validity: Duration, seed: u64) -> Private {
        let revoked = vec![false; accounts.len()];
        Private {
            accounts,
            validity,
            seed,
            state: Mutex::new(PrivState {
                revoked,
                ..PrivState::default()
            }),
        }
    }

    /// The account named `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.name == name)
    }

    /// The account whose API key is `api_key`, if its credentials stand.
    pub(crate) fn by_key(&self, api_key: &str) -> Result<usize, KeyError> {
        let a = self
            .accounts
            .iter()
            .position(|a| a.api_key == api_key)
            .ok_or(KeyError::Unknown)?;
        if lock(&self.state).revoked[a] {
            return Err(KeyError::Revoked);
        }
        Ok(a)
    }

    /// Binance `POST listenKey`: the account's active key with its validity
    /// extended, or a new one ("Doing a POST on an account with an active
    /// listenKey will return the currently active listenKey and extend its
    /// validity for 60 minutes").
    pub(crate) fn create_key(&self, account: usize, now: Instant) -> String {
        let mut st = lock(&self.state);
        let expires = now + self.validity;
        if let Some(k) = st
            .keys
            .iter_mut()
            .find(|k| k.account == account && k.expires > now)
        {
            k.expires = expires;
            return k.key.clone();
        }
        st.next_key += 1;
        let key = listen_key_text(self.seed, st.next_key);
        st.keys.push(ListenKey {
            key: key.clone(),
            account,
            expires,
        });
        key
    }

    /// Binance `PUT listenKey`: extends the account's active key (`key`, if
    /// given, must be it). `None` ("This listenKey does not exist.") for an
    /// unknown or expired key, and for a keep-alive refused by
    /// [`Private::refuse_keepalives`].
    pub(crate) fn keep_alive(
        &self,
        account: usize,
        key: Option<&str>,
        now: Instant,
    ) -> Option<String> {
        let mut st = lock(&self.state);
        if st.refuse_keepalives > 0 {
            st.refuse_keepalives -= 1;
            return None;
        }
        let k = st.keys.iter_mut().find(|k| {
            k.account == account && k.expires > now && key.is_none_or(|key| key == k.key)
        })?;
        k.expires = now + self.validity;
        Some(k.key.clone())
    }

    /// Binance `DELETE listenKey`: the key (the account's active one, or
    /// `key`) stops; connections on it are closed. False if there was none.
    pub(crate) fn delete_key(&self, account: usize, key: Option<&str>) -> bool {
        let mut st = lock(&self.state);
        let before = st.keys.len();
        let mut gone = Vec::new();
        st.keys.retain(|k| {
            let hit = k.account == account && key.is_none_or(|key| key == k.key);
            if hit {
                gone.push(k.key.clone());
            }
            !hit
        });
        st.listeners.retain(|l| match &l.listen_key {
            Some(k) if gone.contains(k) => {
                let _ = l.tx.send(Push::Close);
                false
            }
            _ => true,
        });
        st.keys.len() != before
    }

    /// The account a live listen key belongs to.
    pub(crate) fn key_account(&self, key: &str, now: Instant) -> Option<usize> {
        lock(&self.state)
            .keys
            .iter()
            .find(|k| k.key == key && k.expires > now)
            .map(|k| k.account)
    }

    /// Expires every key whose validity ended by `now`: its connections get
    /// [`Push::KeyExpired`] and stop listening.
    pub(crate) fn expire_due(&self, now: Instant) {
        let mut st = lock(&self.state);
        let mut expired = Vec::new();
        st.keys.retain(|k| {
            if k.expires <= now {
                expired.push(k.key.clone());
                false
            } else {
                true
            }
        });
        st.listeners.retain(|l| match &l.listen_key {
            Some(k) if expired.contains(k) => {
                let _ = l.tx.send(Push::KeyExpired(k.clone()));
                false
            }
            _ => true,
        });
    }

    /// Fault: the account's listen keys expire now. False if it had none.
    pub(crate) fn expire_now(&self, account: usize, now: Instant) -> bool {
        let any = {
            let mut st = lock(&self.state);
            let mut any = false;
            for k in st.keys.iter_mut().filter(|k| k.account == account) {
                k.expires = now;
                any = true;
            }
            any
        };
        self.expire_due(now);
        any
    }

    /// Fault: refuse the next `count` keep-alives with -1125.
    pub(crate) fn refuse_keepalives(&self, count: u32) {
        let mut st = lock(&self.state);
        st.refuse_keepalives = st.refuse_keepalives.saturating_add(count);
    }

    /// Fault: the account's credentials stop working; its listen keys are
    /// gone and its live private connections are closed.
    pub(crate) fn revoke(&self, account: usize) {
        let mut st = lock(&self.state);
        st.revoked[account] = true;
        st.keys.retain(|k| k.account != account);
        st.listeners.retain(|l| {
            if l.account == account {
                let _ = l.tx.send(Push::Close);
                false
            } else {
                true
            }
        });
    }

    /// Connection `conn` listens to `account` (on `listen_key`, Binance USD-M).
    pub(crate) fn listen(
        &self,
        conn: ConnId,
        account: usize,
        listen_key: Option<String>,
        tx: Sender<Push>,
    ) {
        let mut st = lock(&self.state);
        st.listeners.retain(|l| l.conn != conn);
        // Revoked (or its key gone) between the upgrade and now: closed, as a revocation
        // closes the account's live connections.
        let key_gone = listen_key
            .as_ref()
            .is_some_and(|key| !st.keys.iter().any(|k| &k.key == key));
        if st.revoked.get(account).copied().unwrap_or(false) || key_gone {
            let _ = tx.send(Push::Close);
            return;
        }
        st.listeners.push(Listener {
            conn,
            account,
            listen_key,
            tx,
        });
    }

    /// Connection `conn` stops listening.
    pub(crate) fn unlisten(&self, conn: ConnId) {
        lock(&self.state).listeners.retain(|l| l.conn != conn);
    }

    /// Hands `events` to the connections listening to their accounts
    /// (forgetting connections that are gone).
    pub(crate) fn publish(&self, events: &[Arc<AccountEvent>]) {
        let mut st = lock(&self.state);
        st.listeners.retain(|l| {
            events
                .iter()
                .filter(|e| e.account == l.account)
                .all(|e| l.tx.send(Push::Event(Arc::clone(e))).is_ok())
        });
    }

    /// Records one account message handed to a connection.
    pub(crate) fn record(&self, rec: AccountSentRecord) {
        lock(&self.state).sent.push(rec);
    }

    /// The ground truth of account `name`, in send order.
    pub(crate) fn sent_of(&self, name: &str) -> Vec<AccountSentRecord> {
        lock(&self.state)
            .sent
            .iter()
            .filter(|r| r.account == name)
            .cloned()
            .collect()
    }
}

/// A 64-character listen key, deterministic in the seed and its number.
fn listen_key_text(seed: u64, n: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = mix(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (0..64)
        .map(|_| {
            h = mix(h);
            ALPHABET[(h % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private() -> Private {
        Private::new(
            vec![SimAccount::named("a"), SimAccount::named("b")],
            Duration::from_secs(60),
            1,
        )
    }

    #[test]
    fn listen_keys_live_extend_and_expire() {
        let p = private();
        let t0 = Instant::now();
        let k = p.create_key(0, t0);
        assert_eq!(k.len(), 64);
        assert_eq!(p.create_key(0, t0), k, "POST returns the active key");
        assert_ne!(p.create_key(1, t0), k);
        assert_eq!(p.key_account(&k, t0), Some(0));
        let t1 = t0 + Duration::from_secs(50);
        assert_eq!(p.keep_alive(0, Some(&k), t1).as_deref(), Some(k.as_str()));
        assert_eq!(p.keep_alive(1, Some(&k), t1), None, "another account's key");
        let (tx, rx) = crossbeam_channel::unbounded();
        p.listen(ConnId(1), 0, Some(k.clone()), tx);
        p.expire_due(t0 + Duration::from_secs(100));
        assert!(p.key_account(&k, t1).is_some(), "extended to t1 + 60 s");
        p.refuse_keepalives(1);
        assert_eq!(p.keep_alive(0, None, t1), None);
        assert!(p.keep_alive(0, None, t1).is_some());
        assert!(p.expire_now(0, t1));
        assert!(matches!(rx.try_recv(), Ok(Push::KeyExpired(e)) if e == k));
        assert_eq!(p.keep_alive(0, Some(&k), t1), None);
    }

    #[test]
    fn revoked_credentials_fail_and_close_listeners() {
        let p = private();
        assert_eq!(p.by_key("a-key"), Ok(0));
        assert_eq!(p.by_key("nope"), Err(KeyError::Unknown));
        let (tx, rx) = crossbeam_channel::unbounded();
        p.listen(ConnId(3), 0, None, tx);
        p.revoke(0);
        assert_eq!(p.by_key("a-key"), Err(KeyError::Revoked));
        assert!(matches!(rx.try_recv(), Ok(Push::Close)));
        assert_eq!(p.by_key("b-key"), Ok(1));
    }
}
