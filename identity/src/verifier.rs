//! One issuer's token verifier: the key cache and the signature check.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_policy::session_auth::{
    MAX_TOKEN_BYTES, SessionAuth, TokenRefusal, VerifiedClaims, algorithm_allowed, check_claims,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::jwks::{JwksError, KeySet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The token is not acceptable (the caller answers 401 or 403).
    Refused(TokenRefusal),
    /// The issuer's keys could not be had; nothing is accepted until they
    /// can (fail closed).
    KeysUnavailable,
}

impl From<TokenRefusal> for VerifyError {
    fn from(r: TokenRefusal) -> Self {
        VerifyError::Refused(r)
    }
}

#[derive(Default)]
struct Cache {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Tokens whose signature verified, remembered by their SHA-256 so that a
/// client's next requests with the same token cost a hash instead of a
/// signature check (on HTTP every request carries the token, and both
/// processes verify it). Their claims are checked again at every use.
const MAX_VERIFIED_TOKENS: usize = 4096;

/// Verified tokens' claims by the token's SHA-256.
type Remembered = HashMap<[u8; 32], Arc<Map<String, Value>>>;

/// Verifies tokens of the configured issuer.
pub struct Verifier {
    auth: SessionAuth,
    jwks_url: String,
    cache: tokio::sync::Mutex<Cache>,
    verified: std::sync::Mutex<Remembered>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.auth.issuer)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `auth` whose keys are published at `jwks_url`.
    pub fn new(auth: SessionAuth, jwks_url: String) -> Result<Verifier, JwksError> {
        if !airlock_policy::session_auth::jwks_url_allowed(&jwks_url) {
            return Err(JwksError::UrlNotAllowed);
        }
        Ok(Verifier {
            auth,
            jwks_url,
            cache: tokio::sync::Mutex::new(Cache::default()),
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn auth(&self) -> &SessionAuth {
        &self.auth
    }

    /// Fetch the keys now (at start: a wrong URL is reported before the
    /// first request, not by it).
    pub async fn prefetch(&self) -> Result<(), JwksError> {
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache).await
    }

    /// Verify `token` now.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, VerifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.verify_at(token, now).await
    }

    /// Verify `token` at `now` (seconds since the epoch): the header's
    /// algorithm is allowed, a published key signed it, and its claims pass
    /// `airlock_policy::session_auth::check_claims`.
    pub async fn verify_at(&self, token: &str, now: i64) -> Result<VerifiedClaims, VerifyError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&digest)
            .cloned();
        if let Some(claims) = known {
            return Ok(check_claims(&self.auth, &claims, now)?);
        }
        let claims = self.verify_signature(token).await?;
        let verified = check_claims(&self.auth, &claims, now)?;
        let mut remembered = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if remembered.len() >= MAX_VERIFIED_TOKENS {
            // Tokens are short-lived: forgetting them all costs one
            // signature check each.
            remembered.clear();
        }
        remembered.insert(digest, Arc::new(claims));
        Ok(verified)
    }

    /// The claims of `token` if its algorithm is allowed and a published
    /// key signed it.
    async fn verify_signature(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        let (alg, kid) = header_of(token)?;
        if !algorithm_allowed(&self.auth, &alg) {
            return Err(TokenRefusal::AlgorithmNotAllowed.into());
        }
        let algorithm = Algorithm::from_str(&alg).map_err(|_| TokenRefusal::AlgorithmNotAllowed)?;
        let keys = self.keys_for(kid.as_deref(), &alg).await?;
        let Some(key) = keys.key_for(kid.as_deref(), &alg) else {
            return Err(TokenRefusal::UnknownKey.into());
        };
        // Signature and algorithm only; every claim rule is policy's.
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::Json(_)
                | jsonwebtoken::errors::ErrorKind::Base64(_)
                | jsonwebtoken::errors::ErrorKind::Utf8(_)
                | jsonwebtoken::errors::ErrorKind::InvalidToken => TokenRefusal::Malformed,
                _ => TokenRefusal::BadSignature,
            },
        )?;
        Ok(data.claims)
    }

    /// The current key set, fetched when absent or older than
    /// `jwks_cache_seconds`, and fetched once more for an unknown `kid` when
    /// the last fetch is older than `jwks_cooldown_seconds`.
    async fn keys_for(&self, kid: Option<&str>, alg: &str) -> Result<Arc<KeySet>, VerifyError> {
        let mut cache = self.cache.lock().await;
        let max_age = Duration::from_secs(self.auth.jwks_cache_seconds);
        let stale = cache.fetched_at.is_none_or(|t| t.elapsed() >= max_age);
        if stale {
            if self.cooled_down(&cache)
                && let Err(e) = self.refresh(&mut cache).await
            {
                tracing::warn!(error = %e, "the issuer's keys could not be refreshed; tokens are refused until they can");
            }
            // Keys past their age are not used, even if the refresh failed.
            if cache.fetched_at.is_none_or(|t| t.elapsed() >= max_age) {
                return Err(VerifyError::KeysUnavailable);
            }
        }
        let keys = cache.keys.clone().ok_or(VerifyError::KeysUnavailable)?;
        if keys.key_for(kid, alg).is_none() && self.cooled_down(&cache) {
            // A new signing key: look once more, at most once per cooldown.
            match self.refresh(&mut cache).await {
                Ok(()) => return cache.keys.clone().ok_or(VerifyError::KeysUnavailable),
                Err(e) => tracing::warn!(error = %e, "the issuer's keys could not be refreshed"),
            }
        }
        Ok(keys)
    }

    fn cooled_down(&self, cache: &Cache) -> bool {
        let cooldown = Duration::from_secs(self.auth.jwks_cooldown_seconds);
        cache.last_attempt.is_none_or(|t| t.elapsed() >= cooldown)
    }

    async fn refresh(&self, cache: &mut Cache) -> Result<(), JwksError> {
        cache.last_attempt = Some(Instant::now());
        let keys = KeySet::fetch(
            &self.jwks_url,
            self.auth.max_response_bytes,
            Duration::from_millis(self.auth.fetch_timeout_ms),
        )
        .await?;
        cache.keys = Some(Arc::new(keys));
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }
}

/// The header's `alg` and `kid`, read before any key is chosen. A token
/// of more or fewer than three parts, a header that is not a JSON object,
/// or one with critical extensions (`crit`, which nothing here
/// understands) is malformed.
fn header_of(token: &str) -> Result<(String, Option<String>), TokenRefusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRefusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRefusal::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenRefusal::Malformed)?;
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(TokenRefusal::Malformed);
    };
    if h.contains_key("crit") {
        return Err(TokenRefusal::Malformed);
    }
    let alg = h
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenRefusal::Malformed)?
        .to_owned();
    let kid = match h.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenRefusal::Malformed),
    };
    Ok((alg, kid))
}
