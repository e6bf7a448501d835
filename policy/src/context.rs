//! Trusted context: who is acting, for which tenant. It never comes from the
//! model (invariant 3): the caller resolves it from its own environment (the
//! look-up is injected, so this stays pure).

use serde::{Deserialize, Serialize};

use crate::config::{ContextProvider, ContextSpec, ValueSource};

/// Longest tenant id or principal accepted.
pub const MAX_CONTEXT_VALUE_LEN: usize = 128;
/// Principal used when the config names no principal source.
pub const DEFAULT_PRINCIPAL: &str = "unspecified";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedContext {
    pub tenant_id: String,
    pub principal: String,
    pub source: ContextProvider,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error(
        "the trusted-context variable {0} is not set; set it in the proposer's environment (e.g. {0}=acme)"
    )]
    MissingEnv(String),
    #[error(
        "the trusted-context value for {0} is empty, longer than {MAX_CONTEXT_VALUE_LEN} characters, or has control characters"
    )]
    InvalidValue(String),
    #[error("the trusted context has no tenant source; set `values.tenant_id_env` in the config")]
    NoTenant,
}

/// Resolve `spec`, reading environment variables through `lookup`.
pub fn resolve_context(
    spec: &ContextSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<TrustedContext, ContextError> {
    let get = |source: &ValueSource| -> Result<Option<String>, ContextError> {
        let (label, value) = match source {
            ValueSource::Unset => return Ok(None),
            ValueSource::Static(v) => ("the static context value", v.clone()),
            ValueSource::Env(name) => (
                name.as_str(),
                lookup(name).ok_or_else(|| ContextError::MissingEnv(name.clone()))?,
            ),
        };
        if is_valid_context_value(&value) {
            Ok(Some(value))
        } else {
            Err(ContextError::InvalidValue(label.to_owned()))
        }
    };
    let tenant_id = get(&spec.tenant)?.ok_or(ContextError::NoTenant)?;
    let principal = get(&spec.principal)?.unwrap_or_else(|| DEFAULT_PRINCIPAL.to_owned());
    Ok(TrustedContext {
        tenant_id,
        principal,
        source: spec.provider,
    })
}

/// Non-empty, at most 128 characters, no control characters.
pub fn is_valid_context_value(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= MAX_CONTEXT_VALUE_LEN && !v.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_spec() -> ContextSpec {
        ContextSpec {
            provider: ContextProvider::Environment,
            tenant: ValueSource::Env("T".into()),
            principal: ValueSource::Env("P".into()),
        }
    }

    #[test]
    fn resolves_from_injected_environment() {
        let ctx = resolve_context(&env_spec(), |k| {
            Some(if k == "T" { "acme" } else { "ann" }.into())
        })
        .unwrap();
        assert_eq!(ctx.tenant_id, "acme");
        assert_eq!(ctx.principal, "ann");
    }

    #[test]
    fn missing_or_bad_values_are_errors() {
        assert_eq!(
            resolve_context(&env_spec(), |_| None),
            Err(ContextError::MissingEnv("T".into()))
        );
        assert_eq!(
            resolve_context(&env_spec(), |_| Some("a\nb".into())),
            Err(ContextError::InvalidValue("T".into()))
        );
    }
}
