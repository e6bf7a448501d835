//! `airlock recipes list|show|apply`: built-in, reviewed proposal templates
//! (policy/src/recipes.rs) and adding one to a config after checking the
//! live table's columns (read with the source's read credential, catalog
//! only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema_lock_cmd::table_columns;
use airlock_policy::Diagnostic;
use airlock_policy::config::{Config, Engine};
use airlock_policy::load::load_config_str;
use airlock_policy::recipes::{
    ArgKind, Built, FieldKind, Patch, Placement, RECIPES, Recipe, RecipeError, TenantChoice,
    config_hints, find, tenant_choice,
};
use airlock_policy::schema_info::{ColumnInfo, TableInfo};
use serde_json::{Value, json};

use super::output::{Exit, Refusal, escape, fail, print_json, say};
use crate::config_file::{ConfigFileError, resolve_config};

/// `--map field=column`.
pub fn parse_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((field, column)) if !field.trim().is_empty() && !column.trim().is_empty() => {
            Ok((field.trim().to_owned(), column.trim().to_owned()))
        }
        _ => Err(format!(
            "`{s}` is not FIELD=COLUMN (e.g. late_fee=fee_cents)"
        )),
    }
}

fn unknown_recipe(name: &str, json: bool) -> Exit {
    let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
    fail(
        json,
        "unknown_recipe",
        &format!(
            "no recipe named `{name}`; the recipes are: {} (see `airlock recipes list`)",
            names.join(", ")
        ),
        Exit::Usage,
    )
}

pub fn list(json: bool) -> Exit {
    if json {
        let recipes: Vec<Value> = RECIPES
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "title": r.title,
                    "summary": r.summary,
                    "table": r.table_hint,
                    "capability": r.capability,
                    "approval_role": r.approval_role,
                })
            })
            .collect();
        print_json(&json!({"ok": true, "recipes": recipes}));
        return Exit::Ok;
    }
    say!("Built-in recipes (reviewed proposal templates):\n");
    for r in RECIPES {
        say!("  {:<27} {}", r.name, r.title);
        say!("  {:<27} {}", "", r.summary);
        say!(
            "  {:<27} fits {}; writes {} (approved by {})\n",
            "",
            r.table_hint,
            r.capability,
            r.approval_role
        );
    }
    say!(
        "Show one: airlock recipes show NAME\nAdd one:  airlock recipes apply NAME --table TABLE --config airlock.json"
    );
    Exit::Ok
}

/// The capability a recipe writes on its sample table, on Postgres.
fn example(r: &Recipe) -> Value {
    let at = Placement {
        engine: Engine::Postgres,
        source: "app",
        schema: "public",
        context: None,
        tenant_key: Some("tenant_id"),
        name: None,
    };
    match airlock_policy::recipes::build(r, &r.sample(), &BTreeMap::new(), &at) {
        Ok(b) => b.capability,
        Err(_) => Value::Null,
    }
}

fn kind_text(k: FieldKind) -> &'static str {
    match k {
        FieldKind::Money => "integer (cents)",
        FieldKind::Text => "text",
        FieldKind::Version => "version",
        FieldKind::Moment => "date/time",
    }
}

fn patch_text(f: &airlock_policy::recipes::Field) -> String {
    match f.patch {
        Patch::Fixed(n) => format!("set to {n}"),
        Patch::FromArg(a) => format!("set from argument `{a}`"),
        Patch::None if f.kind == FieldKind::Version => "conflict guard".to_owned(),
        Patch::None => "shown only".to_owned(),
    }
}

