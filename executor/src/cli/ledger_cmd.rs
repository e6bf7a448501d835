//! `airlock ledger verify|stats|backup` read the ledger file itself;
//! `airlock ledger prune` asks the executor (its only writer) over the
//! operator socket.

use std::path::{Path, PathBuf};
use std::time::Instant;

use airlock_ipc::message::{ProposalState, PruneLedger, PruneReport, Request, Response};
use serde_json::{Value, json};

use super::ConnArgs;
use super::output::{Exit, escape, fail, print_json, say};
use crate::daemon::store_path;
use crate::ledger::{Ledger, Timestamp, VerifyReport};
use crate::ledger_location::SharedLedger;

/// The ledger file `--store` names, else the one of `--config` (or of
/// ./airlock.json); `None` when neither names one. (Also the review UI's
/// Ledger page.)
pub fn ledger_file(store: Option<&Path>, config: Option<&Path>) -> Option<PathBuf> {
    if let Some(s) = store {
        return Some(s.to_owned());
    }
    let c = crate::config_file::resolve_config(config).ok()?;
    let configured = crate::config_file::read_config(&c)
        .ok()
        .and_then(|l| l.config)
        .and_then(|c| c.storage.sqlite_path);
    Some(store_path(&c, None, configured.as_deref()))
}

/// The ledger file: `--store`, else the ledger of `--config` (or of
/// ./airlock.json).
fn ledger_path(store: Option<&Path>, config: Option<&Path>, json: bool) -> Result<PathBuf, Exit> {
    let Some(path) = ledger_file(store, config) else {
        return Err(fail(
            json,
            "usage",
            "name the ledger with --store FILE or --config FILE (no ./airlock.json here)",
            Exit::Usage,
        ));
    };
    if !path.is_file() {
        return Err(fail(
            json,
            "not_found",
            &format!("no ledger at {}", path.display()),
            Exit::Failure,
        ));
    }
    Ok(path)
}

fn unreadable(json: bool, path: &Path, e: impl std::fmt::Display) -> Exit {
    fail(
        json,
        "unreadable",
        &format!(
            "cannot read the ledger {}: {e} — the file may be damaged",
            path.display()
        ),
        Exit::Failure,
    )
}

fn report_json(path: &Path, report: &VerifyReport) -> Value {
    json!({
        "ok": report.ok,
        "store": path.display().to_string(),
        "events": report.events,
        "head": report.head,
        "start_seq": report.start_seq,
        "archive_of": report.archive_of.as_ref().map(|(seq, hash)| json!({"prune_seq": seq, "prune_hash": hash})),
        "first_break": report.first_break.as_ref().map(|(seq, why)| json!({"seq": seq, "reason": why})),
    })
}

fn say_report(path: &Path, report: &VerifyReport) {
    if let Some((seq, why)) = &report.first_break {
        say!(
            "BROKEN: {} — the chain breaks at event {seq}: {why}.",
            path.display()
        );
        say!(
            "The {} events before it verify. Keep this file for investigation and restore the ledger from a backup.",
            report.events
        );
        return;
    }
    let what = match &report.archive_of {
        Some((seq, _)) => format!("prune archive (moved out by ledger event {seq})"),
        None => "ledger".to_owned(),
    };
    let from = if report.start_seq == 0 {
        String::new()
    } else {
        format!(", continuing from pruned event {}", report.start_seq)
    };
    say!(
        "OK: {} — {what}, {} events{from}, hash chain intact (head {}).",
        path.display(),
        report.events,
        report.head
    );
}

/// The shared PostgreSQL ledger of `--config` (or ./airlock.json), when
/// the config has one and no `--store` names a file.
fn shared_ledger(
    store: Option<&Path>,
    config: Option<&Path>,
    json: bool,
) -> Result<Option<SharedLedger>, Exit> {
    if store.is_some() {
        return Ok(None);
    }
    let Ok(c) = crate::config_file::resolve_config(config) else {
        return Ok(None);
    };
    let Some(loaded) = crate::config_file::read_config(&c)
        .ok()
        .and_then(|l| l.config)
    else {
        return Ok(None);
    };
    SharedLedger::from_config(&loaded, |k| {
        crate::writeback::credentials::read_secret(k).ok()
    })
    .map_err(|e| fail(json, "usage", &e.to_string(), Exit::Usage))
}

