//! Per-stream sequence tracking: drops the second copy of an update (a hot standby or a rotation
//! delivers everything twice) and finds updates that never arrived. Pure.

use crate::venue::{Seq, SeqRule};

/// Ids remembered per stream to tell a second copy from an update that came too late.
const RECENT: usize = 64;

/// What to do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Seen already (from another connection): drop it.
    Duplicate,
    /// Never seen, but older than an update already delivered: a lagging connection's copy of
    /// an update the leading one skipped. Delivering it now would move the strategy back in
    /// time, so it is dropped and counted.
    Superseded,
    /// New: deliver it.
    Fresh {
        /// Ids that were skipped before it, inclusive, when the numbering proves a loss.
        missed: Option<(u64, u64)>,
        /// The first message of this stream after an outage.
        after_outage: bool,
    },
    /// New, but it names a predecessor older than the last message seen: the venue's chain is
    /// inconsistent (no ids can be said to be missing, but whatever was built on the chain — a
    /// local book — is wrong).
    Broken,
}

/// Messages delivered with the same id remembered by their fingerprints (a stream numbered by
/// time sends several in one millisecond).
const SAME_ID: usize = 8;

/// A message's fingerprint, for telling apart messages numbered by time that share their
/// millisecond: FNV-1a over the payload's bytes, its text or a binary frame whole (the copies
/// two connections receive of one update are the same bytes).
#[inline]
pub fn fingerprint(text: &[u8]) -> u64 {
    text.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sequence state of one stream.
#[derive(Clone, Debug)]
pub struct SeqTrack {
    rule: SeqRule,
    last: Option<u64>,
    resuming: bool,
    /// The last [`RECENT`] ids delivered (a ring; 0 = empty).
    recent: [u64; RECENT],
    next: usize,
    /// Fingerprints of the messages delivered with id `last`, when they were numbered by time
    /// (`same_n` of them, at most [`SAME_ID`], oldest overwritten).
    same: [u64; SAME_ID],
    same_n: usize,
}

impl SeqTrack {
    /// Nothing seen yet.
    pub fn new(rule: SeqRule) -> Self {
        SeqTrack {
            rule,
            last: None,
            resuming: false,
            recent: [0; RECENT],
            next: 0,
            same: [0; SAME_ID],
            same_n: 0,
        }
    }

    /// No live connection carries the stream any more: the next message is compared across the
    /// outage.
    pub fn outage(&mut self) {
        if self.last.is_some() {
            self.resuming = true;
        }
    }

    /// Waiting for the first message after an outage.
    pub fn resuming(&self) -> bool {
        self.resuming
    }

    /// The last id delivered.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// How the stream is numbered.
    pub fn rule(&self) -> SeqRule {
        self.rule
    }

    /// Judges a message and, unless it is a duplicate, makes it the last one seen.
    #[inline]
    pub fn on_message(&mut self, seq: Seq) -> Verdict {
        self.on_message_as(seq, None)
    }

    /// [`SeqTrack::on_message`] of a message numbered by time, with its [`fingerprint`].
    #[inline]
    pub fn on_message_as(&mut self, seq: Seq, fp: Option<u64>) -> Verdict {
        let verdict = self.judge_as(seq, fp);
        if let Verdict::Fresh { .. } | Verdict::Broken = verdict {
            self.commit_as(seq, fp);
        }
        verdict
    }

    /// Judges a message without remembering it.
    #[inline]
    pub fn judge(&self, seq: Seq) -> Verdict {
        self.judge_as(seq, None)
    }

    /// Judges a message without remembering it; `fp`, the [`fingerprint`] of a message
    /// numbered by time, tells it from others of the same millisecond. A message without a
    /// number ([`Seq::UNNUMBERED`]) is always new.
    #[inline]
    pub fn judge_as(&self, seq: Seq, fp: Option<u64>) -> Verdict {
        let Some(last) = self.last.filter(|_| !seq.is_unnumbered()) else {
            return Verdict::Fresh {
                missed: None,
                after_outage: self.resuming && seq.is_unnumbered(),
            };
        };
        if seq.id == last {
            if let Some(fp) = fp.filter(|_| self.same_n > 0) {
                if !self.same[..self.same_n.min(SAME_ID)].contains(&fp) {
                    // Another update of the same millisecond.
                    return Verdict::Fresh {
                        missed: None,
                        after_outage: self.resuming,
                    };
                }
            }
        }
        if seq.id <= last {
            return self.older(seq.id);
        }
        let missed = match (self.rule, seq.prev) {
            (SeqRule::Chained, Some(prev)) if prev > last => Some((last + 1, prev)),
            (SeqRule::Chained, Some(prev)) if prev < last => return Verdict::Broken,
            (SeqRule::Ids, _) if self.resuming && seq.id > last + 1 => Some((last + 1, seq.id - 1)),
            _ => None,
        };
        Verdict::Fresh {
            missed,
            after_outage: self.resuming,
        }
    }

    /// An id at or below the last one: a second copy if it was delivered (or is too old to
    /// tell), else superseded.
    #[cold]
    fn older(&self, id: u64) -> Verdict {
        let oldest = self.recent.iter().copied().filter(|&r| r != 0).min();
        if self.recent.contains(&id) || oldest.is_none_or(|o| id < o) {
            Verdict::Duplicate
        } else {
            Verdict::Superseded
        }
    }

    /// Starts the numbering again at a snapshot (a book being resynced): what came before it
    /// is forgotten, so the updates after it count as new even if they were seen before.
    pub fn restart(&mut self, seq: Seq) {
        self.last = Some(seq.id);
        self.resuming = false;
        self.recent = [0; RECENT];
        self.recent[0] = seq.id;
        self.next = 1;
        self.same_n = 0;
    }

    /// Makes a judged, fresh message the last one seen.
    #[inline]
    pub fn commit(&mut self, seq: Seq) {
        self.commit_as(seq, None);
    }

    /// [`SeqTrack::commit`] of a message numbered by time, with its [`fingerprint`]. A message
    /// without a number changes nothing but ends a wait for the first message after an outage.
    #[inline]
    pub fn commit_as(&mut self, seq: Seq, fp: Option<u64>) {
        self.resuming = false;
        if seq.is_unnumbered() {
            return;
        }
        if self.last == Some(seq.id) {
            if let Some(fp) = fp {
                self.same[self.same_n % SAME_ID] = fp;
                self.same_n += 1;
            }
            return;
        }
        self.last = Some(seq.id);
        self.recent[self.next] = seq.id;
        self.next = (self.next + 1) % RECENT;
        self.same_n = 0;
        if let Some(fp) = fp {
            self.same[0] = fp;
            self.same_n = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chained(id: u64, prev: u64) -> Seq {
        Seq {
            id,
            prev: Some(prev),
        }
    }

    fn ids(id: u64) -> Seq {
        Seq { id, prev: None }
    }

    const FRESH: Verdict = Verdict::Fresh {
        missed: None,
        after_outage: false,
    };

    #[test]
    fn chained_streams_report_a_broken_chain_on_one_connection() {
        let mut t = SeqTrack::new(SeqRule::Chained);
        assert_eq!(
            t.on_message(chained(160, 149)),
            FRESH,
            "first message: no history"
        );
        assert_eq!(t.on_message(chained(170, 160)), FRESH);
        assert_eq!(
            t.on_message(chained(190, 180)),
            Verdict::Fresh {
                missed: Some((171, 180)),
                after_outage: false
            }
        );
        assert_eq!(t.last(), Some(190));
    }

    #[test]
    fn a_predecessor_older_than_the_last_message_breaks_the_chain() {
        let mut t = SeqTrack::new(SeqRule::Chained);
        t.on_message(chained(100, 90));
        assert_eq!(t.on_message(chained(110, 99)), Verdict::Broken);
        assert_eq!(
            t.on_message(chained(120, 110)),
            FRESH,
            "the chain goes on from there"
        );
    }

    #[test]
    fn the_second_copy_of_an_update_is_a_duplicate() {
        let mut t = SeqTrack::new(SeqRule::Chained);
        t.on_message(chained(10, 9));
        t.on_message(chained(11, 10));
        assert_eq!(t.on_message(chained(11, 10)), Verdict::Duplicate);
        assert_eq!(t.on_message(chained(10, 9)), Verdict::Duplicate);
        assert_eq!(
            t.on_message(chained(12, 11)),
            FRESH,
            "a duplicate moves nothing"
        );
        let mut time = SeqTrack::new(SeqRule::Time);
        time.on_message(ids(1_000));
        assert_eq!(time.on_message(ids(1_000)), Verdict::Duplicate);
    }

    #[test]
    fn an_update_older_than_the_last_but_never_seen_is_superseded() {
        let mut t = SeqTrack::new(SeqRule::Ids);
        t.on_message(ids(100));
        t.on_message(ids(103));
        assert_eq!(t.on_message(ids(103)), Verdict::Duplicate);
        assert_eq!(t.on_message(ids(100)), Verdict::Duplicate);
        assert_eq!(t.on_message(ids(101)), Verdict::Superseded);
        assert_eq!(
            t.on_message(ids(99)),
            Verdict::Duplicate,
            "older than memory"
        );
        assert_eq!(t.last(), Some(103));
    }

    #[test]
    fn id_streams_only_count_holes_across_an_outage() {
        let mut t = SeqTrack::new(SeqRule::Ids);
        t.on_message(ids(100));
        assert_eq!(
            t.on_message(ids(105)),
            FRESH,
            "holes are normal on one connection"
        );
        t.outage();
        assert!(t.resuming());
        assert_eq!(
            t.on_message(ids(120)),
            Verdict::Fresh {
                missed: Some((106, 119)),
                after_outage: true
            }
        );
        assert!(!t.resuming());
        t.outage();
        assert_eq!(
            t.on_message(ids(121)),
            Verdict::Fresh {
                missed: None,
                after_outage: true
            },
            "nothing missed"
        );
    }

    #[test]
    fn time_streams_never_report_missed_ids() {
        let mut t = SeqTrack::new(SeqRule::Time);
        t.on_message(ids(1_000));
        t.outage();
        assert_eq!(
            t.on_message(ids(9_000)),
            Verdict::Fresh {
                missed: None,
                after_outage: true
            }
        );
    }

    /// OKX `funding-rate` without `ts` is numbered [`Seq::UNNUMBERED`]: every one is
    /// delivered, and the numbered messages around them are judged as if they were not there.
    #[test]
    fn messages_without_a_number_are_always_delivered() {
        let mut t = SeqTrack::new(SeqRule::Time);
        for _ in 0..300 {
            assert_eq!(t.on_message(Seq::UNNUMBERED), FRESH);
        }
        assert_eq!(t.last(), None);
        assert_eq!(t.on_message(ids(1_000)), FRESH);
        assert_eq!(t.on_message(Seq::UNNUMBERED), FRESH);
        assert_eq!(t.on_message(ids(1_000)), Verdict::Duplicate);
        assert_eq!(t.on_message(ids(1_001)), FRESH);
        t.outage();
        assert_eq!(
            t.on_message(Seq::UNNUMBERED),
            Verdict::Fresh {
                missed: None,
                after_outage: true
            }
        );
        assert!(!t.resuming());
    }

    /// Two updates of one millisecond (OKX `bbo-tbt` without `seqId`, a ticker) are both
    /// delivered; the second connection's copies of them are duplicates.
    #[test]
    fn same_millisecond_updates_numbered_by_time_are_kept() {
        let (a, b) = (
            fingerprint(br#"{"bid":"1"}"#),
            fingerprint(br#"{"bid":"2"}"#),
        );
        assert_ne!(a, b);
        for rule in [SeqRule::Time, SeqRule::Ids] {
            let mut t = SeqTrack::new(rule);
            assert_eq!(t.on_message_as(ids(1_000), Some(a)), FRESH);
            assert_eq!(t.on_message_as(ids(1_000), Some(b)), FRESH, "{rule:?}");
            assert_eq!(t.on_message_as(ids(1_000), Some(a)), Verdict::Duplicate);
            assert_eq!(t.on_message_as(ids(1_000), Some(b)), Verdict::Duplicate);
            assert_eq!(t.on_message_as(ids(1_001), Some(a)), FRESH);
            assert_eq!(
                t.on_message_as(ids(1_000), Some(b)),
                Verdict::Duplicate,
                "an older millisecond: as before"
            );
        }
        // Without fingerprints (ids that are not times) an id seen again is a duplicate.
        let mut t = SeqTrack::new(SeqRule::Ids);
        t.on_message(ids(5));
        assert_eq!(t.on_message(ids(5)), Verdict::Duplicate);
    }

    #[test]
    fn an_outage_before_any_message_compares_nothing() {
        let mut t = SeqTrack::new(SeqRule::Chained);
        t.outage();
        assert!(!t.resuming());
        assert_eq!(t.on_message(chained(50, 40)), FRESH);
    }
}
