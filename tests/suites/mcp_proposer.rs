//! The proposer end to end: a real MCP client (rmcp) drives the real
//! `airlock-proposer` over stdio and Streamable HTTP against real Postgres,
//! MariaDB and SQLite, with a real executor recording evidence and proposals.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, REFERENCE_DB, mysql_reference, postgres_reference, query_strings,
    reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{HttpProposer, McpClient, call, stdio_client, thread_sandbox_status};
use airlock_tests::schema::{assert_v2_envelope, assert_valid};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

const TOKEN: &str = "test-bearer-token-0123456789";

use airlock_tests::runtime as rt;

/// Postgres: the shared reference database, created once per test process.
fn postgres() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| postgres_reference(REFERENCE_DB))
}

fn mysql() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| mysql_reference("airlock_e2e_mcp"))
}

/// An executor on `db`'s reference config; the proposer env to pair with it.
struct Stack {
    exec: ExecutorProcess,
    env: Vec<(&'static str, String)>,
    db: Database,
}

impl Stack {
    fn new(db: &Database) -> Stack {
        Stack::with_config(db, reference_config_for(db))
    }

    fn with_config(db: &Database, config: Value) -> Stack {
        let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
        let env = vec![
            ("APP_READ_URL", db.read_url.clone()),
            ("APP_TENANT_ID", "acme".to_owned()),
            ("APP_PRINCIPAL", "agent_17".to_owned()),
        ];
        Stack {
            exec,
            env,
            db: db.clone(),
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    async fn stdio(&self, extra: &[&str]) -> McpClient {
        stdio_client(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.env(),
            extra,
        )
        .await
    }

    fn http(&self, extra: &[&str]) -> HttpProposer {
        let mut env = self.env();
        env.push(("MCP_TOKEN", TOKEN));
        let mut args = vec!["--auth-token-env", "MCP_TOKEN"];
        args.extend_from_slice(extra);
        HttpProposer::start(&self.exec.config_path, &self.exec.socket_dir, &env, &args)
    }
}

fn invoice_fee(db: &Database, id: &str) -> Vec<Vec<Option<String>>> {
    query_strings(
        db,
        &format!(
            "SELECT CAST(late_fee_cents AS CHAR(20)), waiver_reason FROM invoices WHERE id = '{id}'"
        )
        .replace(
            "CHAR(20)",
            if db.engine == Engine::Postgres {
                "TEXT"
            } else {
                "CHAR(20)"
            },
        ),
    )
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,64}$`, the tool names Claude
/// Desktop, Cursor, Copilot CLI and Codex accept.
fn client_safe(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Call a tool; its result must match the tool's declared outputSchema and
/// Synapsor's v2 envelope rules, and `isError` must agree with `ok`.
async fn checked(
    schemas: &BTreeMap<String, (String, Value)>,
    client: &McpClient,
    tool: &str,
    args: Value,
) -> (CallToolResult, Value) {
    let (r, env) = call(client, tool, args).await;
    if let Some((canonical, schema)) = schemas.get(tool) {
        assert_valid(schema, &env);
        assert_v2_envelope(&env, canonical);
    }
    assert_eq!(r.is_error, Some(env["ok"] != true), "{env}");
    (r, env)
}

/// Everything a client should see over one transport, on one engine.
async fn exercise(stack: &Stack, client: &McpClient) {
    // initialize: who we are and that tools exist.
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("airlock-proposer")
    );
    assert!(info.capabilities.tools.is_some());

    // tools/list: exactly the reviewed tools, with their schemas.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "billing__inspect_invoice",
            "billing__propose_late_fee_waiver",
            "orders__inspect_order",
            "orders__propose_status_change",
            "support__inspect_customer_account",
            "support__inspect_ticket",
            "support__propose_plan_credit",
            "support__propose_ticket_resolution"
        ]
    );
    // Every tool: a client-safe name, a title, the envelope as outputSchema,
    // and the canonical (dotted) name in `_meta`.
    let mut schemas = BTreeMap::new();
    for t in &tools {
        assert!(client_safe(&t.name), "{} is not a client-safe name", t.name);
        let canonical = t.meta.as_ref().unwrap().0["canonical_capability"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(canonical.replace('.', "__"), t.name, "{canonical}");
        let title = t.title.as_deref().unwrap_or_default();
        assert!(
            !title.is_empty() && !title.contains("__"),
            "{}: title {title:?}",
            t.name
        );
        let schema = Value::Object((**t.output_schema.as_ref().expect("an outputSchema")).clone());
        assert_eq!(schema["type"], "object", "{}", t.name);
        assert_eq!(
            schema["properties"]["_meta"]["properties"]["canonical_capability"]["const"],
            canonical.as_str()
        );
        schemas.insert(t.name.to_string(), (canonical, schema));
    }
    let waiver = tools
        .iter()
        .find(|t| t.name == "billing__propose_late_fee_waiver")
        .unwrap();
    assert_eq!(
        waiver.title.as_deref(),
        Some("Billing: propose late fee waiver")
    );
    assert_eq!(
        Value::Object((*waiver.input_schema).clone())["required"],
        json!(["invoice_id", "reason"])
    );
    assert_eq!(
        Value::Object((*waiver.input_schema).clone())["additionalProperties"],
        json!(false)
    );

    // Reads: typed, scoped, with evidence.
    let (r, env) = checked(
        &schemas,
        client,
        "billing__inspect_invoice",
        json!({"invoice_id": "INV-3001"}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{env}");
    assert_eq!(env["ok"], true);
    assert_eq!(env["kind"], "read");
    assert_eq!(env["proposal"], Value::Null);
    assert_eq!(env["error"], Value::Null);
    assert_eq!(
        env["_meta"],
        json!({"tenant_id": "acme", "principal": "agent_17", "provenance": "environment", "canonical_capability": "billing.inspect_invoice"})
    );
    assert_eq!(env["data"]["late_fee_cents"], 5500);
    assert_eq!(env["data"]["balance_cents"], 25500);
    assert_eq!(env["data"]["tenant_id"], "acme");
    assert_eq!(env["data"]["waiver_reason"], Value::Null);
    assert_eq!(env["data"]["updated_at"], "2026-06-20T14:31:08Z", "{env}");
    assert!(
        env["evidence"]["bundle_id"]
            .as_str()
            .unwrap()
            .starts_with("ev_"),
        "{env}"
    );
    assert_eq!(env["source_database_changed"], false);
    assert_eq!(
        env["_meta"]["canonical_capability"],
        "billing.inspect_invoice"
    );
    for (tool, args, field, value) in [
        (
            "support__inspect_ticket",
            json!({"ticket_id": "T-1042"}),
            "status",
            json!("open"),
        ),
        (
            "support__inspect_customer_account",
            json!({"customer_id": "cust_acme_1"}),
            "plan",
            json!("enterprise"),
        ),
        (
            "orders__inspect_order",
            json!({"order_id": "O-1001"}),
            "status",
            json!("paid"),
        ),
    ] {
        let (_, env) = checked(&schemas, client, tool, args).await;
        assert_eq!(env["ok"], true, "{tool}: {env}");
        assert_eq!(env["data"][field], value, "{tool}");
    }

    // Tenant isolation: another tenant's row is indistinguishable from a missing one.
    let (r, other) = checked(
        &schemas,
        client,
        "billing__inspect_invoice",
        json!({"invoice_id": "INV-9001"}),
    )
    .await;
    let (_, missing) = checked(
        &schemas,
        client,
        "billing__inspect_invoice",
        json!({"invoice_id": "INV-0000"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(other["error"]["code"], "NOT_FOUND_IN_TENANT");
    assert_eq!(other["error"]["retryable"], false);
    assert_eq!(missing["error"]["code"], "NOT_FOUND_IN_TENANT");
    assert_eq!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .replace("INV-9001", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("INV-0000", "X")
    );
    assert_eq!(other["data"], Value::Null);

    // SQL-injection-shaped arguments are just values.
    let (_, inj) = checked(
        &schemas,
        client,
        "billing__inspect_invoice",
        json!({"invoice_id": "INV-3001' OR '1'='1"}),
    )
    .await;
    assert_eq!(inj["error"]["code"], "NOT_FOUND_IN_TENANT");
    // Keys match exactly, even where the engine compares loosely (MySQL collations).
    let (_, loose) = checked(
        &schemas,
        client,
        "billing__inspect_invoice",
        json!({"invoice_id": "inv-3001"}),
    )
    .await;
    assert_eq!(loose["error"]["code"], "NOT_FOUND_IN_TENANT", "{loose}");

    // Bad arguments: specific errors the model can act on.
    for (args, needle) in [
        (json!({}), "missing required argument `invoice_id`"),
        (json!({"invoice_id": 3001}), "`invoice_id` must be a string"),
        (json!({"invoice_id": "x".repeat(129)}), "the limit is 128"),
        (
            json!({"invoice_id": "INV-3001", "tenant_id": "otherco"}),
            "unknown argument `tenant_id`",
        ),
    ] {
        let (r, env) = checked(&schemas, client, "billing__inspect_invoice", args.clone()).await;
        assert_eq!(r.is_error, Some(true));
        assert_eq!(env["error"]["code"], "INVALID_ARGUMENT", "{args}");
        assert_eq!(env["error"]["airlock_code"], "invalid_arguments", "{args}");
        assert!(
            env["error"]["message"].as_str().unwrap().contains(needle),
            "{args}: {env}"
        );
    }
    let (_, env) = checked(
        &schemas,
        client,
        "orders__propose_status_change",
        json!({"order_id": "O-1001", "status": "shipped", "reason": "r"}),
    )
    .await;
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be one of"),
        "{env}"
    );
    let (_, env) = checked(
        &schemas,
        client,
        "support__propose_plan_credit",
        json!({"customer_id": "cust_acme_1", "credit_cents": 9000, "reason": "r"}),
    )
    .await;
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the maximum is 5000"),
        "{env}"
    );
    let (r, env) = checked(
        &schemas,
        client,
        "db.execute_sql",
        json!({"sql": "DROP TABLE invoices"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(env["error"]["code"], "CAPABILITY_NOT_FOUND");
    assert_eq!(env["error"]["retryable"], false);

    // Proposals: recorded as pending; the source row is unchanged.
    let before = invoice_fee(&stack.db, "INV-3001");
    let (r, env) = checked(
        &schemas,
        client,
        "billing__propose_late_fee_waiver",
        json!({"invoice_id": "INV-3001", "reason": "'; DROP TABLE invoices; --"}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{env}");
    assert_eq!(env["kind"], "proposal");
    assert_eq!(env["proposal"]["state"], "review_required");
    assert!(env["proposal"]["id"].as_str().unwrap().starts_with("wrp_"));
    // Synapsor's proposal shape, value for value.
    assert_eq!(env["data"], Value::Null, "{env}");
    assert_eq!(env["proposal"]["target"], "invoices:INV-3001", "{env}");
    assert_eq!(
        env["proposal"]["diff"],
        json!({
            "late_fee_cents": {"before": 5500, "proposed": 0},
            "waiver_reason": {"before": null, "proposed": "'; DROP TABLE invoices; --"},
        }),
        "{env}"
    );
    assert_eq!(env["proposal"]["approval_required"], true);
    assert_eq!(
        env["proposal"]["writeback"],
        json!({"mode": "direct_update", "operation": "update", "applied": false})
    );
    assert!(
        env["proposal"]["next"]
            .as_str()
            .unwrap()
            .contains("approve"),
        "{env}"
    );
    assert!(
        env["evidence"]["bundle_id"]
            .as_str()
            .unwrap()
            .starts_with("ev_"),
        "{env}"
    );
    // Airlock's extra detail, beside (never instead of) Synapsor's keys.
    assert_eq!(env["proposal"]["approval"]["required_role"], "billing_lead");
    assert!(
        env["proposal"]["proposal_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{env}"
    );
    assert!(env["proposal"]["expires_at"].is_string(), "{env}");
    assert_eq!(env["source_database_changed"], false);
    assert_eq!(
        invoice_fee(&stack.db, "INV-3001"),
        before,
        "a proposal never changes the source row"
    );
    for (tool, args) in [
        (
            "support__propose_ticket_resolution",
            json!({"ticket_id": "T-1042", "resolution_note": "fee waived"}),
        ),
        (
            "support__propose_plan_credit",
            json!({"customer_id": "cust_acme_1", "credit_cents": 1200, "reason": "goodwill"}),
        ),
        (
            "orders__propose_status_change",
            json!({"order_id": "O-1001", "status": "canceled", "reason": "customer asked"}),
        ),
    ] {
        let (_, env) = checked(&schemas, client, tool, args).await;
        assert_eq!(env["proposal"]["state"], "review_required", "{tool}: {env}");
    }
    // A transition the current row does not allow is refused before submission.
    let (_, env) = checked(
        &schemas,
        client,
        "orders__propose_status_change",
        json!({"order_id": "O-1002", "status": "canceled", "reason": "r"}),
    )
    .await;
    assert_eq!(env["error"]["code"], "POLICY_VIOLATION", "{env}");
    assert!(
        env["error"]["message"]
            .as_str()
            .unwrap()
            .contains("processing"),
        "{env}"
    );
    // Another tenant's row cannot be proposed on either.
    let (_, env) = checked(
        &schemas,
        client,
        "billing__propose_late_fee_waiver",
        json!({"invoice_id": "INV-9001", "reason": "r"}),
    )
    .await;
    assert_eq!(env["error"]["code"], "NOT_FOUND_IN_TENANT");

    // The executor lists them as pending; the proposer never decided anything.
    let out = stack.exec.cli(&[
        "proposals",
        "list",
        "--status",
        "pending_approval",
        "--json",
    ]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed["proposals"].as_array().unwrap().len() >= 4,
        "{listed}"
    );
    let out = stack
        .exec
        .cli(&["proposals", "list", "--status", "approved", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["proposals"],
        json!([])
    );
}

#[test]
fn postgres_over_stdio_and_http() {
    let stack = Stack::new(postgres());
    let rt = rt();
    rt.block_on(async {
        let client = stack.stdio(&[]).await;
        exercise(&stack, &client).await;
        client.cancel().await.unwrap();

        let http = stack.http(&[]);
        let client = http.client(Some(TOKEN)).await;
        exercise(&stack, &client).await;
        // Under load every thread of the serving proposer is sandboxed.
        for (tid, seccomp, nnp) in thread_sandbox_status(http.pid()) {
            assert_eq!((seccomp.as_str(), nnp.as_str()), ("2", "1"), "thread {tid}");
        }
        client.cancel().await.unwrap();
    });
}

#[test]
fn mariadb_over_stdio() {
    let stack = Stack::new(mysql());
    rt().block_on(async {
        let client = stack.stdio(&[]).await;
        exercise(&stack, &client).await;
        client.cancel().await.unwrap();
    });
}

#[test]
fn sqlite_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "reference");
    let stack = Stack::new(&db);
    rt().block_on(async {
        let client = stack.stdio(&[]).await;
        exercise(&stack, &client).await;
        client.cancel().await.unwrap();
    });
}

#[test]
fn http_requires_the_bearer_token_and_a_local_origin() {
    let stack = Stack::new(postgres());
    let http = stack.http(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    rt().block_on(async {
        let client = reqwest::Client::new();
        let post = |token: Option<&str>, origin: Option<&str>| {
            let mut req = client
                .post(&http.url)
                .header("Accept", "application/json, text/event-stream")
                .json(&init);
            if let Some(t) = token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            if let Some(o) = origin {
                req = req.header("Origin", o);
            }
            req.send()
        };
        let r = post(None, None).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"airlock\"");
        assert_eq!(
            post(Some("wrong-token-wrong-token"), None)
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            post(Some(TOKEN), Some("https://evil.example"))
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            post(Some(TOKEN), Some("http://localhost:3000"))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(post(Some(TOKEN), None).await.unwrap().status(), 200);
    });
    // Without a token variable the HTTP transport refuses to start at all.
    let out = std::process::Command::new(airlock_tests::bin("airlock-proposer"))
        .args([
            "serve",
            "--transport",
            "streamable-http",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&stack.exec.config_path)
        .envs(stack.env())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a bearer token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tool names: client-safe by default (see `exercise`); `--alias-mode
/// canonical` keeps the dotted names, `both` offers both. Every name routes
/// to the same capability and `_meta.canonical_capability` is the dotted one.
#[test]
fn canonical_names_stay_available_on_request() {
    let stack = Stack::new(postgres());
    rt().block_on(async {
        let client = stack.stdio(&["--alias-mode", "canonical"]).await;
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert!(
            names.contains(&"billing.inspect_invoice".to_owned())
                && !names.contains(&"billing__inspect_invoice".to_owned()),
            "{names:?}"
        );
        let (_, env) = call(
            &client,
            "billing.inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true);
        assert_eq!(
            env["_meta"]["canonical_capability"],
            "billing.inspect_invoice"
        );
        let (_, env) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["error"]["code"], "CAPABILITY_NOT_FOUND", "{env}");
        client.cancel().await.unwrap();

        let client = stack.stdio(&["--alias-mode", "both"]).await;
        assert_eq!(client.list_all_tools().await.unwrap().len(), 16);
        for name in ["billing.inspect_invoice", "billing__inspect_invoice"] {
            let (_, env) = call(&client, name, json!({"invoice_id": "INV-3001"})).await;
            assert_eq!(env["ok"], true, "{name}: {env}");
            assert_eq!(
                env["_meta"]["canonical_capability"],
                "billing.inspect_invoice"
            );
        }
        client.cancel().await.unwrap();
    });
}

/// `--result-format 1`: Synapsor's legacy v1 shape for a read, a proposal
/// and a failure, each matching the v1 outputSchema the tool declares.
#[test]
fn result_format_1_gives_synapsors_v1_shape() {
    let stack = Stack::new(postgres());
    rt().block_on(async {
        let client = stack.stdio(&["--result-format", "1"]).await;
        let tools = client.list_all_tools().await.unwrap();
        let schema = |name: &str| {
            let t = tools.iter().find(|t| t.name == name).unwrap();
            Value::Object((**t.output_schema.as_ref().unwrap()).clone())
        };
        let (r, read) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(r.is_error, Some(false));
        assert_valid(&schema("billing__inspect_invoice"), &read);
        assert_eq!(read["status"], "ok", "{read}");
        assert_eq!(read["action"], "billing.inspect_invoice");
        assert_eq!(
            read["business_object"],
            json!({"type": "invoices", "id": "INV-3001"})
        );
        assert_eq!(read["data"]["id"], "INV-3001", "{read}");
        assert_eq!(
            read["trusted_context"],
            json!({"tenant_id": "acme", "principal": "agent_17", "provenance": "environment"})
        );
        assert!(
            read["evidence_bundle_id"]
                .as_str()
                .unwrap()
                .starts_with("ev_"),
            "{read}"
        );
        assert_eq!(read["source_database_changed"], false);
        assert_eq!(read["source_database_mutated"], false);
        for v2_only in ["ok", "summary", "kind", "proposal", "evidence"] {
            assert!(read.get(v2_only).is_none(), "v1 has no `{v2_only}`: {read}");
        }

        let (_, p) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3002", "reason": "v1"}),
        )
        .await;
        assert_valid(&schema("billing__propose_late_fee_waiver"), &p);
        assert_eq!(p["status"], "review_required", "{p}");
        assert!(
            p["proposal_id"].as_str().unwrap().starts_with("wrp_"),
            "{p}"
        );
        assert_eq!(
            p["target"],
            json!({"type": "invoices", "id": "INV-3002", "tenant_id": "acme"})
        );
        assert_eq!(
            p["diff"]["waiver_reason"],
            json!({"before": null, "proposed": "v1"})
        );
        assert_eq!(p["approval_required"], true);
        assert_eq!(p["approval"]["required_role"], "billing_lead");
        assert!(
            p["evidence_bundle_id"].as_str().unwrap().starts_with("ev_"),
            "{p}"
        );
        assert_eq!(p["writeback"]["status"], "not_applied");

        let (r, e) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-9001"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true));
        assert_valid(&schema("billing__inspect_invoice"), &e);
        assert_eq!(e["ok"], false);
        assert_eq!(e["code"], "ROW_NOT_FOUND", "{e}");
        assert!(e["error"].as_str().unwrap().contains("INV-9001"), "{e}");
        assert_eq!(
            e["_meta"]["canonical_capability"],
            "billing.inspect_invoice"
        );
        client.cancel().await.unwrap();
    });
}

#[test]
fn with_the_executor_down_reads_answer_and_proposals_fail_clearly() {
    let mut stack = Stack::new(postgres());
    assert!(stack.exec.stop().success());
    rt().block_on(async {
        let client = stack.stdio(&[]).await;
        let (_, env) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(env["ok"], true);
        assert_eq!(env["evidence"], Value::Null);
        assert!(
            env["warnings"][0]
                .as_str()
                .unwrap()
                .contains("evidence was not recorded"),
            "{env}"
        );
        let (r, env) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "r"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true));
        assert_eq!(env["error"]["code"], "TEMPORARILY_UNAVAILABLE");
        assert_eq!(env["error"]["retryable"], true);
        assert_eq!(env["error"]["airlock_code"], "executor_unavailable");
        assert!(
            env["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not running"),
            "{env}"
        );
        client.cancel().await.unwrap();
    });
}