/// `airlock ledger migrate`: create or upgrade the shared ledger's schema
/// (as its owner), and grant an executor role what it needs.
pub fn migrate(config: Option<&Path>, grant: Option<&str>, json: bool) -> Exit {
    let shared = match shared_ledger(None, config, json) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return fail(
                json,
                "usage",
                "the config has no shared ledger: set storage.shared_postgres (mode \"runtime_store\", url_env) — an SQLite ledger is migrated by the executor itself",
                Exit::Usage,
            );
        }
        Err(e) => return e,
    };
    if let Some(role) = grant
        && !crate::ledger::is_pg_role_name(role)
    {
        return fail(
            json,
            "usage",
            &format!(
                "`{}` is not a role name: use letters, digits and underscores",
                escape(role)
            ),
            Exit::Usage,
        );
    }
    let (before, after) = match shared.migrate() {
        Ok(v) => v,
        Err(e) => return fail(json, "migration_failed", &format!("{e:#}"), Exit::Failure),
    };
    let granted = match grant {
        None => None,
        Some(role) => match shared.grant(role) {
            Ok(sql) => Some((role, sql)),
            Err(e) => return fail(json, "grant_failed", &format!("{e:#}"), Exit::Failure),
        },
    };
    let schema = &shared.settings.schema;
    if json {
        print_json(&json!({
            "ok": true,
            "schema": schema,
            "from_version": before,
            "to_version": after,
            "granted_to": granted.as_ref().map(|(r, _)| r),
        }));
    } else {
        if before == after {
            say!("The ledger schema {schema} is at version {after}; nothing to migrate.");
        } else {
            say!("Migrated the ledger schema {schema} from version {before} to {after}.");
        }
        match &granted {
            Some((role, sql)) => say!("Granted role {role}:\n{sql}"),
            None => say!(
                "Executors connect with a role of their own: run again with --grant ROLE to give it exactly what it needs."
            ),
        }
    }
    Exit::Ok
}

