//! `airlock audit`: the built-in dangerous example is high risk with a
//! finding for each bad tool; a well-shaped tool list and Airlock's own
//! proposer (run for real over stdio) are clean; bad input gets a clear
//! error and the right exit code, and a broken or silent server never hangs
//! the command or outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn airlock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

fn airlock(args: &[&str]) -> Output {
    Command::new(airlock_bin()).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

fn reference_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reference/airlock.reference.json")
}

/// This package builds `airlock-proposer` too (its main is the proposer's).
fn proposer_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_airlock-proposer"))
}

fn findings<'a>(report: &'a Value, tool: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["tool"] == tool)
        .collect()
}

fn has(report: &Value, tool: &str, rule: &str, severity: &str) -> bool {
    findings(report, tool)
        .iter()
        .any(|f| f["rule"] == rule && f["severity"] == severity)
}

fn args_of(report: &Value, tool: &str, rule: &str) -> Vec<String> {
    findings(report, tool)
        .iter()
        .filter(|f| f["rule"] == rule)
        .flat_map(|f| f["arguments"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

// ------------------------------------------------------------ the example

#[test]
fn the_dangerous_example_is_high_risk_with_a_finding_per_bad_tool() {
    let out = airlock(&["audit", "--example", "dangerous-db-mcp", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["ok"], true);
    assert_eq!(r["risk"], "high");
    assert_eq!(r["clean"], false);
    assert_eq!(r["tools"], 6);
    assert_eq!(
        r["source"],
        json!({"kind": "example", "name": "dangerous-db-mcp"})
    );

    // Arbitrary SQL.
    assert!(has(&r, "execute_sql", "arbitrary_sql", "high"));
    assert_eq!(args_of(&r, "execute_sql", "arbitrary_sql"), ["sql"]);
    assert!(has(&r, "run_query", "arbitrary_sql", "high"));
    assert_eq!(args_of(&r, "run_query", "arbitrary_sql"), ["query"]);
    assert!(has(&r, "query_database", "arbitrary_sql", "high"));
    assert_eq!(args_of(&r, "query_database", "arbitrary_sql"), ["where"]);
    // Mutation straight from the model.
    for tool in [
        "execute_sql",
        "approve_refund",
        "update_customer",
        "delete_order",
    ] {
        assert!(has(&r, tool, "no_proposal_boundary", "high"), "{tool}");
    }
    // Model-facing approval.
    assert!(has(&r, "approve_refund", "model_facing_approval", "high"));
    // Model-controlled tenant.
    for tool in ["approve_refund", "update_customer", "delete_order"] {
        assert!(
            has(&r, tool, "model_controlled_authority", "high"),
            "{tool}"
        );
        assert_eq!(
            args_of(&r, tool, "model_controlled_authority"),
            ["tenant_id"],
            "{tool}"
        );
    }
    // Broad and destructive writes.
    assert!(has(&r, "update_customer", "broad_write", "high"));
    let targets = args_of(&r, "update_customer", "broad_write");
    assert!(targets.contains(&"column".to_owned()) && targets.contains(&"value".to_owned()));
    assert!(has(&r, "delete_order", "broad_write", "high"));
    // Free-form identifiers.
    assert!(has(&r, "run_query", "free_form_identifier", "medium"));
    let ids = args_of(&r, "query_database", "free_form_identifier");
    for a in ["database", "schema", "table", "columns"] {
        assert!(ids.contains(&a.to_owned()), "{a} in {ids:?}");
    }
    assert!(has(&r, "update_customer", "free_form_identifier", "medium"));

    // Every finding explains itself and gives the safer shape.
    for f in r["findings"].as_array().unwrap() {
        for key in ["rule", "severity", "tool", "explanation", "safer_shape"] {
            assert!(
                f[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} in {f}"
            );
        }
    }
    let high = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "high")
        .count();
    assert_eq!(r["counts"]["high"], high);
}

#[test]
fn text_report_has_headed_sections() {
    let out = airlock(&["audit", "--example", "dangerous-db-mcp"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for heading in ["== Summary ==", "== Findings ==", "== The safer shape =="] {
        assert!(text.contains(heading), "{heading} missing:\n{text}");
    }
    assert!(text.contains("Risk:     HIGH"), "{text}");
    for tool in [
        "execute_sql",
        "run_query",
        "approve_refund",
        "update_customer",
        "delete_order",
        "query_database",
    ] {
        assert!(text.contains(tool), "{tool} missing:\n{text}");
    }
    assert!(text.contains("[high]"), "{text}");
}

#[test]
fn markdown_report_has_a_table_and_the_safer_shape() {
    let out = airlock(&[
        "audit",
        "--example",
        "dangerous-db-mcp",
        "--format",
        "markdown",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    assert!(md.starts_with("# MCP tool audit\n"), "{md}");
    for needle in [
        "**Risk: high**",
        "## Findings",
        "| Severity | Tool | Rule | Arguments | Why |",
        "| high | `execute_sql` |",
        "## The safer shape",
        "### Arbitrary SQL or query text (`arbitrary_sql`)",
        "## Tools reviewed",
        "- `delete_order` —",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }
}

// ------------------------------------------------------------ files

fn clean_tools() -> Value {
    json!({"tools": [
        {
            "name": "billing.inspect_invoice",
            "description": "Look up one invoice by `invoice_id`. Read-only; scoped to your tenant.",
            "inputSchema": {
                "type": "object",
                "properties": {"invoice_id": {"type": "string", "maxLength": 128}},
                "required": ["invoice_id"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true}
        },
        {
            "name": "billing.propose_late_fee_waiver",
            "description": "Propose waiving the late fee of one invoice. This does NOT change the database: it records a proposal that a person must approve.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "invoice_id": {"type": "string", "maxLength": 128},
                    "reason": {"type": "string", "maxLength": 500}
                },
                "required": ["invoice_id", "reason"],
                "additionalProperties": false
            }
        },
        {
            "name": "orders.propose_status_change",
            "description": "Propose a new status for one order; pending approval by a person.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "maxLength": 64},
                    "status": {"type": "string", "enum": ["ready_to_ship", "canceled"]}
                },
                "additionalProperties": false
            }
        },
        {
            "name": "docs.search",
            "description": "Search the product handbook.",
            "inputSchema": {
                "type": "object",
                "properties": {"query": {"type": "string", "maxLength": 200}},
                "additionalProperties": false
            }
        },
        {
            "name": "metrics.inspect",
            "description": "Read one metric.",
            "inputSchema": {
                "type": "object",
                "properties": {"column": {"type": "string", "enum": ["revenue", "churn"]}},
                "additionalProperties": false
            }
        }
    ]})
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

#[test]
fn a_well_shaped_tool_list_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tools.json", &clean_tools());
    let out = airlock(&["audit", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["risk"], "none", "{r:#}");
    assert_eq!(r["clean"], true);
    assert_eq!(r["tools"], 5);
    assert_eq!(r["findings"], json!([]));

    let out = airlock(&["audit", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("Risk:     NONE (clean)"), "{text}");
    assert!(!text.contains("== The safer shape =="), "{text}");

    let out = airlock(&["audit", file.to_str().unwrap(), "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("**Risk: none** (clean)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bare_array_and_a_json_rpc_response_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let tools = clean_tools()["tools"].clone();
    let mut dirty = tools.as_array().unwrap().clone();
    dirty.push(json!({
        "name": "crm.lookup",
        "description": "Look up a contact.",
        "inputSchema": {
            "type": "object",
            "properties": {"filter": {"type": "object", "properties": {"org_id": {"type": "string", "maxLength": 64}}}},
            "additionalProperties": false
        }
    }));
    let bare = write(dir.path(), "bare.json", &Value::Array(dirty.clone()));
    let rpc = write(
        dir.path(),
        "rpc.json",
        &json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": dirty}}),
    );
    for file in [bare, rpc] {
        let out = airlock(&["audit", file.to_str().unwrap(), "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let r = json_of(&out);
        assert_eq!(r["tools"], 6);
        assert_eq!(r["risk"], "high");
        // A nested tenant argument is found too.
        assert_eq!(
            args_of(&r, "crm.lookup", "model_controlled_authority"),
            ["filter.org_id"]
        );
        assert_eq!(r["findings"].as_array().unwrap().len(), 1, "{r:#}");
    }
}

#[test]
fn medium_and_low_risk_levels() {
    let dir = tempfile::tempdir().unwrap();
    let medium = write(
        dir.path(),
        "medium.json",
        &json!([{
            "name": "report.inspect",
            "description": "Read a report.",
            "inputSchema": {"type": "object", "properties": {"table": {"type": "string", "maxLength": 64}}, "additionalProperties": false}
        }]),
    );
    let r = json_of(&airlock(&[
        "audit",
        medium.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r["risk"], "medium", "{r:#}");
    let low = write(
        dir.path(),
        "low.json",
        &json!([{
            "name": "report.inspect",
            "description": "Read a report.",
            "inputSchema": {"type": "object", "properties": {"report_id": {"type": "string"}}}
        }]),
    );
    let r = json_of(&airlock(&[
        "audit",
        low.to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(r["risk"], "low", "{r:#}");
    assert_eq!(r["findings"][0]["rule"], "loose_schema");
}

// ------------------------------------------------------------ usage

#[test]
fn usage_errors_exit_2_and_unreadable_input_exits_1() {
    let out = airlock(&["audit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nothing to audit"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());

    let out = airlock(&["audit", "--example", "dangerous-db-mcp", "--stdio", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("more than one input"),
        "{}",
        stderr(&out)
    );

    let out = airlock(&[
        "audit",
        "--example",
        "dangerous-db-mcp",
        "--format",
        "json",
        "x.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["code"], "usage");

    let out = airlock(&["audit", "--example", "nope"]);
    assert_eq!(out.status.code(), Some(2));

    let out = airlock(&["audit", "--example", "dangerous-db-mcp", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));

    let out = airlock(&["audit", "--stdio", "   "]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--stdio needs a command"),
        "{}",
        stderr(&out)
    );

    let out = airlock(&["audit", "/nonexistent/tools.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/tools.json"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let out = airlock(&["audit", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not JSON"), "{}", stderr(&out));

    let shape = write(dir.path(), "shape.json", &json!({"tools": "execute_sql"}));
    let out = airlock(&["audit", shape.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["error"]["code"], "invalid_tool_list");

    let nameless = write(dir.path(), "nameless.json", &json!([{"description": "x"}]));
    let out = airlock(&["audit", nameless.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tools[0] has no string `name`"),
        "{}",
        stderr(&out)
    );
}

// ------------------------------------------------------------ --stdio

/// Run `airlock audit --stdio` against the real proposer, with only the
/// proposer's variables in the environment (the server inherits it).
fn audit_proposer(extra: &[&str], format: &str) -> Output {
    let sockets = tempfile::tempdir().unwrap();
    let mut cmdline = format!(
        "{} serve --config {}",
        proposer_bin().display(),
        reference_config().display()
    );
    for e in extra {
        cmdline.push(' ');
        cmdline.push_str(e);
    }
    Command::new(airlock_bin())
        .args(["audit", "--format", format, "--stdio", &cmdline])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "REFERENCE_POSTGRES_READ_URL",
            "postgres://reader:unused@127.0.0.1:1/app",
        )
        .env("SYNAPSOR_TENANT_ID", "acme")
        .env("SYNAPSOR_PRINCIPAL", "audit-test")
        .env("AIRLOCK_SOCKET_DIR", sockets.path())
        .env("AIRLOCK_LOG", "warn")
        .output()
        .unwrap()
}

fn gone(pid: u64) -> bool {
    // Gone, or at worst a zombie about to be reaped by init.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn airlocks_own_proposer_is_clean() {
    let out = audit_proposer(&[], "json");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["risk"], "none", "{r:#}");
    assert_eq!(r["clean"], true);
    assert_eq!(r["findings"], json!([]));
    assert_eq!(r["tools"], 8, "{r:#}");
    assert_eq!(r["source"]["kind"], "stdio");
    assert_eq!(r["source"]["server"]["name"], "airlock-proposer");
    let names: Vec<&str> = r["tool_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"billing__propose_late_fee_waiver"),
        "{names:?}"
    );
    assert!(names.contains(&"support__inspect_ticket"), "{names:?}");
    // The server was stopped.
    let pid = r["source"]["pid"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        gone(pid),
        "the proposer (pid {pid}) still runs after the audit"
    );
}

#[test]
fn airlocks_own_proposer_is_clean_with_openai_aliases_too() {
    let out = audit_proposer(&["--alias-mode", "both"], "text");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Risk:     NONE (clean)"), "{text}");
    assert!(text.contains("16 tools"), "{text}");
    assert!(text.contains("billing__propose_late_fee_waiver"), "{text}");
}

#[test]
fn a_server_that_exits_at_once_is_a_clear_error() {
    let started = Instant::now();
    let out = airlock(&["audit", "--stdio", "/bin/false"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("initialize"), "{err}");
    assert!(out.stdout.is_empty());

    let out = airlock(&[
        "audit",
        "--stdio",
        "/nonexistent/mcp-server --flag",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = json_of(&out);
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot start `/nonexistent/mcp-server`"),
        "{r}"
    );
}

#[test]
fn a_silent_server_times_out_and_is_stopped() {
    // A unique duration, so the test can look for its own process.
    let secs = format!("47.{}", std::process::id());
    let started = Instant::now();
    let out = airlock(&["audit", "--stdio", &format!("sleep {secs}")]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(25), "took {took:?}");
    assert!(stderr(&out).contains("within 15 s"), "{}", stderr(&out));
    let needle = format!("sleep\0{secs}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                && e.file_name()
                    .to_str()
                    .and_then(|p| p.parse::<u64>().ok())
                    .is_some_and(|p| !gone(p))
        });
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "`sleep {secs}` still runs after the audit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
