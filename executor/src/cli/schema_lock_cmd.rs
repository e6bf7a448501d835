//! `airlock config lock`: record each capability's live table (its columns
//! and types, read from the catalog with the read credential) as the
//! config's schema lock (`airlock.schema_lock`), and the catalog read that
//! `airlock doctor` shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_policy::catalog_sql::{column_from_row, columns_query};
use airlock_policy::config::{Config, Engine, SchemaLockEntry};
use airlock_policy::drift;
use airlock_policy::schema_info::ColumnInfo;
use airlock_policy::secrets::{redact, url_secrets};
use serde_json::{Map, Value, json};
use sqlx::{Connection, Row};

use super::output::{Exit, fail, print_json, say};

/// How long reading one source's catalog may take.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(10);

/// The live columns of each `(schema, table)`, read over one connection to
/// `url` with the pinned catalog query (metadata only). A table the
/// credential cannot see has no columns. Errors are scrubbed of the URL's
/// secrets.
pub async fn read_tables(
    engine: Engine,
    url: &str,
    tables: &[(String, String)],
) -> Result<Vec<Vec<ColumnInfo>>, String> {
    sqlx::any::install_default_drivers();
    let secrets = url_secrets(url);
    let scrub = |e: &dyn std::fmt::Display| redact(&e.to_string(), &secrets);
    let read = async {
        let mut c = sqlx::AnyConnection::connect(url)
            .await
            .map_err(|e| format!("cannot connect: {}", scrub(&e)))?;
        let mut out = Vec::new();
        for (schema, table) in tables {
            out.push(
                table_columns(&mut c, engine, schema, table)
                    .await
                    .map_err(|e| format!("cannot read the catalog: {}", scrub(&e)))?,
            );
        }
        let _ = c.close().await;
        Ok(out)
    };
    match tokio::time::timeout(CATALOG_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", CATALOG_TIMEOUT.as_secs())),
    }
}

/// One table's columns over an open connection, with the pinned catalog
/// query (metadata only; no columns when the credential cannot see the
/// table). The error is the driver's, unscrubbed: callers scrub it.
pub async fn table_columns(
    c: &mut sqlx::AnyConnection,
    engine: Engine,
    schema: &str,
    table: &str,
) -> Result<Vec<ColumnInfo>, String> {
    let q = columns_query(engine);
    let mut query = sqlx::query(q.sql);
    for v in q.bind_values(schema, table) {
        query = query.bind(v.to_owned());
    }
    let rows = query.fetch_all(c).await.map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| {
            let text = |i: usize| r.try_get::<String, _>(i).map_err(|e| e.to_string());
            column_from_row(&text(0)?, &text(1)?, &text(2)?)
        })
        .collect()
}

/// The live columns of every target of `caps`, per source, read with each
/// source's read URL (from `env`). A source whose URL is not set, or whose
/// catalog cannot be read, gives that error for each of its targets.
pub async fn read_live(
    cfg: &Config,
    caps: &[&airlock_policy::config::Capability],
    env: impl Fn(&str) -> Option<String>,
) -> BTreeMap<drift::TargetKey, Result<Vec<ColumnInfo>, String>> {
    let mut by_source: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for cap in caps {
        let t = (cap.target.schema.clone(), cap.target.table.clone());
        let list = by_source.entry(cap.source.as_str()).or_default();
        if !list.contains(&t) {
            list.push(t);
        }
    }
    let mut live = BTreeMap::new();
    for (source_id, tables) in by_source {
        let result = match cfg.sources.get(source_id) {
            None => Err(format!("source `{source_id}` is not configured")),
            Some(source) => match env(&source.read_url_env) {
                None => Err(format!(
                    "{} (the read URL of source `{source_id}`) is not set",
                    source.read_url_env
                )),
                Some(url) => read_tables(source.engine, &url, &tables).await,
            },
        };
        for (i, (schema, table)) in tables.into_iter().enumerate() {
            let r = match &result {
                Ok(all) => Ok(all[i].clone()),
                Err(e) => Err(e.clone()),
            };
            live.insert((source_id.to_owned(), schema, table), r);
        }
    }
    live
}

pub struct LockArgs<'a> {
    pub config: Option<&'a Path>,
    pub capabilities: &'a [String],
    pub json: bool,
}

