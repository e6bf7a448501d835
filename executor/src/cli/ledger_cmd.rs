//! `airlock ledger verify`: recompute the hash chain from the file itself.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::{Exit, fail, print_json, say};
use crate::daemon::store_path;
use crate::ledger::Ledger;

pub fn verify(store: Option<&Path>, config: Option<&Path>, json: bool) -> Exit {
    // `--store`, else the ledger of `--config` (or of ./airlock.json).
    let config = match store {
        Some(_) => None,
        None => crate::config_file::resolve_config(config).ok(),
    };
    let path: PathBuf = match (store, config) {
        (Some(s), _) => s.to_owned(),
        (None, Some(c)) => {
            let configured = crate::config_file::read_config(&c)
                .ok()
                .and_then(|l| l.config)
                .and_then(|c| c.storage.sqlite_path);
            store_path(&c, None, configured.as_deref())
        }
        (None, None) => {
            return fail(
                json,
                "usage",
                "name the ledger with --store FILE or --config FILE (no ./airlock.json here)",
                Exit::Usage,
            );
        }
    };
    if !path.is_file() {
        return fail(
            json,
            "not_found",
            &format!("no ledger at {}", path.display()),
            Exit::Failure,
        );
    }
    let report = match Ledger::open_read_only(&path).and_then(|l| l.verify()) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                json,
                "unreadable",
                &format!(
                    "cannot read the ledger {}: {e} — the file may be damaged",
                    path.display()
                ),
                Exit::Failure,
            );
        }
    };
    if json {
        print_json(&json!({
            "ok": report.ok,
            "store": path.display().to_string(),
            "events": report.events,
            "head": report.head,
            "first_break": report.first_break.as_ref().map(|(seq, why)| json!({"seq": seq, "reason": why})),
        }));
    } else if let Some((seq, why)) = &report.first_break {
        say!(
            "BROKEN: {} — the chain breaks at event {seq}: {why}.",
            path.display()
        );
        say!(
            "The {} events before it verify. Keep this file for investigation and restore the ledger from a backup.",
            report.events
        );
    } else {
        say!(
            "OK: {} — {} events, hash chain intact (head {}).",
            path.display(),
            report.events,
            report.head
        );
    }
    if report.ok { Exit::Ok } else { Exit::Failure }
}