#[test]
fn a_write_credential_in_the_environment_stops_the_proposer() {
    let stack = Stack::new(postgres());
    let out = std::process::Command::new(airlock_tests::bin("airlock-proposer"))
        .args(["serve", "--config"])
        .arg(&stack.exec.config_path)
        .envs(stack.env())
        .env(
            "APP_WRITE_URL",
            "postgres://synapsor_writer:planted-write-secret@127.0.0.1/x",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("APP_WRITE_URL") && stderr.contains("write authority"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("planted-write-secret"),
        "the value is never printed"
    );
    assert!(out.stdout.is_empty(), "nothing but protocol on stdout");
}

#[test]
fn the_sandbox_check_refuses_every_forbidden_call() {
    let out = std::process::Command::new(airlock_tests::bin("airlock-proposer"))
        .arg("sandbox-check")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("execve") && report.contains("refused") && !report.contains("ALLOWED"),
        "{report}"
    );
}

#[test]
fn http_serves_many_sessions_at_once_and_caps_request_bodies() {
    let stack = Stack::new(postgres());
    let http = stack.http(&[]);
    rt().block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..8 {
            sessions.push(http.client(Some(TOKEN)).await);
        }
        let calls = sessions.iter().map(|c| async move {
            for _ in 0..20 {
                let (_, env) = call(c, "billing__inspect_invoice", json!({"invoice_id": "INV-3001"})).await;
                assert_eq!(env["ok"], true, "{env}");
            }
        });
        futures_join_all(calls).await;
        for c in sessions {
            c.cancel().await.unwrap();
        }
        let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "billing__inspect_invoice", "arguments": {"invoice_id": "x".repeat(2 * 1024 * 1024)}}});
        let r = reqwest::Client::new()
            .post(&http.url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Accept", "application/json, text/event-stream")
            .json(&huge)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "bodies over 1 MiB are refused");
    });
}

