//! `airlock audit`: a static risk review of an MCP server's tool list.
//!
//! The input is a tool list — the built-in example (`--example
//! dangerous-db-mcp`), a JSON file (an MCP `tools/list` result `{"tools":
//! [...]}`, a JSON-RPC response around one, or a bare array of tools), or a
//! live server started with `--stdio "CMD"`, of which only `initialize` and
//! `tools/list` are called before it is stopped. No tool is ever called.
//!
//! Each tool's name, description and input schema are checked against the
//! rules below; every finding has a severity, the tool, the arguments
//! involved, why it is a risk and the safer shape. The overall risk is the
//! highest severity found, or `none` (clean).
//!
//! Exit codes: 0 for a completed review, whatever the risk (the risk is the
//! review's result, not a failure of the command); 1 when the input cannot be
//! read or the server cannot be queried; 2 for usage errors (no input, more
//! than one, an unknown example or format, an empty `--stdio` command).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::PaginatedRequestParams;
use rmcp::transport::TokioChildProcess;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use super::output::{Exit, escape, fail, print_json, say};

/// The built-in example: a database MCP server with every classic mistake.
const DANGEROUS_DB_MCP: &str = include_str!("dangerous-db-mcp.json");
/// Names accepted by `--example`.
pub const EXAMPLES: &[&str] = &["dangerous-db-mcp"];
/// Output formats accepted by `--format`.
pub const FORMATS: &[&str] = &["text", "json", "markdown"];

/// Largest tool-list file read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most tools reviewed from one input.
const MAX_TOOLS: usize = 10_000;
/// Most `tools/list` pages requested from a live server.
const MAX_PAGES: usize = 100;
/// The whole `--stdio` session: start, initialize, tools/list, stop.
const STDIO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a graceful stop (close stdin, SIGTERM) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(8);
/// How much of the server's stderr is kept to explain a failure.
const STDERR_TAIL_BYTES: usize = 4096;
/// How deep nested argument schemas are searched.
const MAX_SCHEMA_DEPTH: usize = 4;

// ------------------------------------------------------------------ rules

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One rule: a stable id, a title and the safer shape to move to.
#[derive(Debug, Clone, Copy)]
struct Rule {
    id: &'static str,
    title: &'static str,
    safer_shape: &'static str,
}

const ARBITRARY_SQL: Rule = Rule {
    id: "arbitrary_sql",
    title: "Arbitrary SQL or query text",
    safer_shape: "One tool per business action with typed, bounded arguments (e.g. `billing.inspect_invoice(invoice_id)`), each backed by a fixed, parameterized statement in a reviewed config, over a read-only database role.",
};
const BROAD_WRITE: Rule = Rule {
    id: "broad_write",
    title: "Broad or destructive write",
    safer_shape: "A proposal tool per allowed change: a fixed table, a primary-key lookup scoped by tenant, an allow-list of columns with bounds or enums, and a conflict guard; a separate process holding the write credential applies it after a person approves.",
};
const MODEL_FACING_APPROVAL: Rule = Rule {
    id: "model_facing_approval",
    title: "Approval, commit or apply offered to the model",
    safer_shape: "Remove it from the model's tool list. A person approves outside the model's reach (e.g. `airlock proposals approve` on the executor's operator socket), checked against an approver list and the capability's required role.",
};
const MODEL_CONTROLLED_AUTHORITY: Rule = Rule {
    id: "model_controlled_authority",
    title: "Tenant, principal or role chosen by the model",
    safer_shape: "Take tenant and principal from trusted context (the server's environment or the authenticated session), never from arguments, and scope every read and write by the tenant key.",
};
const FREE_FORM_IDENTIFIER: Rule = Rule {
    id: "free_form_identifier",
    title: "Free-form table, column, schema or database",
    safer_shape: "Fix tables and columns in the reviewed config; if the model must choose, offer an `enum` of reviewed values.",
};
const NO_PROPOSAL_BOUNDARY: Rule = Rule {
    id: "no_proposal_boundary",
    title: "Mutation without a proposal boundary",
    safer_shape: "Make the tool record a proposal (before, patch, after, evidence) that a person approves before a separate, privileged process applies it exactly once; say so in the description.",
};
const LOOSE_SCHEMA: Rule = Rule {
    id: "loose_schema",
    title: "Open or unbounded input schema",
    safer_shape: "Set `additionalProperties: false` and bound every argument (`maxLength`, `minimum`/`maximum`, `enum`).",
};

const RULES: &[Rule] = &[
    ARBITRARY_SQL,
    BROAD_WRITE,
    MODEL_FACING_APPROVAL,
    MODEL_CONTROLLED_AUTHORITY,
    FREE_FORM_IDENTIFIER,
    NO_PROPOSAL_BOUNDARY,
    LOOSE_SCHEMA,
];