pub fn verify(
    store: Option<&Path>,
    config: Option<&Path>,
    archive: Option<&Path>,
    json: bool,
) -> Exit {
    match shared_ledger(store, config, json) {
        Err(e) => return e,
        Ok(Some(shared)) => {
            let name = PathBuf::from(format!("postgres schema {}", shared.settings.schema));
            if archive.is_some() {
                return fail(
                    json,
                    "usage",
                    "a PostgreSQL ledger has no prune archives (it is not pruned); drop --archive",
                    Exit::Usage,
                );
            }
            let report = match shared.open().and_then(|l| Ok(l.verify()?)) {
                Ok(r) => r,
                Err(e) => return unreadable(json, &name, format!("{e:#}")),
            };
            if json {
                print_json(&report_json(&name, &report));
            } else {
                say_report(&name, &report);
            }
            return if report.ok { Exit::Ok } else { Exit::Failure };
        }
        Ok(None) => {}
    }
    let path = match ledger_path(store, config, json) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let ledger = match Ledger::open_read_only(&path) {
        Ok(l) => l,
        Err(e) => return unreadable(json, &path, e),
    };
    let report = match ledger.verify() {
        Ok(r) => r,
        Err(e) => return unreadable(json, &path, e),
    };
    let Some(archive) = archive else {
        if json {
            print_json(&report_json(&path, &report));
        } else {
            say_report(&path, &report);
        }
        return if report.ok { Exit::Ok } else { Exit::Failure };
    };
    if !archive.is_file() {
        return fail(
            json,
            "not_found",
            &format!("no archive at {}", archive.display()),
            Exit::Failure,
        );
    }
    let archived = match Ledger::open_read_only(archive).and_then(|a| a.verify()) {
        Ok(r) => r,
        Err(e) => return unreadable(json, archive, e),
    };
    // The archive names the prune event that moved it out: the ledger must
    // hold exactly that event (unless a later prune archived it too).
    let link = match &archived.archive_of {
        None => Err(format!("{} is not a prune archive", archive.display())),
        Some((seq, hash)) => match ledger.event_hash(*seq) {
            Ok(Some(h)) if &h == hash => Ok(format!(
                "the ledger's event {seq} is the prune that moved this archive out"
            )),
            Ok(Some(_)) => Err(format!(
                "the ledger's event {seq} is not the prune this archive names (the archive or the ledger was altered, or they belong to different ledgers)"
            )),
            Ok(None) if report.start_seq >= *seq => Err(format!(
                "the ledger no longer holds event {seq} (a later prune archived it); check this archive against the archive of that prune"
            )),
            Ok(None) => Err(format!(
                "the ledger has no event {seq}: this archive's prune was never recorded (it was interrupted before the ledger committed); the ledger was not pruned — remove this archive and prune again"
            )),
            Err(e) => Err(e.to_string()),
        },
    };
    let ok = report.ok && archived.ok && link.is_ok();
    if json {
        print_json(&json!({
            "ok": ok,
            "ledger": report_json(&path, &report),
            "archive": report_json(archive, &archived),
            "linked": link.is_ok(),
            "link": match &link { Ok(m) | Err(m) => m },
        }));
    } else {
        say_report(&path, &report);
        say_report(archive, &archived);
        match &link {
            Ok(m) => say!("LINKED: {m}."),
            Err(m) => say!("NOT LINKED: {m}."),
        }
    }
    if ok { Exit::Ok } else { Exit::Failure }
}