/// Await every future (no extra crate): spawn-free, sequential polling via join of a Vec.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut pending = handles;
    std::future::poll_fn(move |cx| {
        pending.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// What an official MCP SDK does with a `claude-desktop` snippet: it starts
/// the command with only HOME, LOGNAME, PATH, SHELL, TERM and USER plus the
/// snippet's `env` (no XDG_RUNTIME_DIR), in a working directory of its own.
/// The snippet's absolute AIRLOCK_SOCKET_DIR gets the proposer to the
/// executor; without it (the old snippet) the proposer looks in the wrong
/// place and says which absolute path it tried and why.
#[test]
fn a_client_started_from_the_claude_desktop_snippet_reaches_the_executor() {
    let stack = Stack::new(postgres());
    // The operator's shell, set up like the executor's environment.
    let out = std::process::Command::new(airlock_tests::bin("airlock"))
        .args([
            "mcp",
            "config",
            "claude-desktop",
            "--absolute-paths",
            "--config",
        ])
        .arg(&stack.exec.config_path)
        .env("AIRLOCK_SOCKET_DIR", &stack.exec.socket_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let snippet: Value = serde_json::from_slice(&out.stdout).unwrap();
    let server = &snippet["mcpServers"]["airlock"];
    assert_eq!(
        server["env"]["AIRLOCK_SOCKET_DIR"],
        stack.exec.socket_dir.to_str().unwrap()
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let spawn = |env: &serde_json::Map<String, Value>| {
        let mut cmd = tokio::process::Command::new(server["command"].as_str().unwrap());
        cmd.args(
            server["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        )
        .current_dir(elsewhere.path())
        .env_clear();
        for k in ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in env {
            // The operator fills in each placeholder.
            let value = match stack.env.iter().find(|(name, _)| name == k) {
                Some((_, real)) => real.clone(),
                None => v.as_str().unwrap().to_owned(),
            };
            cmd.env(k, value);
        }
        let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        transport
    };
    let env = server["env"].as_object().unwrap().clone();
    rt().block_on(async {
        use rmcp::ServiceExt as _;
        let client: McpClient = ().serve(spawn(&env)).await.unwrap();
        // The snippet yields names every desktop client accepts.
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), 8);
        for t in &tools {
            assert!(client_safe(&t.name), "{}", t.name);
        }
        let (_, read) = call(
            &client,
            "billing__inspect_invoice",
            json!({"invoice_id": "INV-3001"}),
        )
        .await;
        assert_eq!(read["ok"], true, "{read}");
        assert!(read["evidence"]["bundle_id"].is_string(), "{read}");
        let (_, proposal) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "snippet test"}),
        )
        .await;
        assert_eq!(proposal["ok"], true, "{proposal}");
        client.cancel().await.unwrap();

        // Without AIRLOCK_SOCKET_DIR the proposer falls back to .airlock/run
        // beside the config, and says so with the absolute path.
        let mut without = env.clone();
        without.remove("AIRLOCK_SOCKET_DIR");
        let client: McpClient = ().serve(spawn(&without)).await.unwrap();
        let (_, failed) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "snippet test"}),
        )
        .await;
        assert_eq!(failed["error"]["airlock_code"], "executor_unavailable", "{failed}");
        let beside = stack
            .exec
            .config_path
            .parent()
            .unwrap()
            .join(".airlock/run/proposer.sock");
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "no socket at {}, the directory from the default .airlock/run beside the config file",
                beside.display()
            )),
            "{message}"
        );
        client.cancel().await.unwrap();
    });
}

