//! The closed set of error codes, each with a human message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every error the executor can answer with. Closed: a peer never sees a
/// stack trace or an internal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `hello` named a protocol this executor does not speak.
    UnsupportedVersion,
    /// A request came before `hello`, or `hello` came twice.
    HandshakeRequired,
    /// `hello` named a role other than the socket's.
    RoleMismatch,
    /// The peer's OS identity may not use this socket.
    UnauthorizedPeer,
    /// The message is not allowed for this connection's role.
    Forbidden,
    /// The frame was not one valid, strict JSON object of a known shape.
    MalformedFrame,
    /// The frame's length prefix exceeds the limit.
    FrameTooLarge,
    /// The `type` is not a message of this protocol.
    UnknownMessage,
    /// The message is well-formed but a field is invalid.
    InvalidRequest,
    /// The change set breaks the executor's policy; `details` lists why.
    PolicyViolation,
    /// The connection may not act for that tenant.
    TenantNotAllowed,
    /// Evidence is required but missing, unknown or does not match.
    EvidenceRequired,
    /// No proposal or evidence with that id (for this peer).
    NotFound,
    /// The proposal is not in a state that allows this.
    InvalidState,
    /// The proposal expired before it was approved or applied.
    Expired,
    /// The approver lacks the capability's required role.
    RoleRequired,
    /// The ledger refused secret-looking material.
    SecretMaterial,
    /// The ledger's record of the proposal does not verify (rows were
    /// added, removed or edited outside the executor); nothing was done.
    LedgerTampered,
    /// The capability's reviewed definition in the executor's config is no
    /// longer the one the proposal was recorded under; propose again.
    ConfigChanged,
    /// The capability is disabled for this executor's lifetime: its table no
    /// longer matches the config's schema lock (`airlock.schema_lock`), or
    /// could not be read to check it.
    SchemaDrift,
    /// Too many connections or requests; try again later.
    Busy,
    /// This peer exceeded its configured rate or daily volume of evidence
    /// or proposals (`airlock.limits`); `details.retry_after_ms` says when
    /// it may try again.
    RateLimited,
    /// The evidence or change set is larger than the configured maximum
    /// (`airlock.limits`); nothing was stored.
    TooLarge,
    /// The executor is shutting down.
    ShuttingDown,
    /// Something failed inside the executor; details are in its log only.
    Internal,
    /// This OS user has already approved this proposal; a quorum counts
    /// distinct approvers, so the vote was not counted again.
    AlreadyVoted,
    /// The proposal's target or a reviewed dependency row changed since
    /// the proposal was made: the approval was not recorded and the
    /// proposal is now a terminal `conflict`.
    Stale,
    /// The source could not be re-read to check the proposal's rows: the
    /// approval was not recorded and the proposal is still pending.
    SourceUnavailable,
    /// The Explore plan is not one the boundary allows; `details` has the
    /// plan error's code and path. No query ran.
    PlanRefused,
    /// A Scoped Explore budget of this tenant and principal is used up
    /// (`details.budget`, `details.retry_after_ms`). No query ran.
    BudgetExhausted,
    /// Releasing this Explore result would expose a suppressed group by
    /// subtraction from another result already released over the same
    /// cohort; nothing was released.
    ComplementaryRelease,
}

