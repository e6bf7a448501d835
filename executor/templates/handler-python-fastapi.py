"""Airlock http handler for FastAPI (starter template, written for Airlock).

Airlock's executor sends one approved change per request:

    POST /airlock/writeback          (method as configured: POST, PUT or PATCH)
    Content-Type: application/json
    Idempotency-Key: <proposal_id>:<object_id>      (same on every retry)
    Authorization: Bearer <token>                    (if auth.token_env is set)
    X-Airlock-Timestamp: <unix seconds>
    X-Airlock-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

and expects one terminal JSON receipt back:
    {"status": "applied" | "already_applied" | "conflict" | "failed",
     "rows_affected": 1, "previous_version": ..., "new_version": ...,
     "safe_error_code": "VERSION_CONFLICT", "message": "..."}

Run:  pip install fastapi uvicorn
      HANDLER_SIGNING_SECRET=... HANDLER_TOKEN=... APP_DB_PATH=app.db \
      uvicorn handler:app --host 127.0.0.1 --port 8787

This template uses SQLite (standard library) as "the application's own data
store". Replace TABLES and the SQL with your application's, and keep the
shape: re-check tenant and version and make the change in ONE transaction,
recording the idempotency key in that same transaction.

The payload's `operation` says what to do: {"kind": "update" | "insert" |
"delete", "cardinality": "single" | "set"}. A set (change_set.set) is
changed whole or not at all: every member is checked first.
"""

import datetime
import hashlib
import hmac
import json
import os
import re
import sqlite3
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

SIGNING_SECRET = os.environ["HANDLER_SIGNING_SECRET"].encode()  # refuse to start without it
TOKEN = os.environ.get("HANDLER_TOKEN")  # optional second check
DB_PATH = os.environ.get("APP_DB_PATH", "app.db")
MAX_SKEW_SECONDS = 300  # signed requests older than this are refused (replay window)

# The tables this handler may change, and how: its OWN allow-list. The
# payload is signed off by a person, but the handler still refuses anything
# outside what it was written for: another table, another column, another
# kind of change.
TABLES = {
    "invoices": {
        "primary_key": "id",
        "tenant": "tenant_id",
        "version": "updated_at",  # conflict-guard column
        "columns": {"late_fee_cents", "waiver_reason"},  # may be patched
        "operations": {("update", "single")},
    },
    "credit_notes": {  # one new row per approved proposal
        "primary_key": "id",
        "tenant": "tenant_id",
        "columns": {"customer_id", "amount_cents"},  # may be given by the patch
        # The de-duplication identity: exactly the columns of the table's
        # UNIQUE (tenant_id, request_id) constraint.
        "identity": {"tenant_id", "request_id"},
        "apply_time": {"created_at"},  # may be set to the time of the change
        "operations": {("insert", "single")},
    },
    "tickets": {  # a reviewed set of tickets, closed together
        "primary_key": "id",
        "tenant": "tenant_id",
        "version": "version",  # an integer: a set advances it by one
        "columns": {"status", "close_reason"},
        "operations": {("update", "single"), ("update", "set")},
    },
    "sessions": {  # removed one at a time or as a reviewed set
        "primary_key": "id",
        "tenant": "tenant_id",
        "version": "version",
        "columns": set(),
        "operations": {("delete", "single"), ("delete", "set")},
    },
}
# Optional per table: "principal": "<column>" when rows belong to a principal
# (the payload then carries guards.principal, and every statement checks it).

MAX_SET_MEMBERS = 100  # the most a set may hold (Airlock's own cap)
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

app = FastAPI()


def receipt(status, code=None, message=None, **extra):
    r = {"status": status}
    if code:
        r["safe_error_code"] = code
    if message:
        r["message"] = message[:500]
    r.update({k: v for k, v in extra.items() if v is not None})
    return r


def answer(r, http_status=None):
    # conflict -> 409; every other terminal receipt -> 200 (unless given).
    code = http_status or (409 if r["status"] == "conflict" else 200)
    return JSONResponse(r, status_code=code)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    return a == b


