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
    #[error(
        "the trusted context comes from each request's verified token (`http_claims`); serve it over HTTP (`--transport http`), where every request carries one"
    )]
    PerRequest,
}

/// Resolve `spec`, reading environment variables through `lookup`.
pub fn resolve_context(
    spec: &ContextSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<TrustedContext, ContextError> {
    let get = |source: &ValueSource| -> Result<Option<String>, ContextError> {
        let (label, value) = match source {
            ValueSource::Unset => return Ok(None),
            ValueSource::Claim(_) => return Err(ContextError::PerRequest),
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

    fn spec(tenant: ValueSource, principal: ValueSource) -> ContextSpec {
        ContextSpec {
            provider: ContextProvider::StaticDev,
            tenant,
            principal,
        }
    }

    #[test]
    fn context_values_are_non_empty_short_and_free_of_control_characters() {
        assert_eq!(MAX_CONTEXT_VALUE_LEN, 128);
        assert!(is_valid_context_value("acme"));
        assert!(is_valid_context_value("a"));
        assert!(is_valid_context_value(&"a".repeat(128)));
        assert!(
            is_valid_context_value(&"é".repeat(128)),
            "characters, not bytes"
        );
        assert!(is_valid_context_value("tenant with spaces/ünï"));
        assert!(!is_valid_context_value(""));
        assert!(!is_valid_context_value(&"a".repeat(129)));
        assert!(!is_valid_context_value(&"é".repeat(129)));
        for bad in ["a\nb", "a\tb", "\u{0}", "acme\u{7f}", "\u{85}acme"] {
            assert!(!is_valid_context_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn static_values_and_the_default_principal() {
        let ctx = resolve_context(
            &spec(ValueSource::Static("acme".into()), ValueSource::Unset),
            |_| panic!("no environment look-up for static values"),
        )
        .unwrap();
        assert_eq!(
            ctx,
            TrustedContext {
                tenant_id: "acme".into(),
                principal: "unspecified".into(),
                source: ContextProvider::StaticDev,
            }
        );
        assert_eq!(DEFAULT_PRINCIPAL, "unspecified");
        let ctx = resolve_context(
            &spec(
                ValueSource::Static("acme".into()),
                ValueSource::Static("ann".into()),
            ),
            |_| None,
        )
        .unwrap();
        assert_eq!(ctx.principal, "ann");
        // The provider is carried through.
        assert_eq!(
            resolve_context(&env_spec(), |_| Some("x".into()))
                .unwrap()
                .source,
            ContextProvider::Environment
        );
    }

    #[test]
    fn every_context_error() {
        assert_eq!(
            resolve_context(
                &spec(ValueSource::Unset, ValueSource::Static("ann".into())),
                |_| None
            ),
            Err(ContextError::NoTenant)
        );
        assert_eq!(
            resolve_context(
                &spec(ValueSource::Static(String::new()), ValueSource::Unset),
                |_| None
            ),
            Err(ContextError::InvalidValue(
                "the static context value".into()
            ))
        );
        assert_eq!(
            resolve_context(
                &spec(
                    ValueSource::Static("acme".into()),
                    ValueSource::Static("x".repeat(129))
                ),
                |_| None
            ),
            Err(ContextError::InvalidValue(
                "the static context value".into()
            ))
        );
        // The principal variable is looked up too, and must be valid.
        assert_eq!(
            resolve_context(&env_spec(), |k| (k == "T").then(|| "acme".to_owned())),
            Err(ContextError::MissingEnv("P".into()))
        );
        assert_eq!(
            resolve_context(&env_spec(), |k| Some(if k == "T" {
                "acme".into()
            } else {
                String::new()
            })),
            Err(ContextError::InvalidValue("P".into()))
        );
        assert_eq!(
            ContextError::MissingEnv("T".into()).to_string(),
            "the trusted-context variable T is not set; set it in the proposer's environment (e.g. T=acme)"
        );
        assert_eq!(
            ContextError::InvalidValue("T".into()).to_string(),
            "the trusted-context value for T is empty, longer than 128 characters, or has control characters"
        );
        assert_eq!(
            ContextError::NoTenant.to_string(),
            "the trusted context has no tenant source; set `values.tenant_id_env` in the config"
        );
    }
}