impl ErrorCode {
    /// Every code, for documentation coverage tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::UnsupportedVersion,
        ErrorCode::HandshakeRequired,
        ErrorCode::RoleMismatch,
        ErrorCode::UnauthorizedPeer,
        ErrorCode::Forbidden,
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownMessage,
        ErrorCode::InvalidRequest,
        ErrorCode::PolicyViolation,
        ErrorCode::TenantNotAllowed,
        ErrorCode::EvidenceRequired,
        ErrorCode::NotFound,
        ErrorCode::InvalidState,
        ErrorCode::Expired,
        ErrorCode::RoleRequired,
        ErrorCode::SecretMaterial,
        ErrorCode::LedgerTampered,
        ErrorCode::ConfigChanged,
        ErrorCode::SchemaDrift,
        ErrorCode::Busy,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::AlreadyVoted,
        ErrorCode::Stale,
        ErrorCode::SourceUnavailable,
        ErrorCode::PlanRefused,
        ErrorCode::BudgetExhausted,
        ErrorCode::ComplementaryRelease,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::HandshakeRequired => "handshake_required",
            ErrorCode::RoleMismatch => "role_mismatch",
            ErrorCode::UnauthorizedPeer => "unauthorized_peer",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PolicyViolation => "policy_violation",
            ErrorCode::TenantNotAllowed => "tenant_not_allowed",
            ErrorCode::EvidenceRequired => "evidence_required",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::Expired => "expired",
            ErrorCode::RoleRequired => "role_required",
            ErrorCode::SecretMaterial => "secret_material",
            ErrorCode::LedgerTampered => "ledger_tampered",
            ErrorCode::ConfigChanged => "config_changed",
            ErrorCode::SchemaDrift => "schema_drift",
            ErrorCode::Busy => "busy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::AlreadyVoted => "already_voted",
            ErrorCode::Stale => "stale",
            ErrorCode::SourceUnavailable => "source_unavailable",
            ErrorCode::PlanRefused => "plan_refused",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::ComplementaryRelease => "complementary_release",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of an `error` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For a person: what went wrong and what to do.
    pub message: String,
    /// Structured specifics (e.g. the list of policy violations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ErrorBody {
        self.details = Some(details);
        self
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code and its wire name, written out: the wire names are the
    /// contract, so a renamed variant or a typo must fail here.
    const WIRE_NAMES: &[(ErrorCode, &str)] = &[
        (ErrorCode::UnsupportedVersion, "unsupported_version"),
        (ErrorCode::HandshakeRequired, "handshake_required"),
        (ErrorCode::RoleMismatch, "role_mismatch"),
        (ErrorCode::UnauthorizedPeer, "unauthorized_peer"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::MalformedFrame, "malformed_frame"),
        (ErrorCode::FrameTooLarge, "frame_too_large"),
        (ErrorCode::UnknownMessage, "unknown_message"),
        (ErrorCode::InvalidRequest, "invalid_request"),
        (ErrorCode::PolicyViolation, "policy_violation"),
        (ErrorCode::TenantNotAllowed, "tenant_not_allowed"),
        (ErrorCode::EvidenceRequired, "evidence_required"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::InvalidState, "invalid_state"),
        (ErrorCode::Expired, "expired"),
        (ErrorCode::RoleRequired, "role_required"),
        (ErrorCode::SecretMaterial, "secret_material"),
        (ErrorCode::LedgerTampered, "ledger_tampered"),
        (ErrorCode::ConfigChanged, "config_changed"),
        (ErrorCode::SchemaDrift, "schema_drift"),
        (ErrorCode::Busy, "busy"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::ShuttingDown, "shutting_down"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::AlreadyVoted, "already_voted"),
        (ErrorCode::Stale, "stale"),
        (ErrorCode::SourceUnavailable, "source_unavailable"),
        (ErrorCode::PlanRefused, "plan_refused"),
        (ErrorCode::BudgetExhausted, "budget_exhausted"),
        (ErrorCode::ComplementaryRelease, "complementary_release"),
    ];

    #[test]
    fn every_code_has_its_literal_wire_name_in_as_str_display_and_serde() {
        assert_eq!(WIRE_NAMES.len(), 31);
        let listed: Vec<ErrorCode> = WIRE_NAMES.iter().map(|(c, _)| *c).collect();
        assert_eq!(listed, ErrorCode::ALL, "ALL is every code, in this order");
        for (code, name) in WIRE_NAMES {
            assert_eq!(code.as_str(), *name);
            assert_eq!(code.to_string(), *name);
            assert_eq!(serde_json::to_value(code).unwrap(), Value::from(*name));
            let back: ErrorCode = serde_json::from_value(Value::from(*name)).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn error_body_displays_message_then_code_in_parentheses() {
        let body = ErrorBody::new(ErrorCode::NotFound, "no proposal wrp_1");
        assert_eq!(body.to_string(), "no proposal wrp_1 (not_found)");
        let body = ErrorBody::new(ErrorCode::PolicyViolation, "refused")
            .with_details(serde_json::json!({"violations": []}));
        assert_eq!(body.to_string(), "refused (policy_violation)");
        assert_eq!(body.details, Some(serde_json::json!({"violations": []})));
        assert_eq!(ErrorBody::new(ErrorCode::Busy, "").to_string(), " (busy)");
        // Every code, in the same shape.
        for (code, name) in WIRE_NAMES {
            assert_eq!(
                ErrorBody::new(*code, "m").to_string(),
                format!("m ({name})")
            );
        }
    }

    #[test]
    fn error_body_serializes_without_absent_details_and_rejects_unknown_fields() {
        let body = ErrorBody::new(ErrorCode::Internal, "x");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"internal","message":"x"}"#
        );
        assert!(
            serde_json::from_str::<ErrorBody>(r#"{"code":"internal","message":"x","trace":1}"#)
                .is_err()
        );
    }
}