def now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def next_version(current):
    """Integer versions count up; anything else becomes the current time."""
    if is_int(current):
        return current + 1
    return now()


def scope(spec, cs):
    """The WHERE terms besides the key: the tenant, and the principal if any.
    Another tenant's (or principal's) row is simply not found."""
    terms = [(spec["tenant"], cs["scope"]["tenant_id"])]
    if "principal" in spec:
        terms.append((spec["principal"], cs["guards"]["principal"]["value"]))
    return terms


def where(spec, cs, extra=()):
    """`pk = ? AND tenant = ? [AND principal = ?] [AND <extra> = ?]`: bind the
    key, the scope() values, then the extra columns' values, in that order."""
    cols = [spec["primary_key"]] + [c for c, _ in scope(spec, cs)] + list(extra)
    return " AND ".join(f"{c} = ?" for c in cols)


def check_guards(spec, cs):
    """The checks every kind shares. None if they pass, else a failed receipt."""
    if any(c not in spec["columns"] or not IDENT.match(c) for c in cs["patch"]):
        return receipt("failed", "COLUMN_NOT_ALLOWED", "patch has columns this handler may not change")
    tenant = cs["scope"]["tenant_id"]
    guard = cs["guards"].get("tenant")
    if guard is None or guard["column"] != spec["tenant"] or guard["value"] != tenant:
        return receipt("failed", "TENANT_GUARD_MISSING", "the payload's tenant guard does not match this table")
    principal = cs["guards"].get("principal")
    if "principal" in spec and (principal is None or principal["column"] != spec["principal"]
                                or principal["value"] != cs["principal"]["id"]):
        return receipt("failed", "PRINCIPAL_GUARD_MISSING", "the payload's principal guard does not match this table")
    if "principal" not in spec and principal is not None:
        return receipt("failed", "PRINCIPAL_GUARD_NOT_HANDLED", "this handler does not scope this table by principal")
    if any(c not in spec.get("apply_time", set()) for c in cs.get("apply_time", [])):
        return receipt("failed", "COLUMN_NOT_ALLOWED", "apply_time names columns this handler may not set")
    return None


# ------------------------------------------------------------- one row

def update_row(db, job, spec, cs):
    """UPDATE one row by key, tenant and the exact expected version."""
    expected = cs["guards"].get("expected_version")
    if expected is None or expected["column"] != spec["version"]:
        return receipt("failed", "VERSION_GUARD_MISSING", "the payload has no version guard for this table")
    table, patch, pk = cs["target"]["table"], cs["patch"], cs["target"]["primary_key"]["value"]
    terms = scope(spec, cs)
    cols = sorted(set(patch) | {spec["version"]})
    row = db.execute(f'SELECT {", ".join(cols)} FROM {table} WHERE {where(spec, cs)}',
                     [pk, *[v for _, v in terms]]).fetchone()
    if row is None:  # missing, or another tenant's row: the same answer
        return receipt("conflict", "ROW_NOT_FOUND", "no such row for this tenant")
    current = dict(zip(cols, row))
    version = current[spec["version"]]
    if not same(version, expected["value"]):
        return receipt("conflict", "VERSION_CONFLICT", "the row changed since the proposal",
                       previous_version=expected["value"], new_version=version)
    for col in patch:
        if col in cs["before"] and not same(current[col], cs["before"][col]):
            return receipt("conflict", "STALE_ROW", f"{col} changed since the proposal")
    new_version = next_version(version)
    changes = {**patch, **{c: now() for c in cs.get("apply_time", [])}, spec["version"]: new_version}
    sets = ", ".join(f"{c} = ?" for c in changes)
    cur = db.execute(
        f'UPDATE {table} SET {sets} WHERE {where(spec, cs, [spec["version"]])}',
        [*changes.values(), pk, *[v for _, v in terms], version])
    if cur.rowcount != 1:
        return receipt("conflict", "VERSION_CONFLICT", "the row changed during the update")
    return receipt("applied", rows_affected=1, previous_version=version, new_version=new_version)


