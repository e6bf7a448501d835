//! `airlock review`: the local web review UI, driven through a real headless
//! Chromium (chromedriver, started here) against a real executor, proposer
//! and SQLite source. The happy path (list → open → approve → apply →
//! replay, live updates, ledger verify) and each refusal: wrong role,
//! missing CSRF token, foreign Origin, wrong Host (DNS rebinding), stale
//! sign-in link and session, a row changed since the proposal. Each
//! refusal is paired with the same action done properly, which succeeds.
//!
//! Screenshots of each page go to `$AIRLOCK_REVIEW_SCREENSHOTS` when set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, query_strings, reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::propose_over_mcp;
use airlock_tests::webdriver::{Browser, ChromeDriver};
use airlock_tests::{bin, block_on, runtime};
use serde_json::{Value, json};

const WAIVER: &str = "billing.propose_late_fee_waiver";
const WAIT: Duration = Duration::from_secs(15);

/// A running `airlock review --no-open` and the sign-in link it printed.
struct Review {
    child: Child,
    login_url: String,
    base: String,
}

impl Review {
    fn start(exec: &ExecutorProcess) -> Review {
        let mut child = Command::new(bin("airlock"))
            .args(["review", "--listen", "127.0.0.1:0", "--no-open", "--config"])
            .arg(&exec.config_path)
            .arg("--socket-dir")
            .arg(&exec.socket_dir)
            .arg("--store")
            .arg(&exec.store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn airlock review");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(i) = line.find("http://")
                    && line.contains("/login?secret=")
                {
                    let _ = tx.send(line[i..].trim().to_owned());
                }
            }
        });
        let login_url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("airlock review printed no sign-in link:\n{err}");
            }
        };
        let base = login_url[..login_url.find("/login").unwrap()].to_owned();
        Review {
            child,
            login_url,
            base,
        }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The source database, an executor on it, and the review UI.
struct Setup {
    db: Database,
    exec: ExecutorProcess,
    dir: tempfile::TempDir,
}

fn setup(approvers: Option<Value>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "review");
    let mut config = reference_config_for(&db);
    if let Some(a) = approvers {
        config["airlock"] = json!({ "approvers": a });
    }
    let exec = ExecutorProcess::start(
        &config,
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    Setup { db, exec, dir }
}

