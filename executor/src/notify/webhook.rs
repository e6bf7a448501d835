//! One webhook sink: a signed POST of the notification body.
//!
//! * The URL and the HMAC key come from the executor's environment or its
//!   systemd credentials (never the config file), read once at start.
//! * Headers: `Content-Type`, `X-Airlock-Event-Id` (the notification id,
//!   stable across retries), `X-Airlock-Timestamp` (unix seconds) and
//!   `X-Airlock-Signature: v1=<hex>`, the lowercase hex HMAC-SHA256 of
//!   `<timestamp>.<body bytes>` — the scheme `http_handler` requests use.
//! * Every name is resolved by [`CheckedResolver`], which refuses the whole
//!   answer if any address is one the sink may not reach, and the
//!   connection goes to the checked addresses only (no second look-up for a
//!   rebinding DNS server to answer differently). An IP-literal host is
//!   checked before sending. No redirect is followed and no proxy is used.
//! * Only the answer's status is read: 2xx delivers. A receiver cannot
//!   send anything back that Airlock acts on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_policy::notify::{WebhookSpec, check_address, check_scheme, content_type, host_ip};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::writeback::credentials::read_secret;
use crate::writeback::http_handler::{HttpSecrets, error_chain, signature};
use crate::writeback::payload::safe_text;

pub const EVENT_ID_HEADER: &str = "x-airlock-event-id";
const MAX_DETAIL_CHARS: usize = 300;

pub struct Webhook {
    spec: WebhookSpec,
    url: reqwest::Url,
    host: String,
    signing_secret: Option<String>,
    /// The URL (and its parts) and the key, withheld from every detail.
    known: Vec<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url_env", &self.spec.url_env)
            .finish()
    }
}

/// Whether an attempt delivered, and what happened, in words safe to log
/// and to store (no URL, no key).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub delivered: bool,
    pub status: Option<u16>,
    pub detail: String,
}

impl Attempt {
    /// `Ok(detail)` if delivered, else `Err(detail)`; and the HTTP status.
    pub fn verdict(self) -> (Result<String, String>, Option<u16>) {
        let status = self.status;
        if self.delivered {
            (Ok(self.detail), status)
        } else {
            (Err(self.detail), status)
        }
    }
}

impl Webhook {
    /// Read the URL and key and check the URL's shape: at start, so that a
    /// missing variable or a plain-http public URL stops the executor with
    /// a clear message instead of failing every delivery later.
    pub fn new(sink_id: &str, spec: &WebhookSpec) -> Result<Webhook, String> {
        let raw = read_secret(&spec.url_env)
            .map_err(|e| format!("notification sink `{sink_id}`: {e}"))?;
        let signing_secret = match &spec.signing_secret_env {
            Some(name) => {
                Some(read_secret(name).map_err(|e| format!("notification sink `{sink_id}`: {e}"))?)
            }
            None => None,
        };
        let secrets = HttpSecrets {
            url: raw.clone(),
            token: None,
            signing_secret: signing_secret.clone(),
        };
        let parsed = reqwest::Url::parse(raw.trim()).ok();
        let known = secrets.known(parsed.as_ref());
        let bad = |why: &str| {
            format!(
                "notification sink `{sink_id}`: the value of {} {why}",
                spec.url_env
            )
        };
        let url = parsed.ok_or_else(|| bad("is not a URL"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("has no host"))?
            .to_ascii_lowercase();
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "carries a user name or password; put credentials in the signing key instead",
            ));
        }
        check_scheme(spec, url.scheme(), &host)
            .map_err(|e| format!("notification sink `{sink_id}` ({}): {e}", spec.url_env))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // One sink, one runtime: keep the connection (and its TLS
            // session) between notifications of a burst.
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(20))
            .dns_resolver(Arc::new(CheckedResolver { spec: spec.clone() }))
            .user_agent(concat!("airlock-executor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                format!(
                    "notification sink `{sink_id}`: could not set up the HTTP client: {}",
                    error_chain(&e)
                )
            })?;
        Ok(Webhook {
            spec: spec.clone(),
            url,
            host,
            signing_secret,
            known,
            client,
        })
    }

    /// POST `body` once.
    pub async fn send(&self, notification_id: &str, body: &str) -> Attempt {
        let failed = |status: Option<u16>, detail: String| Attempt {
            delivered: false,
            status,
            detail: shorten(&safe_text(&detail, &self.known, 8 * MAX_DETAIL_CHARS)),
        };
        // reqwest does not resolve an IP-literal host: check it here.
        if let Some(ip) = host_ip(&self.host)
            && let Err(refused) = check_address(&self.spec, &self.host, ip)
        {
            return failed(None, refused);
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = self
            .client
            .post(self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                content_type(self.spec.format),
            )
            .header(EVENT_ID_HEADER, notification_id)
            .body(body.to_owned())
            .timeout(Duration::from_millis(self.spec.timeout_ms.max(1)));
        if let Some(secret) = &self.signing_secret {
            request = request
                .header(
                    crate::writeback::http_handler::TIMESTAMP_HEADER,
                    timestamp.to_string(),
                )
                .header(
                    crate::writeback::http_handler::SIGNATURE_HEADER,
                    signature(secret.as_bytes(), timestamp, body.as_bytes()),
                );
        }
        // The request's timeout bounds it all: look-up, connect, send and
        // the status line (the body is never read).
        match request.send().await {
            Err(e) if e.is_timeout() => failed(
                None,
                format!("no answer within {} ms", self.spec.timeout_ms),
            ),
            Err(e) => failed(
                None,
                format!("not delivered: {}", error_chain(&e.without_url())),
            ),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Attempt {
                        delivered: true,
                        status: Some(status.as_u16()),
                        detail: format!("HTTP {}", status.as_u16()),
                    }
                } else if status.is_redirection() {
                    failed(
                        Some(status.as_u16()),
                        format!(
                            "HTTP {} (redirects are not followed; configure the final URL)",
                            status.as_u16()
                        ),
                    )
                } else {
                    failed(Some(status.as_u16()), format!("HTTP {}", status.as_u16()))
                }
            }
        }
    }
}

/// The start of an already redacted detail (what failed comes first;
/// a TLS error's list of names does not need to be kept whole).
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    out.push('…');
    out
}

/// Resolves a webhook's host and refuses the answer unless every address
/// is one the sink may reach (`airlock_policy::notify::check_address`).
struct CheckedResolver {
    spec: WebhookSpec,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let spec = self.spec.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("cannot resolve the webhook's host: {e}"))?
                .collect();
            if addrs.is_empty() {
                return Err("the webhook's host has no address".into());
            }
            for a in &addrs {
                check_address(&spec, &host, a.ip())?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