/// The proposer arguments of one `airlock mcp config` snippet after
/// `serve --config <file>`, without the transport options (the test serves
/// each over stdio; what matters is every naming option the snippet sets).
fn snippet_args(client: &str, stdout: &str, stderr: &str) -> Vec<String> {
    let argv: Vec<String> = match client {
        "claude-desktop" | "cursor" => {
            let doc: Value = serde_json::from_str(stdout).unwrap();
            serde_json::from_value(doc["mcpServers"]["airlock"]["args"].clone()).unwrap()
        }
        "vscode" => {
            let doc: Value = serde_json::from_str(stdout).unwrap();
            serde_json::from_value(doc["servers"]["airlock"]["args"].clone()).unwrap()
        }
        "generic" => {
            let doc: Value = serde_json::from_str(stdout).unwrap();
            let command: Vec<String> = serde_json::from_value(doc["command"].clone()).unwrap();
            command[1..].to_vec()
        }
        "openai-agents" => {
            // `"args": [ ... ],` holds JSON string literals.
            let line = stdout
                .lines()
                .find(|l| l.trim_start().starts_with("\"args\":"))
                .unwrap_or_else(|| panic!("no args in {stdout}"));
            let list = line
                .trim()
                .trim_start_matches("\"args\":")
                .trim()
                .trim_end_matches(',');
            serde_json::from_str(list).unwrap()
        }
        "claude-desktop-remote" => {
            // The host command: `NAME='…' … <proposer> serve …` on stderr.
            let line = stderr
                .lines()
                .find(|l| l.contains(" serve --config "))
                .unwrap_or_else(|| panic!("no host command in {stderr}"));
            let words: Vec<&str> = line.split_whitespace().collect();
            let serve = words.iter().position(|w| *w == "serve").unwrap();
            words[serve..].iter().map(|w| (*w).to_owned()).collect()
        }
        other => panic!("unexpected client {other}"),
    };
    assert_eq!(argv[0], "serve", "{client}: {argv:?}");
    let mut out = Vec::new();
    let mut rest = argv[1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--config" | "--transport" | "--listen" | "--auth-token-env" => {
                rest.next();
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

/// Every snippet `airlock mcp config` writes starts a proposer whose tool
/// names all match `^[a-zA-Z0-9_-]{1,64}$` (Claude Desktop, Cursor, Copilot
/// CLI and Codex reject anything else).
#[test]
fn every_mcp_config_snippet_yields_client_safe_tool_names() {
    let stack = Stack::new(postgres());
    rt().block_on(async {
        for client in [
            "claude-desktop",
            "claude-desktop-remote",
            "cursor",
            "vscode",
            "generic",
            "openai-agents",
        ] {
            let out = std::process::Command::new(airlock_tests::bin("airlock"))
                .args(["mcp", "config", client, "--config"])
                .arg(&stack.exec.config_path)
                .env("AIRLOCK_SOCKET_DIR", &stack.exec.socket_dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{client}: {out:?}");
            let args = snippet_args(
                client,
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
            );
            let extra: Vec<&str> = args.iter().map(String::as_str).collect();
            let mcp = stack.stdio(&extra).await;
            let tools = mcp.list_all_tools().await.unwrap();
            assert_eq!(tools.len(), 8, "{client}");
            for t in &tools {
                assert!(client_safe(&t.name), "{client}: {} ({extra:?})", t.name);
            }
            let (_, env) = call(
                &mcp,
                "billing__inspect_invoice",
                json!({"invoice_id": "INV-3001"}),
            )
            .await;
            assert_eq!(env["ok"], true, "{client}: {env}");
            assert_eq!(
                env["_meta"]["canonical_capability"], "billing.inspect_invoice",
                "{client}"
            );
            mcp.cancel().await.unwrap();
        }
    });
}

/// MCP Apps: every proposal tool names the display-only card in
/// `_meta.ui.resourceUri` (read tools do not); `resources/list` announces
/// it as `text/html;profile=mcp-app` with an empty `connectDomains` CSP;
/// `resources/read` returns a page with no token or config value in it,
/// no approve action and no way to call anything — asked through a real
/// MCP client (rmcp over stdio).
#[test]
fn proposal_tools_announce_a_display_only_card() {
    const CARD: &str = "ui://airlock/proposal-card.html";
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_reference(dir.path(), "reference");
    let stack = Stack::new(&db);
    rt().block_on(async {
        let mut env = stack.env();
        env.push(("MCP_TOKEN", TOKEN));
        let client = stdio_client(&stack.exec.config_path, &stack.exec.socket_dir, &env, &[]).await;
        let tools = client.list_all_tools().await.unwrap();
        let mut proposals = 0;
        for t in &tools {
            let meta = serde_json::to_value(&t.meta).unwrap();
            let read_only = t
                .annotations
                .as_ref()
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false);
            if read_only {
                assert!(meta.get("ui").is_none(), "{}: {meta}", t.name);
            } else {
                assert_eq!(meta["ui"]["resourceUri"], CARD, "{}: {meta}", t.name);
                proposals += 1;
            }
        }
        assert!(proposals >= 3, "{proposals}");

        let resources = client.list_all_resources().await.unwrap();
        assert_eq!(resources.len(), 1, "{resources:?}");
        let r = serde_json::to_value(&resources[0]).unwrap();
        assert_eq!(r["uri"], CARD);
        assert_eq!(r["mimeType"], "text/html;profile=mcp-app");
        assert_eq!(r["_meta"]["ui"]["csp"]["connectDomains"], json!([]), "{r}");
        assert_eq!(r["_meta"]["ui"]["csp"]["resourceDomains"], json!([]), "{r}");

        let read = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(CARD))
            .await
            .unwrap();
        let contents = serde_json::to_value(&read.contents).unwrap();
        assert_eq!(contents[0]["mimeType"], "text/html;profile=mcp-app");
        let html = contents[0]["text"].as_str().unwrap();
        assert!(
            html.contains("Awaiting approval outside this chat"),
            "{html}"
        );
        // No token, no config value, no credential.
        for secret in [TOKEN, db.read_url.as_str(), "acme", "agent_17"] {
            assert!(!html.contains(secret), "{secret} is in the card");
        }
        // No approve action and nothing that could reach anywhere.
        for action in [
            "<form",
            "<button",
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
            "tools/call",
            "href=",
            "src=",
        ] {
            assert!(!html.contains(action), "{action} is in the card");
        }
        // Anything else is not found.
        let missing = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(
                "ui://airlock/approve.html",
            ))
            .await;
        assert!(missing.is_err(), "{missing:?}");
        client.cancel().await.unwrap();
    });
}

