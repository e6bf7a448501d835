//! The `http_handler` executor: the application applies the approved change
//! behind its own HTTP endpoint and answers with a terminal receipt.
//!
//! The request (one per attempt; a retry reuses the idempotency key):
//!
//! * the configured method (`POST`, `PUT` or `PATCH`) to the URL from the
//!   variable named by `url_env`; no redirects are followed and no proxy is
//!   used (the bearer token goes to exactly the configured URL);
//! * body: the `synapsor.handler-writeback.v1` JSON ([`super::payload`]);
//! * `Content-Type: application/json`, `Accept: application/json`,
//!   `Idempotency-Key: <proposal_id>:<object_id>`,
//!   `Authorization: Bearer <token>` when `auth.token_env` is set;
//! * when `signing_secret_env` is set, `X-Airlock-Timestamp: <unix seconds>`
//!   and `X-Airlock-Signature: v1=<hex>`, where `<hex>` is the lowercase hex
//!   HMAC-SHA256, keyed with the secret, of `<timestamp>.<body bytes>`.
//!
//! `timeout_ms` bounds the whole exchange (connect, send, and reading the
//! response, whose body is capped at 64 KiB). Answers map to outcomes:
//!
//! | handler answer                                   | outcome                         |
//! |--------------------------------------------------|---------------------------------|
//! | 2xx + valid receipt                              | the receipt's status            |
//! | 2xx + anything else                              | failed `HANDLER_BAD_RECEIPT`    |
//! | non-2xx + valid `conflict`/`failed` receipt      | that receipt (e.g. 409 conflict)|
//! | other non-2xx                                    | failed `HANDLER_HTTP_<code>`    |
//! | no answer within `timeout_ms`                    | failed `HANDLER_TIMEOUT`        |
//! | connection refused, DNS or TLS failure           | failed `HANDLER_UNREACHABLE`    |
//!
//! A timeout or a dropped connection does not prove that nothing changed;
//! the handler may have applied the change. The retry resolves it: it
//! carries the same idempotency key, so the handler answers
//! `already_applied`.
//!
//! Details never contain the URL, the token or the signing secret: every
//! detail passes through [`super::payload::safe_text`] with those values.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_policy::config::{HttpHandlerSpec, HttpMethod};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use super::payload::{
    MAX_RECEIPT_BYTES, handler_payload, receipt_for_job, safe_text, withhold_known,
};
use super::{Outcome, ReceiptStatus, WritebackJob};

/// Header carrying the signing timestamp (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-airlock-timestamp";
/// Header carrying `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-airlock-signature";
/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_DETAIL_CHARS: usize = 500;

/// The secret values an http handler needs, read by the caller from the
/// environment or systemd credentials (this module never reads env).
#[derive(Clone)]
pub struct HttpSecrets {
    pub url: String,
    pub token: Option<String>,
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for HttpSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSecrets")
            .field("url", &"[REDACTED]")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl HttpSecrets {
    pub(crate) fn known(&self, parsed_url: Option<&reqwest::Url>) -> Vec<String> {
        let mut known = vec![self.url.clone()];
        known.extend(parsed_url.map(|u| u.to_string()));
        // A handler may echo only part of its URL ("Cannot POST /path?key=…"):
        // the path, the query, each query value and a userinfo password are
        // secret too (a path component shorter than 4 bytes is left alone).
        if let Some(u) = parsed_url {
            let path_and_query = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            };
            if path_and_query.len() > 1 {
                known.push(path_and_query);
            }
            known.extend(u.query().map(str::to_owned));
            known.extend(u.query_pairs().map(|(_, v)| v.into_owned()));
            known.extend(
                u.path_segments()
                    .into_iter()
                    .flatten()
                    .filter(|seg| seg.len() >= 8)
                    .map(str::to_owned),
            );
            // The password as written (percent-encoded) and as the server
            // receives it (decoded); `redact` covers both forms of each.
            known.extend(u.password().map(str::to_owned));
            known.extend(
                u.password()
                    .and_then(airlock_policy::secrets::percent_decode),
            );
        }
        known.extend(self.token.clone());
        known.extend(self.signing_secret.clone());
        // Longest first, so a URL that contains the token is replaced whole.
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
        known
    }
}