pub fn show(name: &str, json: bool) -> Exit {
    let Some(r) = find(name) else {
        return unknown_recipe(name, json);
    };
    if json {
        print_json(&json!({"ok": true, "recipe": r, "example": example(r)}));
        return Exit::Ok;
    }
    say!("{} — {}\n", r.name, r.title);
    say!("{}\n", r.summary);
    say!("Fits:        {} (e.g. `{}`)", r.table_hint, r.sample_table);
    say!(
        "Writes:      proposal capability {} (argument `{}` names the row); approved by a person with role {}\n",
        r.capability,
        r.lookup_arg(),
        r.approval_role
    );
    say!("Fields (map with --map FIELD=COLUMN; otherwise the first existing default is used):");
    for f in r.fields {
        let name = if f.required {
            f.name.to_owned()
        } else {
            format!("{} (optional)", f.name)
        };
        say!(
            "  {:<24} {:<16} {}; defaults: {}",
            name,
            kind_text(f.kind),
            patch_text(f),
            f.guesses.join(", ")
        );
        say!("  {:<24} {}", "", f.about);
    }
    say!("\nArguments the agent supplies:");
    say!("  {:<16} the row's primary key", r.lookup_arg());
    for a in r.args {
        let what = match a.kind {
            ArgKind::Text { max_length } => format!("text, at most {max_length} characters"),
            ArgKind::OneOf(v) => format!("one of {}", v.join(", ")),
            ArgKind::WholeNumber { minimum, maximum } => {
                format!("whole number, {minimum} to {maximum}")
            }
        };
        say!("  {:<16} {what}", a.name);
    }
    for (f, lo, hi) in r.bounds {
        say!("\nBound:       {f} stays between {lo} and {hi}");
    }
    if let Some((f, moves)) = r.transitions {
        say!("\nTransitions of {f}:");
        for (from, to) in moves {
            say!("  {from} -> {}", to.join(", "));
        }
    }
    say!("\nBefore real use:");
    for n in r.notes {
        say!("  - {n}");
    }
    let text = serde_json::to_string_pretty(&example(r)).unwrap_or_default();
    say!(
        "\nThe capability it writes for a table with the default column names:\n{}",
        text
    );
    Exit::Ok
}

/// Everything `recipes apply` was given.
#[derive(Debug)]
pub struct ApplyArgs {
    pub recipe: String,
    pub table: String,
    pub map: Vec<(String, String)>,
    pub config: Option<PathBuf>,
    pub source: Option<String>,
    pub schema: Option<String>,
    pub primary_key: Option<String>,
    pub tenant_column: Option<String>,
    pub single_tenant: bool,
    pub name: Option<String>,
    pub dry_run: bool,
    pub json: bool,
}

pub fn apply(args: &ApplyArgs) -> Exit {
    match run_apply(args) {
        Ok(exit) => exit,
        Err(r) => r.print(args.json),
    }
}

