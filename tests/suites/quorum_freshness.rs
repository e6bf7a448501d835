//! Quorum and freshness-bound approval through the real processes: a
//! proposal made over MCP, voted on with the real CLI by two OS users
//! (root and `nobody`, through the socket group), its rows changed behind
//! Airlock's back in the real database — on Postgres and SQLite — and the
//! rogue attempts at both, each refused with the executor still serving.

use std::process::Output;

use airlock_ipc::message::{Approve, ProposalRef};
use airlock_ipc::{Request, Role};
use airlock_policy::config::Engine;
use airlock_tests::databases::{
    Database, execute, postgres_reference, query_strings, reference_config_for, sqlite_reference,
};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::propose_over_mcp;
use airlock_tests::proposals::refusal;
use airlock_tests::runtime as rt;
use serde_json::{Value, json};

const WAIVER: &str = "billing.propose_late_fee_waiver";

fn text(out: &Output) -> String {
    format!(
        "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

struct Setup {
    exec: ExecutorProcess,
    db: Database,
}

/// The reference config on `db`, with the waiver needing `quorum`
/// approvals, root and `nobody` as approvers, and `freshness` as the
/// `proposal_freshness` section (if any).
fn setup(db: Database, quorum: u32, freshness: Option<Value>, write_url: Option<&str>) -> Setup {
    let mut config = reference_config_for(&db);
    for cap in config["capabilities"].as_array_mut().unwrap() {
        if cap["name"] == WAIVER {
            cap["approval"]["required_approvals"] = json!(quorum);
        }
    }
    if let Some(f) = freshness {
        config["proposal_freshness"] = f;
    }
    config["airlock"] = json!({
        "socket_group": "nogroup",
        "approvers": [{"uid": 0, "roles": "*"}, {"user": "nobody", "roles": "*"}]
    });
    let url = write_url.map_or(db.write_url.clone(), str::to_owned);
    let exec = ExecutorProcess::start(
        &config,
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", url.as_str())],
    );
    Setup { exec, db }
}

impl Setup {
    fn propose(&self, invoice: &str) -> String {
        rt().block_on(propose_over_mcp(
            &self.exec.config_path,
            &self.exec.socket_dir,
            &self.db.read_url,
            WAIVER,
            json!({"invoice_id": invoice, "reason": "customer asked"}),
        ))
    }

    fn approve_as(&self, user: Option<&str>, id: &str) -> Output {
        let args = ["proposals", "approve", id, "--yes", "--json"];
        match user {
            Some(u) => self.exec.cli_as(u, &args),
            None => self.exec.cli(&args),
        }
    }

    fn show(&self, id: &str) -> Value {
        let out = self.exec.cli(&["proposals", "show", id, "--json"]);
        json_out(&out)["proposal"].clone()
    }

    fn invoice(&self, id: &str) -> Vec<Option<String>> {
        let cast = if self.db.engine == Engine::Mysql {
            "CHAR"
        } else {
            "TEXT"
        };
        query_strings(
            &self.db,
            &format!("SELECT CAST(late_fee_cents AS {cast}), waiver_reason, CAST(updated_at AS {cast}), status FROM invoices WHERE id = '{id}'"),
        )
        .pop()
        .unwrap_or_default()
    }
}

fn quorum_of_two(db: Database) {
    let mut s = setup(db, 2, None, None);
    let before = s.invoice("INV-3001");
    let id = s.propose("INV-3001");

    // First approval: counted, still pending, 1/2 everywhere.
    let out = s.approve_as(None, &id);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = json_out(&out);
    assert_eq!(d["decision"]["state"], "pending_approval", "{d}");
    assert_eq!(
        d["decision"]["quorum"],
        json!({"approvals": 1, "required": 2})
    );
    let shown = s.show(&id);
    assert_eq!(shown["summary"]["state"], "pending_approval");
    assert_eq!(
        shown["summary"]["quorum"],
        json!({"approvals": 1, "required": 2})
    );
    let out = s.exec.cli(&["proposals", "show", &id]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("approvals:  1/2"),
        "{}",
        text(&out)
    );
    let out = s.exec.cli(&["proposals", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pending_approval 1/2"),
        "{}",
        text(&out)
    );
    let out = s.exec.cli(&["replay", "show", &id, "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("approval_counted"),
        "{}",
        text(&out)
    );
    // `approve --apply` by a second vote's worth is not reached: nothing applied.
    assert_eq!(s.invoice("INV-3001"), before);

    // The same uid again: refused, not counted.
    let out = s.approve_as(None, &id);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "already_voted");
    assert_eq!(s.show(&id)["summary"]["quorum"]["approvals"], 1);

    // Another uid: the second distinct approval approves; apply works.
    let out = s.approve_as(Some("nobody"), &id);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json_out(&out)["decision"]["state"], "approved");
    assert_eq!(
        s.show(&id)["summary"]["quorum"],
        json!({"approvals": 2, "required": 2})
    );
    let out = s.exec.cli(&["apply", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.invoice("INV-3001")[0].as_deref(), Some("0"));

    // A rejection after one approval is terminal.
    let id2 = s.propose("INV-3002");
    assert_eq!(s.approve_as(None, &id2).status.code(), Some(0));
    let out = s.exec.cli_as(
        "nobody",
        &["proposals", "reject", &id2, "--reason", "no", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.show(&id2)["summary"]["state"], "rejected");
    let out = s.approve_as(Some("nobody"), &id2);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "invalid_state");

    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        s.exec.store.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the chain verifies with votes: {}",
        text(&out)
    );
    assert!(s.exec.is_alive());
}

#[test]
fn postgres_quorum_of_two_distinct_approvers() {
    quorum_of_two(postgres_reference("airlock_quorum_pg"));
}

#[test]
fn sqlite_quorum_of_two_distinct_approvers() {
    let dir = tempfile::tempdir().unwrap();
    quorum_of_two(sqlite_reference(dir.path(), "airlock_quorum_lite"));
}

fn freshness(db: Database) {
    // The waiver depends on the invoice's `status` (read through the
    // inspect capability): a column the target's own guards do not check.
    let f = json!({WAIVER: {"approval": "required", "dependencies": [
        {"id": "invoice_status", "capability": "billing.inspect_invoice",
         "identity_from_arg": "invoice_id", "version_column": "status"}]}});
    let s = setup(db.clone(), 1, Some(f), None);

    // A changed target row: approval refused, terminal conflict, nothing written.
    let id = s.propose("INV-3001");
    let out = s.exec.cli(&["proposals", "check-freshness", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "current: {}", text(&out));
    let shown = s.show(&id);
    assert_eq!(shown["dependencies"][0]["id"], "invoice_status", "{shown}");
    let now = if db.engine == Engine::Sqlite {
        "'2030-01-01 00:00:00'"
    } else {
        "now()"
    };
    execute(
        &db,
        &format!(
            "UPDATE invoices SET late_fee_cents = 7000, updated_at = {now} WHERE id = 'INV-3001'"
        ),
    );
    let out = s.exec.cli(&["proposals", "check-freshness", &id, "--json"]);
    assert_eq!(out.status.code(), Some(4), "changed: {}", text(&out));
    let changed = s.invoice("INV-3001");
    let out = s.approve_as(None, &id);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(json_out(&out)["error"]["code"], "stale");
    assert_eq!(s.show(&id)["summary"]["state"], "conflict");
    let out = s.exec.cli(&["apply", &id, "--json"]);
    assert_eq!(
        json_out(&out)["error"]["code"],
        "invalid_state",
        "{}",
        text(&out)
    );
    let out = s.approve_as(Some("nobody"), &id);
    assert_eq!(
        json_out(&out)["error"]["code"],
        "invalid_state",
        "a conflict is terminal"
    );
    assert_eq!(s.invoice("INV-3001"), changed, "nothing written");
    let out = s.exec.cli(&["replay", "show", &id, "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("freshness_conflict"),
        "{}",
        text(&out)
    );

    // A changed dependency row (the target's guards still hold).
    let id = s.propose("INV-3002");
    execute(
        &db,
        "UPDATE invoices SET status = 'disputed' WHERE id = 'INV-3002'",
    );
    let before = s.invoice("INV-3002");
    let out = s.exec.cli(&["proposals", "check-freshness", &id, "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dependency:invoice_status"),
        "{}",
        text(&out)
    );
    let out = s.approve_as(None, &id);
    assert_eq!(json_out(&out)["error"]["code"], "stale", "{}", text(&out));
    assert_eq!(s.show(&id)["summary"]["state"], "conflict");
    assert_eq!(s.invoice("INV-3002"), before);

    // A dependency changed after approval: the apply locks and re-checks it.
    // (A new proposal of the same row reads its new status.)
    let id = s.propose("INV-3002");
    let out = s.approve_as(None, &id);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    execute(
        &db,
        "UPDATE invoices SET status = 'paid' WHERE id = 'INV-3002'",
    );
    let before = s.invoice("INV-3002");
    let out = s.exec.cli(&["apply", &id, "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let w = json_out(&out);
    assert_eq!(
        w["writeback"]["receipt"]["safe_error_code"], "FRESHNESS_DEPENDENCY_STALE",
        "{w}"
    );
    assert_eq!(s.invoice("INV-3002"), before, "nothing written");
    let out = airlock_tests::airlock(&[
        "ledger",
        "verify",
        "--store",
        s.exec.store.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the chain verifies: {}",
        text(&out)
    );
}

#[test]
fn postgres_freshness_bound_approval() {
    freshness(postgres_reference("airlock_fresh_pg"));
}

#[test]
fn sqlite_freshness_bound_approval() {
    let dir = tempfile::tempdir().unwrap();
    freshness(sqlite_reference(dir.path(), "airlock_fresh_lite"));
}

#[test]
fn an_unavailable_source_refuses_the_approval_and_leaves_it_pending() {
    let db = postgres_reference("airlock_fresh_down");
    // The executor's write URL points at a closed port.
    let s = setup(
        db,
        1,
        None,
        Some("postgres://synapsor_writer:x@127.0.0.1:1/nowhere"),
    );
    let id = s.propose("INV-3001");
    let out = s.exec.cli(&["proposals", "check-freshness", &id, "--json"]);
    assert_eq!(out.status.code(), Some(1), "unavailable: {}", text(&out));
    let out = s.approve_as(None, &id);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = json_out(&out);
    assert_eq!(e["error"]["code"], "source_unavailable", "{e}");
    assert!(
        !e.to_string().contains("synapsor_writer:x"),
        "no credentials in the error"
    );
    assert_eq!(s.show(&id)["summary"]["state"], "pending_approval");
}

#[test]
fn rogue_attempts_at_quorum_and_freshness_are_refused() {
    let db = postgres_reference("airlock_quorum_rogue");
    let mut s = setup(db.clone(), 2, None, None);
    let id = s.propose("INV-3001");
    assert_eq!(s.approve_as(None, &id).status.code(), Some(0));
    rt().block_on(async {
        // 1. A proposer-role peer tries to approve: the message is not
        // allowed on the proposer socket.
        let mut proposer = s.exec.client(Role::Proposer).await;
        let r = proposer
            .call(Request::Approve(Approve {
                proposal_id: id.clone(),
                note: None,
            }))
            .await;
        assert_eq!(refusal(r), "forbidden");
        // 2. The same operator uid approves again over IPC.
        let mut op = s.exec.client(Role::Operator).await;
        let r = op
            .call(Request::Approve(Approve {
                proposal_id: id.clone(),
                note: None,
            }))
            .await;
        assert_eq!(refusal(r), "already_voted");
    });
    // 3. A forged vote count in the approve message: strict decoding
    // refuses the unknown field.
    let seen = rt().block_on(async {
        use airlock_ipc::frame::{read_frame, write_frame};
        let mut sock = tokio::net::UnixStream::connect(s.exec.operator_socket()).await.unwrap();
        let hello = json!({"id": 1, "type": "hello", "body": {"protocol": airlock_ipc::PROTOCOL, "role": "operator", "client_version": "rogue"}});
        write_frame(&mut sock, hello.to_string().as_bytes()).await.unwrap();
        read_frame(&mut sock).await.unwrap().unwrap();
        let forged = json!({"id": 2, "type": "approve", "body": {"proposal_id": id, "approvals": 2, "quorum": {"approvals": 2, "required": 2}}});
        write_frame(&mut sock, forged.to_string().as_bytes()).await.unwrap();
        let body = read_frame(&mut sock).await.ok().flatten().unwrap_or_default();
        String::from_utf8_lossy(&body).into_owned()
    });
    assert!(
        seen.contains("invalid_request") && seen.contains("unknown field `approvals`"),
        "{seen}"
    );
    assert_eq!(
        s.show(&id)["summary"]["quorum"]["approvals"],
        1,
        "nothing counted"
    );
    // 4. Approval of a stale picture.
    execute(
        &db,
        "UPDATE invoices SET late_fee_cents = 1, updated_at = now() WHERE id = 'INV-3001'",
    );
    let out = s.approve_as(Some("nobody"), &id);
    assert_eq!(json_out(&out)["error"]["code"], "stale", "{}", text(&out));
    // 5. Approving the conflict proposal.
    let out = s.approve_as(Some("nobody"), &id);
    assert_eq!(
        json_out(&out)["error"]["code"],
        "invalid_state",
        "{}",
        text(&out)
    );
    // 6. Approval after a rejection.
    let id2 = s.propose("INV-3002");
    let out = s
        .exec
        .cli(&["proposals", "reject", &id2, "--reason", "no", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = s.approve_as(Some("nobody"), &id2);
    assert_eq!(
        json_out(&out)["error"]["code"],
        "invalid_state",
        "{}",
        text(&out)
    );
    // The executor kept serving throughout.
    assert!(s.exec.is_alive());
    let out = s.exec.cli(&["proposals", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = rt().block_on(async {
        let mut op = s.exec.client(Role::Operator).await;
        op.call(Request::ShowProposal(ProposalRef {
            proposal_id: id.clone(),
        }))
        .await
    });
    assert!(out.is_ok());
}