/// `v1=<lowercase hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// One shared client (TLS roots loaded once). Timeouts are set per request.
/// Idle connections are not kept: applies are rare, a fresh connection per
/// apply never meets a half-closed one, and the client stays usable from
/// any tokio runtime (a pooled connection belongs to the runtime that made it).
fn client() -> Result<&'static reqwest::Client, String> {
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let built = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("airlock-executor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("could not set up the HTTP client: {}", error_chain(&e)))?;
    Ok(CLIENT.get_or_init(|| built))
}

/// Send `job` to the handler and map its answer to an outcome. No field of
/// the outcome holds one of `secrets`, in any form ([`withhold_known`]).
pub async fn run(
    spec: &HttpHandlerSpec,
    executor_name: &str,
    secrets: &HttpSecrets,
    job: &WritebackJob,
) -> Outcome {
    let known = secrets.known(reqwest::Url::parse(secrets.url.trim()).ok().as_ref());
    withhold_known(exchange(spec, executor_name, secrets, job).await, &known)
}

async fn exchange(
    spec: &HttpHandlerSpec,
    executor_name: &str,
    secrets: &HttpSecrets,
    job: &WritebackJob,
) -> Outcome {
    let parsed = reqwest::Url::parse(secrets.url.trim()).ok();
    let known = secrets.known(parsed.as_ref());
    let fail = |code: &str, detail: String| {
        Outcome::failed(
            code,
            safe_text(
                &format!("handler `{executor_name}`: {detail}"),
                &known,
                MAX_DETAIL_CHARS,
            ),
        )
    };
    let Some(url) = parsed.filter(|u| matches!(u.scheme(), "http" | "https")) else {
        return fail(
            "HANDLER_BAD_URL",
            format!(
                "the value of {} is not an http:// or https:// URL",
                spec.url_env
            ),
        );
    };
    let headers = match request_headers(spec, secrets, job) {
        Ok(h) => h,
        Err(detail) => return fail("HANDLER_BAD_CREDENTIAL", detail),
    };
    let (body, headers) = match sign(headers, secrets, job) {
        Ok(x) => x,
        Err(detail) => return fail("HANDLER_BAD_CREDENTIAL", detail),
    };
    let client = match client() {
        Ok(c) => c,
        Err(detail) => return fail("HANDLER_CLIENT_ERROR", detail),
    };
    let method = match spec.method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
    };
    let timeout = Duration::from_millis(spec.timeout_ms.max(1));
    let exchange = async {
        let mut resp = client
            .request(method, url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await?;
        let status = resp.status();
        let body = read_capped(&mut resp).await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    // reqwest enforces the timeout too; this outer bound also covers the
    // time spent between chunks of a slow body.
    let (status, body) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => {
            return fail(
                "HANDLER_TIMEOUT",
                format!("no complete answer within {} ms", spec.timeout_ms),
            );
        }
        Ok(Err(e)) => {
            let (code, what) = classify_error(&e);
            return fail(code, format!("{what}: {}", error_chain(&e.without_url())));
        }
        Ok(Ok(x)) => x,
    };
    let code = status.as_u16();
    let Some(body) = body else {
        let safe_code = if status.is_success() {
            "HANDLER_BAD_RECEIPT".to_owned()
        } else {
            format!("HANDLER_HTTP_{code}")
        };
        return fail(
            &safe_code,
            format!(
                "HTTP {code} with a body over {} KiB",
                MAX_RECEIPT_BYTES / 1024
            ),
        );
    };
    let receipt = receipt_for_job(&body, job);
    if status.is_success() {
        return match receipt {
            Ok(r) => r.into_outcome(&known),
            Err(why) => fail(
                "HANDLER_BAD_RECEIPT",
                format!("HTTP {code} but the receipt is unusable: {why}"),
            ),
        };
    }
    match receipt {
        Ok(r) if matches!(r.status, ReceiptStatus::Conflict | ReceiptStatus::Failed) => {
            let mut outcome = r.into_outcome(&known);
            if outcome.status == ReceiptStatus::Failed
                && outcome.safe_error_code.as_deref() == Some("HANDLER_FAILED")
            {
                outcome.safe_error_code = Some(format!("HANDLER_HTTP_{code}"));
            }
            outcome
        }
        Ok(r) => fail(
            &format!("HANDLER_HTTP_{code}"),
            format!(
                "HTTP {code} with a receipt saying `{}`; an error status cannot confirm a change (a retry with the same idempotency key will tell)",
                r.status.as_str()
            ),
        ),
        Err(_) => fail(
            &format!("HANDLER_HTTP_{code}"),
            format!("HTTP {code}{}", body_snippet(&body)),
        ),
    }
}

