//! Write credentials and handler secrets: from the executor's environment,
//! or from systemd credentials (`LoadCredential=NAME:…` puts the value in
//! `$CREDENTIALS_DIRECTORY/NAME`). Never from a proposer, never logged.

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "the executor has no value for {0}: set it in the executor's environment, or provide it as a systemd credential named {0} (LoadCredential=)"
    )]
    Missing(String),
}

/// The value of the secret named `name`.
pub fn read_secret(name: &str) -> Result<String, CredentialError> {
    if let Ok(v) = std::env::var(name)
        && !v.is_empty()
    {
        return Ok(v);
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = std::path::Path::new(&dir).join(name);
        if let Ok(v) = std::fs::read_to_string(path) {
            let v = v.trim_end_matches(['\n', '\r']).to_owned();
            if !v.is_empty() {
                return Ok(v);
            }
        }
    }
    Err(CredentialError::Missing(name.to_owned()))
}
