//! The credential split (invariant 1): the proposer holds the read URL and
//! trusted-context values, and nothing that carries write authority.

use std::collections::BTreeMap;

use airlock_policy::Config;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "refusing to start: the environment variable {0} is set, but it carries write authority (a write URL, handler URL, token, signing secret or command) that only the executor may hold; remove it from the proposer's environment (its value was not read)"
    )]
    WriteAuthorityPresent(String),
    #[error(
        "refusing to start: source `{source_name}` reads its URL from {var}, which is not set; export the read-only connection URL in {var}"
    )]
    MissingReadUrl { source_name: String, var: String },
}

/// Refuse if any write-authority variable named by the config is present in
/// the environment (even empty). Only names are checked, never values.
pub fn check_no_write_authority(
    cfg: &Config,
    is_set: impl Fn(&str) -> bool,
) -> Result<(), CredentialError> {
    match cfg
        .write_authority_env_names()
        .into_iter()
        .find(|name| is_set(name))
    {
        Some(name) => Err(CredentialError::WriteAuthorityPresent(name.to_owned())),
        None => Ok(()),
    }
}

/// The read URL of every source, from the environment.
pub fn read_urls(
    cfg: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, CredentialError> {
    cfg.sources
        .iter()
        .map(
            |(name, source)| match env(&source.read_url_env).filter(|v| !v.is_empty()) {
                Some(url) => Ok((name.clone(), url)),
                None => Err(CredentialError::MissingReadUrl {
                    source_name: name.clone(),
                    var: source.read_url_env.clone(),
                }),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

    #[test]
    fn a_write_variable_in_the_environment_is_refused_by_name() {
        let cfg = airlock_policy::load_config_str(REFERENCE).config.unwrap();
        let err =
            check_no_write_authority(&cfg, |k| k == "REFERENCE_POSTGRES_WRITE_URL").unwrap_err();
        assert_eq!(
            err,
            CredentialError::WriteAuthorityPresent("REFERENCE_POSTGRES_WRITE_URL".into())
        );
        assert!(err.to_string().contains("REFERENCE_POSTGRES_WRITE_URL"));
        assert!(check_no_write_authority(&cfg, |k| k == "REFERENCE_POSTGRES_READ_URL").is_ok());
    }

    #[test]
    fn a_missing_read_url_names_the_variable() {
        let cfg = airlock_policy::load_config_str(REFERENCE).config.unwrap();
        let err = read_urls(&cfg, |_| None).unwrap_err();
        assert!(err.to_string().contains("REFERENCE_POSTGRES_READ_URL"));
    }
}
