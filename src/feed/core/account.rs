//! A feed that is an account's private stream: its messages (logins, acks, refusals, events),
//! and its listen key.

use std::mem;
use std::time::Instant;

use log::{debug, info, warn};

use super::FeedCore;
use crate::account::listen_key::{KeyAnswer, KeyEvent};
use crate::account::{classify, AccountMsg, PrivateFrame};
use crate::feed::action::{Action, SessionId};
use crate::feed::report::Out;
use crate::feed::seq::fingerprint;
use crate::feed::session::Lost;
use crate::feed::sink::Sink;
use crate::metrics::FeedStats;
use crate::tick::DisconnectReason;

/// How many recent messages are remembered to find the ones two overlapping connections both
/// deliver (a replacement's first messages and its predecessor's last).
pub(super) const RECENT: usize = 256;

impl super::AccountSide {
    /// Whether another connection delivered this message already (a rotation's overlap);
    /// remembers it as connection `conn`'s otherwise.
    fn seen_elsewhere(&mut self, text: &str, conn: u32) -> bool {
        let h = fingerprint(text.as_bytes());
        if self.recent.iter().any(|&(f, c)| f == h && c != conn) {
            return true;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((h, conn));
        false
    }
}

impl FeedCore {
    /// A text frame on slot `k`'s private connection.
    #[cold]
    pub(super) fn on_private_text<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        text: &str,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) -> Result<(), Lost> {
        let Some(account) = self.account.as_mut() else {
            return Ok(());
        };
        let mut events = mem::take(&mut account.events);
        events.clear();
        let frame = classify(&account.params, text, &mut events);
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                out.report.bad_frame(now, &e, text);
                return Ok(());
            }
        };
        let result = match frame {
            PrivateFrame::Events { skipped } => {
                if let Some(why) = skipped {
                    // One item could not be read: counted and logged; the others go on.
                    out.report.bad_frame(now, &why, text);
                }
                let conn = self.conns.on_data_private(k);
                let account = self.account.as_mut().expect("an account feed");
                if account.seen_elsewhere(text, conn) {
                    FeedStats::bump(&out.report.stats.duplicates);
                } else {
                    let stats = &out.report.stats;
                    FeedStats::bump(&stats.messages);
                    let message = stats.messages.load(std::sync::atomic::Ordering::Relaxed);
                    let (lane, feed) = (out.report.lane, out.report.feed);
                    for &event in &events {
                        FeedStats::bump(&out.report.stats.account_events);
                        let msg = AccountMsg {
                            feed,
                            conn,
                            message,
                            recv_ns,
                            event,
                        };
                        out.sink.account(lane, msg);
                    }
                }
                Ok(())
            }
            PrivateFrame::Ack { id } => {
                self.private_ack(k, Some(id), recv_ns, now, sink);
                Ok(())
            }
            PrivateFrame::LoggedIn => {
                self.private_ack(k, None, recv_ns, now, sink);
                Ok(())
            }
            PrivateFrame::Error {
                id,
                code,
                msg,
                credentials,
            } => self
                .conns
                .on_private_error(k, id, code, &msg, credentials, &mut out),
            PrivateFrame::Expired { key: named } => {
                let account = self.account.as_mut().expect("an account feed");
                // An old key's expiry (a connection being replaced after a new key) ends that
                // connection only; the current key stays.
                let current = match (account.key.as_mut(), named.as_deref()) {
                    (Some((key, _)), Some(n)) => key.key() == Some(n),
                    _ => true,
                };
                if current {
                    FeedStats::bump(&out.report.stats.expiries);
                    if let Some((key, _)) = account.key.as_mut() {
                        key.expired();
                        self.conns.set_private_url(None);
                    }
                }
                Err((DisconnectReason::UserStreamExpired, None))
            }
            PrivateFrame::RateLimited {
                status,
                retry_after_s,
                msg,
            } => {
                let reason = DisconnectReason::Http {
                    status,
                    retry_after_s,
                };
                self.conns.told_to_wait(k, reason, now);
                Err((reason, Some(msg)))
            }
            PrivateFrame::Pong => Ok(()),
            PrivateFrame::Unknown => {
                out.report.unknown_frame(now, "unknown message", text.len());
                Ok(())
            }
        };
        if let Some(account) = self.account.as_mut() {
            account.events = events;
        }
        result
    }

    /// The venue accepted a log-in step on slot `k` (`None`: the login): once logged in and
    /// subscribed, the account streams, and an outage ends.
    fn private_ack<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        id: Option<u64>,
        recv_ns: u64,
        now: Instant,
        sink: &mut S,
    ) {
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        if self
            .conns
            .on_private_ack(k, id, now, &mut self.actions, &mut out)
        {
            self.data.resumed(now, recv_ns, &mut out);
        }
    }

    /// Session `id` opened: a connection whose URL carries the credential (a listen key)
    /// streams from now on.
    pub(super) fn account_opened<S: Sink + ?Sized>(
        &mut self,
        id: SessionId,
        now: Instant,
        sink: &mut S,
    ) {
        let Some(k) = self.conns.slots.index_of(id) else {
            return;
        };
        if !self.conns.slots.get(k).carries() {
            return;
        }
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        FeedStats::bump(&out.report.stats.logins);
        self.data.resumed(now, crate::clock::now_ns(), &mut out);
    }

    /// An attempt of a listen-key account was refused with `reason`: a 400 or 404 on the
    /// upgrade means the venue does not know the key (it expired, or the account's keys were
    /// revoked), so a new key is asked for and the attempt counts as the key's expiry. Other
    /// reasons, and other accounts, are returned as they are.
    #[cold]
    pub(super) fn key_refused(&mut self, reason: DisconnectReason) -> DisconnectReason {
        let Some((key, _)) = self.account.as_mut().and_then(|a| a.key.as_mut()) else {
            return reason;
        };
        match reason {
            DisconnectReason::Http {
                status: 400 | 404, ..
            } => {
                key.expired();
                FeedStats::bump(&self.report.stats.expiries);
                self.conns.set_private_url(None);
                DisconnectReason::UserStreamExpired
            }
            other => other,
        }
    }

    /// A listen-key call that is due at `now` goes to the driver.
    pub(super) fn poll_listen_key(&mut self, now: Instant) {
        let Some(account) = self.account.as_mut() else {
            return;
        };
        let (Some((key, _)), Some(rest_base)) = (account.key.as_mut(), &account.params.rest_base)
        else {
            return;
        };
        if self.report.stats.state() == crate::metrics::FeedState::Failed {
            key.stop();
            return;
        }
        if let Some(op) = key.poll(now) {
            self.actions.push(Action::ListenKey {
                op,
                rest_base: rest_base.clone(),
                api_key: account.params.creds.key.clone(),
            });
        }
    }

    /// The answer to a listen-key call, at `now`.
    pub fn on_listen_key<S: Sink + ?Sized>(
        &mut self,
        answer: KeyAnswer,
        now: Instant,
        sink: &mut S,
    ) {
        let Some(account) = self.account.as_mut() else {
            return;
        };
        let Some((key, base_url)) = account.key.as_mut() else {
            return;
        };
        let mut out = Out {
            report: &mut self.report,
            sink,
        };
        let detail = answer.as_ref().err().map(|e| e.message.clone());
        match key.on_answer(answer, now) {
            KeyEvent::NewKey => {
                FeedStats::bump(&out.report.stats.keys_created);
                let url = key.key().map(|k| format!("{base_url}?listenKey={k}"));
                info!("[{}] new listen key", out.report.name);
                self.conns.set_private_url(url);
            }
            KeyEvent::KeptAlive => {
                FeedStats::bump(&out.report.stats.key_renewals);
                debug!("[{}] listen key kept alive", out.report.name);
            }
            KeyEvent::Lost => {
                FeedStats::bump(&out.report.stats.expiries);
                warn!(
                    "[{}] the venue no longer knows the listen key ({}); asking for a new one",
                    out.report.name,
                    detail.unwrap_or_default()
                );
                self.conns.set_private_url(None);
            }
            KeyEvent::Refused(code, msg) => {
                let why = account.params.credential_advice(code, &msg);
                self.conns
                    .credentials_refused(code, why, &mut self.actions, &mut out);
            }
            KeyEvent::Retry => {
                let detail = detail.unwrap_or_default();
                if let Some(suppressed) = out.report.throttle.allow(now) {
                    warn!(
                        "[{}] listen-key call failed ({detail}); trying again shortly{}",
                        out.report.name,
                        crate::feed::report::suppressed_note(suppressed)
                    );
                }
                self.conns
                    .key_unavailable(now, &detail, &mut self.actions, &mut out);
                if self.conns.slots.iter().all(|s| s.is_done()) {
                    key.stop();
                }
            }
        }
    }
}
