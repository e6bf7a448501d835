//! The `notifications` section, in Synapsor Runner 1.x's shape: `enabled`
//! and `sinks`, each with `id`, `type` (`webhook` or `jsonl`), `enabled`,
//! `events` and `capabilities`. Runner's noise-control keys (budgets, quiet
//! hours, severities, digests) have no Airlock counterpart: they are
//! accepted with a warning, because ignoring them can only send more
//! notifications, never widen what anyone may do.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Obj, check_entry_name, join_index, short};
use crate::diagnostics::Report;
use crate::notify::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_MS, EventType, JsonlTarget, MAX_ATTEMPTS, MAX_TIMEOUT_MS,
    Notifications, PayloadFormat, Sink, SinkKind, WebhookSpec,
};

/// Runner keys that only quiet or route notifications further.
const NOISE_KEYS: &[&str] = &[
    "minimum_severity",
    "environments",
    "delivery",
    "budgets",
    "quiet_hours",
    "recovery_notifications",
    "max_response_bytes",
    "replay_window_seconds",
];

const SINK_KEYS: &[&str] = &[
    "id",
    "type",
    "enabled",
    "events",
    "capabilities",
    // webhook
    "url_env",
    "signing_secret_env",
    "format",
    "timeout_ms",
    "max_attempts",
    "allow_private_destinations",
    "private_host_allowlist",
    // jsonl
    "path",
    "destination",
];

const WEBHOOK_ONLY: &[&str] = &[
    "url_env",
    "signing_secret_env",
    "format",
    "timeout_ms",
    "max_attempts",
    "allow_private_destinations",
    "private_host_allowlist",
];

/// Most sinks one config may declare.
pub const MAX_SINKS: usize = 16;

pub(super) fn parse(r: &mut Report, o: &Obj, capability_names: &BTreeSet<String>) -> Notifications {
    let Some(v) = o.get("notifications") else {
        return Notifications::default();
    };
    let Some(n) = Obj::open(
        r,
        &o.at("notifications"),
        v,
        &["enabled", "sinks", "workbench_url_env"],
    ) else {
        return Notifications::default();
    };
    if n.has("workbench_url_env") {
        r.warning(
            n.at("workbench_url_env"),
            "Airlock has no Workbench; notifications name the proposal and the `airlock proposals show` command instead",
            "remove `workbench_url_env`",
        );
    }
    let enabled = n.boolean(r, "enabled").unwrap_or(false);
    let mut sinks: Vec<Sink> = Vec::new();
    if let Some(items) = n.array(r, "sinks") {
        if items.len() > MAX_SINKS {
            r.error(
                n.at("sinks"),
                format!("{} sinks; at most {MAX_SINKS} are allowed", items.len()),
                "send to fewer sinks (one webhook can fan out)",
            );
        }
        for (i, item) in items.iter().enumerate().take(MAX_SINKS) {
            let path = join_index(&n.at("sinks"), i);
            if let Some(sink) = parse_sink(r, &path, item, capability_names) {
                if sinks.iter().any(|s| s.id == sink.id) {
                    r.error(
                        format!("{path}.id"),
                        format!("sink id `{}` is used twice", sink.id),
                        "give each sink its own id",
                    );
                } else {
                    sinks.push(sink);
                }
            }
        }
    }
    if !enabled && !sinks.is_empty() {
        r.warning(
            n.at("enabled"),
            "notifications are off: sinks are configured but `enabled` is not true, so nothing is sent",
            "set \"enabled\": true to send them",
        );
    }
    Notifications { enabled, sinks }
}