fn run_apply(args: &ApplyArgs) -> Result<Exit, Refusal> {
    let Some(recipe) = find(&args.recipe) else {
        return Ok(unknown_recipe(&args.recipe, args.json));
    };
    let mut map = BTreeMap::new();
    for (field, column) in &args.map {
        if map.insert(field.clone(), column.clone()).is_some() {
            return Err(Refusal::usage(
                "usage",
                format!("--map {field}=… is given twice; give each field once"),
            ));
        }
    }
    let path = resolve_config(args.config.as_deref())
        .map_err(|e| Refusal::new("config_unreadable", e.to_string()))?;
    let (text, cfg) = read_valid(&path)?;
    let (source_name, source) = pick_source(&cfg, args.source.as_deref())?;
    let cap_name = args.name.as_deref().unwrap_or(recipe.capability);
    if cfg.defined_capability(cap_name).is_some() {
        return Err(Refusal::new(
            "capability_exists",
            format!(
                "{} already has a capability named {cap_name}; choose another name with --name (the config is unchanged)",
                path.display()
            ),
        ));
    }
    let hints = config_hints(&cfg, source_name, &args.table);
    let url = std::env::var(&source.read_url_env).map_err(|_| {
        Refusal::new(
            "read_url_missing",
            format!(
                "{} is not set: `recipes apply` reads the table's columns with the source's read URL; set {} to the read-only URL of source {source_name}",
                source.read_url_env, source.read_url_env
            ),
        )
    })?;
    let schema_given = args.schema.clone().or(hints.schema.clone());
    let (schema, columns) = read_columns(source.engine, &url, schema_given, &args.table)
        .map_err(|e| Refusal::new("catalog_unreadable", e))?;
    if columns.is_empty() {
        return Err(Refusal::new(
            "table_not_found",
            format!(
                "table {schema}.{} was not found, or the read role cannot see it (the config is unchanged)",
                args.table
            ),
        ));
    }
    let primary_key = args
        .primary_key
        .clone()
        .or(hints.primary_key.clone())
        .or_else(|| columns.iter().any(|c| c.name == "id").then(|| "id".into()));
    let table = TableInfo::new(&args.table, columns, primary_key.into_iter().collect());
    let (tenant_key, tenant_from) = match (&args.tenant_column, args.single_tenant) {
        (Some(c), _) => (Some(c.clone()), "--tenant-column"),
        (None, true) => (None, "--single-tenant"),
        (None, false) => match tenant_choice(&hints, &table) {
            Some(TenantChoice::Config(c)) => {
                (Some(c), "from the config's capabilities on this source")
            }
            Some(TenantChoice::Guessed(c)) => {
                (Some(c), "guessed: the table's only tenant-shaped column")
            }
            Some(TenantChoice::SingleTenant) => (None, "from the config: single-tenant"),
            None => {
                return Err(Refusal::new(
                    "tenant_unknown",
                    format!(
                        "no tenant column is known for table {}: pass --tenant-column COLUMN (or --single-tenant for a development table without one); the config is unchanged",
                        args.table
                    ),
                ));
            }
        },
    };
    let at = Placement {
        engine: source.engine,
        source: source_name,
        schema: &schema,
        context: hints.context.as_deref(),
        tenant_key: tenant_key.as_deref(),
        name: Some(cap_name),
    };
    let built = airlock_policy::recipes::build(recipe, &table, &map, &at).map_err(|errors| {
        let mut r = Refusal::new(
            "recipe_mismatch",
            format!(
                "recipe {} does not fit table {schema}.{} ({} problem{}); {} is unchanged:",
                recipe.name,
                args.table,
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                path.display()
            ),
        );
        r.problems = errors.iter().map(RecipeError::to_string).collect();
        r
    })?;
    let new_text = with_capability(&text, &built.capability).ok_or_else(|| {
        Refusal::new(
            "config_unreadable",
            "the config's capabilities array was not found",
        )
    })?;
    let loaded = load_config_str(&new_text);
    let errors: Vec<&Diagnostic> = loaded.report.errors().collect();
    if !errors.is_empty() {
        let mut r = Refusal::new(
            "invalid_result",
            format!(
                "with the new capability the config would not validate ({} error{}); {} is unchanged:",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                path.display()
            ),
        );
        r.problems = errors
            .iter()
            .map(|d| format!("{}: {} (fix: {})", d.path, d.message, d.fix))
            .collect();
        return Err(r);
    }
    if !args.dry_run {
        write_in_place(&path, &text, &new_text)?;
    }
    report(
        args,
        recipe,
        &path,
        &schema,
        source.engine,
        &built,
        tenant_key.as_deref(),
        tenant_from,
    );
    Ok(Exit::Ok)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &ApplyArgs,
    recipe: &Recipe,
    path: &Path,
    schema: &str,
    engine: Engine,
    built: &Built,
    tenant_key: Option<&str>,
    tenant_from: &str,
) {
    let name = built.capability["name"].as_str().unwrap_or_default();
    let shown = path.display().to_string();
    if args.json {
        print_json(&json!({
            "ok": true,
            "config": shown,
            "written": !args.dry_run,
            "recipe": recipe.name,
            "capability": built.capability,
            "columns": built.columns,
            "tenant_key": tenant_key,
            "tenant_key_from": tenant_from,
        }));
        return;
    }
    if args.dry_run {
        say!(
            "Dry run: {shown} is unchanged. `recipes apply` would add {name} (recipe {}) on {schema}.{}:",
            recipe.name,
            args.table
        );
    } else {
        say!(
            "Added {name} (recipe {}) on {schema}.{} to {shown}; the config validates.",
            recipe.name,
            args.table
        );
    }
    for c in &built.columns {
        say!(
            "  {:<14} -> {} ({}){}",
            c.field,
            escape(&c.column),
            escape(&c.data_type),
            if c.mapped { "" } else { "  [default name]" }
        );
    }
    match tenant_key {
        Some(t) => say!("  tenant key     -> {} ({tenant_from})", escape(t)),
        None => say!("  no tenant key: single-tenant development target ({tenant_from})"),
    }
    if args.dry_run {
        let text = serde_json::to_string_pretty(&built.capability).unwrap_or_default();
        say!("\n{text}");
        return;
    }
    say!(
        "\nReview it like any change to the reviewed config: the bounds, status words and approval role are starting points (`airlock recipes show {}`).",
        recipe.name
    );
    say!("Next:");
    say!("  airlock tools preview --config {shown}");
    if engine != Engine::Sqlite {
        say!(
            "  airlock writeback grants --engine {} --writer-role WRITER --config {shown}   # UPDATE on the new columns",
            engine.as_str()
        );
    }
    say!("  restart the executor and the proposer so they load it");
}

