//! `airlock init --from-env VAR --output FILE`: draft a reviewed config from
//! a live database's catalog (`inspect::read_from_env`; never a business
//! row) with the pure drafting rules of `policy::draft`, lock each drafted
//! capability's table (`airlock config lock`'s catalog read), validate the
//! result and write it. Interactive in a terminal; `--yes` takes the
//! defaults. The file names environment variables only, never a URL.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use airlock_policy::Diagnostic;
use airlock_policy::config::SchemaLockEntry;
use airlock_policy::draft::{
    self, Draft, DraftOptions, Selection, TableChoice, Tenancy, suggested_tenant,
};
use airlock_policy::drift;
use airlock_policy::identifier::Engine;
use airlock_policy::load::load_config_str;
use airlock_policy::schema_info::SchemaInfo;
use airlock_policy::sensitive::classify;
use serde_json::json;

use super::inspect::{InspectError, Posture, read_from_env};
use super::output::{Exit, Refusal, escape, print_json, say, shell_word};
use super::schema_lock_cmd::read_tables;

/// Beside the config: the ledger, the sockets and (`start`) the executor's
/// log and pid file. A draft is laptop-shaped; a server's config names
/// `/var/lib/airlock` and `/run/airlock` instead (docs/operations.md).
pub const LAPTOP_DIR: &str = ".airlock";

/// Everything `init` (and `start`, which drafts the same way) was given.
#[derive(Debug, Clone)]
pub struct InitArgs {
    pub from_env: String,
    pub output: PathBuf,
    pub schema: Option<String>,
    pub tables: Vec<String>,
    pub tenant_column: Option<String>,
    pub single_tenant: bool,
    pub read_only: bool,
    pub write_env: Option<String>,
    pub tenant_env: String,
    pub principal_env: String,
    pub source: String,
    pub namespace: Option<String>,
    pub yes: bool,
    pub force: bool,
    pub json: bool,
}