def insert_row(db, job, spec, cs):
    """INSERT exactly one row: the patch, the tenant (and principal), the
    de-duplication identity and the apply-time columns. The table's UNIQUE
    constraint on the identity is what stops a second row."""
    identity = cs["guards"].get("deduplication") or []
    if {d["column"] for d in identity} != spec["identity"] or len(identity) != len(spec["identity"]):
        return receipt("failed", "DEDUP_GUARD_MISSING",
                       "the payload's de-duplication identity is not this table's unique key")
    row = dict(cs["patch"])
    fixed = [(c, v) for c, v in scope(spec, cs)]
    for d in identity:
        if d["source"] == "proposal_id" and d["value"] != job["proposal_id"]:
            return receipt("failed", "DEDUP_GUARD_MISSING", "the identity does not hold this proposal's id")
        if d["source"] == "trusted_tenant" and d["value"] != cs["scope"]["tenant_id"]:
            return receipt("failed", "DEDUP_GUARD_MISSING", "the identity does not hold this tenant")
        fixed.append((d["column"], d["value"]))
    fixed += [(c, now()) for c in cs.get("apply_time", [])]
    for col, value in fixed:
        if not IDENT.match(col) or (col in row and not same(row[col], value)):
            return receipt("failed", "COLUMN_NOT_ALLOWED", f"{col} is given twice with different values")
        row[col] = value
    table = cs["target"]["table"]
    try:
        cur = db.execute(f'INSERT INTO {table} ({", ".join(row)}) VALUES ({", ".join("?" for _ in row)})',
                         list(row.values()))
    except sqlite3.IntegrityError as e:  # Postgres: unique_violation (23505)
        if "UNIQUE" in str(e):
            return receipt("conflict", "DEDUP_CONFLICT", "a row with this identity already exists")
        return receipt("failed", "INSERT_REFUSED", "the table refused the new row")
    if cur.rowcount != 1:
        return receipt("failed", "INSERT_NOT_ONE_ROW", "the insert did not add exactly one row")
    return receipt("applied", rows_affected=1)


def delete_row(db, job, spec, cs):
    """DELETE one row by key, tenant and the exact expected version."""
    expected = cs["guards"].get("expected_version")
    if expected is None or expected["column"] != spec["version"]:
        return receipt("failed", "VERSION_GUARD_MISSING", "the payload has no version guard for this table")
    table, pk = cs["target"]["table"], cs["target"]["primary_key"]["value"]
    terms = scope(spec, cs)
    # What the reviewer saw being removed must still be what is removed.
    cols = sorted(set(cs["before"]) | {spec["version"]})
    if not all(IDENT.match(c) for c in cols):
        return receipt("failed", "COLUMN_NOT_ALLOWED", "before names a column that is not an identifier")
    row = db.execute(f'SELECT {", ".join(cols)} FROM {table} WHERE {where(spec, cs)}',
                     [pk, *[v for _, v in terms]]).fetchone()
    if row is None:
        return receipt("conflict", "ROW_NOT_FOUND", "no such row for this tenant")
    current = dict(zip(cols, row))
    version = current[spec["version"]]
    if not same(version, expected["value"]):
        return receipt("conflict", "VERSION_CONFLICT", "the row changed since the proposal",
                       previous_version=expected["value"], new_version=version)
    for col, value in cs["before"].items():
        if not same(current[col], value):
            return receipt("conflict", "STALE_ROW", f"{col} changed since the proposal")
    cur = db.execute(f'DELETE FROM {table} WHERE {where(spec, cs, [spec["version"]])}',
                     [pk, *[v for _, v in terms], version])
    if cur.rowcount != 1:
        return receipt("conflict", "VERSION_CONFLICT", "the row changed during the delete")
    return receipt("applied", rows_affected=1, previous_version=version)


# ---------------------------------------------------------- a bounded set

