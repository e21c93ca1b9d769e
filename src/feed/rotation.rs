//! Make-before-break replacement of a connection: before the venue cuts it (its age limit),
//! when a stream with a guaranteed cadence went silent on it, or when a book needs a fresh
//! snapshot. If another connection carries the feed the old one simply reconnects; otherwise a
//! replacement connects and subscribes beside it, and once it carries the feed and the old one
//! has delivered, on every stream, the first update the replacement delivered (updates sent
//! before the venue applied the new subscription exist only on the old connection), the old one
//! is closed. After [`HANDOVER_LIMIT`] of overlap it is closed regardless.

use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::action::{Action, Actions, SessionId};
use super::report::Out;
use super::session::{Live, State};
use super::sink::Sink;
use super::slots::Slots;
use crate::metrics::{FeedStats, SlotRole};
use crate::tick::Health;
use crate::venue::StreamDef;

/// A rotation that cannot start yet (the other connection does not carry the feed) is tried
/// again after this long.
const ROTATION_RETRY: Duration = Duration::from_secs(1);
/// Longest a replacement overlaps the old connection waiting for every stream to overlap.
const HANDOVER_LIMIT: Duration = Duration::from_secs(10);
/// After a replacement failed permanently, no rotation is tried for this long.
const FAILED_ROTATION_HOLD: Duration = Duration::from_secs(300);
/// A stream silent on fresh connection after fresh connection is not the connection's fault:
/// after this many replacements in a row it is only reported stale.
const MAX_SILENT_ROTATIONS: u8 = 3;

/// Each stream's count of replacements in a row because it was silent, kept where the stream's
/// deliveries reset it.
pub(crate) trait SilentCounts {
    /// Stream `i`'s count.
    fn silent_rotations(&mut self, i: u16) -> &mut u8;
}

/// Why a connection is being replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RotateWhy {
    /// It reached `max_connection_age`.
    Age,
    /// A stream with a guaranteed cadence went silent on it.
    Silent(u16),
    /// A book needs a fresh snapshot.
    Resync(u16),
    /// An account's credential changed (a new listen key): connections on the old one are
    /// replaced.
    Rekey,
}

/// A replacement in progress: `new` overlaps `old` until it carries the feed.
#[derive(Clone, Copy, Debug)]
struct Rotation {
    old: SessionId,
    new: SessionId,
    why: RotateWhy,
    /// When the replacement first carried the feed: the handover waits for the overlap from
    /// then on, at most [`HANDOVER_LIMIT`].
    carried_at: Option<Instant>,
}

/// What a feed's rotations need to be told for one call.
pub(crate) struct Ctx<'a, 'o, S: ?Sized> {
    /// The feed's sessions.
    pub slots: &'a mut Slots,
    /// The feed's streams.
    pub streams: &'a [StreamDef],
    /// Streams still wanted.
    pub active: &'a [bool],
    /// Where closes go.
    pub actions: &'a mut Actions,
    /// Logs, counters, health.
    pub out: &'a mut Out<'o, S>,
}

/// A feed's rotation state.
#[derive(Debug, Default)]
pub(crate) struct Rotations {
    current: Option<Rotation>,
    /// No rotation by age is tried before this (set when one had to wait).
    hold: Option<Instant>,
}

impl Rotations {
    /// Whether a replacement is under way.
    pub(crate) fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// When `live` is due for replacement by age, if no rotation is under way.
    pub(crate) fn age_due(&self, live: &Live, max_age: Option<Duration>) -> Option<Instant> {
        let at = live.opened + max_age?;
        if self.current.is_some() {
            return None;
        }
        Some(self.hold.map_or(at, |h| at.max(h)))
    }

    /// When a handover happens regardless of the overlap.
    pub(crate) fn handover_deadline(&self) -> Option<Instant> {
        self.current
            .and_then(|r| r.carried_at)
            .map(|t| t + HANDOVER_LIMIT)
    }

