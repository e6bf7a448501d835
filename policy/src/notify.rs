//! Notifications: which ledger events notify, what a notification says,
//! which sink receives it, where a webhook may be sent and when a failed
//! delivery is tried again. The executor does the sending
//! (`executor/src/notify/`); every decision is here.
//!
//! A notification informs; it never authorizes. Nothing a receiver answers
//! is read beyond its HTTP status.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use serde_json::{Value, json};

/// `data.schema_version` of every notification body.
pub const SCHEMA_VERSION: &str = "airlock.notification.v1";
/// Default webhook timeout (connect, send and the answer's status line).
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Longest webhook timeout a config may set.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// Default attempts before a delivery is given up (`dead`).
pub const DEFAULT_MAX_ATTEMPTS: u64 = 10;
/// Most attempts a config may ask for.
pub const MAX_ATTEMPTS: u64 = 50;
/// The first retry's delay; each later one doubles, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: u64 = 1_000;
/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY_MS: u64 = 10 * 60 * 1_000;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EventType {
    #[serde(rename = "proposal.created")]
    ProposalCreated,
    #[serde(rename = "proposal.approved")]
    ProposalApproved,
    #[serde(rename = "proposal.rejected")]
    ProposalRejected,
    #[serde(rename = "proposal.expired")]
    ProposalExpired,
    #[serde(rename = "proposal.applied")]
    ProposalApplied,
    #[serde(rename = "proposal.conflict")]
    ProposalConflict,
    #[serde(rename = "proposal.failed")]
    ProposalFailed,
    /// `airlock notifications test`: carries no proposal and no data.
    #[serde(rename = "notification.test")]
    Test,
}

impl EventType {
    /// Every event a sink may subscribe to (the test event always goes).
    pub const PROPOSAL_EVENTS: [EventType; 7] = [
        EventType::ProposalCreated,
        EventType::ProposalApproved,
        EventType::ProposalRejected,
        EventType::ProposalExpired,
        EventType::ProposalApplied,
        EventType::ProposalConflict,
        EventType::ProposalFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ProposalCreated => "proposal.created",
            EventType::ProposalApproved => "proposal.approved",
            EventType::ProposalRejected => "proposal.rejected",
            EventType::ProposalExpired => "proposal.expired",
            EventType::ProposalApplied => "proposal.applied",
            EventType::ProposalConflict => "proposal.conflict",
            EventType::ProposalFailed => "proposal.failed",
            EventType::Test => "notification.test",
        }
    }

    /// A subscribable event by name. Synapsor Runner's
    /// `proposal.review_required` is Airlock's `proposal.created` (every
    /// Airlock proposal waits for a person).
    pub fn parse(name: &str) -> Option<EventType> {
        if name == "proposal.review_required" {
            return Some(EventType::ProposalCreated);
        }
        EventType::PROPOSAL_EVENTS
            .into_iter()
            .find(|e| e.as_str() == name)
    }

    /// The proposal's state once this event is recorded.
    fn state(self) -> Option<&'static str> {
        match self {
            EventType::ProposalCreated => Some("pending_approval"),
            EventType::ProposalApproved => Some("approved"),
            EventType::ProposalRejected => Some("rejected"),
            EventType::ProposalExpired => Some("expired"),
            EventType::ProposalApplied => Some("applied"),
            EventType::ProposalConflict => Some("conflict"),
            EventType::ProposalFailed => Some("failed"),
            EventType::Test => None,
        }
    }
}

/// The notification a ledger event makes, if any: `kind` is the event's
/// kind, `receipt_status` the status of a `writeback_finished` event.
pub fn event_type(kind: &str, receipt_status: Option<&str>) -> Option<EventType> {
    match (kind, receipt_status) {
        ("proposal_recorded", _) => Some(EventType::ProposalCreated),
        ("approved", _) => Some(EventType::ProposalApproved),
        ("rejected", _) => Some(EventType::ProposalRejected),
        ("expired", _) => Some(EventType::ProposalExpired),
        ("writeback_finished", Some("applied" | "already_applied")) => {
            Some(EventType::ProposalApplied)
        }
        ("writeback_finished", Some("conflict")) => Some(EventType::ProposalConflict),
        // An approval refused on a changed picture ends the proposal in
        // conflict too, before any apply.
        ("freshness_conflict", _) => Some(EventType::ProposalConflict),
        ("writeback_finished", Some("failed")) => Some(EventType::ProposalFailed),
        _ => None,
    }
}