def change_members(db, job, spec, cs):
    """UPDATE or DELETE every member of the frozen set, all or nothing:
    first check every member in the given (primary-key) order — key, tenant,
    exact version and every value it was frozen with — then change each."""
    kind = job["operation"]["kind"]
    s = cs.get("set")
    if not isinstance(s, dict) or not isinstance(s.get("members"), list):
        return receipt("failed", "SET_INVALID", "the payload has no set")
    members = s["members"]
    if not (1 <= len(members) == s.get("row_count") <= s.get("max_rows", 0) <= MAX_SET_MEMBERS):
        return receipt("failed", "SET_INVALID", "the set's count is not within its cap")
    if cs["target"]["primary_key"]["column"] != spec["primary_key"]:
        return receipt("failed", "SET_INVALID", "the set is not keyed by this table's primary key")
    keys = [m["primary_key"] for m in members]
    if len({json.dumps(k) for k in keys}) != len(keys) or not all(isinstance(k, (str, int)) for k in keys):
        return receipt("failed", "SET_INVALID", "the set's keys are not distinct scalars")
    version_col = spec["version"]
    written = []  # the columns an UPDATE writes from each member's `after`
    if kind == "update":
        written = [c for c in cs["guards"]["allowed_columns"] if c not in cs.get("apply_time", [])]
        if any(c not in spec["columns"] or not IDENT.match(c) for c in written):
            return receipt("failed", "COLUMN_NOT_ALLOWED", "the set changes columns this handler may not change")
    for m in members:
        if not all(IDENT.match(c) for c in m["before"]) or version_col not in m["before"]:
            return receipt("failed", "SET_INVALID", "a member has no version or a bad column name")
        if kind == "update" and not is_int(m["before"][version_col]):
            return receipt("failed", "SET_INVALID", "a set update advances an integer version by one")
        changed = {c for c, v in m["after"].items() if not same(v, m["before"].get(c))}
        if kind == "update" and not changed <= set(written):
            return receipt("failed", "SET_INVALID", "a member's after differs from its before outside the patch")
        if kind == "delete" and m["after"]:
            return receipt("failed", "SET_INVALID", "a deleted member has an after")

    table, table_scope = cs["target"]["table"], [v for _, v in scope(spec, cs)]
    # 1. Check every member (SQLite's BEGIN IMMEDIATE already holds the write
    #    lock; in Postgres/MySQL: SELECT ... FOR UPDATE, one member at a time,
    #    in this order, so two sets lock in the same order).
    for m in members:
        cols = sorted(set(m["before"]) | {version_col})
        row = db.execute(f'SELECT {", ".join(cols)} FROM {table} WHERE {where(spec, cs)}',
                         [m["primary_key"], *table_scope]).fetchone()
        if row is None:
            return receipt("conflict", "SET_MEMBER_MISSING",
                           f"member {m['primary_key']} is gone for this tenant; nothing was changed")
        current = dict(zip(cols, row))
        if any(not same(current[c], v) for c, v in m["before"].items()):
            return receipt("conflict", "SET_DRIFT_CONFLICT",
                           f"member {m['primary_key']} changed since the proposal; nothing was changed")
    # 2. Change every member, each still at its exact version.
    for m in members:
        version = m["before"][version_col]
        if kind == "update":
            changes = {c: m["after"][c] for c in written if c in m["after"]}
            changes.update({c: now() for c in cs.get("apply_time", [])})
            changes[version_col] = version + 1
            sets = ", ".join(f"{c} = ?" for c in changes)
            sql, args = f"UPDATE {table} SET {sets}", list(changes.values())
        else:
            sql, args = f"DELETE FROM {table}", []
        cur = db.execute(f"{sql} WHERE {where(spec, cs, [version_col])}",
                         [*args, m["primary_key"], *table_scope, version])
        if cur.rowcount != 1:  # cannot happen under the lock; never guess
            return receipt("conflict", "SET_DRIFT_CONFLICT", "a member changed during the apply; nothing was changed")
    return receipt("applied", rows_affected=len(members))