/// The config's text and its validated model; an invalid config is refused
/// (fix it first: the result of `apply` must validate as a whole).
fn read_valid(path: &Path) -> Result<(String, Config), Refusal> {
    let loaded = crate::config_file::read_config(path)
        .map_err(|e: ConfigFileError| Refusal::new("config_unreadable", e.to_string()))?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Refusal::new(
            "config_unreadable",
            format!("cannot read config {}: {e}", path.display()),
        )
    })?;
    match loaded.config {
        Some(cfg) => Ok((text, cfg)),
        None => {
            let n = loaded.report.errors().count();
            Err(Refusal::new(
                "invalid_config",
                format!(
                    "{} is not a valid config ({n} error{}); fix it first (`airlock config validate --config {}`)",
                    path.display(),
                    if n == 1 { "" } else { "s" },
                    path.display()
                ),
            ))
        }
    }
}

fn pick_source<'a>(
    cfg: &'a Config,
    given: Option<&str>,
) -> Result<(&'a str, &'a airlock_policy::config::Source), Refusal> {
    let names: Vec<&str> = cfg.sources.keys().map(String::as_str).collect();
    match given {
        Some(name) => cfg
            .sources
            .get_key_value(name)
            .map(|(n, s)| (n.as_str(), s))
            .ok_or_else(|| {
                Refusal::new(
                    "unknown_source",
                    format!(
                        "the config has no source `{name}`; its sources are: {}",
                        names.join(", ")
                    ),
                )
            }),
        None => match cfg.sources.iter().collect::<Vec<_>>().as_slice() {
            [(n, s)] => Ok((n.as_str(), *s)),
            _ => Err(Refusal::new(
                "source_ambiguous",
                format!(
                    "the config has several sources ({}); choose one with --source",
                    names.join(", ")
                ),
            )),
        },
    }
}

/// A URL the catalog is read with: SQLite files are opened read-only.
fn read_only_url(engine: Engine, url: &str) -> String {
    if engine != Engine::Sqlite || url.contains("mode=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=ro")
}

fn scrub(message: &str, url: &str) -> String {
    airlock_policy::secrets::redact(message, &airlock_policy::secrets::url_secrets(url))
        .chars()
        .take(300)
        .collect()
}

/// The schema used and the table's columns, from the catalog (no business
/// row is read). Without a schema: `public`, the connection's database
/// (MySQL) or `main`.
fn read_columns(
    engine: Engine,
    url: &str,
    schema: Option<String>,
    table: &str,
) -> Result<(String, Vec<ColumnInfo>), String> {
    use sqlx::{Connection as _, Row as _};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let url_ro = read_only_url(engine, url);
    let work = async {
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&url_ro)
            .await
            .map_err(|e| e.to_string())?;
        let schema = match (schema, engine) {
            (Some(s), _) => s,
            (None, Engine::Postgres) => "public".to_owned(),
            (None, Engine::Sqlite) => "main".to_owned(),
            (None, Engine::Mysql) => sqlx::query("SELECT CAST(DATABASE() AS CHAR)")
                .fetch_one(&mut c)
                .await
                .and_then(|r| r.try_get::<Option<String>, _>(0))
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
        };
        let columns = table_columns(&mut c, engine, &schema, table).await?;
        let _ = c.close().await;
        Ok::<_, String>((schema, columns))
    };
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), work).await }) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!(
            "cannot read the columns of {table}: {}",
            scrub(&e, url)
        )),
        Err(_) => Err("the database did not answer within 10 s".to_owned()),
    }
}

/// `text` with `cap` appended to its `capabilities` array, written in the
/// file's own layout (only the new lines differ); when the text cannot be
/// edited in place, the whole config pretty-printed. `None` if the config
/// has no capabilities array.
pub fn with_capability(text: &str, cap: &Value) -> Option<String> {
    let mut expected: Value = serde_json::from_str(text).ok()?;
    expected
        .get_mut("capabilities")?
        .as_array_mut()?
        .push(cap.clone());
    if let Some(edited) = insert_textually(text, cap)
        && serde_json::from_str::<Value>(&edited).ok().as_ref() == Some(&expected)
    {
        return Some(edited);
    }
    serde_json::to_string_pretty(&expected)
        .ok()
        .map(|s| s + "\n")
}

/// Insert `cap` after the last element of the top-level `capabilities`
/// array, indented like that array's first element.
fn insert_textually(text: &str, cap: &Value) -> Option<String> {
    let (open, close) = capabilities_span(text)?;
    let inner = &text[open + 1..close];
    let last = inner.trim_end();
    if last.trim().is_empty() {
        return None;
    }
    let first_len = inner.len() - inner.trim_start().len();
    let lead = &inner[..first_len];
    let indent = lead.rsplit('\n').next().unwrap_or_default();
    let pretty = serde_json::to_string_pretty(cap).ok()?;
    let body = pretty.replace('\n', &format!("\n{indent}"));
    let at = open + 1 + last.len();
    let sep = if lead.contains('\n') {
        format!(",\n{indent}")
    } else {
        ", ".to_owned()
    };
    Some(format!("{}{sep}{body}{}", &text[..at], &text[at..]))
}

