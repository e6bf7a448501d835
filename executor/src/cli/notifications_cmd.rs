//! `airlock notifications status|test`: what the executor's notification
//! sinks have delivered, and a signed test notification on demand. Both ask
//! the executor over the operator socket: only it holds the webhook URLs
//! and signing keys.

use airlock_ipc::message::{
    Empty, NotificationStatus, NotificationTestReport, Request, Response, TestNotification,
};
use serde_json::json;

use super::ConnArgs;
use super::output::{Exit, escape, print_json, say};

pub fn status(conn: &ConnArgs, json: bool) -> Exit {
    super::operator::call_once(conn, json, |mut client| async move {
        match client.call(Request::NotificationStatus(Empty {})).await {
            Ok(Response::NotificationStatus(s)) => {
                report_status(&s, json);
                Exit::Ok
            }
            Ok(other) => super::operator::unexpected_answer(json, &other),
            Err(e) => super::operator::client_failure(json, e),
        }
    })
}

fn report_status(s: &NotificationStatus, json: bool) {
    if json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["ok"] = json!(true);
        print_json(&v);
        return;
    }
    if s.sinks.is_empty() {
        say!("No notification sinks are configured (see docs/notifications.md).");
        return;
    }
    if !s.enabled {
        say!(
            "Notifications are off: set \"enabled\": true in the config's `notifications` section."
        );
    }
    for k in &s.sinks {
        let state = if k.active { "active" } else { "off" };
        say!(
            "{} ({}, {state}): {} delivered, {} pending, {} given up",
            escape(&k.sink),
            k.kind,
            k.delivered,
            k.pending,
            k.dead
        );
        if let Some(at) = &k.last_delivered_at {
            say!("  last delivered: {}", escape(at));
        }
        if let Some(at) = &k.oldest_pending_at {
            say!("  oldest pending since: {}", escape(at));
        }
        if let Some(e) = &k.last_error {
            say!("  last error: {}", escape(e));
        }
    }
}

pub fn test(conn: &ConnArgs, sink: Option<String>, json: bool) -> Exit {
    super::operator::call_once(conn, json, |mut client| async move {
        match client
            .call(Request::TestNotification(TestNotification { sink }))
            .await
        {
            Ok(Response::NotificationTest(r)) => report_test(&r, json),
            Ok(other) => super::operator::unexpected_answer(json, &other),
            Err(e) => super::operator::client_failure(json, e),
        }
    })
}

/// Exit 0 when every sink took the test notification, 1 otherwise.
fn report_test(r: &NotificationTestReport, json: bool) -> Exit {
    let all = r.results.iter().all(|t| t.delivered);
    if json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["ok"] = json!(all);
        print_json(&v);
    } else {
        for t in &r.results {
            let verdict = if t.delivered {
                "delivered"
            } else {
                "NOT delivered"
            };
            say!(
                "{} ({}): {verdict} — {} (notification id {})",
                escape(&t.sink),
                t.kind,
                escape(&t.detail),
                t.notification_id
            );
        }
        if !all {
            say!(
                "The executor's log has each attempt; `airlock notifications status` shows what is owed."
            );
        }
    }
    if all { Exit::Ok } else { Exit::Failure }
}