/// The ledger event kinds that can make a notification.
pub const NOTIFYING_KINDS: [&str; 6] = [
    "proposal_recorded",
    "approved",
    "rejected",
    "expired",
    "writeback_finished",
    "freshness_conflict",
];

// ---------------------------------------------------------------------------
// The reviewed config's `notifications` section.

/// `notifications`: off unless `enabled` is true (as in Synapsor Runner).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Notifications {
    pub enabled: bool,
    pub sinks: Vec<Sink>,
}

impl Notifications {
    /// The sinks that receive notifications: none while the section is off.
    pub fn active_sinks(&self) -> impl Iterator<Item = &Sink> {
        self.sinks.iter().filter(move |s| self.enabled && s.enabled)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sink {
    pub id: String,
    pub enabled: bool,
    /// The events this sink receives; `None` is every proposal event.
    pub events: Option<BTreeSet<EventType>>,
    /// Only proposals of these capabilities; `None` is every capability.
    pub capabilities: Option<BTreeSet<String>>,
    pub kind: SinkKind,
}

#[derive(Debug, Clone, Serialize)]
pub enum SinkKind {
    /// One JSON line per notification, appended to a file the executor owns.
    Jsonl(JsonlTarget),
    Webhook(WebhookSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum JsonlTarget {
    /// Relative to the config file's directory unless absolute.
    Path(String),
    /// The executor's standard output (its logs go to standard error).
    Stdout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PayloadFormat {
    /// A CloudEvents 1.0 structured JSON body (`application/cloudevents+json`).
    CloudEvents,
    /// `{"text": …}`, which Slack (and Mattermost, Rocket.Chat) incoming webhooks post.
    Slack,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookSpec {
    /// The variable (or systemd credential) holding the URL: URLs of chat
    /// webhooks are credentials themselves, so the file never holds one.
    pub url_env: String,
    /// The variable (or systemd credential) holding the HMAC key; required
    /// unless `format` is `slack`.
    pub signing_secret_env: Option<String>,
    pub format: PayloadFormat,
    pub timeout_ms: u64,
    pub max_attempts: u64,
    /// Private and link-local addresses are refused unless this is true
    /// *and* the URL's host is in `private_host_allowlist`.
    pub allow_private_destinations: bool,
    pub private_host_allowlist: Vec<String>,
}

impl Sink {
    /// Whether this sink receives `event` about a proposal of `capability`.
    /// The test event reaches every sink.
    pub fn wants(&self, event: EventType, capability: &str) -> bool {
        if event == EventType::Test {
            return true;
        }
        self.events.as_ref().is_none_or(|e| e.contains(&event))
            && self
                .capabilities
                .as_ref()
                .is_none_or(|c| c.contains(capability))
    }
}

// ---------------------------------------------------------------------------
// What a notification says.

/// The facts of one notification: ids, names and times, never a row value,
/// an argument, a tenant or a principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Stable across retries and sinks: receivers de-duplicate on it.
    pub id: String,
    pub event: EventType,
    /// When the ledger recorded the event (RFC 3339).
    pub time: String,
    pub ledger_seq: Option<u64>,
    pub proposal: Option<ProposalFacts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProposalFacts {
    pub proposal_id: String,
    pub capability: String,
    pub proposal_hash: String,
    pub required_role: Option<String>,
    pub expires_at: String,
}

/// The id of the notification for the ledger event whose chain hash is
/// `event_hash` (`sha256:<hex>`): `ntf_` and the hash's first 32 hex digits.
pub fn notification_id(event_hash: &str) -> String {
    let hex = event_hash.strip_prefix("sha256:").unwrap_or(event_hash);
    format!("ntf_{}", hex.chars().take(32).collect::<String>())
}

impl Notice {
    /// One line for people (a chat message, a log).
    pub fn summary(&self) -> String {
        let Some(p) = &self.proposal else {
            return "Airlock test notification: this sink is reachable. It carries no data.".into();
        };
        let who = p
            .required_role
            .as_deref()
            .map_or(String::from("an approver"), |r| {
                format!("an approver with role `{r}`")
            });
        let what = match self.event {
            EventType::ProposalCreated => {
                format!("awaits approval by {who} (expires {})", p.expires_at)
            }
            EventType::ProposalApproved => "was approved and can be applied".into(),
            EventType::ProposalRejected => "was rejected".into(),
            EventType::ProposalExpired => "expired without being applied".into(),
            EventType::ProposalApplied => "was applied".into(),
            EventType::ProposalConflict => {
                "was not applied: its rows changed since the proposal (conflict)".into()
            }
            EventType::ProposalFailed => "failed to apply; it may be retried".into(),
            EventType::Test => String::new(),
        };
        format!(
            "Airlock proposal {} ({}) {what}.",
            p.proposal_id, p.capability
        )
    }

    /// The body in `format`, as the exact bytes signed and sent.
    pub fn body(&self, format: PayloadFormat) -> String {
        match format {
            PayloadFormat::CloudEvents => self.cloud_event().to_string(),
            PayloadFormat::Slack => self.slack_message().to_string(),
        }
    }

    fn cloud_event(&self) -> Value {
        let mut data = json!({
            "schema_version": SCHEMA_VERSION,
            "event": self.event.as_str(),
            "summary": self.summary(),
        });
        if let Some(seq) = self.ledger_seq {
            data["ledger_seq"] = json!(seq);
        }
        if let Some(p) = &self.proposal {
            data["proposal_id"] = json!(p.proposal_id);
            data["capability"] = json!(p.capability);
            data["state"] = json!(self.event.state());
            data["proposal_hash"] = json!(p.proposal_hash);
            data["required_role"] = json!(p.required_role);
            data["expires_at"] = json!(p.expires_at);
            data["review"] = json!(format!("airlock proposals show {}", p.proposal_id));
        }
        json!({
            "specversion": "1.0",
            "id": self.id,
            "type": format!("airlock.{}", self.event.as_str()),
            "source": "urn:airlock:executor",
            "subject": self.proposal.as_ref().map(|p| p.proposal_id.as_str()),
            "time": self.time,
            "datacontenttype": "application/json",
            "data": data,
        })
    }

    fn slack_message(&self) -> Value {
        let mut text = self.summary();
        if let Some(p) = &self.proposal {
            text.push_str(&format!(
                " Review it with `airlock proposals show {}`.",
                p.proposal_id
            ));
        }
        json!({ "text": text })
    }
}

/// The `Content-Type` of a body in `format`.
pub fn content_type(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::CloudEvents => "application/cloudevents+json",
        PayloadFormat::Slack => "application/json",
    }
}

// ---------------------------------------------------------------------------
// Where a webhook may go.

/// What an IP address reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// This host (127.0.0.0/8, ::1): local bridges.
    Loopback,
    /// RFC 1918, shared address space (100.64.0.0/10), unique local (fc00::/7).
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud instance-metadata service (169.254.169.254, 169.254.170.2,
    /// fd00:ec2::254, 100.100.100.200).
    Metadata,
    /// Unspecified, broadcast, multicast, documentation or reserved: no
    /// receiver lives there.
    Unroutable,
    Public,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unroutable => "an unroutable address",
            AddressClass::Public => "a public address",
        }
    }
}

/// The class of `ip`. An IPv4 address inside IPv6 (mapped `::ffff:a.b.c.d`
/// or NAT64 `64:ff9b::a.b.c.d`) is classed as the IPv4 address it reaches.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, d] = ip.octets();
    if matches!(
        (a, b, c, d),
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200)
    ) {
        AddressClass::Metadata
    } else if a == 127 {
        AddressClass::Loopback
    } else if a == 10
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 100 && (64..128).contains(&b))
    {
        AddressClass::Private
    } else if a == 169 && b == 254 {
        AddressClass::LinkLocal
    } else if a == 0
        || a >= 224
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && (18..20).contains(&b))
        || (a, b, c) == (192, 0, 0)
    {
        AddressClass::Unroutable
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    let embedded = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return classify_v4(embedded);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded);
    }
    if ip == Ipv6Addr::LOCALHOST {
        AddressClass::Loopback
    } else if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        AddressClass::Metadata
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_unspecified() || s[0] & 0xff00 == 0xff00 || s[..2] == [0x2001, 0x0db8] {
        AddressClass::Unroutable
    } else {
        AddressClass::Public
    }
}