impl Setup {
    fn propose(&self, reason: &str) -> String {
        block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            WAIVER,
            json!({"invoice_id": "INV-3001", "reason": reason}),
        ))
    }

    /// The proposal's state, asked of the executor by the CLI.
    fn state(&self, id: &str) -> String {
        let out = self.exec.cli(&["proposals", "show", id, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["proposal"]["summary"]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn hash(&self, id: &str) -> String {
        let out = self.exec.cli(&["proposals", "show", id, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["proposal"]["proposal_hash"].as_str().unwrap().to_owned()
    }

    fn late_fee(&self) -> String {
        query_strings(
            &self.db,
            "SELECT CAST(late_fee_cents AS TEXT) FROM invoices WHERE id = 'INV-3001'",
        )[0][0]
            .clone()
            .unwrap()
    }

    fn profile(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

async fn shot(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("AIRLOCK_REVIEW_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        b.screenshot(&Path::new(&dir).join(format!("{name}.png")))
            .await;
    }
}

/// Sign in with the printed link; the browser lands on the list.
async fn sign_in(b: &Browser, review: &Review) {
    b.goto(&review.login_url).await;
    assert_eq!(b.current_url().await, format!("{}/", review.base));
}

/// Type the first 12 hex digits of the hash shown, a note, and press Enter.
async fn approve_in_page(b: &Browser, shown_hash: &str, note: &str) {
    let note_box = b.find("#note").await;
    b.type_into(&note_box, note).await;
    let field = b.find("#confirm_hash").await;
    b.type_into(&field, &format!("{}\u{E007}", &shown_hash[..7 + 12]))
        .await;
}

#[test]
fn list_open_approve_apply_replay_in_a_real_browser() {
    let s = setup(None);
    let first = s.propose("first late payment");
    let driver = ChromeDriver::start(s.dir.path());
    let mut review = Review::start(&s.exec);
    let started = Instant::now();
    runtime().block_on(async {
        let b = Browser::new(&driver, &s.profile("main"), "").await;
        sign_in(&b, &review).await;
        // The session cookie is HttpOnly and SameSite=Strict: the page's
        // script cannot read it.
        let cookies = b.cookies().await;
        let c = cookies
            .iter()
            .find(|c| c["name"] == "airlock_review")
            .expect("session cookie");
        assert_eq!(c["httpOnly"], true, "{c}");
        assert_eq!(c["sameSite"], "Strict", "{c}");
        assert_eq!(b.execute("return document.cookie", vec![]).await, "");

        // The list: the pending proposal with its capability, tenant, age, expiry.
        let text = b.wait_for_text(&first, WAIT).await;
        assert!(text.contains("Pending proposals"), "{text}");
        assert!(
            text.contains(WAIVER) && text.contains("acme") && text.contains("billing_lead"),
            "{text}"
        );
        assert!(
            text.contains(" ago") && text.contains("in "),
            "age and expiry: {text}"
        );
        shot(&b, "1-list").await;
        // Filters are a GET form: a tenant that matches nothing empties the list.
        let tenant = b.find("input[name=tenant]").await;
        b.type_into(&tenant, "otherco\u{E007}").await;
        b.wait_for_text("No proposals match.", WAIT).await;
        b.goto(&format!(
            "{}/?state=pending_approval&capability=billing",
            review.base
        ))
        .await;
        b.wait_for_text(&first, WAIT).await;

        // Live updates: a proposal made now shows up through the SSE stream.
        let second = s.propose("goodwill <script>alert(1)</script> \u{202e}evil");
        let live = b
            .wait_for_text("New in the ledger: proposal_recorded", WAIT)
            .await;
        assert!(live.contains(&second), "{live}");
        shot(&b, "2-live-update").await;

        // Open the first proposal: diff, evidence, guards, role, expiry, freshness.
        let link = b.find(&format!("a[href='/p/{first}']")).await;
        b.click(&link).await;
        let text = b.wait_for_text("Still current", WAIT).await;
        let hash = s.hash(&first);
        for needle in [
            "late_fee_cents",
            "5500",
            "\"first late payment\"",
            "Evidence: the row the model read",
            "INV-3001",
            "cust_acme_1",
            "updated_at must still be \"2026-06-20T14:31:08Z\"",
            "billing_lead",
            "Expires",
            hash.as_str(),
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert_eq!(b.text_of(&b.find("#hash").await).await, hash);
        shot(&b, "3-proposal").await;

        // A hash that is not the one shown approves nothing.
        let field = b.find("#confirm_hash").await;
        b.type_into(&field, "sha256:000000000000\u{E007}").await;
        b.wait_for_text("Hash does not match", WAIT).await;
        assert_eq!(s.state(&first), "pending_approval");

        // Approve from the keyboard: type the note, the hash shown, Enter.
        b.goto(&format!("{}/p/{first}", review.base)).await;
        approve_in_page(&b, &hash, "checked with finance").await;
        let text = b.wait_for_text("Approved. The decision", WAIT).await;
        assert!(text.contains("checked with finance"), "{text}");
        assert_eq!(s.state(&first), "approved");
        shot(&b, "4-approved").await;

        // Apply: the receipt is shown, and the row changed exactly once.
        let apply = b.find("#apply button").await;
        b.click(&apply).await;
        let text = b.wait_for_text("Receipt", WAIT).await;
        assert!(
            text.contains("applied") && text.contains("made once"),
            "{text}"
        );
        assert!(
            b.text_of(&b.find("#receipt").await)
                .await
                .contains("\"status\": \"applied\"")
        );
        assert_eq!(s.late_fee(), "0");
        shot(&b, "5-applied").await;

        // The replay timeline tells the whole story, with the note.
        let link = b.find("a[href$='/replay']").await;
        b.click(&link).await;
        let text = b.wait_for_text("Replay of", WAIT).await;
        for needle in [
            "Approved by",
            "checked with finance",
            "Receipt: applied",
            "proposal_recorded",
            "approved",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        shot(&b, "6-replay").await;

        // Reject the second (hostile-looking) proposal with a reason. Its
        // text is shown escaped: no markup, bidi override made visible.
        b.goto(&format!("{}/p/{second}", review.base)).await;
        let text = b.wait_for_text("<script>alert(1)</script>", WAIT).await;
        assert!(text.contains("\\u{202e}evil"), "{text}");
        assert!(!text.contains('\u{202e}'));
        assert_eq!(
            b.execute("return document.scripts.length", vec![]).await,
            1,
            "only /static/app.js runs"
        );
        shot(&b, "7-escaped").await;
        let reason = b.find("#reason").await;
        b.type_into(&reason, "not a real customer request").await;
        let button = b.find("#reject button").await;
        b.click(&button).await;
        b.wait_for_text("Rejected. The reason", WAIT).await;
        assert_eq!(s.state(&second), "rejected");

        // Ledger verify status.
        b.goto(&format!("{}/ledger", review.base)).await;
        let text = b.wait_for_text("Intact", WAIT).await;
        assert!(text.contains("hash chain verified"), "{text}");
        shot(&b, "8-ledger").await;
        // The status is the real check, not a constant: a ledger with an
        // append-only trigger dropped reads as broken.
        let ledger = Database {
            engine: Engine::Sqlite,
            name: "ledger".into(),
            read_url: String::new(),
            write_url: String::new(),
            admin_url: format!("sqlite://{}", s.exec.store.display()),
        };
        execute(&ledger, "DROP TRIGGER decisions_append_only_u;");
        b.goto(&format!("{}/ledger", review.base)).await;
        let text = b.wait_for_text("BROKEN", WAIT).await;
        assert!(text.contains("decisions_append_only_u"), "{text}");

        // Ctrl-C stops the UI at once, even with this page's live-update
        // stream open.
        let _ = Command::new("kill")
            .args(["-INT", &review.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while review.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "airlock review did not stop on SIGINT"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b.close().await;
    });
    eprintln!("review_ui: browser flow took {:?}", started.elapsed());
    // The reasons typed in the browser are what `airlock replay show` prints.
    let out = s.exec.cli(&["replay", "show", &first]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("checked with finance"), "{text}");
    let rejected = s
        .exec
        .cli(&["proposals", "list", "--status", "rejected", "--json"]);
    let v: Value = serde_json::from_slice(&rejected.stdout).unwrap();
    let second = v["proposals"][0]["proposal_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = s.exec.cli(&["replay", "show", &second]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not a real customer request"), "{text}");
}

/// The executor, not the browser, decides: a UI run by a user without the
/// capability's role shows the executor's refusal and nothing changes.
#[test]
fn wrong_role_is_refused_by_the_executor_and_shown() {
    let s = setup(Some(json!([{"uid": 0, "roles": ["other_role"]}])));
    let id = s.propose("first late payment");
    let hash = s.hash(&id);
    let driver = ChromeDriver::start(s.dir.path());
    let review = Review::start(&s.exec);
    runtime().block_on(async {
        let b = Browser::new(&driver, &s.profile("role"), "").await;
        sign_in(&b, &review).await;
        b.goto(&format!("{}/p/{id}", review.base)).await;
        approve_in_page(&b, &hash, "trying without the role").await;
        let text = b.wait_for_text("Refused by the executor", WAIT).await;
        assert!(text.contains("role_required"), "{text}");
        assert!(text.contains("billing_lead"), "{text}");
        shot(&b, "9-wrong-role").await;
        b.close().await;
    });
    assert_eq!(s.state(&id), "pending_approval");
}

/// A tiny web server on another loopback port: a page whose form posts to
/// the review UI. `token` is the CSRF token (as if it had leaked), so only
/// the Origin check stands between it and a decision.
fn foreign_site(action: &str, token: &str) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><title>totally unrelated</title><form method=post action=\"{action}\"><input type=hidden name=csrf value=\"{token}\"><input type=hidden name=reason value=\"forged\"><button id=go type=submit>win a prize</button></form>"
    );
    let handle = std::thread::spawn(move || {
        // Serve the page to the browser's requests, then stop.
        for stream in listener.incoming().take(2).flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn csrf_origin_host_and_stale_sessions_are_refused() {
    let s = setup(None);
    let a = s.propose("first late payment");
    let b_id = s.propose("second look");
    let driver = ChromeDriver::start(s.dir.path());
    let review = Review::start(&s.exec);
    let port = review.port();
    runtime().block_on(async {
        let b = Browser::new(&driver, &s.profile("attack"), "MAP evil.test 127.0.0.1").await;

        // DNS rebinding: a foreign name that resolves to 127.0.0.1 is
        // refused before anything else (the sign-in link included, which
        // therefore still works afterwards).
        let secret = &review.login_url[review.login_url.find("/login").unwrap()..];
        b.goto(&format!("http://evil.test:{port}{secret}")).await;
        b.wait_for_text("Wrong host", WAIT).await;
        shot(&b, "10-wrong-host").await;
        sign_in(&b, &review).await;
        b.goto(&format!("http://evil.test:{port}/")).await;
        b.wait_for_text("Wrong host", WAIT).await;

        // Missing CSRF token: the approve form without its hidden field.
        let hash = s.hash(&a);
        b.goto(&format!("{}/p/{a}", review.base)).await;
        b.execute(
            "document.querySelector('#approve input[name=csrf]').remove()",
            vec![],
        )
        .await;
        approve_in_page(&b, &hash, "forged").await;
        let text = b.wait_for_text("Missing CSRF token", WAIT).await;
        assert!(text.contains("Nothing was done"), "{text}");
        assert_eq!(s.state(&a), "pending_approval");
        shot(&b, "11-missing-csrf").await;
        // The same form with its token approves.
        b.goto(&format!("{}/p/{a}", review.base)).await;
        approve_in_page(&b, &hash, "with the token").await;
        b.wait_for_text("Approved. The decision", WAIT).await;
        assert_eq!(s.state(&a), "approved");

        // Foreign Origin: another local site posts a reject, with the
        // session's real CSRF token, and the browser sends the session
        // cookie along (same site: only the port differs).
        b.goto(&format!("{}/p/{b_id}", review.base)).await;
        let token = b
            .execute(
                "return document.querySelector('#reject input[name=csrf]').value",
                vec![],
            )
            .await;
        let token = token.as_str().unwrap().to_owned();
        let (site, server) = foreign_site(&format!("{}/p/{b_id}/reject", review.base), &token);
        b.goto(&format!("http://127.0.0.1:{site}/")).await;
        let go = b.find("#go").await;
        b.click(&go).await;
        let text = b.wait_for_text("Foreign origin", WAIT).await;
        assert!(text.contains("Nothing was done"), "{text}");
        assert_eq!(s.state(&b_id), "pending_approval");
        shot(&b, "12-foreign-origin").await;
        let _ = server.join();
        // The same reject from the review UI's own page goes through.
        b.goto(&format!("{}/p/{b_id}", review.base)).await;
        let reason = b.find("#reason").await;
        b.type_into(&reason, "forged").await;
        let button = b.find("#reject button").await;
        b.click(&button).await;
        b.wait_for_text("Rejected. The reason", WAIT).await;
        assert_eq!(s.state(&b_id), "rejected");

        // Server-side checks, not only the form's `required`: posted from
        // the page itself with the right token and Origin.
        let post = "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1])}).then(r => r.status)";
        let status = |path: String, form: Value| {
            let b = &b;
            async move { b.execute(post, vec![json!(path), form]).await }
        };
        let blank_reason = status(format!("/p/{a}/reject"), json!({"csrf": token, "reason": "  "})).await;
        assert_eq!(blank_reason, 422, "a blank reason rejects nothing");
        let short_hash = status(format!("/p/{b_id}/approve"), json!({"csrf": token, "confirm_hash": "sha256:abc"})).await;
        assert_eq!(short_hash, 422, "fewer than 12 hex digits approve nothing");
        let latest = status("/p/latest/apply".into(), json!({"csrf": token})).await;
        assert_eq!(latest, 404, "decisions name an exact id, never `latest`");
        assert_eq!(s.state(&a), "approved");
        assert_eq!(s.state(&b_id), "rejected");
        let csp = b
            .execute("return fetch('/').then(r => r.headers.get('content-security-policy'))", vec![])
            .await;
        assert_eq!(
            csp,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );

        // Stale sign-in link: a second browser with the used link gets no session.
        let other = Browser::new(&driver, &s.profile("second"), "").await;
        other.goto(&review.login_url).await;
        other.wait_for_text("Sign-in link not valid", WAIT).await;
        shot(&other, "13-stale-link").await;
        other.goto(&format!("{}/", review.base)).await;
        other.wait_for_text("Not signed in", WAIT).await;
        other
            .goto(&format!("{}/login?secret=00", review.base))
            .await;
        other.wait_for_text("Sign-in link not valid", WAIT).await;
        other.close().await;

        // Stale session: a new run of `airlock review` does not accept the
        // cookie of the old one (the browser sends it: cookies ignore ports).
        let again = Review::start(&s.exec);
        b.goto(&format!("{}/", again.base)).await;
        b.wait_for_text("Not signed in", WAIT).await;
        sign_in(&b, &again).await;
        b.wait_for_text("Pending proposals", WAIT).await;
        b.close().await;
    });
}

/// The row changed after the proposal: the page says so, and applying
/// after approval shows the conflict receipt; the row keeps its new value.
#[test]
fn a_row_changed_meanwhile_shows_changed_and_approving_is_a_conflict() {
    let s = setup(None);
    let id = s.propose("first late payment");
    let hash = s.hash(&id);
    execute(
        &s.db,
        "UPDATE invoices SET late_fee_cents = 4000, updated_at = '2026-07-01T09:00:00Z' WHERE id = 'INV-3001'",
    );
    let driver = ChromeDriver::start(s.dir.path());
    let review = Review::start(&s.exec);
    runtime().block_on(async {
        let b = Browser::new(&driver, &s.profile("changed"), "").await;
        sign_in(&b, &review).await;
        b.goto(&format!("{}/p/{id}", review.base)).await;
        let text = b.wait_for_text("Changed since proposal", WAIT).await;
        assert!(text.contains("version"), "{text}");
        assert!(!text.contains("Still current"), "{text}");
        shot(&b, "14-changed").await;
        // Approving re-reads the row: the changed picture is refused and
        // the proposal becomes a terminal conflict.
        approve_in_page(&b, &hash, "approving anyway").await;
        let text = b.wait_for_text("was not approved", WAIT).await;
        assert!(text.contains("conflict"), "{text}");
        shot(&b, "15-conflict").await;
        b.close().await;
    });
    assert_eq!(s.late_fee(), "4000", "nothing was written");
    assert_eq!(s.state(&id), "conflict");
}