/// Argument names that carry SQL text or SQL fragments.
const SQL_ARGS: &[&str] = &[
    "sql",
    "raw_sql",
    "sql_query",
    "sql_statement",
    "sql_text",
    "sql_template",
    "raw_query",
    "query_sql",
    "statement",
    "statements",
    "stmt",
    "where",
    "where_clause",
    "filter_sql",
    "order_by",
    "group_by",
    "having",
    "join",
];
/// Argument names that carry a query, SQL when the tool is about a database.
const QUERY_ARGS: &[&str] = &["query", "queries", "query_string", "querystring", "q"];
/// Words that make a `query` argument a database query.
const DATABASE_WORDS: &[&str] = &[
    "sql",
    "database",
    "databases",
    "db",
    "table",
    "tables",
    "rows",
    "row",
    "select",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "column",
    "columns",
];
/// Words of a tool name or description that mean "any statement".
const ANY_WORDS: &[&str] = &[
    "arbitrary",
    "any",
    "raw",
    "execute",
    "executes",
    "run",
    "runs",
    "free",
    "freeform",
    "custom",
];

/// Tool-name words that change state.
const MUTATING_NAME_WORDS: &[&str] = &[
    "update",
    "delete",
    "insert",
    "drop",
    "write",
    "execute",
    "exec",
    "modify",
    "alter",
    "truncate",
    "upsert",
    "create",
    "remove",
    "set",
    "patch",
    "put",
    "replace",
    "merge",
    "edit",
    "change",
    "apply",
    "commit",
    "approve",
    "grant",
    "revoke",
    "confirm",
    "issue",
    "refund",
    "cancel",
    "transfer",
    "charge",
    "pay",
    "send",
    "reset",
    "destroy",
    "purge",
    "erase",
    "assign",
    "add",
    "save",
    "store",
    "mutate",
    "migrate",
    "import",
    "close",
    "authorize",
    "authorise",
    "finalize",
    "finalise",
    "void",
    "credit",
    "debit",
    "waive",
];
/// Description words that say a tool changes state.
const MUTATING_DESCRIPTION_WORDS: &[&str] = &[
    "update",
    "updates",
    "delete",
    "deletes",
    "insert",
    "inserts",
    "drop",
    "drops",
    "write",
    "writes",
    "modify",
    "modifies",
    "alter",
    "alters",
    "truncate",
    "truncates",
    "upsert",
    "upserts",
    "overwrite",
    "overwrites",
    "execute",
    "executes",
    "mutate",
    "mutates",
];
/// Tool-name words that destroy data.
const DESTRUCTIVE_WORDS: &[&str] = &[
    "delete", "drop", "truncate", "destroy", "purge", "erase", "remove", "wipe",
];
/// Tool-name words that make the model its own approver.
const APPROVAL_WORDS: &[&str] = &[
    "approve",
    "approves",
    "approval",
    "approved",
    "commit",
    "apply",
    "grant",
    "confirm",
    "authorize",
    "authorise",
    "finalize",
    "finalise",
    "ratify",
    "countersign",
    "signoff",
];
/// Tool-name words that mark a proposal (review) step.
const PROPOSAL_NAME_WORDS: &[&str] = &[
    "propose",
    "proposal",
    "proposals",
    "draft",
    "suggest",
    "suggestion",
];
/// Description phrases that mark a proposal (review) step.
const PROPOSAL_PHRASES: &[&str] = &[
    "proposal",
    "propose",
    "pending approval",
    "pending review",
    "awaiting approval",
    "must approve",
    "must be approved",
    "requires approval",
    "require approval",
    "requires human approval",
    "needs approval",
    "for review",
    "for approval",
    "submitted for",
    "does not change the database",
    "does not modify",
];
/// Argument names that carry authority: who, for which tenant, with which rights.
const AUTHORITY_ARGS: &[&str] = &[
    "tenant",
    "tenant_id",
    "tenantid",
    "tenant_key",
    "tenant_slug",
    "org",
    "org_id",
    "organization",
    "organization_id",
    "organisation",
    "organisation_id",
    "workspace",
    "workspace_id",
    "team_id",
    "principal",
    "principal_id",
    "actor",
    "actor_id",
    "role",
    "roles",
    "permission",
    "permissions",
    "is_admin",
    "admin",
    "as_admin",
    "approver",
    "approved_by",
    "approved",
    "impersonate",
    "as_user",
    "on_behalf_of",
    "acting_as",
    "run_as",
    "sudo",
];
/// Words that make any argument an authority argument.
const AUTHORITY_WORDS: &[&str] = &["tenant", "principal", "impersonate", "impersonation"];
/// Argument names that may be authority or plain data: flagged, at medium.
const AMBIGUOUS_AUTHORITY_ARGS: &[&str] = &[
    "user",
    "user_id",
    "userid",
    "owner",
    "owner_id",
    "created_by",
    "account_role",
];
/// Argument-name words that name a database object.
const IDENTIFIER_WORDS: &[&str] = &[
    "table",
    "tables",
    "tablename",
    "column",
    "columns",
    "columnname",
    "field",
    "fields",
    "schema",
    "schemas",
    "database",
    "databases",
    "db",
    "collection",
    "collections",
    "keyspace",
    "catalog",
    "relation",
];
/// Argument names that carry free-form values to write.
const FREE_VALUE_ARGS: &[&str] = &[
    "value",
    "values",
    "data",
    "updates",
    "changes",
    "patch",
    "set",
    "payload",
    "record",
    "document",
    "body",
    "attributes",
    "properties",
    "row",
    "rows",
];