/// One rotation slot: with `--previous-auth-token-env` the previous token is
/// accepted beside the active one; without it, only the active one is.
#[test]
fn a_rotation_accepts_the_previous_token_until_it_is_removed() {
    const OLD: &str = "previous-bearer-token-0123456789";
    let stack = Stack::new(postgres());
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let status = |http: &HttpProposer, token: &str| {
        rt().block_on(async {
            reqwest::Client::new()
                .post(&http.url)
                .header("Accept", "application/json, text/event-stream")
                .header("Authorization", format!("Bearer {token}"))
                .json(&init)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let mut env = stack.env();
    env.push(("MCP_TOKEN", TOKEN));
    env.push(("OLD_MCP_TOKEN", OLD));
    let rotating = HttpProposer::start(
        &stack.exec.config_path,
        &stack.exec.socket_dir,
        &env,
        &[
            "--auth-token-env",
            "MCP_TOKEN",
            "--previous-auth-token-env",
            "OLD_MCP_TOKEN",
        ],
    );
    assert_eq!(status(&rotating, TOKEN), 200);
    assert_eq!(status(&rotating, OLD), 200);
    assert_eq!(status(&rotating, "some-other-token-0123456789"), 401);
    drop(rotating);
    let rotated = stack.http(&[]);
    assert_eq!(status(&rotated, TOKEN), 200);
    assert_eq!(
        status(&rotated, OLD),
        401,
        "the old token ends with its flag"
    );
}