fn parse_sink(
    r: &mut Report,
    path: &str,
    v: &Value,
    capability_names: &BTreeSet<String>,
) -> Option<Sink> {
    let mut known = SINK_KEYS.to_vec();
    known.extend_from_slice(NOISE_KEYS);
    let s = Obj::open(r, path, v, &known)?;
    for key in NOISE_KEYS {
        if s.has(key) {
            r.warning(
                s.at(key),
                format!(
                    "Airlock has no `{key}`: every matching event is sent as soon as it is recorded"
                ),
                format!("remove `{key}`"),
            );
        }
    }
    let errors_before = r.errors().count();
    let id = s
        .req_string(
            r,
            "id",
            "add \"id\": a short name for this sink, e.g. \"operations\"",
        )
        .filter(|id| check_entry_name(r, &s.at("id"), id));
    let enabled = s.boolean(r, "enabled").unwrap_or(true);
    let events = parse_events(r, &s);
    let capabilities = parse_capabilities(r, &s, capability_names);
    let kind = match s
        .req_string(r, "type", "add \"type\": \"webhook\" or \"jsonl\"")
        .as_deref()
    {
        Some("webhook") => parse_webhook(r, &s).map(SinkKind::Webhook),
        Some("jsonl") => parse_jsonl(r, &s).map(SinkKind::Jsonl),
        Some(other) => {
            r.error(
                s.at("type"),
                format!("unknown sink type `{other}`"),
                "use \"webhook\" or \"jsonl\"",
            );
            None
        }
        None => None,
    };
    if r.errors().count() != errors_before {
        return None;
    }
    Some(Sink {
        id: id?,
        enabled,
        events,
        capabilities,
        kind: kind?,
    })
}

/// `events`: names from [`EventType::PROPOSAL_EVENTS`]; absent is all of them.
fn parse_events(r: &mut Report, s: &Obj) -> Option<BTreeSet<EventType>> {
    let items = s.array(r, "events")?;
    let mut out = BTreeSet::new();
    let names: Vec<&str> = EventType::PROPOSAL_EVENTS
        .iter()
        .map(|e| e.as_str())
        .collect();
    for (i, item) in items.iter().enumerate() {
        let p = join_index(&s.at("events"), i);
        match item.as_str() {
            Some(name) => match EventType::parse(name) {
                Some(e) => {
                    out.insert(e);
                }
                None if name.contains('.') && !name.starts_with("proposal.") => r.warning(
                    p,
                    format!("Airlock records no `{name}` event; this entry is ignored"),
                    format!("remove it; Airlock's events are {}", names.join(", ")),
                ),
                None => r.error(
                    p,
                    format!("unknown event `{}`", name.escape_debug()),
                    format!("use one of {}", names.join(", ")),
                ),
            },
            None => r.error(
                p,
                format!("expected an event name, found {}", short(item)),
                format!("use one of {}", names.join(", ")),
            ),
        }
    }
    if out.is_empty() {
        r.error(
            s.at("events"),
            "this sink would receive no event",
            format!(
                "list at least one of {}, or remove `events` to receive them all",
                names.join(", ")
            ),
        );
    }
    Some(out)
}

fn parse_capabilities(
    r: &mut Report,
    s: &Obj,
    capability_names: &BTreeSet<String>,
) -> Option<BTreeSet<String>> {
    let items = s.array(r, "capabilities")?;
    let mut out = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let p = join_index(&s.at("capabilities"), i);
        match item.as_str() {
            Some(name) if capability_names.contains(name) => {
                out.insert(name.to_owned());
            }
            Some(name) => r.error(
                p,
                format!("no capability named `{}`", name.escape_debug()),
                "name a capability of this config, or remove `capabilities` to hear about every one",
            ),
            None => r.error(
                p,
                format!("expected a capability name, found {}", short(item)),
                "write the capability's name as a string",
            ),
        }
    }
    if items.is_empty() {
        r.error(
            s.at("capabilities"),
            "an empty list would silence this sink",
            "name at least one capability, or remove `capabilities` to hear about every one",
        );
    }
    Some(out)
}

