//! The issuer's public keys (a JWK Set, RFC 7517 §5): fetched over https
//! (or http on loopback) without following redirects, read up to a size
//! bound, and refused whole if any key carries private material.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

/// Members only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2,
/// §6.4): a key set that carries one was published by mistake, and its
/// keys are not trusted.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS URL must be https (or http to a loopback host)")]
    UrlNotAllowed,
    #[error("the JWKS could not be fetched: {0}")]
    Fetch(String),
    #[error("the JWKS answered with a redirect ({0}); redirects are not followed")]
    Redirect(u16),
    #[error("the JWKS answered with status {0}")]
    Status(u16),
    #[error("the JWKS is larger than session_auth.max_response_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("the JWKS is not a JSON object with a `keys` array")]
    NotAKeySet,
    #[error("the JWKS holds private key material (`{0}`); none of its keys is trusted")]
    PrivateMaterial(&'static str),
    #[error("the JWKS has no usable signature key")]
    NoUsableKeys,
}

/// One published key.
struct Key {
    decoding: DecodingKey,
    /// The key's own `alg`, when it names one.
    alg: Option<String>,
}

/// The usable signature keys of one JWKS, by `kid`.
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys published without a `kid` (usable only when the set has
    /// exactly one key and the token names none).
    unnamed: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("unnamed", &self.unnamed.len())
            .finish()
    }
}

impl KeySet {
    /// Parse a JWKS document. Keys of another use (`use` other than
    /// `sig`) or of an unsupported type are skipped.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, JwksError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotAKeySet)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        for key in keys {
            let Some(obj) = key.as_object() else {
                return Err(JwksError::NotAKeySet);
            };
            if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
                return Err(JwksError::PrivateMaterial(m));
            }
        }
        let mut set = KeySet {
            by_kid: HashMap::new(),
            unnamed: Vec::new(),
        };
        for key in keys {
            if key.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) else {
                tracing::warn!("skipping a JWKS key of an unsupported shape");
                continue;
            };
            let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
                tracing::warn!("skipping a JWKS key that does not decode");
                continue;
            };
            let entry = Key {
                decoding,
                alg: key.get("alg").and_then(Value::as_str).map(str::to_owned),
            };
            match key.get("kid").and_then(Value::as_str) {
                Some(kid) => {
                    set.by_kid.insert(kid.to_owned(), entry);
                }
                None => set.unnamed.push(entry),
            }
        }
        if set.by_kid.is_empty() && set.unnamed.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(set)
    }

    /// The key a token names, usable with `alg`: by `kid`; without one,
    /// the set's only key. A key whose own `alg` differs is not used.
    pub(crate) fn key_for(&self, kid: Option<&str>, alg: &str) -> Option<&DecodingKey> {
        let key = match kid {
            Some(kid) => self.by_kid.get(kid)?,
            None if self.by_kid.len() + self.unnamed.len() == 1 => self
                .unnamed
                .first()
                .or_else(|| self.by_kid.values().next())?,
            None => return None,
        };
        key.alg
            .as_deref()
            .is_none_or(|a| a == alg)
            .then_some(&key.decoding)
    }

    /// Fetch and parse the JWKS at `url`: no redirects, no proxy, at most
    /// `max_bytes`, within `timeout`.
    pub async fn fetch(url: &str, max_bytes: u64, timeout: Duration) -> Result<KeySet, JwksError> {
        if !airlock_policy::session_auth::jwks_url_allowed(url) {
            return Err(JwksError::UrlNotAllowed);
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        let mut response = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| JwksError::Fetch(without_url(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(JwksError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(JwksError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(JwksError::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| JwksError::Fetch(without_url(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(JwksError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }
}

/// A fetch error's text without the URL (it may carry a token in its
/// query string).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    kind.to_owned()
}