    /// Session `id` was lost. A rotation it was part of ends: a lost old connection leaves the
    /// replacement in its place (with its role); a lost replacement is tried again later.
    /// Returns whether the lost session ends with it (either side is retired).
    pub(crate) fn on_lost(&mut self, slots: &mut Slots, id: SessionId, now: Instant) -> bool {
        let Some(rot) = self.current.filter(|r| r.old == id || r.new == id) else {
            return false;
        };
        self.current = None;
        if rot.old == id {
            let role = slots.index_of(id).map(|k| slots.get(k).role);
            if let (Some(role), Some(j)) = (role, slots.index_of(rot.new)) {
                slots.get_mut(j).role = role;
            }
        } else {
            self.hold = Some(now + ROTATION_RETRY);
        }
        true
    }

    /// The feed failed for good: nothing is being replaced any more.
    pub(crate) fn cancel(&mut self) {
        self.current = None;
    }

    /// Starts replacing slot `k`'s connection without a gap: when another connection carries
    /// the feed, `k` simply reconnects; otherwise a replacement overlaps it until it carries.
    /// `silent` is the count of replacements in a row for the silent stream (`Silent` only).
    #[cold]
    fn start<S: Sink + ?Sized>(
        &mut self,
        k: usize,
        why: RotateWhy,
        silent: Option<&mut u8>,
        now: Instant,
        ctx: &mut Ctx<'_, '_, S>,
    ) {
        let Some(conn) = ctx.slots.get(k).live().map(|l| l.conn_no) else {
            return;
        };
        let name = &ctx.out.report.name;
        let busy = self.current.is_some();
        let carrier = ctx.slots.carrier_besides(k);
        let room = ctx.slots.room();
        if let (RotateWhy::Silent(i), Some(count)) = (why, silent) {
            let stream = &ctx.streams[usize::from(i)].name;
            if *count >= MAX_SILENT_ROTATIONS {
                if *count == MAX_SILENT_ROTATIONS {
                    *count += 1;
                    error!(
                        "[{name}] stream {stream} stays silent on fresh connections too: the venue is not sending it; reporting it stale without replacing connections"
                    );
                }
                return;
            }
            if busy || (carrier.is_none() && !room) {
                // Not now: ask again after another silence period.
                if let Some(live) = ctx.slots.get_mut(k).live_mut() {
                    live.cadence.arm(usize::from(i), now);
                }
                return;
            }
            *count += 1;
        } else if busy {
            return;
        }
        let why_text = match why {
            RotateWhy::Age => "reached max_connection_age".to_string(),
            RotateWhy::Resync(i) => format!(
                "book {} needs a fresh snapshot",
                ctx.streams[usize::from(i)].name
            ),
            RotateWhy::Silent(i) => {
                format!("stream {} silent on it", ctx.streams[usize::from(i)].name)
            }
            RotateWhy::Rekey => "uses a listen key the venue replaced".to_string(),
        };
        if let Some(other) = carrier {
            FeedStats::bump(&ctx.out.report.stats.rotations);
            info!(
                "[{name}] replacing connection {conn} ({why_text}); connection {other} carries the feed meanwhile"
            );
            let session = ctx.slots.get_mut(k);
            session.state = State::Idle;
            ctx.actions.push(Action::Close {
                session: session.id,
            });
        } else if room {
            info!("[{name}] connection {conn} {why_text}: opening its replacement");
            let target = ctx.slots.get(k).target;
            let old = ctx.slots.get(k).id;
            let new = ctx.slots.add(SlotRole::Replacement, target);
            self.current = Some(Rotation {
                old,
                new,
                why,
                carried_at: None,
            });
        } else {
            self.hold = Some(now + ROTATION_RETRY);
        }
    }

    /// Moves a rotation under way along: hands over once the replacement carries the feed and
    /// overlaps the old connection, gives up on a replacement that failed for good.
    fn progress<S: Sink + ?Sized>(&mut self, now: Instant, ctx: &mut Ctx<'_, '_, S>) {
        let Some(rot) = self.current else {
            return;
        };
        let (Some(old), Some(new)) = (ctx.slots.index_of(rot.old), ctx.slots.index_of(rot.new))
        else {
            self.current = None;
            return;
        };
        if ctx.slots.get(new).carries() {
            let since = match &mut self.current {
                Some(r) => *r.carried_at.get_or_insert(now),
                None => now,
            };
            if self.overlapped(old, new, rot.why, ctx) || now >= since + HANDOVER_LIMIT {
                self.finish(old, new, rot.why, ctx);
            }
        } else if matches!(ctx.slots.get(new).state, State::Failed) {
            // The venue refuses new connections for good (e.g. 403): keep the old one for as
            // long as it lasts, and do not keep asking.
            warn!(
                "[{}] the replacement connection failed permanently; keeping the current one and not replacing it for {} s",
                ctx.out.report.name,
                FAILED_ROTATION_HOLD.as_secs()
            );
            ctx.slots.get_mut(new).state = State::Retired;
            self.current = None;
            self.hold = Some(now + FAILED_ROTATION_HOLD);
        }
    }

