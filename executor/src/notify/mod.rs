//! Notifications: the executor tells people that a proposal waits, was
//! decided, applied, expired or failed — on a signed webhook or in a JSONL
//! file. What notifies whom, and what a notification says, is decided in
//! `airlock_policy::notify`; this module delivers.
//!
//! Delivery never blocks a proposal: each sink has its own task, which
//! turns new ledger events into deliveries and attempts them outside the
//! calls that recorded the events. Delivery state lives in the ledger
//! (`ledger/notifications.rs`), so a delivery owed when the executor stops
//! is attempted again when it starts. At least once: a receiver
//! de-duplicates on the notification id.
//!
//! A notification never authorizes anything: nothing a receiver answers is
//! read beyond its HTTP status.

pub mod jsonl;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_ipc::ErrorBody;
use airlock_ipc::error::ErrorCode;
use airlock_ipc::message::{NotificationStatus, NotificationTestReport, SinkStatus, SinkTest};
use airlock_policy::Config;
use airlock_policy::canonical::sha256_tagged;
use airlock_policy::notify::{self, EventType, Notice, Sink, SinkKind};
use tokio::sync::watch;

use crate::authority::Authority;
use crate::ledger::{Delivery, DeliveryOutcome, Durability, Timestamp, body_for};

/// Events turned into deliveries per ledger call.
const ENQUEUE_BATCH: u32 = 200;
/// Deliveries attempted per ledger read (their outcomes are recorded in
/// one ledger call).
const DELIVERY_BATCH: u32 = 50;
/// The longest a sink task sleeps without looking at the ledger.
const IDLE_LOOK: Duration = Duration::from_secs(30);

/// The executor's sinks, ready to send.
#[derive(Debug)]
pub struct Notifier {
    sinks: Vec<Arc<SinkRuntime>>,
    /// Bumped when the ledger records an event that may notify.
    wake: watch::Sender<u64>,
}

#[derive(Debug)]
struct SinkRuntime {
    sink: Sink,
    target: Target,
}

#[derive(Debug)]
enum Target {
    Webhook(Box<webhook::Webhook>),
    Jsonl(jsonl::Jsonl),
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            sinks: Vec::new(),
            wake: watch::channel(0).0,
        }
    }
}

impl Notifier {
    /// The active sinks of `config`, their secrets read now: a missing
    /// variable stops the executor at start with a message naming it.
    pub fn from_config(config: &Config, config_path: &Path) -> Result<Notifier, String> {
        let mut sinks = Vec::new();
        for sink in config.notifications.active_sinks() {
            let target = match &sink.kind {
                SinkKind::Webhook(spec) => {
                    Target::Webhook(Box::new(webhook::Webhook::new(&sink.id, spec)?))
                }
                SinkKind::Jsonl(t) => Target::Jsonl(jsonl::Jsonl::new(&sink.id, t, config_path)?),
            };
            sinks.push(Arc::new(SinkRuntime {
                sink: sink.clone(),
                target,
            }));
        }
        Ok(Notifier {
            sinks,
            ..Notifier::default()
        })
    }

    /// Tell the sink tasks the ledger recorded an event that may notify.
    pub fn wake(&self) {
        if !self.sinks.is_empty() {
            self.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn sink_ids(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.sink.id.clone()).collect()
    }
}

/// `webhook` or `jsonl`, as `notifications status` and `test` name a sink.
fn kind_name(kind: &SinkKind) -> &'static str {
    match kind {
        SinkKind::Webhook(_) => "webhook",
        SinkKind::Jsonl(_) => "jsonl",
    }
}