/// Whether a webhook of `spec` may be sent to `ip`, which the URL's `host`
/// resolved to. Every address a name resolves to is checked, and the
/// connection goes only to checked addresses (no second look-up to rebind).
pub fn check_address(spec: &WebhookSpec, host: &str, ip: IpAddr) -> Result<(), String> {
    let class = classify(ip);
    let allowed = match class {
        AddressClass::Loopback | AddressClass::Public => true,
        AddressClass::Private | AddressClass::LinkLocal => private_allowed(spec, host),
        AddressClass::Metadata | AddressClass::Unroutable => false,
    };
    if allowed {
        return Ok(());
    }
    let fix = match class {
        AddressClass::Private | AddressClass::LinkLocal => {
            " (to send there on purpose, set \"allow_private_destinations\": true and list the host in \"private_host_allowlist\")"
        }
        _ => "; no setting allows it",
    };
    Err(format!(
        "refused: the webhook's host resolves to {}{fix}",
        class.describe()
    ))
}

fn private_allowed(spec: &WebhookSpec, host: &str) -> bool {
    spec.allow_private_destinations
        && spec
            .private_host_allowlist
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
}

/// The address a URL's host names literally (`10.0.0.5`, `[fd00::1]`), if
/// it is one: such a host is never resolved, so it is checked as it is.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether the URL's scheme may be used for `host`: `https`, or plain
/// `http` to this host (`localhost`, a loopback address) or to a private
/// host the config allows by name.
pub fn check_scheme(spec: &WebhookSpec, scheme: &str, host: &str) -> Result<(), String> {
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host_ip(host).is_some_and(|ip| classify(ip) == AddressClass::Loopback);
    match scheme {
        "https" => Ok(()),
        "http" if loopback || private_allowed(spec, host) => Ok(()),
        "http" => Err(
            "refused: plain http:// is only for this host (localhost, 127.0.0.1, [::1]) or an allow-listed private host; use https://".into(),
        ),
        _ => Err("refused: the webhook URL must start with https:// (or http:// for this host)".into()),
    }
}