fn parse_webhook(r: &mut Report, s: &Obj) -> Option<WebhookSpec> {
    s.refuse_keys(r, &["path", "destination"], "a webhook sink");
    let url_env = s.req_env_name(
        r,
        "url_env",
        "add \"url_env\": the variable (or systemd credential) holding the webhook's URL",
    );
    let signing_secret_env = s.env_name(r, "signing_secret_env");
    let format = match s.string(r, "format").as_deref() {
        None | Some("cloudevents") => PayloadFormat::CloudEvents,
        Some("slack") => PayloadFormat::Slack,
        Some(other) => {
            r.error(
                s.at("format"),
                format!("unknown payload format `{}`", other.escape_debug()),
                "use \"cloudevents\" (signed CloudEvents JSON) or \"slack\" ({\"text\": …})",
            );
            PayloadFormat::CloudEvents
        }
    };
    if format == PayloadFormat::CloudEvents
        && signing_secret_env.is_none()
        && !s.has("signing_secret_env")
    {
        r.error(
            s.at("signing_secret_env"),
            "a webhook must be signed: `signing_secret_env` is missing",
            "add \"signing_secret_env\": the variable (or systemd credential) holding at least 32 random bytes; only \"format\": \"slack\" may go unsigned (its URL is its credential)",
        );
    }
    let timeout_ms = s
        .integer(r, "timeout_ms", 100, MAX_TIMEOUT_MS)
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    let max_attempts = s
        .integer(r, "max_attempts", 1, MAX_ATTEMPTS)
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let allow_private_destinations = s.boolean(r, "allow_private_destinations").unwrap_or(false);
    let mut private_host_allowlist = Vec::new();
    if let Some(items) = s.array(r, "private_host_allowlist") {
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(h) if is_host_name(h) => private_host_allowlist.push(h.to_ascii_lowercase()),
                _ => r.error(
                    join_index(&s.at("private_host_allowlist"), i),
                    format!("expected a host name or IP address, found {}", short(item)),
                    "write the host exactly as it appears in the URL, e.g. \"hooks.internal\" or \"10.0.0.5\"",
                ),
            }
        }
    }
    if allow_private_destinations && private_host_allowlist.is_empty() {
        r.error(
            s.at("private_host_allowlist"),
            "`allow_private_destinations` needs the private hosts listed by name",
            "add \"private_host_allowlist\": [\"the.host.in.the.url\"]",
        );
    }
    if !allow_private_destinations && !private_host_allowlist.is_empty() {
        r.warning(
            s.at("private_host_allowlist"),
            "the allowlist has no effect while `allow_private_destinations` is false",
            "set \"allow_private_destinations\": true, or remove the list",
        );
    }
    Some(WebhookSpec {
        url_env: url_env?,
        signing_secret_env,
        format,
        timeout_ms,
        max_attempts,
        allow_private_destinations,
        private_host_allowlist,
    })
}