// ------------------------------------------------------------------ model

/// One tool as the review sees it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub schema: Value,
    pub annotations: Value,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub tool: String,
    pub arguments: Vec<String>,
    pub explanation: String,
    pub safer_shape: &'static str,
}

/// The whole review.
#[derive(Debug, Clone)]
pub struct Review {
    pub tools: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Review {
    /// The overall risk: the highest severity found, or `none`.
    pub fn risk(&self) -> &'static str {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .map_or("none", Severity::as_str)
    }

    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

/// Where the tool list came from.
#[derive(Debug, Clone)]
enum Origin {
    Example(String),
    File(PathBuf),
    Stdio {
        program: String,
        server: Option<(String, String)>,
        pid: Option<u32>,
    },
}

impl Origin {
    fn label(&self) -> String {
        match self {
            Origin::Example(name) => format!("the built-in example `{name}`"),
            Origin::File(p) => format!("`{}`", p.display()),
            Origin::Stdio {
                program, server, ..
            } => match server {
                Some((name, version)) => {
                    format!("the MCP server `{name}` {version} (started as `{program}`)")
                }
                None => format!("the MCP server started as `{program}`"),
            },
        }
    }

    fn json(&self) -> Value {
        match self {
            Origin::Example(name) => json!({"kind": "example", "name": name}),
            Origin::File(p) => json!({"kind": "file", "path": p.display().to_string()}),
            Origin::Stdio {
                program,
                server,
                pid,
            } => json!({
                "kind": "stdio",
                "program": program,
                "server": server.as_ref().map(|(n, v)| json!({"name": n, "version": v})),
                "pid": pid,
                "stopped": true,
            }),
        }
    }
}

// ------------------------------------------------------------------ entry

/// Run `airlock audit`. Exactly one of `example`, `file`, `stdio`.
pub fn run(
    example: Option<String>,
    file: Option<PathBuf>,
    stdio: Option<String>,
    format: String,
) -> Exit {
    let json_out = format == "json";
    if !FORMATS.contains(&format.as_str()) {
        return fail(
            false,
            "usage",
            &format!(
                "unknown --format `{format}`; use one of: {}",
                FORMATS.join(", ")
            ),
            Exit::Usage,
        );
    }
    let given =
        usize::from(example.is_some()) + usize::from(file.is_some()) + usize::from(stdio.is_some());
    if given != 1 {
        let what = if given == 0 {
            "nothing to audit"
        } else {
            "more than one input"
        };
        return fail(
            json_out,
            "usage",
            &format!(
                "{what}: give exactly one of `--example dangerous-db-mcp`, a tool-list FILE (JSON: {{\"tools\": [...]}}), or `--stdio \"CMD\"`"
            ),
            Exit::Usage,
        );
    }
    let loaded = if let Some(name) = example {
        load_example(&name)
    } else if let Some(path) = file {
        load_file(&path)
    } else if let Some(cmd) = stdio {
        load_stdio(&cmd)
    } else {
        Err(LoadError::Usage("nothing to audit".into()))
    };
    let (origin, tools) = match loaded {
        Ok(v) => v,
        Err(LoadError::Usage(m)) => return fail(json_out, "usage", &m, Exit::Usage),
        Err(LoadError::Failed(code, m)) => return fail(json_out, code, &m, Exit::Failure),
    };
    let review = review(&tools);
    match format.as_str() {
        "json" => print_json(&report_json(&origin, &review)),
        "markdown" => say!("{}", report_markdown(&origin, &review)),
        _ => say!("{}", report_text(&origin, &review)),
    }
    Exit::Ok
}

#[derive(Debug)]
enum LoadError {
    Usage(String),
    Failed(&'static str, String),
}

fn load_example(name: &str) -> Result<(Origin, Vec<ToolInfo>), LoadError> {
    if name != "dangerous-db-mcp" {
        return Err(LoadError::Usage(format!(
            "unknown example `{name}`; the built-in examples are: {}",
            EXAMPLES.join(", ")
        )));
    }
    let value: Value = serde_json::from_str(DANGEROUS_DB_MCP)
        .map_err(|e| LoadError::Failed("invalid_tool_list", e.to_string()))?;
    let tools = tools_from_json(&value).map_err(|e| LoadError::Failed("invalid_tool_list", e))?;
    Ok((Origin::Example(name.to_owned()), tools))
}

fn load_file(path: &Path) -> Result<(Origin, Vec<ToolInfo>), LoadError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        LoadError::Failed(
            "file_unreadable",
            format!("cannot read {}: {e}", path.display()),
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(&e))?;
    if !meta.is_file() {
        return Err(unreadable(&"not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(unreadable(&format!(
            "larger than {MAX_FILE_BYTES} bytes; a tool list is much smaller"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(&e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        LoadError::Failed(
            "invalid_tool_list",
            format!("{} is not JSON: {e}", path.display()),
        )
    })?;
    let tools = tools_from_json(&value)
        .map_err(|e| LoadError::Failed("invalid_tool_list", format!("{}: {e}", path.display())))?;
    Ok((Origin::File(path.to_owned()), tools))
}

/// Accept `{"tools": [...]}`, `{"result": {"tools": [...]}}` or `[...]`.
pub fn tools_from_json(value: &Value) -> Result<Vec<ToolInfo>, String> {
    let list = match value {
        Value::Array(a) => a,
        Value::Object(o) => match (o.get("tools"), o.get("result")) {
            (Some(Value::Array(a)), _) => a,
            (None, Some(Value::Object(r))) => match r.get("tools") {
                Some(Value::Array(a)) => a,
                _ => return Err(shape_error()),
            },
            _ => return Err(shape_error()),
        },
        _ => return Err(shape_error()),
    };
    if list.len() > MAX_TOOLS {
        return Err(format!(
            "{} tools; at most {MAX_TOOLS} are reviewed",
            list.len()
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let Value::Object(o) = t else {
                return Err(format!("tools[{i}] is not an object"));
            };
            let Some(name) = o.get("name").and_then(Value::as_str) else {
                return Err(format!("tools[{i}] has no string `name`"));
            };
            let description = o
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let schema = o
                .get("inputSchema")
                .or_else(|| o.get("input_schema"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            let annotations = o.get("annotations").cloned().unwrap_or(Value::Null);
            Ok(ToolInfo {
                name: name.to_owned(),
                description,
                schema,
                annotations,
            })
        })
        .collect()
}

fn shape_error() -> String {
    "expected an MCP tools/list result ({\"tools\": [...]}), a JSON-RPC response around one, or a JSON array of tools".to_owned()
}

// ------------------------------------------------------------------ stdio

fn load_stdio(cmdline: &str) -> Result<(Origin, Vec<ToolInfo>), LoadError> {
    let words: Vec<String> = cmdline.split_whitespace().map(str::to_owned).collect();
    let Some((program, args)) = words.split_first() else {
        return Err(LoadError::Usage(
            "--stdio needs a command, e.g. --stdio \"airlock-proposer serve --config config.json\""
                .into(),
        ));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LoadError::Failed("runtime", e.to_string()))?;
    let result = runtime.block_on(stdio_session(program, args));
    // Dropping the runtime drops any transport still alive; its child was
    // spawned with kill_on_drop, so nothing outlives this function.
    drop(runtime);
    let (tools, server, pid) = result.map_err(|e| LoadError::Failed("server_failed", e))?;
    let values: Vec<Value> = tools;
    let tools = tools_from_json(&Value::Array(values))
        .map_err(|e| LoadError::Failed("invalid_tool_list", e))?;
    Ok((
        Origin::Stdio {
            program: program.clone(),
            server,
            pid,
        },
        tools,
    ))
}

type StdioResult = (Vec<Value>, Option<(String, String)>, Option<u32>);

/// Start the server in its own process group, ask it `initialize` and
/// `tools/list`, stop it. Whatever happens, the group is gone afterwards.
async fn stdio_session(program: &str, args: &[String]) -> Result<StdioResult, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true).process_group(0);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let pid = transport.id();
    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    if let Some(mut stderr) = stderr {
        let tail = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(buf.get(..n).unwrap_or_default());
                    let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
                    t.drain(..excess);
                }
            }
        });
    }
    let session = async {
        let client = ().serve(transport).await.map_err(|e| {
            format!("the server did not complete the MCP `initialize` handshake: {e}")
        })?;
        let server = client.peer_info().and_then(|info| {
            info.server_info
                .as_ref()
                .map(|s| (s.name.clone(), s.version.clone()))
        });
        let listed = list_tools(&client).await;
        // Stop it: close its stdin, wait, SIGTERM, wait, SIGKILL (rmcp's
        // graceful shutdown), bounded.
        let _ = tokio::time::timeout(STOP_TIMEOUT, client.cancel()).await;
        listed.map(|tools| (tools, server))
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(STDIO_TIMEOUT, session) => match r {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the server did not answer `initialize` and `tools/list` within {} s; it was stopped",
                STDIO_TIMEOUT.as_secs()
            )),
        },
        _ = tokio::signal::ctrl_c() => Err("interrupted; the server was stopped".to_owned()),
    };
    // Whatever happened, end the server's whole process group: the child if
    // a graceful stop did not finish, and anything it started. (While any
    // member lives, the group id cannot be reused by another process.)
    kill_group(pid);
    match outcome {
        Ok((tools, server)) => Ok((tools, server, pid)),
        Err(e) => {
            // Give the stderr reader a moment to collect the last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let tail = tail
                .lock()
                .map(|t| String::from_utf8_lossy(&t).trim().to_owned())
                .unwrap_or_default();
            if tail.is_empty() {
                Err(e)
            } else {
                Err(format!(
                    "{e}\n  the server's stderr ended with:\n{}",
                    indent(&tail, "    ")
                ))
            }
        }
    }
}