/// Byte offsets of the `[` and `]` of the top-level `capabilities` array.
fn capabilities_span(text: &str) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut last_key: Option<&str> = None;
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    last_key = text.get(start..i);
                }
            }
            b'[' if depth == 1 && open.is_none() && last_key == Some("capabilities") => {
                open = Some(i);
                depth += 1;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 1
                    && let Some(o) = open
                    && b[i] == b']'
                {
                    return Some((o, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Replace the config file's contents, atomically (a new file renamed over
/// it, same permissions), unless it changed since it was read.
fn write_in_place(path: &Path, old: &str, new: &str) -> Result<(), Refusal> {
    let err = |what: &str, e: std::io::Error| {
        Refusal::new(
            "write_failed",
            format!(
                "cannot {what} {}: {e}; the config is unchanged",
                path.display()
            ),
        )
    };
    let real = std::fs::canonicalize(path).map_err(|e| err("resolve", e))?;
    let now = std::fs::read_to_string(&real).map_err(|e| err("re-read", e))?;
    if now != old {
        return Err(Refusal::new(
            "config_changed",
            format!(
                "{} changed while `recipes apply` ran; run it again (the config is unchanged)",
                path.display()
            ),
        ));
    }
    crate::config_file::replace_file(&real, new.as_bytes()).map_err(|e| err("write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_entries_are_field_equals_column() {
        assert_eq!(
            parse_map("late_fee=fee_cents"),
            Ok(("late_fee".into(), "fee_cents".into()))
        );
        assert_eq!(parse_map(" a = b "), Ok(("a".into(), "b".into())));
        for bad in ["late_fee", "=x", "x=", " = "] {
            assert!(parse_map(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_catalog_reads_are_read_only() {
        assert_eq!(
            read_only_url(Engine::Sqlite, "sqlite:///tmp/a.db"),
            "sqlite:///tmp/a.db?mode=ro"
        );
        assert_eq!(
            read_only_url(Engine::Sqlite, "sqlite:///tmp/a.db?cache=shared"),
            "sqlite:///tmp/a.db?cache=shared&mode=ro"
        );
        assert_eq!(
            read_only_url(Engine::Sqlite, "sqlite:///tmp/a.db?mode=ro"),
            "sqlite:///tmp/a.db?mode=ro"
        );
        assert_eq!(
            read_only_url(Engine::Postgres, "postgres://h/db"),
            "postgres://h/db"
        );
    }

    #[test]
    fn a_capability_is_appended_in_the_files_own_layout() {
        let text = "{\n  \"version\": 1,\n  \"note\": \"capabilities [\",\n  \"capabilities\": [\n    { \"name\": \"a.b\", \"x\": [1, 2] }\n  ],\n  \"airlock\": {}\n}\n";
        let out = with_capability(text, &json!({"name": "c.d", "y": [3]})).unwrap();
        assert_eq!(
            out,
            "{\n  \"version\": 1,\n  \"note\": \"capabilities [\",\n  \"capabilities\": [\n    { \"name\": \"a.b\", \"x\": [1, 2] },\n    {\n      \"name\": \"c.d\",\n      \"y\": [\n        3\n      ]\n    }\n  ],\n  \"airlock\": {}\n}\n"
        );
        // One line: appended on the same line.
        let out =
            with_capability(r#"{"capabilities": [{"a": "\"]"}], "z": 1}"#, &json!(2)).unwrap();
        assert_eq!(out, r#"{"capabilities": [{"a": "\"]"}, 2], "z": 1}"#);
        // Nested `capabilities` keys do not count.
        let text = r#"{"x": {"capabilities": [1]}, "capabilities": [0]}"#;
        assert_eq!(
            with_capability(text, &json!(5)).unwrap(),
            r#"{"x": {"capabilities": [1]}, "capabilities": [0, 5]}"#
        );
        // An empty array is rewritten whole.
        let out = with_capability(r#"{"capabilities": []}"#, &json!(1)).unwrap();
        assert_eq!(out, "{\n  \"capabilities\": [\n    1\n  ]\n}\n");
        assert!(with_capability(r#"{"capabilities": {}}"#, &json!(1)).is_none());
        assert!(with_capability("not json", &json!(1)).is_none());
    }
}