impl SinkRuntime {
    fn kind(&self) -> &'static str {
        kind_name(&self.sink.kind)
    }

    /// Attempt each `(notification id, body)` once, in order: Ok(detail)
    /// delivered, Err(detail) not; details are safe to store and log. A
    /// JSONL sink appends them all with one write and one flush to disk.
    async fn attempt_all(
        &self,
        items: &[(&str, &str)],
    ) -> Vec<(Result<String, String>, Option<u16>)> {
        match &self.target {
            Target::Webhook(w) => {
                let mut out = Vec::with_capacity(items.len());
                for (id, body) in items {
                    out.push(w.send(id, body).await.verdict());
                }
                out
            }
            Target::Jsonl(j) => {
                let bodies: Vec<&str> = items.iter().map(|(_, body)| *body).collect();
                let result = j
                    .append(&bodies)
                    .await
                    .map(|()| format!("appended to {}", j.describe()));
                items.iter().map(|_| (result.clone(), None)).collect()
            }
        }
    }

    fn max_attempts(&self) -> u64 {
        match &self.sink.kind {
            SinkKind::Webhook(w) => w.max_attempts,
            SinkKind::Jsonl(_) => notify::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Set the sinks' cursors and start one delivery task per sink. Called
/// once at start, before the sockets accept anyone, so no event recorded
/// afterwards can be missed.
pub async fn start(auth: Arc<Authority>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let ids = auth.notifier.sink_ids();
    auth.ledger(Durability::Now, move |l| {
        l.start_notifications(&ids, &Timestamp::now())
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start notifications: {}", e.message))?;
    for (i, s) in auth.notifier.sinks.iter().enumerate() {
        tracing::info!(sink = %s.sink.id, kind = s.kind(), "notification sink ready");
        tokio::spawn(deliver_forever(
            Arc::clone(&auth),
            i,
            auth.notifier.wake.subscribe(),
            shutdown.clone(),
        ));
    }
    Ok(())
}

async fn deliver_forever(
    auth: Arc<Authority>,
    index: usize,
    mut wake: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let runtime = Arc::clone(&auth.notifier.sinks[index]);
    loop {
        wake.mark_unchanged();
        // One ledger call: turn new events into deliveries, then take what
        // is due (or learn when the next one will be).
        let sink = runtime.sink.clone();
        let work = auth
            .ledger(Durability::Deferred, move |l| {
                let now = Timestamp::now();
                while l.enqueue_notifications(&sink, &now, ENQUEUE_BATCH)? == ENQUEUE_BATCH as usize
                {
                }
                let due = l.due_notifications(&sink.id, now.ms, DELIVERY_BATCH)?;
                let next = if due.is_empty() {
                    l.next_notification_due(&sink.id)?
                } else {
                    None
                };
                Ok((due, next))
            })
            .await;
        let next = match work {
            Ok((due, _)) if !due.is_empty() => {
                if *shutdown.borrow() {
                    return;
                }
                if !deliver(&auth, &runtime, due).await {
                    // The outcomes were not recorded, so the same deliveries
                    // are still due: do not send them again at once.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
            Ok((_, next)) => next,
            Err(e) => {
                tracing::warn!(sink = %runtime.sink.id, error = %e.message, "could not read notifications owed; retrying later");
                None
            }
        };
        let now = Timestamp::now().ms;
        let wait = next.map_or(IDLE_LOOK, |due| {
            Duration::from_millis(due.saturating_sub(now).max(0) as u64).min(IDLE_LOOK)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Attempt `due` (in order) and record every outcome in one ledger call;
/// false when the outcomes could not be recorded.
async fn deliver(auth: &Authority, runtime: &SinkRuntime, due: Vec<Delivery>) -> bool {
    let items: Vec<(&str, &str)> = due
        .iter()
        .map(|d| (d.notification_id.as_str(), d.body.as_str()))
        .collect();
    let results = runtime.attempt_all(&items).await;
    let now = Timestamp::now();
    let mut outcomes = Vec::with_capacity(due.len());
    for (d, (result, status)) in due.iter().zip(results) {
        let attempts = d.attempts + 1;
        let outcome = match result {
            Ok(detail) => {
                tracing::info!(sink = %d.sink_id, event = %d.event, notification_id = %d.notification_id, attempts, "{detail}");
                DeliveryOutcome::Delivered
            }
            Err(error) if notify::gives_up(attempts, runtime.max_attempts()) => {
                tracing::error!(sink = %d.sink_id, event = %d.event, notification_id = %d.notification_id, attempts, status, "notification given up: {error}");
                DeliveryOutcome::Dead { error }
            }
            Err(error) => {
                let delay =
                    notify::retry_delay_ms(attempts, jitter_permille(&d.notification_id, attempts));
                tracing::warn!(sink = %d.sink_id, event = %d.event, notification_id = %d.notification_id, attempts, status, retry_in_ms = delay, "notification not delivered: {error}");
                DeliveryOutcome::Retry {
                    next_attempt_ms: now.ms.saturating_add(delay as i64),
                    error,
                }
            }
        };
        outcomes.push((d.event_seq, outcome));
    }
    let sink_id = runtime.sink.id.clone();
    if let Err(e) = auth
        .ledger(Durability::Deferred, move |l| {
            for (seq, outcome) in &outcomes {
                l.record_notification_attempt(&sink_id, *seq, outcome, &now)?;
            }
            Ok(())
        })
        .await
    {
        tracing::warn!(sink = %runtime.sink.id, error = %e.message, "could not record notification attempts");
        return false;
    }
    true
}

/// 0..=250 thousandths, different per delivery and attempt, so that
/// deliveries that failed together do not all retry at the same instant.
fn jitter_permille(notification_id: &str, attempts: u64) -> u64 {
    let h = sha256_tagged(format!("{notification_id}:{attempts}").as_bytes());
    let hex = h.strip_prefix("sha256:").unwrap_or(&h);
    u64::from_str_radix(&hex[..4.min(hex.len())], 16).unwrap_or(0) % 251
}

/// `notifications test`: send a test notification, which carries no data,
/// to one sink or to every active sink, now, and report each attempt. It
/// is not recorded as a delivery and is not retried.
pub async fn test(
    auth: &Authority,
    sink: Option<&str>,
) -> Result<NotificationTestReport, ErrorBody> {
    if let Some(id) = sink
        && (id.is_empty() || id.len() > 64)
    {
        return Err(ErrorBody::new(
            ErrorCode::InvalidRequest,
            "`sink` must be a sink id of 1 to 64 characters",
        ));
    }
    let notifier = &auth.notifier;
    let chosen: Vec<&Arc<SinkRuntime>> = notifier
        .sinks
        .iter()
        .filter(|s| sink.is_none_or(|id| s.sink.id == id))
        .collect();
    if chosen.is_empty() {
        let why = match sink {
            Some(id) => format!("no active notification sink `{}`", id.escape_debug()),
            None => "no active notification sink".to_owned(),
        };
        return Err(ErrorBody::new(
            ErrorCode::NotFound,
            format!(
                "{why}: notifications need \"enabled\": true and an enabled sink in the executor's config (`airlock notifications status` lists them)"
            ),
        ));
    }
    let now = Timestamp::now();
    let id = format!(
        "ntf_test_{}",
        &sha256_tagged(format!("{}:{}", std::process::id(), now.text).as_bytes())
            ["sha256:".len()..][..24]
    );
    let notice = Notice {
        id: id.clone(),
        event: EventType::Test,
        time: now.text.clone(),
        ledger_seq: None,
        proposal: None,
    };
    let attempts = chosen.iter().map(|s| {
        let body = body_for(&s.sink, &notice);
        let id = id.clone();
        async move {
            let (result, status) = s
                .attempt_all(&[(id.as_str(), body.as_str())])
                .await
                .remove(0);
            tracing::info!(sink = %s.sink.id, delivered = result.is_ok(), "test notification sent");
            let (delivered, detail) = match result {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            SinkTest {
                sink: s.sink.id.clone(),
                kind: s.kind().to_owned(),
                notification_id: id,
                delivered,
                status,
                detail,
            }
        }
    });
    Ok(NotificationTestReport {
        results: futures_util::future::join_all(attempts).await,
    })
}

/// `notifications status`: every configured sink and its deliveries.
pub async fn status(auth: &Authority) -> Result<NotificationStatus, ErrorBody> {
    let config = &auth.config.notifications;
    let sinks: Vec<(String, &'static str, bool)> = config
        .sinks
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                kind_name(&s.kind),
                config.enabled && s.enabled,
            )
        })
        .collect();
    let ids: Vec<String> = sinks.iter().map(|(id, _, _)| id.clone()).collect();
    let counts = auth
        .ledger(Durability::Deferred, move |l| {
            ids.iter()
                .map(|id| l.notification_counts(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(NotificationStatus {
        enabled: config.enabled,
        sinks: sinks
            .into_iter()
            .zip(counts)
            .map(|((sink, kind, active), c)| SinkStatus {
                sink,
                kind: kind.to_owned(),
                active,
                pending: c.pending,
                delivered: c.delivered,
                dead: c.dead,
                last_error: c.last_error,
                last_delivered_at: c.last_delivered_at,
                oldest_pending_at: c.oldest_pending_at,
                through_seq: c.through_seq,
            })
            .collect(),
    })
}
