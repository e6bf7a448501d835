#!/usr/bin/env python3
"""Airlock command handler (starter template, written for Airlock).

Airlock's executor runs this program for one approved change:

    command_env value:  /path/to/handler-command.py /path/to/app.db

* stdin:  the `synapsor.handler-writeback.v1` JSON (see docs), then EOF;
* stdout: exactly one JSON receipt, e.g. {"status": "applied", ...};
* env:    only PATH, LANG, AIRLOCK_IDEMPOTENCY_KEY, AIRLOCK_WRITEBACK_JOB_ID.
          Nothing else of the executor's environment reaches this program,
          so its own configuration (here: the database path) comes from an
          argument or a file. There is no shell: arguments are split on
          whitespace and cannot be quoted.
* stderr: kept (last ~2 KiB, scrubbed) in the receipt's detail for operators.

Receipt statuses are terminal:
  applied          the change was made now (rows_affected >= 1)
  already_applied  this idempotency key was applied before; nothing changed now
  conflict         the row is gone, belongs to another tenant, or changed since
                   the proposal; nothing changed
  failed           anything else; nothing changed

This template uses SQLite (Python's standard library) as "the application's
own data store". Replace TABLES and the SQL with your application's; keep the
shape: check and change in ONE transaction, and record the idempotency key in
that same transaction.
"""

import datetime
import json
import re
import sqlite3
import sys

# The tables this handler may change, and how: its OWN allow-list. The
# payload is signed off by a person, but the handler still refuses anything
# outside what it was written for.
TABLES = {
    "invoices": {
        "primary_key": "id",
        "tenant": "tenant_id",
        "version": "updated_at",  # conflict-guard column
        "columns": {"late_fee_cents", "waiver_reason"},  # may be patched
    },
}

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYS_DDL = """CREATE TABLE IF NOT EXISTS airlock_processed_keys (
    idempotency_key TEXT PRIMARY KEY,
    writeback_job_id TEXT NOT NULL,
    receipt TEXT NOT NULL,
    processed_at TEXT NOT NULL)"""


def receipt(status, code=None, message=None, **extra):
    r = {"status": status}
    if code:
        r["safe_error_code"] = code
    if message:
        r["message"] = message[:500]
    r.update({k: v for k, v in extra.items() if v is not None})
    return r


def same(a, b):
    """Equal as stored values (numbers compare numerically)."""
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


def apply(db, job):
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

    # BEGIN IMMEDIATE takes the write lock now: the checks below and the
    # UPDATE see the same row (in Postgres/MySQL: SELECT ... FOR UPDATE).
    db.execute("BEGIN IMMEDIATE")
    try:
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


def main():
    if len(sys.argv) != 2:
        print("usage: handler-command.py APP_DB_PATH", file=sys.stderr)
        print(json.dumps(receipt("failed", "HANDLER_USAGE", "the database path argument is missing")))
        return 2
    try:
        job = json.load(sys.stdin)
        if job.get("schema_version") != "synapsor.handler-writeback.v1":
            print(json.dumps(receipt("failed", "UNSUPPORTED_PAYLOAD", "unknown schema_version")))
            return 1
        db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
        db.execute(KEYS_DDL)
        result = apply(db, job)
    except Exception as e:  # never guess: report failed, nothing changed
        print(f"handler error: {type(e).__name__}: {e}", file=sys.stderr)
        result = receipt("failed", "HANDLER_ERROR", type(e).__name__)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
