//! An account's connections: the venue's answers to a log-in, a refused credential, and the
//! URL a listen key gives them.

use std::time::Instant;

use log::info;

use super::Connections;
use crate::feed::action::{Action, Actions, Outgoing};
use crate::feed::login::Refused;
use crate::feed::report::Out;
use crate::feed::session::Lost;
use crate::feed::sink::Sink;
use crate::metrics::FeedStats;
use crate::tick::DisconnectReason;

impl Connections {
    /// Whether attempts wait for a credential: a listen-key account without a valid key.
    pub(crate) fn held(&self) -> bool {
        self.sh
            .account
            .as_ref()
            .is_some_and(|a| a.protocol.uses_listen_key())
            && self.sh.private_url.is_none()
    }

    /// A listen-key account's URL changed (`None`: the key is gone). A new key replaces
    /// connections still on the old one, make before break.
    pub(crate) fn set_private_url(&mut self, url: Option<String>) {
        let renewed = url.is_some();
        self.sh.private_url = url;
        if renewed && self.slots.iter().any(|s| s.live().is_some()) {
            self.rekey = true;
        }
    }

    /// Slot `k` delivered account events: it was productive (its next failure starts the
    /// backoff over). Returns its connection number.
    pub(crate) fn on_data_private(&mut self, k: usize) -> u32 {
        let session = self.slots.get_mut(k);
        let conn = session.conn_no;
        if let Some(live) = session.live_mut() {
            if !live.productive {
                live.productive = true;
                session.backoff.on_productive();
            }
        }
        conn
    }

    /// The venue accepted request `id` of slot `k`'s log-in (`None`: a login reply without an
    /// id). Returns whether the slot now carries the account (logged in and subscribed).
    pub(crate) fn on_private_ack<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        id: Option<u64>,
        now: Instant,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) -> bool {
        let Some(account) = self.sh.account.clone() else {
            return false;
        };
        let session = self.slots.get_mut(k);
        let sid = session.id;
        let Some(login) = session.live_mut().and_then(|l| l.login.as_mut()) else {
            return false;
        };
        let was_done = login.done();
        let was_logging_in = login.logging_in();
        let texts = login.on_ack(id, &account, now, &mut self.sh.next_request_id);
        if was_logging_in && !login.logging_in() {
            FeedStats::bump(&out.report.stats.logins);
        }
        for text in texts {
            let msg = Outgoing::Text(text);
            actions.push(Action::Send { session: sid, msg });
        }
        if was_done {
            return false;
        }
        self.slots.get_mut(k).announce(&self.sh, out);
        self.slots.get(k).carries()
    }

    /// The venue refused something on slot `k`'s private connection. A refused credential
    /// ends the account (no retry storm against a venue that said the key is wrong); a login
    /// refused for another reason (a late timestamp) ends the connection, which reconnects.
    #[cold]
    pub(crate) fn on_private_error<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        id: Option<u64>,
        code: i64,
        msg: &str,
        credentials: bool,
        out: &mut Out<S>,
    ) -> Result<(), Lost> {
        let account = self.sh.account.clone();
        let ours = self
            .slots
            .get(k)
            .live()
            .and_then(|l| l.login.as_ref())
            .map(|l| l.on_error(id));
        match (account, ours) {
            (Some(a), _) if credentials => Err((
                DisconnectReason::CredentialsRejected { code },
                Some(a.credential_advice(code, msg)),
            )),
            (Some(_), Some(Refused::Ours)) => Err((
                DisconnectReason::Protocol,
                Some(format!(
                    "the venue refused the log-in or a subscription: {code} {msg}"
                )),
            )),
            _ => {
                info!("[{}] venue error {code}: {msg}", out.report.name);
                Ok(())
            }
        }
    }
}

impl Connections {
    /// The venue refused the account's credentials outside a connection (a listen-key call):
    /// the account stops, with `why`.
    #[cold]
    pub(crate) fn credentials_refused<S: Sink + ?Sized>(
        &mut self,
        code: i64,
        why: String,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        log::error!("[{}] FAILED: {why}", out.report.name);
        self.fail_for_good(
            DisconnectReason::CredentialsRejected { code },
            why,
            actions,
            out,
        );
    }
}

impl Connections {
    /// A listen-key account could not get a key at `now` (`why`: the last failure): its
    /// attempts wait for one, so no attempt fails, and `give_up_after_ms` is counted here from
    /// the first such failure while nothing carries the account.
    #[cold]
    pub(crate) fn key_unavailable<S: Sink + ?Sized>(
        &mut self,
        now: std::time::Instant,
        why: &str,
        actions: &mut Actions,
        out: &mut Out<S>,
    ) {
        let reason = DisconnectReason::UserStreamExpired;
        self.give_up_if_down(now, "no listen key", &why, reason, actions, out);
    }
}
