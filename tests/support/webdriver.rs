//! A real headless Chromium driven over the W3C WebDriver protocol: this
//! module starts `chromedriver` itself on a free port and speaks the few
//! WebDriver commands the browser suite needs (JSON over HTTP, with the
//! HTTP client the suites already use). When Chromium or chromedriver is
//! missing it fails with the command that installs them; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` process. On drop (a passing test's end, or a failing
/// test's unwinding) it first ends the browser sessions still open, since
/// killing chromedriver alone leaves their Chromium processes running.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    log: PathBuf,
    sessions: Arc<Mutex<Vec<String>>>,
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

impl ChromeDriver {
    /// Start chromedriver on a free loopback port and wait until it is ready.
    pub fn start(log_dir: &Path) -> ChromeDriver {
        for program in ["chromium", "chromedriver"] {
            assert!(
                find(program).is_some(),
                "`{program}` is not installed: the browser suite needs Debian's chromium and chromium-driver. Install them with `apt-get install -y chromium chromium-driver` (tests/run.sh does this when they are absent)."
            );
        }
        let port = crate::mcp::free_port();
        let log = log_dir.join("chromedriver.log");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            sessions: Arc::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}):\n{}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                );
            }
            let ready = crate::block_on(async {
                reqwest::get(format!("{}/status", driver.url))
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()
            });
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port} within 30 s:\n{}",
                std::fs::read_to_string(&driver.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let open: Vec<String> = self
            .sessions
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        crate::block_on(async {
            let http = reqwest::Client::new();
            for session in open {
                let _ = tokio::time::timeout(Duration::from_secs(10), http.delete(&session).send())
                    .await;
            }
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session (a fresh profile: no cookies).
pub struct Browser {
    http: reqwest::Client,
    base: String,
    sessions: Arc<Mutex<Vec<String>>>,
}

/// A found element.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// A new headless Chromium. `host_rules` maps names to addresses inside
    /// the browser (Chromium's `--host-resolver-rules`), e.g. to act out DNS
    /// rebinding without touching the system resolver.
    pub async fn new(driver: &ChromeDriver, profile: &Path, host_rules: &str) -> Browser {
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": find("chromium").map(|p| p.display().to_string()),
                "args": [
                    "--headless=new",
                    // The suites run as root; Chromium's own sandbox refuses root.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--host-resolver-rules={host_rules}"),
                ]
            }
        }}});
        let v: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON from chromedriver");
        let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| {
            panic!(
                "chromedriver could not start Chromium: {v}\n{}",
                std::fs::read_to_string(&driver.log).unwrap_or_default()
            )
        });
        let base = format!("{}/session/{id}", driver.url);
        if let Ok(mut open) = driver.sessions.lock() {
            open.push(base.clone());
        }
        Browser {
            http,
            base,
            sessions: driver.sessions.clone(),
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON from chromedriver");
        v
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let v = self.cmd(method, path, body).await;
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path} failed: {v}"
        );
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.ok(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.ok(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's visible text.
    /// (Read by script, not through an element reference, so a page that
    /// is navigating away answers "" instead of a stale-element error.)
    pub async fn text(&self) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
            )
            .await;
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        self.ok(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v["value"][ELEMENT].as_str().map(|s| Element(s.to_owned()))
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!(
                "no element `{css}` on {}:\n{}",
                self.current_url().await,
                self.text().await
            ),
        }
    }

    pub async fn text_of(&self, e: &Element) -> String {
        self.ok(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub async fn click(&self, e: &Element) {
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
    }

    /// Type into an element (`\u{E007}` is Enter).
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Run a script in the page (arguments as `arguments[i]`).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.ok(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    pub async fn delete_cookies(&self) {
        self.ok(reqwest::Method::DELETE, "/cookie", None).await;
    }

    /// The cookies this page can see through the WebDriver (HttpOnly ones included).
    pub async fn cookies(&self) -> Vec<Value> {
        self.ok(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG screenshot of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.ok(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().unwrap_or_default());
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Wait until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear within {within:?}; the page says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
        if let Ok(mut open) = self.sessions.lock() {
            open.retain(|s| *s != self.base);
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = s.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | (d << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}