/// A DNS name or an IP literal as written in a URL's host.
fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn parse_jsonl(r: &mut Report, s: &Obj) -> Option<JsonlTarget> {
    s.refuse_keys(r, WEBHOOK_ONLY, "a jsonl sink");
    // Airlock's `path`, or Runner's `destination` (a path, or "stdout").
    let (key, value) = match (s.string(r, "path"), s.string(r, "destination")) {
        (Some(_), Some(_)) => {
            r.error(
                s.at("destination"),
                "both `path` and `destination` are set",
                "keep one: `path` (a file) or `destination` (a file or \"stdout\")",
            );
            return None;
        }
        (Some(p), None) => ("path", p),
        (None, Some(d)) => ("destination", d),
        (None, None) => {
            s.missing(
                r,
                "path",
                "add \"path\": the file to append JSON lines to, e.g. \"/var/lib/airlock/notifications.jsonl\"",
            );
            return None;
        }
    };
    if key == "destination" && value == "stdout" {
        return Some(JsonlTarget::Stdout);
    }
    if value.contains('\0') || value.ends_with('/') {
        r.error(
            s.at(key),
            format!("`{}` is not a file path", value.escape_debug()),
            "write the path of a file, e.g. \"/var/lib/airlock/notifications.jsonl\"",
        );
        return None;
    }
    Some(JsonlTarget::Path(value))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::diagnostics::Severity;
    use crate::load::load_config;
    use crate::notify::{EventType, JsonlTarget, PayloadFormat, SinkKind};

    fn with(notifications: Value) -> crate::load::Loaded {
        let mut v: Value = serde_json::from_str(crate::REFERENCE_CONFIG).unwrap();
        v["notifications"] = notifications;
        load_config(&v)
    }

    fn diagnostics(l: &crate::load::Loaded, severity: Severity) -> Vec<(String, String)> {
        l.report
            .diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .map(|d| (d.path.clone(), d.message.clone()))
            .collect()
    }

    fn errors(l: &crate::load::Loaded) -> Vec<(String, String)> {
        diagnostics(l, Severity::Error)
    }

    #[test]
    fn absent_is_off_and_a_full_section_loads() {
        let l = with(json!(null));
        assert!(!errors(&l).is_empty(), "null is not an object");
        let v: Value = serde_json::from_str(crate::REFERENCE_CONFIG).unwrap();
        let plain = load_config(&v).config.unwrap();
        assert!(!plain.notifications.enabled && plain.notifications.sinks.is_empty());

        let l = with(json!({
            "enabled": true,
            "sinks": [
                {"id": "ops", "type": "webhook", "url_env": "HOOK_URL", "signing_secret_env": "HOOK_SECRET",
                 "events": ["proposal.created", "proposal.review_required", "proposal.conflict"],
                 "capabilities": ["billing.propose_late_fee_waiver"], "timeout_ms": 2000, "max_attempts": 4,
                 "allow_private_destinations": true, "private_host_allowlist": ["Hooks.Internal"]},
                {"id": "chat", "type": "webhook", "url_env": "SLACK_URL", "format": "slack", "enabled": false},
                {"id": "audit", "type": "jsonl", "path": "notifications.jsonl"},
                {"id": "dev", "type": "jsonl", "destination": "stdout"}
            ]
        }));
        assert_eq!(errors(&l), vec![]);
        assert_eq!(diagnostics(&l, Severity::Warning), vec![]);
        let n = l.config.unwrap().notifications;
        assert!(n.enabled);
        assert_eq!(n.sinks.len(), 4);
        let ops = &n.sinks[0];
        assert_eq!(
            ops.events
                .as_ref()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [EventType::ProposalCreated, EventType::ProposalConflict]
        );
        assert!(
            ops.capabilities
                .as_ref()
                .unwrap()
                .contains("billing.propose_late_fee_waiver")
        );
        let SinkKind::Webhook(w) = &ops.kind else {
            panic!("webhook")
        };
        assert_eq!((w.timeout_ms, w.max_attempts), (2000, 4));
        assert_eq!(w.private_host_allowlist, ["hooks.internal"]);
        assert_eq!(w.signing_secret_env.as_deref(), Some("HOOK_SECRET"));
        let SinkKind::Webhook(chat) = &n.sinks[1].kind else {
            panic!("webhook")
        };
        assert_eq!(chat.format, PayloadFormat::Slack);
        assert_eq!((chat.timeout_ms, chat.max_attempts), (3000, 10), "defaults");
        assert!(!n.sinks[1].enabled);
        assert!(n.sinks[1].events.is_none() && n.sinks[1].capabilities.is_none());
        assert!(
            matches!(&n.sinks[2].kind, SinkKind::Jsonl(JsonlTarget::Path(p)) if p == "notifications.jsonl")
        );
        assert!(matches!(
            &n.sinks[3].kind,
            SinkKind::Jsonl(JsonlTarget::Stdout)
        ));
        assert_eq!(n.active_sinks().count(), 3);
    }

    #[test]
    fn sixteen_sinks_load_and_stdout_is_only_runners_destination() {
        let sinks: Vec<Value> = (0..16)
            .map(|i| json!({"id": format!("s{i}"), "type": "jsonl", "path": format!("f{i}.jsonl")}))
            .collect();
        let l = with(json!({"enabled": true, "sinks": sinks}));
        assert_eq!(errors(&l), vec![]);
        assert_eq!(l.config.unwrap().notifications.sinks.len(), 16);

        let l = with(json!({"enabled": true, "sinks": [
            {"id": "a", "type": "jsonl", "destination": "runner.jsonl"},
            {"id": "b", "type": "jsonl", "path": "stdout"}
        ]}));
        let n = l.config.unwrap().notifications;
        assert_eq!(
            n.sinks
                .iter()
                .map(|s| match &s.kind {
                    SinkKind::Jsonl(t) => t.clone(),
                    SinkKind::Webhook(_) => panic!("jsonl"),
                })
                .collect::<Vec<_>>(),
            [
                JsonlTarget::Path("runner.jsonl".into()),
                JsonlTarget::Path("stdout".into())
            ],
            "a destination path is a file; `path: stdout` is a file named stdout"
        );
    }

    #[test]
    fn synapsor_noise_keys_warn_and_the_section_still_loads() {
        let l = with(json!({
            "enabled": true,
            "workbench_url_env": "SYNAPSOR_WORKBENCH_URL",
            "sinks": [{
                "id": "operations", "type": "webhook", "enabled": true,
                "url_env": "SYNAPSOR_NOTIFY_WEBHOOK_URL", "signing_secret_env": "SYNAPSOR_NOTIFY_SIGNING_SECRET",
                "minimum_severity": "warning",
                "events": ["proposal.review_required", "worker.dead_lettered"],
                "environments": ["production"], "delivery": "immediate",
                "max_attempts": 5, "timeout_ms": 3000, "max_response_bytes": 1024,
                "replay_window_seconds": 300, "allow_private_destinations": false,
                "recovery_notifications": false, "budgets": {"per_minute": 10},
                "quiet_hours": {"start_utc_hour": 22, "end_utc_hour": 7}
            }]
        }));
        assert_eq!(errors(&l), vec![]);
        let warned: Vec<String> = diagnostics(&l, Severity::Warning)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for key in [
            "workbench_url_env",
            "minimum_severity",
            "environments",
            "delivery",
            "budgets",
            "quiet_hours",
            "recovery_notifications",
            "max_response_bytes",
            "replay_window_seconds",
            "events[1]",
        ] {
            assert!(warned.iter().any(|p| p.ends_with(key)), "{key}: {warned:?}");
        }
        let n = l.config.unwrap().notifications;
        assert_eq!(
            n.sinks[0]
                .events
                .as_ref()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [EventType::ProposalCreated]
        );
    }

    #[test]
    fn every_mistake_is_named() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"enabled": "yes"}),
                "$.notifications.enabled",
                "expected true or false",
            ),
            (
                json!({"sinks": {}}),
                "$.notifications.sinks",
                "expected an array",
            ),
            (
                json!({"sinks": [{"type": "webhook", "url_env": "U", "signing_secret_env": "S"}]}),
                "$.notifications.sinks[0].id",
                "missing required field `id`",
            ),
            (
                json!({"sinks": [{"id": "a b", "type": "jsonl", "path": "x"}]}),
                "$.notifications.sinks[0].id",
                "is not a valid name",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "email"}]}),
                "$.notifications.sinks[0].type",
                "unknown sink type `email`",
            ),
            (
                json!({"sinks": [{"id": "a"}]}),
                "$.notifications.sinks[0].type",
                "missing required field `type`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "signing_secret_env": "S"}]}),
                "$.notifications.sinks[0].url_env",
                "missing required field",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U"}]}),
                "$.notifications.sinks[0].signing_secret_env",
                "must be signed",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "https://x.example/hook", "signing_secret_env": "S"}]}),
                "$.notifications.sinks[0].url_env",
                "not a valid environment variable name",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url": "https://x.example/hook", "url_env": "U", "signing_secret_env": "S"}]}),
                "$.notifications.sinks[0].url",
                "inline connection details or secrets",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "format": "teams"}]}),
                "$.notifications.sinks[0].format",
                "unknown payload format `teams`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "timeout_ms": 60000}]}),
                "$.notifications.sinks[0].timeout_ms",
                "from 100 to 30000",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "max_attempts": 0}]}),
                "$.notifications.sinks[0].max_attempts",
                "from 1 to 50",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "allow_private_destinations": true}]}),
                "$.notifications.sinks[0].private_host_allowlist",
                "needs the private hosts listed",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "allow_private_destinations": true, "private_host_allowlist": ["a/b"]}]}),
                "$.notifications.sinks[0].private_host_allowlist[0]",
                "expected a host name",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "signing_secret_env": "S", "path": "x"}]}),
                "$.notifications.sinks[0].path",
                "does not apply to a webhook sink",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "url_env": "U"}]}),
                "$.notifications.sinks[0].url_env",
                "does not apply to a jsonl sink",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl"}]}),
                "$.notifications.sinks[0].path",
                "missing required field `path`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "destination": "y"}]}),
                "$.notifications.sinks[0].destination",
                "both `path` and `destination`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "dir/"}]}),
                "$.notifications.sinks[0].path",
                "is not a file path",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "events": ["proposal.deleted"]}]}),
                "$.notifications.sinks[0].events[0]",
                "unknown event `proposal.deleted`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "events": [3]}]}),
                "$.notifications.sinks[0].events[0]",
                "expected an event name",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "events": []}]}),
                "$.notifications.sinks[0].events",
                "would receive no event",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "capabilities": ["nope.cap"]}]}),
                "$.notifications.sinks[0].capabilities[0]",
                "no capability named `nope.cap`",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "capabilities": [1]}]}),
                "$.notifications.sinks[0].capabilities[0]",
                "expected a capability name",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "capabilities": []}]}),
                "$.notifications.sinks[0].capabilities",
                "would silence this sink",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x"}, {"id": "a", "type": "jsonl", "path": "y"}]}),
                "$.notifications.sinks[1].id",
                "is used twice",
            ),
            (
                json!({"sinks": [{"id": "a", "type": "jsonl", "path": "x", "colour": "red"}]}),
                "$.notifications.sinks[0].colour",
                "unknown field `colour`",
            ),
            (
                json!({"sinks": (0..17).map(|i| json!({"id": format!("s{i}"), "type": "jsonl", "path": "x"})).collect::<Vec<_>>()}),
                "$.notifications.sinks",
                "at most 16",
            ),
        ];
        for (section, path, message) in cases {
            let l = with(section.clone());
            assert!(l.config.is_none(), "{section} must not load");
            assert!(
                errors(&l)
                    .iter()
                    .any(|(p, m)| p == path && m.contains(message)),
                "{section}: wanted {path}: {message}; got {:?}",
                errors(&l)
            );
        }
    }

    #[test]
    fn off_with_sinks_and_an_idle_allowlist_warn() {
        let l = with(
            json!({"sinks": [{"id": "a", "type": "webhook", "url_env": "U", "format": "slack",
            "private_host_allowlist": ["h.internal"]}]}),
        );
        assert_eq!(errors(&l), vec![]);
        let warnings = diagnostics(&l, Severity::Warning);
        assert!(
            warnings
                .iter()
                .any(|(p, m)| p == "$.notifications.enabled" && m.contains("nothing is sent")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|(p, m)| p.ends_with("private_host_allowlist") && m.contains("no effect")),
            "{warnings:?}"
        );
        let n = l.config.unwrap().notifications;
        assert_eq!(n.active_sinks().count(), 0);
    }
}