/// How long to wait after the `attempts`-th failed attempt (1-based):
/// 1 s, 2 s, 4 s … doubling up to 10 minutes, plus `jitter_permille`
/// thousandths of the delay (the caller draws it from 0..=250, so that
/// sinks that failed together do not retry together).
pub fn retry_delay_ms(attempts: u64, jitter_permille: u64) -> u64 {
    let doublings = attempts.saturating_sub(1).min(20) as u32;
    let base = FIRST_RETRY_DELAY_MS
        .saturating_mul(1u64 << doublings)
        .min(MAX_RETRY_DELAY_MS);
    base + base * jitter_permille.min(1_000) / 1_000
}

/// Whether a delivery that just failed for the `attempts`-th time is given
/// up (`dead`) rather than tried again.
pub fn gives_up(attempts: u64, max_attempts: u64) -> bool {
    attempts >= max_attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WebhookSpec {
        WebhookSpec {
            url_env: "HOOK_URL".into(),
            signing_secret_env: Some("HOOK_SECRET".into()),
            format: PayloadFormat::CloudEvents,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            allow_private_destinations: false,
            private_host_allowlist: vec![],
        }
    }

    fn allowing(host: &str) -> WebhookSpec {
        WebhookSpec {
            allow_private_destinations: true,
            private_host_allowlist: vec![host.into()],
            ..spec()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_notifying_event_kind_maps_to_its_event() {
        use EventType::*;
        let cases = [
            ("proposal_recorded", None, Some(ProposalCreated)),
            ("approved", None, Some(ProposalApproved)),
            ("rejected", None, Some(ProposalRejected)),
            ("expired", None, Some(ProposalExpired)),
            ("writeback_finished", Some("applied"), Some(ProposalApplied)),
            (
                "writeback_finished",
                Some("already_applied"),
                Some(ProposalApplied),
            ),
            (
                "writeback_finished",
                Some("conflict"),
                Some(ProposalConflict),
            ),
            ("writeback_finished", Some("failed"), Some(ProposalFailed)),
            ("freshness_conflict", None, Some(ProposalConflict)),
            ("writeback_finished", Some("other"), None),
            ("writeback_finished", None, None),
            ("read_recorded", None, None),
            ("writeback_started", None, None),
            ("ledger_pruned", None, None),
        ];
        for (kind, status, want) in cases {
            assert_eq!(event_type(kind, status), want, "{kind} {status:?}");
        }
        for kind in NOTIFYING_KINDS {
            let status = (kind == "writeback_finished").then_some("applied");
            assert!(event_type(kind, status).is_some(), "{kind}");
        }
    }

    #[test]
    fn event_names_round_trip_and_synapsor_review_required_is_created() {
        for e in EventType::PROPOSAL_EVENTS {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                json!(e.as_str()),
                "serialized as its name"
            );
            assert!(e.state().is_some());
        }
        assert_eq!(
            EventType::parse("proposal.review_required"),
            Some(EventType::ProposalCreated)
        );
        assert_eq!(
            EventType::parse("notification.test"),
            None,
            "not subscribable"
        );
        assert_eq!(EventType::parse("worker.dead_lettered"), None);
        assert_eq!(EventType::Test.as_str(), "notification.test");
        assert_eq!(EventType::Test.state(), None);
    }

    fn sink(events: Option<&[EventType]>, caps: Option<&[&str]>) -> Sink {
        Sink {
            id: "ops".into(),
            enabled: true,
            events: events.map(|e| e.iter().copied().collect()),
            capabilities: caps.map(|c| c.iter().map(|s| s.to_string()).collect()),
            kind: SinkKind::Jsonl(JsonlTarget::Stdout),
        }
    }

    #[test]
    fn a_sink_receives_only_its_events_and_capabilities() {
        use EventType::*;
        let all = sink(None, None);
        assert!(all.wants(ProposalFailed, "any.cap"));
        let some = sink(Some(&[ProposalCreated]), Some(&["billing.waive"]));
        assert!(some.wants(ProposalCreated, "billing.waive"));
        assert!(
            !some.wants(ProposalApplied, "billing.waive"),
            "event filter"
        );
        assert!(
            !some.wants(ProposalCreated, "orders.cancel"),
            "capability filter"
        );
        assert!(
            some.wants(Test, "orders.cancel"),
            "the test event reaches every sink"
        );
    }

    #[test]
    fn only_enabled_sinks_of_an_enabled_section_are_active() {
        let mut off = sink(None, None);
        off.enabled = false;
        let mut n = Notifications {
            enabled: false,
            sinks: vec![sink(None, None), off],
        };
        assert_eq!(n.active_sinks().count(), 0, "the section is off");
        n.enabled = true;
        let active: Vec<bool> = n.active_sinks().map(|s| s.enabled).collect();
        assert_eq!(active, [true]);
        assert!(!Notifications::default().enabled, "off by default");
    }

    #[test]
    fn addresses_are_classed() {
        use AddressClass::*;
        let cases = [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.15.0.1", Public),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("192.169.1.1", Public),
            ("100.64.0.1", Private),
            ("100.127.255.1", Private),
            ("100.63.0.1", Public),
            ("100.128.0.1", Public),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("169.254.1.1", LinkLocal),
            ("169.1.2.3", Public),
            ("8.254.0.1", Public),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Public),
            ("169.254.169.254", Metadata),
            ("169.254.170.2", Metadata),
            ("100.100.100.200", Metadata),
            ("fd00:ec2::254", Metadata),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:127.0.0.1", Loopback),
            ("64:ff9b::a00:1", Private),
            ("64:ff9b::808:808", Public),
            ("0.0.0.0", Unroutable),
            ("0.1.2.3", Unroutable),
            ("255.255.255.255", Unroutable),
            ("224.0.0.1", Unroutable),
            ("239.1.1.1", Unroutable),
            ("192.0.2.1", Unroutable),
            ("198.51.100.7", Unroutable),
            ("203.0.113.9", Unroutable),
            ("198.18.0.1", Unroutable),
            ("198.19.255.1", Unroutable),
            ("198.20.0.1", Public),
            ("192.0.0.8", Unroutable),
            ("::", Unroutable),
            ("ff02::1", Unroutable),
            ("2001:db8::1", Unroutable),
            ("2001:db9::1", Public),
            ("8.8.8.8", Public),
            ("2606:4700::1111", Public),
            ("223.255.255.255", Public),
            ("1.0.0.1", Public),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn private_and_link_local_need_the_switch_and_the_host_by_name() {
        let refused = check_address(&spec(), "hooks.internal", ip("10.0.0.5")).unwrap_err();
        assert!(refused.contains("a private address"), "{refused}");
        assert!(refused.contains("private_host_allowlist"), "{refused}");
        assert!(
            check_address(
                &allowing("hooks.internal"),
                "HOOKS.internal",
                ip("10.0.0.5")
            )
            .is_ok()
        );
        assert!(
            check_address(
                &allowing("hooks.internal"),
                "hooks.internal",
                ip("169.254.3.3")
            )
            .is_ok()
        );
        assert!(
            check_address(
                &allowing("other.internal"),
                "hooks.internal",
                ip("10.0.0.5")
            )
            .is_err(),
            "another host"
        );
        let switch_only = WebhookSpec {
            allow_private_destinations: false,
            ..allowing("hooks.internal")
        };
        assert!(check_address(&switch_only, "hooks.internal", ip("10.0.0.5")).is_err());
    }

    #[test]
    fn metadata_and_unroutable_are_never_allowed() {
        let all = allowing("169.254.169.254");
        for a in ["169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1"] {
            let e = check_address(&all, "169.254.169.254", ip(a)).unwrap_err();
            assert!(e.contains("no setting allows it"), "{a}: {e}");
        }
        assert!(
            check_address(&spec(), "x", ip("169.254.169.254"))
                .unwrap_err()
                .contains("metadata")
        );
    }

    #[test]
    fn loopback_and_public_addresses_are_allowed() {
        for a in ["127.0.0.1", "::1", "93.184.216.34"] {
            assert!(check_address(&spec(), "h", ip(a)).is_ok(), "{a}");
        }
    }

    #[test]
    fn a_literal_host_is_its_address_and_a_name_is_none() {
        assert_eq!(host_ip("10.0.0.5"), Some(ip("10.0.0.5")));
        assert_eq!(host_ip("[fd00::1]"), Some(ip("fd00::1")));
        assert_eq!(host_ip("hooks.example.com"), None);
        assert_eq!(host_ip("localhost"), None);
    }

    #[test]
    fn plain_http_only_to_this_host_or_an_allowed_private_host() {
        let s = spec();
        assert!(check_scheme(&s, "https", "hooks.example.com").is_ok());
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", "127.1.2.3"] {
            assert!(check_scheme(&s, "http", host).is_ok(), "{host}");
        }
        for host in [
            "hooks.example.com",
            "10.0.0.5",
            "[::2]",
            "localhost.evil.com",
        ] {
            let e = check_scheme(&s, "http", host).unwrap_err();
            assert!(e.contains("use https://"), "{host}: {e}");
        }
        assert!(check_scheme(&allowing("bridge.lan"), "http", "bridge.lan").is_ok());
        let e = check_scheme(&s, "ftp", "localhost").unwrap_err();
        assert!(e.contains("must start with https://"), "{e}");
    }

    #[test]
    fn retries_back_off_doubling_to_ten_minutes() {
        assert_eq!(retry_delay_ms(1, 0), 1_000);
        assert_eq!(retry_delay_ms(2, 0), 2_000);
        assert_eq!(retry_delay_ms(3, 0), 4_000);
        assert_eq!(retry_delay_ms(10, 0), 512_000);
        assert_eq!(retry_delay_ms(11, 0), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(64, 0), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(0, 0), 1_000);
        assert_eq!(retry_delay_ms(1, 250), 1_250);
        assert_eq!(retry_delay_ms(3, 500), 6_000);
        assert_eq!(
            retry_delay_ms(1, 5_000),
            2_000,
            "jitter is capped at the delay"
        );
        assert!(!gives_up(9, 10));
        assert!(gives_up(10, 10));
        assert!(gives_up(11, 10));
    }

    fn created() -> Notice {
        Notice {
            id: notification_id(
                "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
            event: EventType::ProposalCreated,
            time: "2026-12-06T10:00:00.000Z".into(),
            ledger_seq: Some(7),
            proposal: Some(ProposalFacts {
                proposal_id: "wrp_1".into(),
                capability: "billing.waive_fee".into(),
                proposal_hash: "sha256:abc".into(),
                required_role: Some("billing".into()),
                expires_at: "2026-12-13T10:00:00.000Z".into(),
            }),
        }
    }

    #[test]
    fn a_notification_id_is_the_event_hash_prefix() {
        assert_eq!(created().id, "ntf_00112233445566778899aabbccddeeff");
        assert_eq!(notification_id("abcdef"), "ntf_abcdef");
    }

    #[test]
    fn the_cloud_event_carries_ids_and_names_only() {
        let body: Value =
            serde_json::from_str(&created().body(PayloadFormat::CloudEvents)).unwrap();
        assert_eq!(
            body,
            json!({
                "specversion": "1.0",
                "id": "ntf_00112233445566778899aabbccddeeff",
                "type": "airlock.proposal.created",
                "source": "urn:airlock:executor",
                "subject": "wrp_1",
                "time": "2026-12-06T10:00:00.000Z",
                "datacontenttype": "application/json",
                "data": {
                    "schema_version": "airlock.notification.v1",
                    "event": "proposal.created",
                    "summary": "Airlock proposal wrp_1 (billing.waive_fee) awaits approval by an approver with role `billing` (expires 2026-12-13T10:00:00.000Z).",
                    "ledger_seq": 7,
                    "proposal_id": "wrp_1",
                    "capability": "billing.waive_fee",
                    "state": "pending_approval",
                    "proposal_hash": "sha256:abc",
                    "required_role": "billing",
                    "expires_at": "2026-12-13T10:00:00.000Z",
                    "review": "airlock proposals show wrp_1",
                }
            })
        );
        assert_eq!(
            content_type(PayloadFormat::CloudEvents),
            "application/cloudevents+json"
        );
        assert_eq!(content_type(PayloadFormat::Slack), "application/json");
    }

    #[test]
    fn each_event_has_its_own_summary_and_state() {
        use EventType::*;
        let cases = [
            (
                ProposalApproved,
                "was approved and can be applied",
                "approved",
            ),
            (ProposalRejected, "was rejected", "rejected"),
            (ProposalExpired, "expired without being applied", "expired"),
            (ProposalApplied, "was applied", "applied"),
            (
                ProposalConflict,
                "was not applied: its rows changed since the proposal (conflict)",
                "conflict",
            ),
            (
                ProposalFailed,
                "failed to apply; it may be retried",
                "failed",
            ),
        ];
        for (event, text, state) in cases {
            let n = Notice { event, ..created() };
            let body: Value = serde_json::from_str(&n.body(PayloadFormat::CloudEvents)).unwrap();
            assert_eq!(
                body["data"]["summary"],
                format!("Airlock proposal wrp_1 (billing.waive_fee) {text}."),
            );
            assert_eq!(body["data"]["state"], state);
            assert_eq!(body["type"], format!("airlock.{}", event.as_str()));
        }
        let no_role = Notice {
            proposal: created().proposal.map(|p| ProposalFacts {
                required_role: None,
                ..p
            }),
            ..created()
        };
        assert!(
            no_role
                .summary()
                .contains("awaits approval by an approver (expires"),
            "{}",
            no_role.summary()
        );
    }

    #[test]
    fn the_test_event_and_the_slack_message() {
        let test = Notice {
            id: "ntf_test".into(),
            event: EventType::Test,
            time: "t".into(),
            ledger_seq: None,
            proposal: None,
        };
        let body: Value = serde_json::from_str(&test.body(PayloadFormat::CloudEvents)).unwrap();
        assert_eq!(body["type"], "airlock.notification.test");
        assert_eq!(body["subject"], Value::Null);
        assert_eq!(
            body["data"],
            json!({"schema_version": SCHEMA_VERSION, "event": "notification.test", "summary": test.summary()})
        );
        let slack: Value = serde_json::from_str(&created().body(PayloadFormat::Slack)).unwrap();
        assert_eq!(
            slack,
            json!({"text": format!("{} Review it with `airlock proposals show wrp_1`.", created().summary())})
        );
        let slack_test: Value = serde_json::from_str(&test.body(PayloadFormat::Slack)).unwrap();
        assert_eq!(slack_test, json!({"text": test.summary()}));
    }
}