/// `airlock config lock`.
pub fn lock(args: &LockArgs) -> Exit {
    let json_out = args.json;
    let path: PathBuf = match crate::config_file::resolve_config(args.config) {
        Ok(p) => p,
        Err(e) => return fail(json_out, "config_unreadable", &e.to_string(), Exit::Failure),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                json_out,
                "config_unreadable",
                &format!("cannot read config {}: {e}", path.display()),
                Exit::Failure,
            );
        }
    };
    let mut doc = match airlock_policy::strict_json::parse(
        text.as_bytes(),
        airlock_policy::load::MAX_CONFIG_DEPTH,
    ) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                json_out,
                "config_invalid",
                &format!("{} is not valid JSON: {e}", path.display()),
                Exit::Failure,
            );
        }
    };
    // The config is loaded without its lock, so a stale or hand-edited lock
    // can be replaced; everything else must be valid.
    let old: Map<String, Value> = doc
        .get_mut("airlock")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove("schema_lock"))
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let loaded = airlock_policy::load_config(&doc);
    let Some(cfg) = loaded.config else {
        let first = loaded
            .report
            .errors()
            .next()
            .map(|d| format!("{}: {}", d.path, d.message))
            .unwrap_or_default();
        return fail(
            json_out,
            "config_invalid",
            &format!(
                "{} is invalid ({first}); run `airlock config validate --config {}` and fix it before locking",
                path.display(),
                path.display()
            ),
            Exit::Failure,
        );
    };
    for name in args.capabilities {
        if cfg.defined_capability(name).is_none() {
            return fail(
                json_out,
                "unknown_capability",
                &format!(
                    "the config has no capability `{name}`; `airlock tools preview --config {}` lists them",
                    path.display()
                ),
                Exit::Failure,
            );
        }
    }
    // Disabled capabilities are locked too: serving one later (after its
    // review) must not need a second lock.
    let chosen: Vec<&airlock_policy::config::Capability> = cfg
        .every_capability()
        .filter(|c| args.capabilities.is_empty() || args.capabilities.contains(&c.name))
        .collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(json_out, "internal", &e.to_string(), Exit::Failure),
    };
    let live = runtime.block_on(read_live(&cfg, &chosen, |k| std::env::var(k).ok()));

    // Every chosen capability must be readable and exist, or nothing is written.
    let mut entries: BTreeMap<String, SchemaLockEntry> = BTreeMap::new();
    for cap in &chosen {
        let key = (
            cap.source.clone(),
            cap.target.schema.clone(),
            cap.target.table.clone(),
        );
        let shown = format!("{}.{}", cap.target.schema, cap.target.table);
        match live.get(&key) {
            Some(Ok(cols)) if !cols.is_empty() => {
                // Locking records a reviewed table: the capability itself must
                // still fit it, or it would be enabled again while broken.
                let mut used: Vec<&str> = cap.read_columns();
                if let Some(p) = &cap.proposal {
                    used.extend(p.allowed_columns.iter().map(String::as_str));
                }
                if let Some(missing) = used.iter().find(|c| !cols.iter().any(|l| l.name == **c)) {
                    return fail(
                        json_out,
                        "capability_mismatch",
                        &format!(
                            "capability `{}` uses column `{missing}`, which table {shown} no longer has; change the capability first (review), then lock again; nothing was written",
                            cap.name
                        ),
                        Exit::Failure,
                    );
                }
                entries.insert(
                    cap.name.clone(),
                    drift::lock_entry(&cap.target.schema, &cap.target.table, cols),
                );
            }
            Some(Ok(_)) => {
                return fail(
                    json_out,
                    "table_not_found",
                    &format!(
                        "capability `{}`: table {shown} does not exist or the read credential cannot see it; nothing was written",
                        cap.name
                    ),
                    Exit::Failure,
                );
            }
            Some(Err(e)) => {
                return fail(
                    json_out,
                    "source_unavailable",
                    &format!(
                        "capability `{}`: cannot read the columns of {shown}: {e}; nothing was written",
                        cap.name
                    ),
                    Exit::Failure,
                );
            }
            None => {
                return fail(
                    json_out,
                    "internal",
                    &format!("capability `{}`: its table was not read", cap.name),
                    Exit::Failure,
                );
            }
        }
    }

    // The new lock: the fresh entries, plus the old entries of capabilities
    // that were not re-locked and still exist.
    let old_entries: BTreeMap<String, SchemaLockEntry> = old
        .iter()
        .filter_map(|(name, v)| Some((name.clone(), valid_old_entry(&cfg, name, v)?)))
        .collect();
    let mut lock = Map::new();
    let mut report = Vec::new();
    for cap in cfg.every_capability() {
        if let Some(entry) = entries.get(&cap.name) {
            let changes = drift::changes(old_entries.get(&cap.name), entry);
            let status = match (old_entries.get(&cap.name), changes.is_empty()) {
                (None, _) => "locked",
                (Some(_), true) => "unchanged",
                (Some(_), false) => "relocked",
            };
            report.push(json!({
                "capability": cap.name,
                "table": format!("{}.{}", entry.schema, entry.table),
                "status": status,
                "columns": entry.columns.len(),
                "fingerprint": entry.fingerprint,
                "changes": changes,
            }));
            lock.insert(cap.name.clone(), entry_json(entry));
        } else if let Some(v) = old.get(&cap.name)
            && old_entries.contains_key(&cap.name)
        {
            lock.insert(cap.name.clone(), v.clone());
        }
    }
    let dropped: Vec<&String> = old.keys().filter(|k| !lock.contains_key(*k)).collect();

    let airlock = doc
        .as_object_mut()
        .map(|o| o.entry("airlock").or_insert_with(|| json!({})));
    let Some(Value::Object(airlock)) = airlock else {
        return fail(
            json_out,
            "config_invalid",
            "the config's `airlock` section is not an object",
            Exit::Failure,
        );
    };
    airlock.insert("schema_lock".into(), Value::Object(lock));
    let mut out = match serde_json::to_string_pretty(&doc) {
        Ok(s) => s,
        Err(e) => return fail(json_out, "internal", &e.to_string(), Exit::Failure),
    };
    out.push('\n');
    // What is written must load as it is.
    let check = airlock_policy::load_config_str(&out);
    if check.config.is_none() {
        let first = check
            .report
            .errors()
            .next()
            .map(|d| format!("{}: {}", d.path, d.message))
            .unwrap_or_default();
        return fail(
            json_out,
            "internal",
            &format!("the locked config would not load ({first}); nothing was written"),
            Exit::Failure,
        );
    }
    if let Err(e) = crate::config_file::replace_file(&path, out.as_bytes()) {
        return fail(
            json_out,
            "write_failed",
            &format!(
                "cannot write {}: {e}; the file is unchanged",
                path.display()
            ),
            Exit::Failure,
        );
    }
    if json_out {
        print_json(&json!({
            "ok": true,
            "config": path.display().to_string(),
            "capabilities": report,
            "removed": dropped,
        }));
    } else {
        for r in &report {
            say!(
                "{} {} ({}, {} columns, {})",
                r["status"].as_str().unwrap_or_default(),
                r["capability"].as_str().unwrap_or_default(),
                r["table"].as_str().unwrap_or_default(),
                r["columns"],
                r["fingerprint"].as_str().unwrap_or_default()
            );
            for c in r["changes"].as_array().into_iter().flatten() {
                if r["status"] != "locked" {
                    say!("    {}", c.as_str().unwrap_or_default());
                }
            }
        }
        for d in &dropped {
            say!("removed the lock of `{d}` (no such capability)");
        }
        say!(
            "\nWrote the schema lock into {}. Review the change (it is part of the reviewed config and its hash), then restart the executor and the proposer.",
            path.display()
        );
    }
    Exit::Ok
}

/// An existing lock entry that is still well-formed, matches its
/// fingerprint and names a capability of `cfg` and its table; other entries
/// are dropped when the lock is rewritten.
fn valid_old_entry(cfg: &Config, name: &str, v: &Value) -> Option<SchemaLockEntry> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let columns: BTreeMap<String, String> = v
        .get("columns")?
        .as_object()?
        .iter()
        .map(|(c, t)| Some((c.clone(), t.as_str()?.to_owned())))
        .collect::<Option<_>>()?;
    let entry = SchemaLockEntry {
        schema: text("schema")?,
        table: text("table")?,
        fingerprint: text("fingerprint")?,
        columns,
    };
    let cap = cfg.defined_capability(name)?;
    (v.as_object()?.len() == 4
        && !entry.columns.is_empty()
        && entry.fingerprint == drift::fingerprint(&entry.schema, &entry.table, &entry.columns)
        && cap.target.schema == entry.schema
        && cap.target.table == entry.table)
        .then_some(entry)
}

/// The JSON of one lock entry, keys in the documented order.
fn entry_json(e: &SchemaLockEntry) -> Value {
    json!({
        "schema": e.schema,
        "table": e.table,
        "columns": e.columns,
        "fingerprint": e.fingerprint,
    })
}