fn request_headers(
    spec: &HttpHandlerSpec,
    secrets: &HttpSecrets,
    job: &WritebackJob,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let key = HeaderValue::from_str(&job.idempotency_key)
        .map_err(|_| "the idempotency key is not a valid HTTP header value".to_owned())?;
    headers.insert(HeaderName::from_static(IDEMPOTENCY_HEADER), key);
    if let Some(token) = &secrets.token {
        let name = spec.token_env.as_deref().unwrap_or("the token variable");
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            format!("the value of {name} has characters not allowed in an HTTP header")
        })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Serialize the payload and, with a signing secret, add the signature
/// headers over exactly those bytes.
fn sign(
    mut headers: HeaderMap,
    secrets: &HttpSecrets,
    job: &WritebackJob,
) -> Result<(Vec<u8>, HeaderMap), String> {
    let body = serde_json::to_vec(&handler_payload(job, false))
        .map_err(|_| "could not serialize the payload".to_owned())?;
    if let Some(secret) = &secrets.signing_secret {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sig = signature(secret.as_bytes(), ts, &body);
        let ts_value = HeaderValue::from_str(&ts.to_string())
            .map_err(|_| "could not build the timestamp header".to_owned())?;
        let sig_value = HeaderValue::from_str(&sig)
            .map_err(|_| "could not build the signature header".to_owned())?;
        headers.insert(HeaderName::from_static(TIMESTAMP_HEADER), ts_value);
        headers.insert(HeaderName::from_static(SIGNATURE_HEADER), sig_value);
    }
    Ok((body, headers))
}

/// Read the response body, at most [`MAX_RECEIPT_BYTES`]; `None` if longer.
async fn read_capped(resp: &mut reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RECEIPT_BYTES as u64)
    {
        return Ok(None);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > MAX_RECEIPT_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

fn classify_error(e: &reqwest::Error) -> (&'static str, &'static str) {
    if e.is_timeout() {
        ("HANDLER_TIMEOUT", "the handler did not answer in time")
    } else if e.is_connect() {
        ("HANDLER_UNREACHABLE", "could not connect to the handler")
    } else if e.is_builder() {
        ("HANDLER_BAD_URL", "could not build the request")
    } else if e.is_body() || e.is_decode() {
        (
            "HANDLER_BAD_RECEIPT",
            "the handler's answer broke off or could not be read",
        )
    } else {
        (
            "HANDLER_REQUEST_FAILED",
            "the request to the handler failed",
        )
    }
}

/// An error and its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The start of an error body, for the operator (scrubbed by the caller).
fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let snippet: String = text.chars().take(200).collect();
    let more = if text.chars().count() > 200 {
        "…"
    } else {
        ""
    };
    format!(": {snippet}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let s = signature(b"k", 1_700_000_000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64);
    }

    #[test]
    fn secrets_debug_shows_nothing() {
        let s = HttpSecrets {
            url: "https://h.example/x".into(),
            token: Some("tok-123456".into()),
            signing_secret: Some("sec-123456".into()),
        };
        let d = format!("{s:?}");
        assert!(!d.contains("tok-") && !d.contains("sec-") && !d.contains("h.example"));
    }
}
