//! Notification delivery state, kept in the ledger file so that a restart
//! resumes where the executor stopped (at-least-once delivery).
//!
//! Each sink has a cursor: the last event sequence number it has turned
//! into deliveries. Enqueueing reads the notifying events after the cursor,
//! inserts one delivery per event the sink wants (its body rendered once,
//! so every retry sends the same bytes and the same notification id) and
//! moves the cursor, in one transaction. Deliveries are then updated as
//! they are attempted: `pending` → `delivered`, or `dead` after the sink's
//! last attempt. These rows are operational state, not records: they are
//! outside the hash chain, and changing one can only cause or suppress a
//! notification, which authorizes nothing.

use super::db::OptionalExt;
use crate::args;
use airlock_policy::notify::{
    self, NOTIFYING_KINDS, Notice, PayloadFormat, ProposalFacts, Sink, SinkKind,
};

use super::{Ledger, LedgerError, Timestamp};

/// One delivery owed to a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub sink_id: String,
    pub event_seq: i64,
    pub notification_id: String,
    pub event: String,
    /// The exact body to send (or the line to append).
    pub body: String,
    /// Attempts made so far.
    pub attempts: u64,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; try again at `next_attempt_ms`.
    Retry {
        next_attempt_ms: i64,
        error: String,
    },
    /// Failed for the last time.
    Dead {
        error: String,
    },
}

/// A sink's deliveries by state, for `notifications status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
    pub oldest_pending_at: Option<String>,
    /// The last event sequence number turned into deliveries.
    pub through_seq: Option<u64>,
}

/// The body a sink receives for `notice`: its webhook format, or the
/// CloudEvents JSON as one line of a JSONL file.
pub fn body_for(sink: &Sink, notice: &Notice) -> String {
    let format = match &sink.kind {
        SinkKind::Webhook(w) => w.format,
        SinkKind::Jsonl(_) => PayloadFormat::CloudEvents,
    };
    notice.body(format)
}

/// The notifying events after a cursor (`?1`), up to a limit (`?2`), with
/// their proposal's facts and, for a `writeback_finished`, its status.
static NOTIFYING_EVENTS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let kinds = NOTIFYING_KINDS.map(|k| format!("'{k}'")).join(", ");
    format!(
        "SELECT e.seq, e.at, e.kind, e.hash, p.proposal_id, p.capability, p.proposal_hash, p.required_role, p.expires_at, r.status \
         FROM events e JOIN proposals p ON p.proposal_id = e.proposal_id \
         LEFT JOIN receipts r ON r.seq = e.seq \
         WHERE e.seq > ?1 AND e.kind IN ({kinds}) ORDER BY e.seq LIMIT ?2"
    )
});