fn inspect_refusal(e: InspectError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

/// A drafted, locked and validated config, ready to write.
pub struct Drafted {
    pub draft: Draft,
    pub text: String,
    pub engine: Engine,
    pub tenancy: Tenancy,
    pub tenant_from: String,
    pub posture: Posture,
    pub write_env: Option<String>,
    pub sensitive_hidden: usize,
    /// Drafted tables with row-level security enabled (Postgres).
    pub rls_tables: Vec<String>,
}

/// The write variable's default name: `APP_READ_URL` → `APP_WRITE_URL`,
/// `DATABASE_URL` → `DATABASE_WRITE_URL`, anything else → `NAME_WRITE`.
pub fn default_write_env(read_env: &str) -> String {
    if read_env.contains("READ") {
        return read_env.replacen("READ", "WRITE", 1);
    }
    match read_env.strip_suffix("_URL") {
        Some(stem) => format!("{stem}_WRITE_URL"),
        None => format!("{read_env}_WRITE"),
    }
}

/// Whether prompts can be shown: a person at a terminal on both ends.
pub fn interactive_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Whether to ask: without `--yes`, in a terminal; without `--yes` and
/// without a terminal, refused (a script must say it takes the defaults).
pub fn prompts(args: &InitArgs) -> Result<bool, Refusal> {
    if args.yes {
        return Ok(false);
    }
    if !interactive_terminal() {
        return Err(Refusal::usage(
            "not_a_terminal",
            "the draft asks its questions in a terminal; pass --yes to take the defaults (sensitive columns hidden, ambiguous proposals disabled), or run it in a terminal; nothing was written",
        ));
    }
    Ok(true)
}

/// `airlock init`.
pub fn run(args: &InitArgs) -> Exit {
    match run_init(args) {
        Ok(exit) => exit,
        Err(r) => r.print(args.json),
    }
}

fn run_init(args: &InitArgs) -> Result<Exit, Refusal> {
    check_output(&args.output, args.force)?;
    let prompts = prompts(args)?;
    let drafted = draft_config(args, prompts)?;
    if prompts && !confirm_write(&args.output)? {
        return Err(Refusal::new("cancelled", "nothing was written"));
    }
    write_new(&args.output, drafted.text.as_bytes(), args.force)?;
    report(args, &drafted);
    Ok(Exit::Ok)
}

/// Refuse an existing output file unless `--force`, before any work.
pub fn check_output(output: &Path, force: bool) -> Result<(), Refusal> {
    if !force && std::fs::symlink_metadata(output).is_ok() {
        return Err(Refusal::new(
            "output_exists",
            format!(
                "{} already exists; choose another --output, or pass --force to replace it (nothing was written)",
                output.display()
            ),
        ));
    }
    match output.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Refusal::new(
            "output_dir_missing",
            format!(
                "the directory {} does not exist; create it first (nothing was written)",
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Write the config: a new file (mode 0644: it holds no secret), or with
/// `--force` replace the existing one atomically.
pub fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<(), Refusal> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let result = if force {
        crate::config_file::replace_file(path, bytes)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            })
    };
    result.map_err(|e| {
        let _ = (!force).then(|| std::fs::remove_file(path));
        Refusal::new(
            "write_failed",
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

/// Inspect, choose (asking when `prompts`), draft, lock and validate.
pub fn draft_config(args: &InitArgs, prompts: bool) -> Result<Drafted, Refusal> {
    if args.tenant_column.is_some() && args.single_tenant {
        return Err(Refusal::usage(
            "usage",
            "--tenant-column and --single-tenant contradict each other; give one",
        ));
    }
    let (engine, url, schema, posture) =
        read_from_env(&args.from_env, args.schema.as_deref()).map_err(inspect_refusal)?;
    let (tenancy, tenant_from) = choose_tenancy(args, &schema, prompts)?;
    let write_env = (!args.read_only).then(|| {
        args.write_env
            .clone()
            .unwrap_or_else(|| default_write_env(&args.from_env))
    });
    let mut opts = DraftOptions {
        source: args.source.clone(),
        namespace: args
            .namespace
            .clone()
            .unwrap_or_else(|| args.source.clone()),
        read_url_env: args.from_env.clone(),
        write_url_env: write_env.clone(),
        tenant_id_env: args.tenant_env.clone(),
        principal_env: args.principal_env.clone(),
        ledger_path: format!("./{LAPTOP_DIR}/ledger.db"),
        socket_dir: Some(format!("./{LAPTOP_DIR}/run")),
        tenancy: tenancy.clone(),
        selection: if args.tables.is_empty() {
            Selection::All
        } else {
            Selection::Named(args.tables.clone())
        },
        choices: BTreeMap::new(),
        enable: BTreeMap::new(),
    };
    let mut drafted = draft::draft(&schema, &opts).map_err(draft_refusal)?;
    if prompts {
        ask_choices(&schema, &mut opts, &drafted)?;
        drafted = draft::draft(&schema, &opts).map_err(draft_refusal)?;
        ask_proposals(&mut opts, &drafted)?;
        drafted = draft::draft(&schema, &opts).map_err(draft_refusal)?;
    }
    lock(engine, &url, &schema.schema, &mut drafted)?;
    let text = serde_json::to_string_pretty(&drafted.config).unwrap_or_default() + "\n";
    let loaded = load_config_str(&text);
    let errors: Vec<&Diagnostic> = loaded.report.errors().collect();
    if !errors.is_empty() {
        let mut r = Refusal::new(
            "draft_invalid",
            format!(
                "the drafted config does not validate ({} error{}); nothing was written. Narrow it with --tables, or report this:",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ),
        );
        r.problems = errors
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        return Err(r);
    }
    let sensitive_hidden = drafted
        .reads
        .iter()
        .flat_map(|r| &r.hidden)
        .filter(|h| h.reasons.iter().any(|r| r != "left out by your choice"))
        .count();
    let rls_tables = drafted
        .reads
        .iter()
        .filter(|r| schema.table(&r.table).is_some_and(|t| t.row_level_security))
        .map(|r| r.table.clone())
        .collect();
    Ok(Drafted {
        rls_tables,
        draft: drafted,
        text,
        engine,
        tenancy,
        tenant_from,
        posture,
        write_env,
        sensitive_hidden,
    })
}

fn draft_refusal(errors: Vec<draft::DraftError>) -> Refusal {
    let mut r = Refusal::new(
        "cannot_draft",
        if errors.len() == 1 {
            format!("{}; nothing was written", errors[0])
        } else {
            format!("{} problems; nothing was written:", errors.len())
        },
    );
    if errors.len() > 1 {
        r.problems = errors.iter().map(ToString::to_string).collect();
    }
    r
}

/// The tenant column: `--tenant-column`, `--single-tenant`, else the best
/// candidate (asked when prompting). None found: refused.
fn choose_tenancy(
    args: &InitArgs,
    schema: &SchemaInfo,
    prompts: bool,
) -> Result<(Tenancy, String), Refusal> {
    if let Some(c) = &args.tenant_column {
        return Ok((Tenancy::Column(c.clone()), "--tenant-column".into()));
    }
    if args.single_tenant {
        return Ok((Tenancy::SingleTenant, "--single-tenant".into()));
    }
    let candidates = airlock_policy::candidates::tenant_candidates(schema);
    if prompts {
        let mut items: Vec<String> = candidates
            .iter()
            .map(|c| format!("{}  ({})", c.column, c.evidence()))
            .collect();
        items.push("none: this database serves a single tenant".into());
        let picked = dialoguer::Select::new()
            .with_prompt("Which column keys every row to a tenant?")
            .items(&items)
            .default(0)
            .interact()
            .map_err(prompt_error)?;
        return Ok(match candidates.get(picked) {
            Some(c) => (Tenancy::Column(c.column.clone()), "chosen".into()),
            None => (Tenancy::SingleTenant, "chosen: single tenant".into()),
        });
    }
    match suggested_tenant(schema) {
        Some(c) => Ok((
            Tenancy::Column(c.column.clone()),
            format!("the best candidate: {}", c.evidence()),
        )),
        None => Err(Refusal::new(
            "tenant_unknown",
            format!(
                "no column of {} looks like a tenant key (tenant_id, org_id, account_id, workspace_id, …); name it with --tenant-column COLUMN, or pass --single-tenant if this database serves one tenant; nothing was written",
                schema.schema
            ),
        )),
    }
}

fn prompt_error(e: dialoguer::Error) -> Refusal {
    Refusal::new(
        "cancelled",
        format!("the prompt ended ({e}); nothing was written"),
    )
}

/// Tables, then (when asked for) each table's visible and version columns.
fn ask_choices(
    schema: &SchemaInfo,
    opts: &mut DraftOptions,
    drafted: &Draft,
) -> Result<(), Refusal> {
    if opts.selection == Selection::All {
        for s in &drafted.skipped {
            eprintln!("  not drafted: {}: {}", escape(&s.table), escape(&s.reason));
        }
        let names: Vec<&str> = drafted.reads.iter().map(|r| r.table.as_str()).collect();
        let picked = dialoguer::MultiSelect::new()
            .with_prompt("Tables the model may read (space toggles, enter accepts)")
            .items(&names)
            .defaults(&vec![true; names.len()])
            .interact()
            .map_err(prompt_error)?;
        if picked.is_empty() {
            return Err(Refusal::new(
                "cancelled",
                "no table chosen; nothing was written",
            ));
        }
        opts.selection = Selection::Named(picked.iter().map(|i| names[*i].to_owned()).collect());
    }
    let review = dialoguer::Confirm::new()
        .with_prompt(
            "Review each table's visible columns and version column? (no: sensitive columns stay hidden, versions as drafted)",
        )
        .default(false)
        .interact()
        .map_err(prompt_error)?;
    if !review {
        return Ok(());
    }
    let Selection::Named(tables) = opts.selection.clone() else {
        return Ok(());
    };
    let tenant_key = match &opts.tenancy {
        Tenancy::Column(c) => Some(c.clone()),
        Tenancy::SingleTenant => None,
    };
    for name in tables {
        let Some(t) = schema.table(&name) else {
            continue;
        };
        let keys: Vec<&String> = t.primary_key.iter().chain(tenant_key.as_ref()).collect();
        let optional: Vec<&airlock_policy::schema_info::ColumnInfo> = t
            .columns
            .iter()
            .filter(|c| !keys.contains(&&c.name))
            .collect();
        let labels: Vec<String> = optional
            .iter()
            .map(|c| match classify(&t.name, &c.name, &c.data_type).first() {
                Some(f) => format!("{}  — sensitive: {}", c.name, f.reason),
                None => c.name.clone(),
            })
            .collect();
        let defaults: Vec<bool> = optional
            .iter()
            .map(|c| classify(&t.name, &c.name, &c.data_type).is_empty())
            .collect();
        let picked = dialoguer::MultiSelect::new()
            .with_prompt(format!("{name}: columns the model sees (keys always)"))
            .items(&labels)
            .defaults(&defaults)
            .interact()
            .map_err(prompt_error)?;
        let mut choice = TableChoice {
            visible: Some(picked.iter().map(|i| optional[*i].name.clone()).collect()),
            version: None,
        };
        let versions = draft::version_columns(schema.engine, t);
        if !versions.is_empty() {
            let mut items = versions.clone();
            items.push("none (no proposals on this table)".into());
            let v = dialoguer::Select::new()
                .with_prompt(format!(
                    "{name}: the version column your application changes on every write"
                ))
                .items(&items)
                .default(0)
                .interact()
                .map_err(prompt_error)?;
            choice.version = Some(versions.get(v).cloned());
        }
        opts.choices.insert(name, choice);
    }
    Ok(())
}

/// Serve each drafted proposal now, or leave it disabled for review.
fn ask_proposals(opts: &mut DraftOptions, drafted: &Draft) -> Result<(), Refusal> {
    for p in &drafted.proposals {
        if !p.review.is_empty() {
            eprintln!("  {} on {}:", escape(&p.capability), escape(&p.table));
            for r in &p.review {
                eprintln!("    - {}", escape(r));
            }
        }
        let serve = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Serve proposal tool {} on {} (recipe {})?",
                p.capability, p.table, p.recipe
            ))
            .default(p.enabled)
            .interact()
            .map_err(prompt_error)?;
        opts.enable.insert(p.capability.clone(), serve);
    }
    Ok(())
}

fn confirm_write(output: &Path) -> Result<bool, Refusal> {
    dialoguer::Confirm::new()
        .with_prompt(format!("Write {}?", output.display()))
        .default(true)
        .interact()
        .map_err(prompt_error)
}

/// Record each drafted capability's table in `airlock.schema_lock`, read
/// with the same catalog query the proposer and executor check at start.
fn lock(engine: Engine, url: &str, schema: &str, drafted: &mut Draft) -> Result<(), Refusal> {
    let mut tables: Vec<String> = drafted.reads.iter().map(|r| r.table.clone()).collect();
    tables.extend(drafted.proposals.iter().map(|p| p.table.clone()));
    tables.sort();
    tables.dedup();
    let pairs: Vec<(String, String)> = tables
        .iter()
        .map(|t| (schema.to_owned(), t.clone()))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Refusal::new("internal", e.to_string()))?;
    let columns = runtime
        .block_on(read_tables(engine, url, &pairs))
        .map_err(|e| {
            Refusal::new(
                "catalog_unreadable",
                format!("cannot read the tables' columns to lock them: {e}; nothing was written"),
            )
        })?;
    let by_table: BTreeMap<&String, &Vec<airlock_policy::schema_info::ColumnInfo>> =
        tables.iter().zip(columns.iter()).collect();
    let owners = drafted
        .reads
        .iter()
        .map(|r| (&r.capability, &r.table))
        .chain(drafted.proposals.iter().map(|p| (&p.capability, &p.table)));
    let mut entries: BTreeMap<String, SchemaLockEntry> = BTreeMap::new();
    for (cap, table) in owners {
        match by_table.get(table) {
            Some(cols) if !cols.is_empty() => {
                entries.insert(cap.clone(), drift::lock_entry(schema, table, cols));
            }
            _ => {
                return Err(Refusal::new(
                    "table_not_found",
                    format!(
                        "table {schema}.{table} vanished or cannot be read while drafting; nothing was written"
                    ),
                ));
            }
        }
    }
    let airlock = drafted
        .config
        .as_object_mut()
        .map(|o| o.entry("airlock").or_insert_with(|| json!({})));
    if let Some(a) = airlock {
        a["schema_lock"] = serde_json::to_value(&entries).unwrap_or_else(|_| json!({}));
    }
    Ok(())
}

/// The commands to run next, for the config at `path`.
pub fn next_steps(path: &Path, d: &Drafted) -> Vec<String> {
    let cfg = shell_word(&path.display().to_string());
    let mut steps = vec![
        format!("airlock tools preview --config {cfg}      # what the model will see"),
        format!("airlock config validate --config {cfg}"),
    ];
    // SQLite has no roles: the writer is whoever may write the file.
    if let Some(w) = &d.write_env
        && !d.draft.proposals.is_empty()
        && d.engine != Engine::Sqlite
    {
        steps.push(format!(
            "airlock writeback grants --engine {} --writer-role airlock_writer --config {cfg}   # least-privilege grants for the role in {w}",
            d.engine.as_str()
        ));
    }
    steps.push(format!("airlock doctor --config {cfg}"));
    steps.push(format!(
        "airlock mcp config claude-desktop --config {cfg} --absolute-paths"
    ));
    steps
}

fn report(args: &InitArgs, d: &Drafted) {
    let path = &args.output;
    let disabled: Vec<&draft::DraftedProposal> =
        d.draft.proposals.iter().filter(|p| !p.enabled).collect();
    let tenant_key = match &d.tenancy {
        Tenancy::Column(c) => Some(c.as_str()),
        Tenancy::SingleTenant => None,
    };
    if args.json {
        print_json(&json!({
            "ok": true,
            "config": path.display().to_string(),
            "engine": d.engine.as_str(),
            "tenant_key": tenant_key,
            "tenant_key_from": d.tenant_from,
            "reads": d.draft.reads,
            "proposals": d.draft.proposals,
            "skipped": d.draft.skipped,
            "env": env_names(args, d),
            "reader_can_write": d.posture.can_write,
            "row_level_security": d.rls_tables,
            "next": next_steps(path, d),
        }));
        return;
    }
    say!(
        "Wrote {} ({} engine): {} read tool{}, {} proposal tool{}{}.",
        path.display(),
        d.engine.as_str(),
        d.draft.reads.len(),
        plural(d.draft.reads.len()),
        d.draft.proposals.len(),
        plural(d.draft.proposals.len()),
        if disabled.is_empty() {
            String::new()
        } else {
            format!(" ({} disabled until reviewed)", disabled.len())
        }
    );
    match tenant_key {
        Some(c) => say!("Tenant key: {c} ({})", d.tenant_from),
        None => say!("Single tenant: no tenant key ({})", d.tenant_from),
    }
    say!(
        "Hidden from the model: {} sensitive column{}; each table's columns are locked (airlock.schema_lock).",
        d.sensitive_hidden,
        plural(d.sensitive_hidden)
    );
    for r in &d.draft.reads {
        let hidden: Vec<&str> = r.hidden.iter().map(|h| h.column.as_str()).collect();
        say!(
            "  {:<34} {}{}",
            r.capability,
            r.table,
            if hidden.is_empty() {
                String::new()
            } else {
                format!("  (hidden: {})", hidden.join(", "))
            }
        );
        if !r.shown_sensitive.is_empty() {
            say!(
                "  {:<34} shows sensitive: {}",
                "",
                r.shown_sensitive.join(", ")
            );
        }
    }
    for p in &d.draft.proposals {
        say!(
            "  {:<34} {} (recipe {}){}",
            p.capability,
            p.table,
            p.recipe,
            if p.enabled { "" } else { "  DISABLED" }
        );
        for r in &p.review {
            say!("  {:<34}   - {r}", "");
        }
    }
    if !d.draft.skipped.is_empty() {
        say!("Not drafted:");
        for s in &d.draft.skipped {
            say!("  {:<34} {}", s.table, s.reason);
        }
    }
    if !d.rls_tables.is_empty() {
        say!(
            "\nRow-level security is on for {}: the read role sees only the rows its policies allow (Airlock sets no session variables).",
            d.rls_tables.join(", ")
        );
    }
    if d.posture.can_write {
        say!(
            "\nWarning: the credential in {} can write; the proposer's credential should only read. `airlock doctor` says how to fix it.",
            args.from_env
        );
    }
    say!("\nThe config names variables, never values:");
    for (name, what) in env_names(args, d) {
        say!("  {name:<24} {what}");
    }
    if !disabled.is_empty() {
        say!(
            "\nDisabled proposals are in airlock.disabled_capabilities: review each, then remove its entry to serve it."
        );
    }
    say!("\nNext:");
    for s in next_steps(path, d) {
        say!("  {s}");
    }
}

fn env_names(args: &InitArgs, d: &Drafted) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    out.insert(
        args.from_env.clone(),
        "the read-only database URL (proposer, inspect)",
    );
    if let Some(w) = &d.write_env {
        out.insert(
            w.clone(),
            "the writer's database URL (executor only; never give it to the proposer)",
        );
    }
    out.insert(
        args.tenant_env.clone(),
        "the tenant the agent acts for (trusted context)",
    );
    out.insert(
        args.principal_env.clone(),
        "who the agent acts as (trusted context)",
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_variable_names() {
        assert_eq!(default_write_env("APP_READ_URL"), "APP_WRITE_URL");
        assert_eq!(default_write_env("DATABASE_URL"), "DATABASE_WRITE_URL");
        assert_eq!(default_write_env("DSN"), "DSN_WRITE");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("airlock.json"), "airlock.json");
        assert_eq!(shell_word("my config.json"), "'my config.json'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn an_existing_output_is_refused_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("airlock.json");
        std::fs::write(&f, "{}").unwrap();
        let r = check_output(&f, false).unwrap_err();
        assert_eq!(r.code, "output_exists");
        assert!(check_output(&f, true).is_ok());
        let missing = dir.path().join("nope").join("airlock.json");
        assert_eq!(
            check_output(&missing, false).unwrap_err().code,
            "output_dir_missing"
        );
        assert!(check_output(Path::new("airlock-new.json"), false).is_ok());
    }
}