async fn list_tools(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
) -> Result<Vec<Value>, String> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor.take());
        let page = client
            .list_tools(Some(params))
            .await
            .map_err(|e| format!("`tools/list` failed: {e}"))?;
        for t in &page.tools {
            tools.push(serde_json::to_value(t).map_err(|e| e.to_string())?);
        }
        if tools.len() > MAX_TOOLS {
            return Err(format!(
                "the server lists more than {MAX_TOOLS} tools; not reviewed"
            ));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(tools),
        }
    }
    Err(format!(
        "the server's `tools/list` did not end within {MAX_PAGES} pages"
    ))
}

fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------ review

/// Split a name into lower-case words: `snake_case`, `camelCase`,
/// `dotted.names`, `kebab-case`.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            out.push(std::mem::take(&mut cur));
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    out.push(cur);
    out.retain(|w| !w.is_empty());
    out
}

/// `whereClause` / `where-clause` / `WHERE_CLAUSE` → `where_clause`.
fn normalized(name: &str) -> String {
    words(name).join("_")
}

fn any_word(words: &[String], set: &[&str]) -> bool {
    words.iter().any(|w| set.contains(&w.as_str()))
}

/// One argument, found anywhere in the input schema.
#[derive(Debug)]
struct Arg<'a> {
    path: String,
    name: &'a str,
    schema: &'a Value,
}