impl Ledger {
    /// Start each sink's cursor at the end of the chain (a new sink hears
    /// about what happens from now on, not about the past), keep the
    /// cursors of sinks still configured, and forget the others (a sink
    /// removed and added back later starts afresh). Pending deliveries are
    /// made due now: a restart resumes them at once.
    pub fn start_notifications(
        &mut self,
        sink_ids: &[String],
        now: &Timestamp,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.savepoint()?;
        let head: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", args![], |r| {
            r.get(0)
        })?;
        let kept: Vec<String> = tx
            .prepare("SELECT sink_id FROM notification_cursors")?
            .query_map(args![], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for gone in kept.iter().filter(|k| !sink_ids.contains(k)) {
            tx.execute(
                "DELETE FROM notification_cursors WHERE sink_id = ?1",
                args![gone],
            )?;
        }
        for id in sink_ids {
            tx.execute(
                "INSERT OR IGNORE INTO notification_cursors (sink_id, through_seq) VALUES (?1, ?2)",
                args![id, head],
            )?;
        }
        tx.execute(
            "UPDATE notification_deliveries SET next_attempt_ms = ?1 WHERE state = 'pending' AND next_attempt_ms > ?1",
            args![now.ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Turn up to `limit` notifying events after `sink`'s cursor into its
    /// deliveries; returns how many events were read (fewer than `limit`:
    /// the cursor reached the end of the chain).
    pub fn enqueue_notifications(
        &mut self,
        sink: &Sink,
        now: &Timestamp,
        limit: u32,
    ) -> Result<usize, LedgerError> {
        let tx = self.conn.savepoint()?;
        let Some(cursor): Option<i64> = tx
            .query_row(
                "SELECT through_seq FROM notification_cursors WHERE sink_id = ?1",
                args![&sink.id],
                |r| r.get(0),
            )
            .optional()?
        else {
            // Not started (the sink is not configured): nothing to do.
            return Ok(0);
        };
        // Every row the query returns counts as read (so the cursor can
        // move past it), whether or not it makes a notification.
        let rows: Vec<(i64, Option<Notice>)> = tx
            .prepare_cached(&NOTIFYING_EVENTS_SQL)?
            .query_map(args![cursor, limit], |r| {
                let seq: i64 = r.get(0)?;
                let kind: String = r.get(2)?;
                let status: Option<String> = r.get(9)?;
                let Some(event) = notify::event_type(&kind, status.as_deref()) else {
                    return Ok((seq, None));
                };
                let hash: String = r.get(3)?;
                Ok((
                    seq,
                    Some(Notice {
                        id: notify::notification_id(&hash),
                        event,
                        time: r.get(1)?,
                        ledger_seq: Some(seq.max(0) as u64),
                        proposal: Some(ProposalFacts {
                            proposal_id: r.get(4)?,
                            capability: r.get(5)?,
                            proposal_hash: r.get(6)?,
                            required_role: r.get(7)?,
                            expires_at: r.get(8)?,
                        }),
                    }),
                ))
            })?
            .collect::<Result<_, _>>()?;
        let read = rows.len();
        let through = if read < limit as usize {
            // Every notifying event up to the end of the chain is read.
            tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", args![], |r| {
                r.get::<_, i64>(0)
            })?
        } else {
            rows.last().map_or(cursor, |(seq, _)| *seq)
        };
        for (seq, notice) in rows.iter().filter_map(|(seq, n)| Some((seq, n.as_ref()?))) {
            let capability = notice
                .proposal
                .as_ref()
                .map_or("", |p| p.capability.as_str());
            if !sink.wants(notice.event, capability) {
                continue;
            }
            tx.execute(
                "INSERT OR IGNORE INTO notification_deliveries (sink_id, event_seq, notification_id, event, body, state, attempts, next_attempt_ms, last_error, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, NULL, ?7, ?7)",
                args![sink.id, seq, notice.id, notice.event.as_str(), body_for(sink, notice), now.ms, now.text],
            )?;
        }
        if through > cursor {
            tx.execute(
                "UPDATE notification_cursors SET through_seq = ?2 WHERE sink_id = ?1",
                args![sink.id, through],
            )?;
        }
        tx.commit()?;
        Ok(read)
    }

    /// Up to `limit` of `sink_id`'s pending deliveries due by `now_ms`,
    /// oldest event first.
    pub fn due_notifications(
        &self,
        sink_id: &str,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, LedgerError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT sink_id, event_seq, notification_id, event, body, attempts FROM notification_deliveries \
                 WHERE sink_id = ?1 AND state = 'pending' AND next_attempt_ms <= ?2 ORDER BY event_seq LIMIT ?3",
            )?
            .query_map(args![sink_id, now_ms, limit], |r| {
                Ok(Delivery {
                    sink_id: r.get(0)?,
                    event_seq: r.get(1)?,
                    notification_id: r.get(2)?,
                    event: r.get(3)?,
                    body: r.get(4)?,
                    attempts: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// When `sink_id`'s next pending delivery is due (Unix ms), if any.
    pub fn next_notification_due(&self, sink_id: &str) -> Result<Option<i64>, LedgerError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT MIN(next_attempt_ms) FROM notification_deliveries WHERE sink_id = ?1 AND state = 'pending'",
            )?
            .query_row(args![sink_id], |r| r.get(0))?)
    }

    /// Record one attempt of a delivery.
    pub fn record_notification_attempt(
        &mut self,
        sink_id: &str,
        event_seq: i64,
        outcome: &DeliveryOutcome,
        now: &Timestamp,
    ) -> Result<(), LedgerError> {
        let (state, next, error) = match outcome {
            DeliveryOutcome::Delivered => ("delivered", now.ms, None),
            DeliveryOutcome::Retry {
                next_attempt_ms,
                error,
            } => ("pending", *next_attempt_ms, Some(error.as_str())),
            DeliveryOutcome::Dead { error } => ("dead", now.ms, Some(error.as_str())),
        };
        self.conn.execute(
            "UPDATE notification_deliveries SET state = ?3, attempts = attempts + 1, next_attempt_ms = ?4, \
             last_error = COALESCE(?5, last_error), updated_at = ?6 \
             WHERE sink_id = ?1 AND event_seq = ?2 AND state = 'pending'",
            args![sink_id, event_seq, state, next, error, now.text],
        )?;
        Ok(())
    }

    /// Each sink's deliveries by state.
    pub fn notification_counts(&self, sink_id: &str) -> Result<SinkCounts, LedgerError> {
        let mut counts = SinkCounts::default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, COUNT(*) FROM notification_deliveries WHERE sink_id = ?1 GROUP BY state",
        )?;
        for row in stmt.query_map(args![sink_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (state, n) = row?;
            let n = n.max(0) as u64;
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                _ => counts.dead = n,
            }
        }
        counts.last_error = self
            .conn
            .query_row(
                "SELECT last_error FROM notification_deliveries WHERE sink_id = ?1 AND last_error IS NOT NULL ORDER BY updated_at DESC, event_seq DESC LIMIT 1",
                args![sink_id],
                |r| r.get(0),
            )
            .optional()?;
        counts.last_delivered_at = self
            .conn
            .query_row(
                "SELECT MAX(updated_at) FROM notification_deliveries WHERE sink_id = ?1 AND state = 'delivered'",
                args![sink_id],
                |r| r.get(0),
            )?;
        counts.oldest_pending_at = self
            .conn
            .query_row(
                "SELECT MIN(created_at) FROM notification_deliveries WHERE sink_id = ?1 AND state = 'pending'",
                args![sink_id],
                |r| r.get(0),
            )?;
        counts.through_seq = self
            .conn
            .query_row(
                "SELECT through_seq FROM notification_cursors WHERE sink_id = ?1",
                args![sink_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s.max(0) as u64);
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use airlock_policy::notify::{EventType, JsonlTarget, Sink, SinkKind};

    use super::*;
    use crate::ledger::tests::{actor, story};

    fn sink(id: &str, events: Option<&[EventType]>) -> Sink {
        Sink {
            id: id.into(),
            enabled: true,
            events: events.map(|e| e.iter().copied().collect::<BTreeSet<_>>()),
            capabilities: None,
            kind: SinkKind::Jsonl(JsonlTarget::Stdout),
        }
    }

    fn events_of(l: &Ledger, sink_id: &str) -> Vec<String> {
        l.due_notifications(sink_id, i64::MAX, 100)
            .unwrap()
            .into_iter()
            .map(|d| d.event)
            .collect()
    }

    #[test]
    fn a_new_sink_starts_at_the_end_and_hears_what_follows() {
        let (mut l, dir, _, pending) = story("notify-start");
        let now = Timestamp::now();
        l.start_notifications(&["ops".into()], &now).unwrap();
        assert_eq!(
            l.enqueue_notifications(&sink("ops", None), &now, 100)
                .unwrap(),
            0
        );
        assert!(events_of(&l, "ops").is_empty(), "the past is not sent");
        l.record_decision(&pending, false, &actor(), Some("no"), "sha256:cap")
            .unwrap();
        assert_eq!(
            l.enqueue_notifications(&sink("ops", None), &now, 100)
                .unwrap(),
            1
        );
        assert_eq!(events_of(&l, "ops"), ["proposal.rejected"]);
        // Enqueueing again adds nothing.
        assert_eq!(
            l.enqueue_notifications(&sink("ops", None), &now, 100)
                .unwrap(),
            0
        );
        assert_eq!(events_of(&l, "ops").len(), 1);
        // An unconfigured sink has no cursor and gets nothing.
        assert_eq!(
            l.enqueue_notifications(&sink("other", None), &now, 100)
                .unwrap(),
            0
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_notifying_event_is_enqueued_in_order_and_filtered_per_sink() {
        let (mut l, dir, applied, pending) = story("notify-all");
        let now = Timestamp::now();
        l.start_notifications(&["all".into(), "created".into()], &now)
            .unwrap();
        l.conn
            .execute("UPDATE notification_cursors SET through_seq = 0", args![])
            .unwrap();
        // Two at a time: the cursor moves by what was read.
        let all = sink("all", None);
        assert_eq!(l.enqueue_notifications(&all, &now, 2).unwrap(), 2);
        assert_eq!(l.notification_counts("all").unwrap().through_seq, Some(4));
        assert_eq!(l.enqueue_notifications(&all, &now, 2).unwrap(), 2);
        assert_eq!(l.enqueue_notifications(&all, &now, 2).unwrap(), 0);
        assert_eq!(
            events_of(&l, "all"),
            [
                "proposal.created",
                "proposal.created",
                "proposal.approved",
                "proposal.applied"
            ]
        );
        let due = l.due_notifications("all", i64::MAX, 100).unwrap();
        let body: serde_json::Value = serde_json::from_str(&due[3].body).unwrap();
        assert_eq!(body["data"]["proposal_id"], applied.as_str());
        assert_eq!(body["id"], due[3].notification_id.as_str());
        let created = sink("created", Some(&[EventType::ProposalCreated]));
        l.enqueue_notifications(&created, &now, 100).unwrap();
        let ids: Vec<String> = l
            .due_notifications("created", i64::MAX, 100)
            .unwrap()
            .into_iter()
            .map(|d| {
                serde_json::from_str::<serde_json::Value>(&d.body).unwrap()["data"]["proposal_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, [applied, pending]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_approval_refused_on_a_changed_picture_notifies_a_conflict() {
        let (mut l, dir, _, pending) = story("notify-stale");
        let now = Timestamp::now();
        l.start_notifications(&["ops".into()], &now).unwrap();
        l.record_stale(
            &pending,
            &actor(),
            "changed since the proposal: version",
            "sha256:cap",
        )
        .unwrap();
        l.enqueue_notifications(&sink("ops", None), &now, 100)
            .unwrap();
        assert_eq!(events_of(&l, "ops"), ["proposal.conflict"]);
        let due = l.due_notifications("ops", i64::MAX, 10).unwrap();
        let body: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
        assert_eq!(body["data"]["proposal_id"], pending.as_str());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn attempts_move_a_delivery_to_delivered_retry_or_dead_and_a_start_resumes() {
        let (mut l, dir, _, pending) = story("notify-attempts");
        let now = Timestamp::now();
        l.start_notifications(&["ops".into()], &now).unwrap();
        l.record_decision(&pending, false, &actor(), Some("no"), "sha256:cap")
            .unwrap();
        l.enqueue_notifications(&sink("ops", None), &now, 100)
            .unwrap();
        let d = l.due_notifications("ops", now.ms, 10).unwrap().remove(0);
        assert_eq!(d.attempts, 0);
        let later = now.ms + 60_000;
        let retry = DeliveryOutcome::Retry {
            next_attempt_ms: later,
            error: "HTTP 500".into(),
        };
        l.record_notification_attempt("ops", d.event_seq, &retry, &now)
            .unwrap();
        assert!(
            l.due_notifications("ops", now.ms, 10).unwrap().is_empty(),
            "not due yet"
        );
        assert_eq!(l.next_notification_due("ops").unwrap(), Some(later));
        let c = l.notification_counts("ops").unwrap();
        assert_eq!((c.pending, c.delivered, c.dead), (1, 0, 0));
        assert_eq!(c.last_error.as_deref(), Some("HTTP 500"));
        assert!(c.oldest_pending_at.is_some());

        // A start makes it due at once.
        l.start_notifications(&["ops".into()], &now).unwrap();
        let d = l.due_notifications("ops", now.ms, 10).unwrap().remove(0);
        assert_eq!(d.attempts, 1);
        l.record_notification_attempt("ops", d.event_seq, &DeliveryOutcome::Delivered, &now)
            .unwrap();
        let c = l.notification_counts("ops").unwrap();
        assert_eq!((c.pending, c.delivered, c.dead), (0, 1, 0));
        assert_eq!(c.last_delivered_at.as_deref(), Some(now.text.as_str()));
        assert_eq!(l.next_notification_due("ops").unwrap(), None);
        // A delivered one is not attempted again.
        l.record_notification_attempt(
            "ops",
            d.event_seq,
            &DeliveryOutcome::Dead { error: "x".into() },
            &now,
        )
        .unwrap();
        assert_eq!(l.notification_counts("ops").unwrap().dead, 0);

        // A sink no longer configured forgets its place.
        l.start_notifications(&[], &now).unwrap();
        assert_eq!(l.notification_counts("ops").unwrap().through_seq, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_given_up_delivery_is_dead_and_the_ledger_still_verifies() {
        let (mut l, dir, _, pending) = story("notify-dead");
        let now = Timestamp::now();
        l.start_notifications(&["ops".into()], &now).unwrap();
        l.record_decision(&pending, false, &actor(), None, "sha256:cap")
            .unwrap();
        l.enqueue_notifications(&sink("ops", None), &now, 100)
            .unwrap();
        let d = l.due_notifications("ops", now.ms, 10).unwrap().remove(0);
        l.record_notification_attempt(
            "ops",
            d.event_seq,
            &DeliveryOutcome::Dead {
                error: "no answer".into(),
            },
            &now,
        )
        .unwrap();
        let c = l.notification_counts("ops").unwrap();
        assert_eq!((c.pending, c.dead), (0, 1));
        assert!(l.due_notifications("ops", i64::MAX, 10).unwrap().is_empty());
        let report = l.verify().unwrap();
        assert!(report.ok, "{report:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_prune_drops_finished_deliveries_of_the_moved_events_and_keeps_owed_ones() {
        let (mut l, dir, _, pending) = story("notify-prune");
        let now = Timestamp::now();
        l.record_decision(&pending, false, &actor(), Some("no"), "sha256:cap")
            .unwrap();
        l.start_notifications(&["ops".into()], &now).unwrap();
        l.conn
            .execute("UPDATE notification_cursors SET through_seq = 0", args![])
            .unwrap();
        l.enqueue_notifications(&sink("ops", None), &now, 100)
            .unwrap();
        let due = l.due_notifications("ops", i64::MAX, 100).unwrap();
        assert_eq!(due.len(), 5);
        for d in &due[..4] {
            l.record_notification_attempt("ops", d.event_seq, &DeliveryOutcome::Delivered, &now)
                .unwrap();
        }
        let owed = due[4].event_seq;
        let out = l
            .prune(crate::ledger::PruneRequest {
                before: &Timestamp::from_ms(now.ms + 86_400_000),
                archive: &dir.join("archive.db"),
                actor: &actor(),
            })
            .unwrap();
        assert!(out.plan.through_seq >= owed, "{:?}", out.plan);
        let c = l.notification_counts("ops").unwrap();
        assert_eq!((c.delivered, c.pending), (0, 1), "the owed one stays");
        assert_eq!(
            l.due_notifications("ops", i64::MAX, 10).unwrap()[0].event_seq,
            owed
        );
        assert!(l.verify().unwrap().ok);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