OPERATIONS = {
    ("update", "single"): update_row,
    ("insert", "single"): insert_row,
    ("delete", "single"): delete_row,
    ("update", "set"): change_members,
    ("delete", "set"): change_members,
}


def verify(request: Request, body: bytes):
    """None if the request is authentic, else a failed receipt."""
    if TOKEN is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {TOKEN}".encode()):
            return receipt("failed", "UNAUTHORIZED", "bad bearer token")
    ts = request.headers.get("x-airlock-timestamp", "")
    sig = request.headers.get("x-airlock-signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW_SECONDS:
        return receipt("failed", "STALE_SIGNATURE", "missing or old X-Airlock-Timestamp")
    mac = hmac.new(SIGNING_SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v1={mac}".encode(), sig.encode()):
        return receipt("failed", "BAD_SIGNATURE", "the signature does not match the body")
    return None


def apply(job):
    cs = job["change_set"]
    key = job["idempotency_key"]
    # Payloads from before `operation` existed were always one-row updates.
    job.setdefault("operation", {"kind": "update", "cardinality": "single"})
    operation = (job["operation"].get("kind"), job["operation"].get("cardinality"))
    table = cs["target"]["table"]
    spec = TABLES.get(table)
    if spec is None:
        return receipt("failed", "TABLE_NOT_HANDLED", f"this handler does not change {table}")
    if operation not in spec["operations"] or operation not in OPERATIONS:
        return receipt("failed", "OPERATION_NOT_HANDLED",
                       f"this handler does not {operation[0]} {table} ({operation[1]})")
    refused = check_guards(spec, cs)
    if refused is not None:
        return refused

    db = sqlite3.connect(DB_PATH, isolation_level=None, timeout=5)
    try:
        db.execute("""CREATE TABLE IF NOT EXISTS airlock_processed_keys (
            idempotency_key TEXT PRIMARY KEY, writeback_job_id TEXT NOT NULL,
            receipt TEXT NOT NULL, processed_at TEXT NOT NULL)""")
        db.execute("BEGIN IMMEDIATE")  # Postgres/MySQL: SELECT ... FOR UPDATE
        done = db.execute("SELECT receipt FROM airlock_processed_keys WHERE idempotency_key = ?",
                          (key,)).fetchone()
        if done is not None:
            first = json.loads(done[0])
            return receipt("already_applied", message="applied earlier with this idempotency key",
                           previous_version=first.get("previous_version"),
                           new_version=first.get("new_version"))
        result = OPERATIONS[operation](db, job, spec, cs)
        if result["status"] != "applied":
            return result  # rolled back below: nothing changed
        if job.get("dry_run"):  # every check ran; roll back, and never say "applied"
            return receipt("failed", "DRY_RUN_OK", "dry run: every check passed; nothing was changed")
        db.execute("INSERT INTO airlock_processed_keys VALUES (?, ?, ?, ?)",
                   (key, job["writeback_job_id"], json.dumps(result), now()))
        db.execute("COMMIT")
        return result
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")  # every path that did not COMMIT changed nothing
        db.close()


@app.post("/airlock/writeback")
async def writeback(request: Request):
    body = await request.body()  # the raw bytes: the signature covers exactly these
    bad = verify(request, body)
    if bad is not None:
        return answer(bad, 401)
    try:
        job = json.loads(body)
    except ValueError:
        return answer(receipt("failed", "BAD_PAYLOAD", "the body is not JSON"), 400)
    if job.get("schema_version") != "synapsor.handler-writeback.v1":
        return answer(receipt("failed", "UNSUPPORTED_PAYLOAD", "unknown schema_version"), 400)
    if request.headers.get("idempotency-key") != job.get("idempotency_key"):
        return answer(receipt("failed", "BAD_PAYLOAD", "Idempotency-Key header and body differ"), 400)
    try:
        result = await run_in_threadpool(apply, job)  # sqlite3 blocks; keep it off the event loop
    except Exception as e:  # never guess: report failed, nothing changed
        return answer(receipt("failed", "HANDLER_ERROR", type(e).__name__), 500)
    return answer(result)