pub fn stats(store: Option<&Path>, config: Option<&Path>, json: bool) -> Exit {
    let now = Timestamp::now();
    let (path, stats, file_bytes, wal_bytes) = match shared_ledger(store, config, json) {
        Err(e) => return e,
        Ok(Some(shared)) => {
            let name = PathBuf::from(format!("postgres schema {}", shared.settings.schema));
            let read = shared
                .open()
                .and_then(|l| Ok((l.lifecycle_stats(&now)?, l.storage_bytes()?)));
            match read {
                Ok((stats, bytes)) => (name, stats, bytes, 0),
                Err(e) => return unreadable(json, &name, format!("{e:#}")),
            }
        }
        Ok(None) => {
            let path = match ledger_path(store, config, json) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let stats = match Ledger::open_read_only(&path).and_then(|l| l.lifecycle_stats(&now)) {
                Ok(s) => s,
                Err(e) => return unreadable(json, &path, e),
            };
            let size = |suffix: &str| {
                std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
            };
            let (file_bytes, wal_bytes) = (size(""), size("-wal"));
            (path, stats, file_bytes, wal_bytes)
        }
    };
    let mut per_state = serde_json::Map::new();
    for s in ProposalState::ALL {
        let n = stats
            .counts
            .per_state
            .iter()
            .find(|(name, _)| name == s.as_str())
            .map_or(0, |(_, n)| *n);
        per_state.insert(s.as_str().to_owned(), json!(n));
    }
    let oldest = stats.oldest_pending.as_ref().map(|(id, at, ms)| {
        json!({"proposal_id": id, "created_at": at, "age_seconds": (now.ms - ms).max(0) / 1000})
    });
    if json {
        print_json(&json!({
            "ok": true,
            "store": path.display().to_string(),
            "file_bytes": file_bytes,
            "wal_bytes": wal_bytes,
            "proposals": per_state,
            "evidence": stats.counts.evidence,
            "events": stats.counts.events,
            "start_seq": stats.start_seq,
            "head_seq": stats.head_seq,
            "oldest_pending": oldest,
            "events_per_day": stats.events_per_day.iter().map(|(d, n)| json!({"day": d, "events": n})).collect::<Vec<_>>(),
        }));
        return Exit::Ok;
    }
    say!(
        "Ledger {} — {} bytes (+ {} bytes of WAL)",
        path.display(),
        file_bytes,
        wal_bytes
    );
    say!(
        "  events:    {} (seq {}–{}{})",
        stats.counts.events,
        stats.start_seq + 1,
        stats.head_seq,
        if stats.start_seq > 0 {
            "; earlier events were pruned into an archive"
        } else {
            ""
        }
    );
    say!("  evidence:  {}", stats.counts.evidence);
    say!("  proposals:");
    for (state, n) in &per_state {
        say!("    {state:<17} {n}");
    }
    match &stats.oldest_pending {
        Some((id, at, ms)) => say!(
            "  oldest pending: {} (created {}, {} ago)",
            escape(id),
            escape(at),
            human_age((now.ms - ms).max(0) / 1000)
        ),
        None => say!("  oldest pending: none"),
    }
    say!("  events per day (UTC):");
    for (day, n) in &stats.events_per_day {
        say!("    {day}  {n}");
    }
    Exit::Ok
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Removes a file when dropped, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn backup(to: &Path, store: Option<&Path>, config: Option<&Path>, json: bool) -> Exit {
    match shared_ledger(store, config, json) {
        Err(e) => return e,
        Ok(Some(shared)) => {
            return fail(
                json,
                "usage",
                &format!(
                    "the ledger is in PostgreSQL: back it up with pg_dump, e.g. `pg_dump --schema={} --format=custom --file=ledger.dump \"$DATABASE_URL\"`, then check a restored copy with `airlock ledger verify` (docs/operations.md, \"A fleet on PostgreSQL\")",
                    shared.settings.schema
                ),
                Exit::Usage,
            );
        }
        Ok(None) => {}
    }
    let path = match ledger_path(store, config, json) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if exists(to) {
        return fail(
            json,
            "exists",
            &format!(
                "{} exists; a backup never overwrites a file — choose a new name",
                to.display()
            ),
            Exit::Failure,
        );
    }
    let (Some(name), dir) = (to.file_name(), to.parent().unwrap_or(Path::new(""))) else {
        return fail(json, "usage", "--to must name a file", Exit::Usage);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // The copy holds everything the ledger does: private from its first byte.
    crate::hardening::private_umask();
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let started = Instant::now();
    let mut cleanup = Cleanup(Some(tmp.clone()));
    if let Err(e) = Ledger::open_read_only(&path).and_then(|l| l.snapshot_into(&tmp)) {
        return fail(
            json,
            "backup_failed",
            &format!("cannot copy the ledger {}: {e}", path.display()),
            Exit::Failure,
        );
    }
    let durable =
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all());
    if let Err(e) = durable {
        return fail(
            json,
            "backup_failed",
            &format!("cannot write {}: {e}", tmp.display()),
            Exit::Failure,
        );
    }
    // The same check `airlock ledger verify` makes, on the copy.
    let report = match Ledger::open_read_only(&tmp).and_then(|l| l.verify()) {
        Ok(r) => r,
        Err(e) => return unreadable(json, &tmp, e),
    };
    if let Some((seq, why)) = &report.first_break {
        return fail(
            json,
            "unverified",
            &format!(
                "the copy does not verify (event {seq}: {why}); it was removed. Run `airlock ledger verify` on {}",
                path.display()
            ),
            Exit::Failure,
        );
    }
    // Named only once complete and verified, and never over a file that
    // appeared meanwhile.
    if let Err(e) = std::fs::hard_link(&tmp, to) {
        let (code, msg) = if e.kind() == std::io::ErrorKind::AlreadyExists {
            (
                "exists",
                format!("{} exists; a backup never overwrites a file", to.display()),
            )
        } else {
            (
                "backup_failed",
                format!("cannot create {}: {e}", to.display()),
            )
        };
        return fail(json, code, &msg, Exit::Failure);
    }
    drop(cleanup.0.take());
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    let bytes = std::fs::metadata(to).map_or(0, |m| m.len());
    let seconds = started.elapsed().as_secs_f64();
    if json {
        print_json(&json!({
            "ok": true,
            "store": path.display().to_string(),
            "backup": to.display().to_string(),
            "bytes": bytes,
            "events": report.events,
            "head": report.head,
            "seconds": seconds,
        }));
    } else {
        say!(
            "Backed up {} to {} ({bytes} bytes, {} events, head {}); the copy verifies. ({seconds:.2} s)",
            path.display(),
            to.display(),
            report.events,
            report.head
        );
    }
    Exit::Ok
}

/// `--before`: a day (`2026-01-01`, midnight UTC) or an RFC 3339 time.
fn parse_before(given: &str) -> Result<String, String> {
    let text = if given.len() == 10 {
        format!("{given}T00:00:00Z")
    } else {
        given.to_owned()
    };
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .map_err(|_| {
            format!(
                "`--before` must be a day (2026-01-01, midnight UTC) or an RFC 3339 time (2026-01-01T12:00:00Z), not {}",
                escape(given)
            )
        })
}

pub fn prune(conn: &ConnArgs, before: &str, archive: &Path, json: bool) -> Exit {
    let before = match parse_before(before) {
        Ok(b) => b,
        Err(e) => return fail(json, "usage", &e, Exit::Usage),
    };
    // The executor writes the archive: it needs the whole path.
    let archive = match std::path::absolute(archive) {
        Ok(p) => p,
        Err(e) => return fail(json, "usage", &format!("--archive: {e}"), Exit::Usage),
    };
    if std::fs::symlink_metadata(&archive).is_ok() {
        return fail(
            json,
            "exists",
            &format!(
                "{} exists; an archive is never overwritten — choose a new name",
                archive.display()
            ),
            Exit::Failure,
        );
    }
    let Some(archive_text) = archive.to_str().map(str::to_owned) else {
        return fail(json, "usage", "--archive must be a UTF-8 path", Exit::Usage);
    };
    super::operator::call_once(conn, json, |mut client| async move {
        let started = Instant::now();
        let req = Request::PruneLedger(PruneLedger {
            before,
            archive: archive_text,
        });
        match client.call(req).await {
            Ok(Response::Pruned(r)) => {
                report_prune(&r, started.elapsed().as_secs_f64(), json);
                Exit::Ok
            }
            Ok(other) => super::operator::unexpected_answer(json, &other),
            Err(e) => super::operator::client_failure(json, e),
        }
    })
}

fn report_prune(r: &PruneReport, seconds: f64, json: bool) {
    if json {
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("ok".into(), json!(true));
            obj.insert("seconds".into(), json!(seconds));
        }
        print_json(&v);
        return;
    }
    let held = match r.held_by.reason.as_str() {
        "end" => "every event was finished and old enough".to_owned(),
        "unfinished" => format!(
            "proposal {} is not finished, so it and everything after it stay",
            escape(r.held_by.proposal_id.as_deref().unwrap_or("?"))
        ),
        _ => format!(
            "event {} is not before {}, so it and everything after it stay",
            r.held_by.seq.unwrap_or(0),
            r.before
        ),
    };
    match (&r.archive, &r.prune_event) {
        (Some(archive), Some(ev)) => {
            say!(
                "Pruned events {}–{} ({} events: {} proposals, {} reads) into {}.",
                r.first_seq,
                r.through_seq,
                r.events,
                r.proposals,
                r.evidence,
                escape(archive)
            );
            say!(
                "The ledger continues from {} and records the prune as event {} ({}). Stopped because {held}. ({seconds:.2} s)",
                r.through_hash.as_deref().unwrap_or("?"),
                ev.seq,
                ev.hash
            );
            say!(
                "Check both with: airlock ledger verify --store <ledger> --archive {}",
                escape(archive)
            );
        }
        _ => say!(
            "Nothing to prune before {}: {held}. No archive was written; the ledger is unchanged.",
            r.before
        ),
    }
}