fn collect_args<'a>(schema: &'a Value, prefix: &str, depth: usize, out: &mut Vec<Arg<'a>>) {
    if depth > MAX_SCHEMA_DEPTH || out.len() > 1000 {
        return;
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, sub) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(Arg {
                path: path.clone(),
                name,
                schema: sub,
            });
            collect_args(sub, &path, depth + 1, out);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_args(items, &format!("{prefix}[]"), depth + 1, out);
    }
}

/// Whether the model may put any value here (no `enum`/`const`, also in items).
fn free_form(schema: &Value) -> bool {
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        return false;
    }
    match schema.get("items") {
        Some(items) => free_form(items),
        None => true,
    }
}

fn is_object_type(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        None => schema.get("properties").is_some(),
        _ => false,
    }
}

fn is_string_type(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

fn open_object(schema: &Value) -> bool {
    is_object_type(schema) && schema.get("additionalProperties") != Some(&Value::Bool(false))
}

fn ticks(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Review every tool.
pub fn review(tools: &[ToolInfo]) -> Review {
    let mut findings = Vec::new();
    for t in tools {
        review_tool(t, &mut findings);
    }
    Review {
        tools: tools.iter().map(|t| t.name.clone()).collect(),
        findings,
    }
}

fn review_tool(tool: &ToolInfo, findings: &mut Vec<Finding>) {
    let name_words = words(&tool.name);
    let desc_lower = tool.description.to_lowercase();
    let desc_words = words(&tool.description);
    let mut args = Vec::new();
    collect_args(&tool.schema, "", 0, &mut args);
    let mut add = |rule: Rule, severity: Severity, arguments: Vec<String>, explanation: String| {
        findings.push(Finding {
            rule: rule.id,
            severity,
            tool: tool.name.clone(),
            arguments,
            explanation,
            safer_shape: rule.safer_shape,
        });
    };

    // Context for deciding whether a `query` argument is a database query.
    let about_database = any_word(&name_words, DATABASE_WORDS)
        || any_word(&desc_words, DATABASE_WORDS)
        || args.iter().any(|a| {
            a.schema
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| any_word(&words(d), DATABASE_WORDS))
        });

    // 1. Arbitrary SQL.
    let sql_args: Vec<String> = args
        .iter()
        .filter(|a| {
            let n = normalized(a.name);
            let w = words(a.name);
            SQL_ARGS.contains(&n.as_str())
                || w.iter().any(|w| w == "sql")
                || (QUERY_ARGS.contains(&n.as_str()) && about_database)
        })
        .filter(|a| free_form(a.schema))
        .map(|a| a.path.clone())
        .collect();
    let sql_in_name = name_words.iter().any(|w| w == "sql");
    let sql_in_description = (desc_words.iter().any(|w| w == "sql")
        && any_word(&desc_words, ANY_WORDS))
        || [
            "arbitrary quer",
            "any quer",
            "arbitrary table",
            "any table",
            "arbitrary sql",
            "raw sql",
            "any sql",
        ]
        .iter()
        .any(|p| desc_lower.contains(p));
    let arbitrary_sql = !sql_args.is_empty() || sql_in_name || sql_in_description;
    if arbitrary_sql {
        let mut why = Vec::new();
        if !sql_args.is_empty() {
            why.push(format!(
                "the model writes the query text ({})",
                ticks(&sql_args)
            ));
        }
        if sql_in_description || sql_in_name {
            why.push("the tool offers arbitrary SQL or queries by name or description".to_owned());
        }
        add(
            ARBITRARY_SQL,
            Severity::High,
            sql_args.clone(),
            format!(
                "{}. It can read or change any table and any tenant's rows, bypassing every business rule, and a prompt injection becomes SQL.",
                capitalize(&why.join(", and "))
            ),
        );
    }

    // Whether the tool changes state, and whether a person reviews it first.
    let hint = |key: &str| tool.annotations.get(key).and_then(Value::as_bool);
    let mutating = any_word(&name_words, MUTATING_NAME_WORDS)
        || hint("destructiveHint") == Some(true)
        || (hint("readOnlyHint") != Some(true)
            && any_word(&desc_words, MUTATING_DESCRIPTION_WORDS));
    let proposal_bounded = any_word(&name_words, PROPOSAL_NAME_WORDS)
        || PROPOSAL_PHRASES.iter().any(|p| desc_lower.contains(p));
    let destructive = any_word(&name_words, DESTRUCTIVE_WORDS);

    // 2. Broad or destructive write.
    if mutating && !arbitrary_sql {
        let targets: Vec<String> = args
            .iter()
            .filter(|a| {
                let n = normalized(a.name);
                let identifier = any_word(&words(a.name), IDENTIFIER_WORDS);
                let value = FREE_VALUE_ARGS.contains(&n.as_str());
                ((identifier || value) && free_form(a.schema))
                    || (open_object(a.schema) && a.schema.get("properties").is_none())
            })
            .map(|a| a.path.clone())
            .collect();
        if !targets.is_empty() {
            let severity = if proposal_bounded {
                Severity::Medium
            } else {
                Severity::High
            };
            add(
                BROAD_WRITE,
                severity,
                targets.clone(),
                format!(
                    "A write whose target or values the model chooses freely ({}): any column of any row can be set to anything.",
                    ticks(&targets)
                ),
            );
        } else if destructive && !proposal_bounded {
            add(
                BROAD_WRITE,
                Severity::High,
                Vec::new(),
                "An irreversible delete the model performs directly: one wrong or injected call loses data.".to_owned(),
            );
        }
    }

    // 3. Model-facing approval / commit / apply.
    let approval: Vec<&String> = name_words
        .iter()
        .filter(|w| APPROVAL_WORDS.contains(&w.as_str()))
        .collect();
    if !approval.is_empty() {
        add(
            MODEL_FACING_APPROVAL,
            Severity::High,
            Vec::new(),
            format!(
                "The tool name says `{}`: the model can approve, commit or apply on its own, so the review step it is meant to pass through is one tool call away.",
                approval
                    .iter()
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>()
                    .join("`, `")
            ),
        );
    }

    // 4. Model-controlled tenant / principal / role.
    let mut strong = Vec::new();
    let mut ambiguous = Vec::new();
    for a in &args {
        let n = normalized(a.name);
        if AUTHORITY_ARGS.contains(&n.as_str()) || any_word(&words(a.name), AUTHORITY_WORDS) {
            strong.push(a.path.clone());
        } else if AMBIGUOUS_AUTHORITY_ARGS.contains(&n.as_str()) {
            ambiguous.push(a.path.clone());
        }
    }
    if !strong.is_empty() {
        add(
            MODEL_CONTROLLED_AUTHORITY,
            Severity::High,
            strong.clone(),
            format!(
                "The model supplies {} — who it acts for, for which tenant, with which rights. One changed argument crosses tenants or escalates.",
                ticks(&strong)
            ),
        );
    }
    if !ambiguous.is_empty() {
        add(
            MODEL_CONTROLLED_AUTHORITY,
            Severity::Medium,
            ambiguous.clone(),
            format!(
                "The model supplies {}: if this is who the agent acts for, it must come from trusted context; if it is the record looked up, make sure every read is still scoped by tenant.",
                ticks(&ambiguous)
            ),
        );
    }

    // 5. Free-form table / column / schema / database.
    let identifiers: Vec<String> = args
        .iter()
        .filter(|a| any_word(&words(a.name), IDENTIFIER_WORDS) && free_form(a.schema))
        .map(|a| a.path.clone())
        .collect();
    if !identifiers.is_empty() {
        add(
            FREE_FORM_IDENTIFIER,
            Severity::Medium,
            identifiers.clone(),
            format!(
                "The model names the database objects ({}): it can reach tables and columns nobody reviewed for it, including secrets and other tenants' data.",
                ticks(&identifiers)
            ),
        );
    }

    // 6. Mutation without a proposal boundary.
    if mutating && !proposal_bounded {
        add(
            NO_PROPOSAL_BOUNDARY,
            Severity::High,
            Vec::new(),
            "The tool changes state as soon as the model calls it; nothing says a person reviews the change first, and nothing guards against stale data or a second application.".to_owned(),
        );
    }

    // 7. Loose schema.
    let open = open_object(&tool.schema) || tool.schema.as_object().is_none_or(Map::is_empty);
    let unbounded: Vec<String> = args
        .iter()
        .filter(|a| {
            is_string_type(a.schema)
                && free_form(a.schema)
                && a.schema.get("maxLength").is_none()
                && a.schema.get("pattern").is_none()
        })
        .map(|a| a.path.clone())
        .collect();
    if open || !unbounded.is_empty() {
        let mut why = Vec::new();
        if open {
            why.push("the input schema accepts arguments it does not declare".to_owned());
        }
        if !unbounded.is_empty() {
            why.push(format!("unbounded text in {}", ticks(&unbounded)));
        }
        add(
            LOOSE_SCHEMA,
            Severity::Low,
            unbounded,
            format!(
                "{}: the model can send more than anyone reviewed.",
                capitalize(&why.join("; "))
            ),
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

// ------------------------------------------------------------------ output

fn report_json(origin: &Origin, review: &Review) -> Value {
    let used: BTreeSet<&str> = review.findings.iter().map(|f| f.rule).collect();
    json!({
        "ok": true,
        "source": origin.json(),
        "risk": review.risk(),
        "clean": review.findings.is_empty(),
        "tools": review.tools.len(),
        "tool_names": review.tools,
        "counts": {
            "high": review.count(Severity::High),
            "medium": review.count(Severity::Medium),
            "low": review.count(Severity::Low),
        },
        "findings": review.findings,
        "rules": RULES
            .iter()
            .filter(|r| used.contains(r.id))
            .map(|r| json!({"rule": r.id, "title": r.title, "safer_shape": r.safer_shape}))
            .collect::<Vec<_>>(),
    })
}

fn rule_title(id: &str) -> &'static str {
    RULES.iter().find(|r| r.id == id).map_or("", |r| r.title)
}

fn summary_line(review: &Review) -> String {
    if review.findings.is_empty() {
        return "no findings".to_owned();
    }
    format!(
        "{} ({} high, {} medium, {} low)",
        plural(review.findings.len(), "finding", "findings"),
        review.count(Severity::High),
        review.count(Severity::Medium),
        review.count(Severity::Low)
    )
}

fn report_text(origin: &Origin, review: &Review) -> String {
    let mut out = Vec::new();
    out.push("Airlock audit: MCP tool list risk review".to_owned());
    out.push(String::new());
    out.push("== Summary ==".to_owned());
    out.push(format!("  Source:   {}", origin.label()));
    out.push(format!(
        "  Tools:    {}",
        plural(review.tools.len(), "tool", "tools")
    ));
    out.push(format!(
        "  Risk:     {}{}",
        review.risk().to_uppercase(),
        if review.findings.is_empty() {
            " (clean)"
        } else {
            ""
        }
    ));
    out.push(format!("  Findings: {}", summary_line(review)));
    if review.findings.is_empty() {
        out.push(String::new());
        out.push("== Findings ==".to_owned());
        out.push("  None: no SQL or query text, no approval/commit/apply tools, no tenant, principal or role arguments,".to_owned());
        out.push(
            "  no free-form table or column names, and no mutation without a proposal step."
                .to_owned(),
        );
    } else {
        out.push(String::new());
        out.push("== Findings ==".to_owned());
        for name in &review.tools {
            let mine: Vec<&Finding> = review.findings.iter().filter(|f| &f.tool == name).collect();
            if mine.is_empty() {
                continue;
            }
            out.push(format!("  {name}"));
            for f in mine {
                out.push(format!(
                    "    [{}] {} ({})",
                    f.severity.as_str(),
                    rule_title(f.rule),
                    f.rule
                ));
                out.push(format!("        {}", f.explanation));
            }
        }
        out.push(String::new());
        out.push("== The safer shape ==".to_owned());
        let used: BTreeSet<&str> = review.findings.iter().map(|f| f.rule).collect();
        for r in RULES.iter().filter(|r| used.contains(r.id)) {
            out.push(format!("  {} ({})", r.title, r.id));
            out.push(format!("        {}", r.safer_shape));
        }
    }
    let clean: Vec<&String> = review
        .tools
        .iter()
        .filter(|t| !review.findings.iter().any(|f| &&f.tool == t))
        .collect();
    if !clean.is_empty() {
        out.push(String::new());
        out.push("== Tools without findings ==".to_owned());
        for t in clean {
            out.push(format!("  {t}"));
        }
    }
    // Tool names come from the audited server: a newline or an escape
    // sequence in one must not forge or restyle a line of the report.
    out.iter().map(|l| escape(l)).collect::<Vec<_>>().join("\n")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn report_markdown(origin: &Origin, review: &Review) -> String {
    let mut out = Vec::new();
    out.push("# MCP tool audit".to_owned());
    out.push(String::new());
    out.push(format!(
        "**Risk: {}**{} · {} · {} · source: {}",
        review.risk(),
        if review.findings.is_empty() {
            " (clean)"
        } else {
            ""
        },
        plural(review.tools.len(), "tool", "tools"),
        summary_line(review),
        md_cell(&origin.label())
    ));
    out.push(String::new());
    out.push("## Findings".to_owned());
    out.push(String::new());
    if review.findings.is_empty() {
        out.push("None: no SQL or query text, no approval/commit/apply tools, no tenant, principal or role arguments, no free-form table or column names, and no mutation without a proposal step.".to_owned());
    } else {
        out.push("| Severity | Tool | Rule | Arguments | Why |".to_owned());
        out.push("| --- | --- | --- | --- | --- |".to_owned());
        for f in &review.findings {
            out.push(format!(
                "| {} | `{}` | {} | {} | {} |",
                f.severity.as_str(),
                md_cell(&f.tool),
                md_cell(rule_title(f.rule)),
                md_cell(&ticks(&f.arguments)),
                md_cell(&f.explanation)
            ));
        }
        out.push(String::new());
        out.push("## The safer shape".to_owned());
        let used: BTreeSet<&str> = review.findings.iter().map(|f| f.rule).collect();
        for r in RULES.iter().filter(|r| used.contains(r.id)) {
            out.push(String::new());
            out.push(format!("### {} (`{}`)", r.title, r.id));
            out.push(String::new());
            out.push(r.safer_shape.to_owned());
        }
    }
    out.push(String::new());
    out.push("## Tools reviewed".to_owned());
    out.push(String::new());
    for t in &review.tools {
        let n = review.findings.iter().filter(|f| &f.tool == t).count();
        out.push(format!(
            "- `{}` — {}",
            md_cell(t),
            if n == 0 {
                "no findings".to_owned()
            } else {
                plural(n, "finding", "findings")
            }
        ));
    }
    out.iter().map(|l| escape(l)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn tool(name: &str, description: &str, schema: Value) -> ToolInfo {
        ToolInfo {
            name: name.into(),
            description: description.into(),
            schema,
            annotations: Value::Null,
        }
    }

    fn rules_for<'a>(r: &'a Review, tool: &str) -> Vec<&'a str> {
        r.findings
            .iter()
            .filter(|f| f.tool == tool)
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn words_split_every_style() {
        assert_eq!(
            words("billing.proposeLateFee_waiver"),
            ["billing", "propose", "late", "fee", "waiver"]
        );
        assert_eq!(normalized("whereClause"), "where_clause");
    }

    #[test]
    fn the_example_is_high_risk() {
        let v: Value = serde_json::from_str(DANGEROUS_DB_MCP).unwrap();
        let r = review(&tools_from_json(&v).unwrap());
        assert_eq!(r.risk(), "high");
        assert!(rules_for(&r, "execute_sql").contains(&"arbitrary_sql"));
        assert!(rules_for(&r, "run_query").contains(&"arbitrary_sql"));
        assert!(rules_for(&r, "approve_refund").contains(&"model_facing_approval"));
        assert!(rules_for(&r, "approve_refund").contains(&"model_controlled_authority"));
        assert!(rules_for(&r, "update_customer").contains(&"broad_write"));
        assert!(rules_for(&r, "update_customer").contains(&"no_proposal_boundary"));
        assert!(rules_for(&r, "delete_order").contains(&"broad_write"));
        assert!(rules_for(&r, "query_database").contains(&"free_form_identifier"));
    }

    #[test]
    fn a_search_query_is_not_sql() {
        let r = review(&[tool(
            "docs.search",
            "Search the product documentation.",
            json!({"type": "object", "properties": {"query": {"type": "string", "maxLength": 200}}, "additionalProperties": false}),
        )]);
        assert_eq!(r.risk(), "none", "{:?}", r.findings);
    }

    #[test]
    fn enum_constrained_columns_are_fine() {
        let r = review(&[tool(
            "report.inspect_metric",
            "Read one metric. Read-only.",
            json!({"type": "object", "properties": {"column": {"type": "string", "enum": ["revenue", "churn"]}}, "additionalProperties": false}),
        )]);
        assert_eq!(r.risk(), "none", "{:?}", r.findings);
    }
}