    /// An account's credential changed: the oldest live connection (on the old one) gives way
    /// to a fresh one.
    pub(crate) fn rekey<S: Sink + ?Sized>(&mut self, now: Instant, ctx: &mut Ctx<'_, '_, S>) {
        if let Some(k) = ctx.slots.oldest_live(|_| true) {
            self.start(k, RotateWhy::Rekey, None, now, ctx);
        }
    }

    /// Moves rotations along at `now`: the one under way, a book that needs a fresh connection
    /// (`resync`), cadence streams that went silent on one connection (`silent`: session and
    /// stream; `silent_count` gives a stream's replacements in a row), the age limit.
    pub(crate) fn maintain<S: Sink + ?Sized>(
        &mut self,
        now: Instant,
        max_age: Option<Duration>,
        resync: Option<u16>,
        silent: &[(SessionId, u16)],
        counts: &mut impl SilentCounts,
        ctx: &mut Ctx<'_, '_, S>,
    ) {
        self.progress(now, ctx);
        if let Some(i) = resync {
            // The oldest live connection gives way to a fresh one, which subscribes again and
            // receives fresh snapshots.
            if let Some(k) = ctx.slots.oldest_live(|_| true) {
                self.start(k, RotateWhy::Resync(i), None, now, ctx);
            }
        }
        for &(id, i) in silent {
            if let Some(k) = ctx.slots.index_of(id) {
                self.start(
                    k,
                    RotateWhy::Silent(i),
                    Some(counts.silent_rotations(i)),
                    now,
                    ctx,
                );
            }
        }
        if let Some(age) = max_age {
            if self.current.is_none() && self.hold.is_none_or(|h| now >= h) {
                // The oldest first, so that two connections of the same age take turns.
                if let Some(k) = ctx.slots.oldest_live(|opened| now >= opened + age) {
                    self.start(k, RotateWhy::Age, None, now, ctx);
                }
            }
        }
    }

    /// Whether every wanted stream has been delivered by the old connection up to where the
    /// replacement started: then the replacement alone misses nothing.
    fn overlapped<S: ?Sized>(
        &self,
        old: usize,
        new: usize,
        why: RotateWhy,
        ctx: &Ctx<'_, '_, S>,
    ) -> bool {
        let (Some(o), Some(n)) = (ctx.slots.get(old).live(), ctx.slots.get(new).live()) else {
            return true;
        };
        (0..ctx.streams.len()).all(|i| {
            !ctx.active[i]
                || why == RotateWhy::Silent(i as u16)
                || (n.first_id[i] != 0 && o.last_id[i] >= n.first_id[i])
        })
    }

    /// The replacement carries the feed: close the old connection.
    #[cold]
    fn finish<S: Sink + ?Sized>(
        &mut self,
        old: usize,
        new: usize,
        why: RotateWhy,
        ctx: &mut Ctx<'_, '_, S>,
    ) {
        let old_conn = ctx.slots.get(old).conn_no;
        let new_conn = ctx.slots.get(new).conn_no;
        let role = ctx.slots.get(old).role;
        let session = ctx.slots.get_mut(old);
        if matches!(session.state, State::Live(_)) {
            ctx.actions.push(Action::Close {
                session: session.id,
            });
        }
        session.state = State::Retired;
        ctx.slots.get_mut(new).role = role;
        self.current = None;
        FeedStats::bump(&ctx.out.report.stats.rotations);
        info!(
            "[{}] connection {old_conn} replaced by connection {new_conn} ({}) without a gap",
            ctx.out.report.name,
            match why {
                RotateWhy::Age => "age limit",
                RotateWhy::Silent(_) => "silent stream",
                RotateWhy::Resync(_) => "book resync",
                RotateWhy::Rekey => "new listen key",
            }
        );
        ctx.out.health(Health::Rotated {
            old: old_conn,
            new: new_conn,
        });
    }
}
