//! The ledger's schema on PostgreSQL: the same tables, columns and
//! append-only rule as the SQLite ledger (`MIGRATIONS`), in one schema that
//! `airlock ledger migrate` creates and the executors only use.
//!
//! `verify` compares the live catalog — tables, columns, constraints,
//! indexes, triggers and the trigger function — with [`CATALOG`], the one
//! this build creates; a test migrates a fresh schema and checks the two
//! agree, so they cannot drift apart.

use super::LedgerError;
use super::db::{Db, DbError};
use crate::args;

/// Migrations, as on SQLite one per schema version; PostgreSQL ledgers
/// start at the version where they became possible, so its first entry
/// creates everything SQLite's first seven did.
pub const FIRST_VERSION: i64 = 7;

/// The DDL of version 7. `"user"` is quoted: unquoted, PostgreSQL reads it
/// as `current_user`.
const V7: &str = r#"
CREATE FUNCTION airlock_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END;
$$;
CREATE TABLE schema_version (
    version  BIGINT NOT NULL
);
CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    at           TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    proposal_id  TEXT,
    evidence_id  TEXT,
    actor_uid    BIGINT,
    actor_user   TEXT,
    payload      TEXT   NOT NULL,
    prev_hash    TEXT   NOT NULL,
    hash         TEXT   NOT NULL UNIQUE
);
CREATE INDEX events_proposal ON events(proposal_id);
CREATE INDEX events_evidence ON events(evidence_id);
CREATE TABLE evidence (
    evidence_id        TEXT PRIMARY KEY,
    seq                BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    capability         TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    principal          TEXT NOT NULL,
    query_fingerprint  TEXT NOT NULL,
    parameters         TEXT NOT NULL,
    rows_json          TEXT NOT NULL,
    recorded_uid       BIGINT NOT NULL,
    recorded_user      TEXT,
    recorded_at        TEXT NOT NULL
);
CREATE TABLE proposals (
    proposal_id        TEXT PRIMARY KEY,
    seq                BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    capability         TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    object_id          TEXT NOT NULL,
    principal          TEXT NOT NULL,
    change_set         TEXT NOT NULL,
    proposal_hash      TEXT NOT NULL,
    evidence_id        TEXT REFERENCES evidence(evidence_id),
    required_role      TEXT,
    proposer_uid       BIGINT NOT NULL,
    proposer_user      TEXT,
    created_at         TEXT NOT NULL,
    created_ms         BIGINT NOT NULL,
    expires_at         TEXT NOT NULL,
    expires_ms         BIGINT NOT NULL,
    capability_digest  TEXT
);
CREATE INDEX proposals_created ON proposals(created_ms);
CREATE INDEX proposals_expires ON proposals(expires_ms);
CREATE INDEX proposals_evidence ON proposals(evidence_id);
CREATE TABLE decisions (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    decision     TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    uid          BIGINT NOT NULL,
    "user"       TEXT,
    at           TEXT NOT NULL,
    at_ms        BIGINT NOT NULL,
    note         TEXT
);
CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    proposal_id      TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq              BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    attempt          BIGINT NOT NULL,
    executor         TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    uid              BIGINT NOT NULL,
    "user"           TEXT,
    started_at       TEXT NOT NULL,
    UNIQUE (proposal_id, attempt)
);
CREATE TABLE receipts (
    job_id        TEXT PRIMARY KEY REFERENCES jobs(job_id),
    proposal_id   TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq           BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    status        TEXT NOT NULL CHECK (status IN ('applied', 'already_applied', 'conflict', 'failed')),
    receipt       TEXT NOT NULL,
    receipt_hash  TEXT NOT NULL,
    detail        TEXT,
    executed_at   TEXT NOT NULL
);
CREATE INDEX receipts_proposal ON receipts(proposal_id, seq);
CREATE TABLE expirations (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    expires_at   TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE TABLE prunes (
    seq           BIGINT PRIMARY KEY REFERENCES events(seq),
    cut_off       TEXT NOT NULL,
    first_seq     BIGINT NOT NULL,
    start_hash    TEXT NOT NULL,
    through_seq   BIGINT NOT NULL,
    through_hash  TEXT NOT NULL,
    events        BIGINT NOT NULL,
    proposals     BIGINT NOT NULL,
    evidence      BIGINT NOT NULL,
    archive       TEXT NOT NULL,
    uid           BIGINT NOT NULL,
    "user"        TEXT,
    at            TEXT NOT NULL
);
CREATE TABLE notification_cursors (
    sink_id      TEXT PRIMARY KEY,
    through_seq  BIGINT NOT NULL
);
CREATE TABLE notification_deliveries (
    sink_id          TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    notification_id  TEXT NOT NULL,
    event            TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (sink_id, event_seq)
);
CREATE INDEX notification_due ON notification_deliveries(sink_id, state, next_attempt_ms);
CREATE TABLE votes (
    proposal_id  TEXT NOT NULL REFERENCES proposals(proposal_id),
    seq          BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    uid          BIGINT NOT NULL,
    "user"       TEXT,
    at           TEXT NOT NULL,
    note         TEXT,
    PRIMARY KEY (proposal_id, uid)
);
CREATE TABLE stale_approvals (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    seq          BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    uid          BIGINT NOT NULL,
    "user"       TEXT,
    at           TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE TABLE explore_queries (
    query_id             TEXT PRIMARY KEY,
    seq                  BIGINT NOT NULL UNIQUE REFERENCES events(seq),
    reservation_id       TEXT,
    tenant_id            TEXT NOT NULL,
    principal            TEXT NOT NULL,
    resource             TEXT,
    variant              TEXT,
    cohort               TEXT,
    plan                 TEXT,
    outcome              TEXT NOT NULL CHECK (outcome IN ('released', 'suppressed', 'refused', 'failed')),
    reason               TEXT,
    cells                BIGINT NOT NULL,
    suppressed_groups    BIGINT NOT NULL,
    charged_query        BIGINT NOT NULL,
    charged_variant      BIGINT NOT NULL,
    complete_release     BIGINT NOT NULL,
    suppression_release  BIGINT NOT NULL,
    charged_ms           BIGINT NOT NULL,
    uid                  BIGINT NOT NULL,
    "user"               TEXT,
    at                   TEXT NOT NULL,
    at_ms                BIGINT NOT NULL
);
CREATE INDEX explore_queries_window ON explore_queries(tenant_id, principal, charged_ms);
CREATE INDEX explore_queries_tenant ON explore_queries(tenant_id, seq);
CREATE TABLE explore_reservations (
    reservation_id    TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    principal         TEXT NOT NULL,
    uid               BIGINT NOT NULL,
    "user"            TEXT,
    resource          TEXT NOT NULL,
    variant           TEXT NOT NULL,
    cohort            TEXT NOT NULL,
    aggregate         BIGINT NOT NULL,
    cohort_protected  BIGINT NOT NULL,
    total             BIGINT NOT NULL,
    max_cells         BIGINT NOT NULL,
    plan              TEXT NOT NULL,
    reserved_ms       BIGINT NOT NULL
);
CREATE INDEX explore_reservations_scope ON explore_reservations(tenant_id, principal);
CREATE INDEX explore_reservations_reserved ON explore_reservations(reserved_ms);
CREATE TABLE apply_leases (
    proposal_id  TEXT PRIMARY KEY REFERENCES proposals(proposal_id),
    holder       TEXT NOT NULL,
    fence        BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL
);
CREATE INDEX apply_leases_expiry ON apply_leases(expires_ms);
"#;

/// The record tables, whose rows are never updated or deleted (TRUNCATE
/// too: it skips row triggers, so it has its own), and which an executor
/// only reads and appends to.
pub const APPEND_ONLY: &[&str] = &[
    "events",
    "evidence",
    "proposals",
    "decisions",
    "jobs",
    "receipts",
    "expirations",
    "prunes",
    "votes",
    "stale_approvals",
    "explore_queries",
];

fn append_only_sql() -> String {
    APPEND_ONLY
        .iter()
        .map(|t| {
            format!(
                "CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION airlock_append_only();\n\
                 CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION airlock_append_only();\n"
            )
        })
        .collect()
}

/// The SQL of each migration after `from` (a schema's current version,
/// 0 for an empty one).
pub fn migrations(from: i64) -> Vec<String> {
    let mut out = Vec::new();
    if from < FIRST_VERSION {
        out.push(format!(
            "{V7}{}INSERT INTO schema_version (version) VALUES ({FIRST_VERSION});",
            append_only_sql()
        ));
    }
    out
}

/// The schema version of the ledger (0 for a schema with no ledger yet).
pub fn version(db: &Db) -> Result<i64, DbError> {
    let exists: bool = db.one(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version')",
        args![],
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(db
        .query_opt("SELECT MAX(version) FROM schema_version", args![], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .flatten()
        .unwrap_or(0))
}

/// Everything in the ledger's schema, one sorted line per object, with the
/// schema's own name left out (so any schema name describes the same).
pub fn describe(db: &Db) -> Result<Vec<String>, DbError> {
    db.query_map(
        "SELECT line FROM (\
           SELECT 'table ' || table_name || ' ' || table_type AS line FROM information_schema.tables WHERE table_schema = current_schema() \
           UNION ALL SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END || COALESCE(' default ' || column_default, '') \
             FROM information_schema.columns WHERE table_schema = current_schema() \
           UNION ALL SELECT 'constraint ' || cl.relname || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid) \
             FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = current_schema() \
           UNION ALL SELECT 'index ' || replace(indexdef, schemaname || '.', '') FROM pg_indexes WHERE schemaname = current_schema() \
           UNION ALL SELECT 'trigger ' || replace(pg_get_triggerdef(t.oid), n.nspname || '.', '') \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal \
           UNION ALL SELECT 'function ' || p.proname || ' ' || md5(p.prosrc) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema() \
           UNION ALL SELECT 'sequence ' || sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema() \
         ) d ORDER BY line",
        args![],
        |r| r.get(0),
    )
}

/// `Ok(Err(why))` when the live schema is not exactly [`CATALOG`].
pub fn check(db: &Db) -> Result<Result<(), String>, LedgerError> {
    let version = version(db)?;
    if version != super::SCHEMA_VERSION {
        return Ok(Err(format!(
            "the ledger's schema version {version} is not {} (run `airlock ledger migrate`)",
            super::SCHEMA_VERSION
        )));
    }
    let have = describe(db)?;
    let want: Vec<&str> = CATALOG.lines().filter(|l| !l.is_empty()).collect();
    if let Some(missing) = want.iter().find(|w| !have.iter().any(|h| h == *w)) {
        return Ok(Err(format!(
            "the ledger's {missing} is missing or different (the schema was changed)"
        )));
    }
    if let Some(extra) = have.iter().find(|h| !want.contains(&h.as_str())) {
        return Ok(Err(format!(
            "the ledger has an extra {extra} (the schema was changed)"
        )));
    }
    Ok(Ok(()))
}

/// Operational tables an executor also updates and deletes from.
const OPERATIONAL_TABLES: &[&str] = &[
    "notification_cursors",
    "notification_deliveries",
    "explore_reservations",
    "apply_leases",
];

/// The least privilege an executor's role needs on the ledger schema:
/// read and append the records (never update or delete them — the
/// triggers refuse that anyway, and without the privilege the server
/// refuses it first), read the version, and keep the operational rows.
/// `role` must be a plain identifier (checked by the caller).
pub fn grants_sql(schema: &str, role: &str) -> String {
    format!(
        "GRANT USAGE ON SCHEMA \"{schema}\" TO \"{role}\";\n\
         GRANT SELECT, INSERT ON {records} TO \"{role}\";\n\
         GRANT SELECT ON \"{schema}\".schema_version TO \"{role}\";\n\
         GRANT SELECT, INSERT, UPDATE, DELETE ON {operational} TO \"{role}\";\n",
        records = qualified(schema, APPEND_ONLY),
        operational = qualified(schema, OPERATIONAL_TABLES),
    )
}

fn qualified(schema: &str, tables: &[&str]) -> String {
    tables
        .iter()
        .map(|t| format!("\"{schema}\".{t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A role name `grants_sql` accepts: letters, digits and underscores.
pub fn is_role_name(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 63
        && role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !role.as_bytes()[0].is_ascii_digit()
}

/// What [`describe`] says of a schema this build migrated.
pub const CATALOG: &str = include_str!("pg_catalog.txt");
