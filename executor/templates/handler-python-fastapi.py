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
shape: re-check tenant and version and change the row in ONE transaction,
recording the idempotency key in that same transaction.
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

# The tables this handler may change, and how: its OWN allow-list.
TABLES = {
    "invoices": {
        "primary_key": "id",
        "tenant": "tenant_id",
        "version": "updated_at",  # conflict-guard column
        "columns": {"late_fee_cents", "waiver_reason"},  # may be patched
    },
}
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


def same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    return a == b


def now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def next_version(current):
    """Integer versions count up; anything else becomes the current time."""
    if isinstance(current, int) and not isinstance(current, bool):
        return current + 1
    return now()


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
    table = cs["target"]["table"]
    spec = TABLES.get(table)
    if spec is None:
        return receipt("failed", "TABLE_NOT_HANDLED", f"this handler does not change {table}")
    patch = cs["patch"]
    if any(c not in spec["columns"] or not IDENT.match(c) for c in patch):
        return receipt("failed", "COLUMN_NOT_ALLOWED", "patch has columns this handler may not change")
    tenant = cs["scope"]["tenant_id"]
    guard = cs["guards"].get("tenant")
    if guard is None or guard["column"] != spec["tenant"] or guard["value"] != tenant:
        return receipt("failed", "TENANT_GUARD_MISSING", "the payload's tenant guard does not match this table")
    expected = cs["guards"].get("expected_version")
    if expected is None or expected["column"] != spec["version"]:
        return receipt("failed", "VERSION_GUARD_MISSING", "the payload has no version guard for this table")
    pk = cs["target"]["primary_key"]["value"]

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
        cols = sorted(set(patch) | {spec["version"]})
        row = db.execute(
            f'SELECT {", ".join(cols)} FROM {table} WHERE {spec["primary_key"]} = ? AND {spec["tenant"]} = ?',
            (pk, tenant)).fetchone()
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
        if job.get("dry_run"):  # a dry run changes nothing, so never "applied"
            return receipt("failed", "DRY_RUN_OK", "dry run: every check passed; nothing was changed")
        new_version = next_version(version)
        sets = ", ".join(f"{c} = ?" for c in patch) + f', {spec["version"]} = ?'
        cur = db.execute(
            f'UPDATE {table} SET {sets} WHERE {spec["primary_key"]} = ? AND {spec["tenant"]} = ? AND {spec["version"]} = ?',
            [*patch.values(), new_version, pk, tenant, version])
        if cur.rowcount != 1:
            return receipt("conflict", "VERSION_CONFLICT", "the row changed during the update")
        result = receipt("applied", rows_affected=1, previous_version=version, new_version=new_version)
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
