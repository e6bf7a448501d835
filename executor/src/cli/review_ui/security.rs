//! The browser gets no authority of its own: it only proves it is the
//! browser of the person who started `airlock review` (the one-time secret
//! in the printed URL, exchanged for an HttpOnly SameSite=Strict cookie),
//! and every state-changing request also carries the session's CSRF token
//! from our own origin. What the person may do is still decided by the
//! executor from this process's SO_PEERCRED uid.

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderValue, header};

/// The session cookie's name.
pub const COOKIE: &str = "airlock_review";

/// Every page's Content-Security-Policy: nothing but our own assets.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub use crate::secret_token::{ct_eq, random_hex};

/// What the server knows about the one browser session.
pub struct Sessions {
    /// The one-time secret printed in the URL; `None` once exchanged.
    secret: Mutex<Option<String>>,
    /// The cookie value and the CSRF token of the session, once there is one.
    session: Mutex<Option<(String, String)>>,
}

/// Why a sign-in link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The link's secret is wrong, or was used already (a stale link from an
    /// earlier run, or a second browser).
    Stale,
    /// The server could not make a session token.
    Internal,
}

impl Sessions {
    pub fn new(secret: String) -> Sessions {
        Sessions {
            secret: Mutex::new(Some(secret)),
            session: Mutex::new(None),
        }
    }

    /// Exchange the printed secret for a session: returns the cookie value.
    /// The secret works once, so a URL left in a terminal's scrollback or
    /// shell history cannot open a second session.
    pub fn login(&self, given: &str) -> Result<String, LoginRefusal> {
        let mut secret = self.secret.lock().map_err(|_| LoginRefusal::Internal)?;
        match secret.as_deref() {
            Some(s) if ct_eq(s, given) => {}
            _ => return Err(LoginRefusal::Stale),
        }
        let cookie = random_hex(32).map_err(|_| LoginRefusal::Internal)?;
        let csrf = random_hex(32).map_err(|_| LoginRefusal::Internal)?;
        let mut session = self.session.lock().map_err(|_| LoginRefusal::Internal)?;
        *secret = None;
        *session = Some((cookie.clone(), csrf));
        Ok(cookie)
    }

    /// The CSRF token of the session this request's cookie names, if any.
    pub fn csrf_for(&self, headers: &HeaderMap) -> Option<String> {
        let given = cookie_value(headers, COOKIE)?;
        let session = self.session.lock().ok()?;
        let (cookie, csrf) = session.as_ref()?;
        ct_eq(cookie, &given).then(|| csrf.clone())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
}

/// The `Host` values this server answers to: its own address, and
/// `localhost` with its port. Any other name (a rebinding attacker's
/// domain that resolves to 127.0.0.1) is refused.
pub fn host_allowed(headers: &HeaderMap, listen: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    allowed_hosts(listen).iter().any(|a| a == host)
}

fn allowed_hosts(listen: SocketAddr) -> Vec<String> {
    vec![listen.to_string(), format!("localhost:{}", listen.port())]
}

/// A state-changing request must come from one of our own pages: its
/// `Origin` must be ours. Browsers send `Origin` with every POST; a request
/// without one is refused (fail closed).
pub fn origin_allowed(headers: &HeaderMap, listen: SocketAddr) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    allowed_hosts(listen)
        .iter()
        .any(|h| origin == format!("http://{h}"))
}

/// Headers every answer carries.
pub fn harden(headers: &mut HeaderMap) {
    let fixed: [(header::HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // The sign-in URL holds the secret: never send a Referer to
        // another site. (Not `no-referrer`: with it, browsers send
        // `Origin: null` on our own POSTs, which the Origin check refuses.)
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_secret_works_once_and_only_exactly() {
        let s = Sessions::new("abc123".into());
        assert_eq!(s.login("abc124"), Err(LoginRefusal::Stale));
        assert_eq!(s.login("abc12"), Err(LoginRefusal::Stale));
        let cookie = s.login("abc123").unwrap();
        assert_eq!(s.login("abc123"), Err(LoginRefusal::Stale), "used already");
        let with = headers(&[(header::COOKIE, &format!("x=1; {COOKIE}={cookie}"))]);
        assert!(s.csrf_for(&with).is_some());
        let wrong = headers(&[(header::COOKIE, &format!("{COOKIE}={cookie}0"))]);
        assert!(s.csrf_for(&wrong).is_none());
        assert!(s.csrf_for(&HeaderMap::new()).is_none());
    }

    #[test]
    fn only_our_host_and_origin_pass() {
        let listen: SocketAddr = "127.0.0.1:8767".parse().unwrap();
        assert!(host_allowed(
            &headers(&[(header::HOST, "127.0.0.1:8767")]),
            listen
        ));
        assert!(host_allowed(
            &headers(&[(header::HOST, "localhost:8767")]),
            listen
        ));
        assert!(!host_allowed(
            &headers(&[(header::HOST, "evil.test:8767")]),
            listen
        ));
        assert!(!host_allowed(
            &headers(&[(header::HOST, "127.0.0.1:80")]),
            listen
        ));
        assert!(!host_allowed(&HeaderMap::new(), listen));
        let ok = headers(&[(header::ORIGIN, "http://127.0.0.1:8767")]);
        assert!(origin_allowed(&ok, listen));
        for bad in [
            "http://127.0.0.1:9999",
            "null",
            "http://evil.test:8767",
            "https://127.0.0.1:8767",
        ] {
            assert!(
                !origin_allowed(&headers(&[(header::ORIGIN, bad)]), listen),
                "{bad}"
            );
        }
        assert!(
            !origin_allowed(&HeaderMap::new(), listen),
            "no Origin: refused"
        );
    }

    #[test]
    fn secrets_are_random_and_compared_whole() {
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32).unwrap());
        assert!(ct_eq(&a, &a.clone()));
        assert!(!ct_eq(&a, &a[..63]));
    }
}
