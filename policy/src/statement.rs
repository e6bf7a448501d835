//! Every SQL statement Airlock sends to a source database, built from
//! reviewed identifiers only. Model-supplied values are always bound
//! parameters; identifiers were checked by the loader and are quoted here.
//!
//! Tenant comparisons cast the tenant column to text (binary-compared on
//! MySQL, whose default collations ignore case), so a numeric or UUID tenant
//! column matches the trusted tenant id exactly, while the primary-key
//! comparison stays uncast and keeps using its index.

use crate::canonical::sha256_tagged;
use crate::config::{Capability, Engine};
use crate::identifier::quote;

/// The positional parameters of a row lookup, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupParam {
    /// The value of the capability's `lookup.id_from_arg` argument.
    PrimaryKey,
    /// The trusted tenant id (as text).
    Tenant,
    /// The trusted principal (as text), for a capability with
    /// `target.principal_scope_key`.
    Principal,
    /// A bounded set's or an aggregate read's reviewed
    /// `selection.all[i].value` (from the config).
    Selection(u8),
    /// A bounded set's reviewed `selection.keys[i]` (from the config).
    SetKey(u8),
}

/// A statement and the order of its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<LookupParam>,
}

impl Statement {
    /// `sha256:` of the SQL text: identifies the query shape in evidence
    /// without any parameter values.
    pub fn fingerprint(&self) -> String {
        sha256_tagged(self.sql.as_bytes())
    }
}

pub(crate) fn placeholder(engine: Engine, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("${n}"),
        Engine::Mysql | Engine::Sqlite => "?".to_owned(),
    }
}

/// `<tenant column> = <placeholder>`, compared exactly as text.
pub fn tenant_predicate(engine: Engine, column: &str, n: usize) -> String {
    let col = quote(engine, column);
    let ph = placeholder(engine, n);
    match engine {
        Engine::Postgres => format!("{col}::text = {ph}"),
        Engine::Mysql => format!("CAST(CAST({col} AS CHAR) AS BINARY) = CAST({ph} AS BINARY)"),
        Engine::Sqlite => format!("CAST({col} AS TEXT) = {ph}"),
    }
}

/// The qualified table name. SQLite's schema is the attached database name
/// (`main` for the file itself); MySQL's is the database.
pub fn table_name(engine: Engine, cap: &Capability) -> String {
    format!(
        "{}.{}",
        quote(engine, &cap.target.schema),
        quote(engine, &cap.target.table)
    )
}

/// The SELECT that reads a capability's row: its read columns, scoped by
/// primary key, tenant key and (when configured) the principal scope key,
/// which is compared as text exactly like the tenant. With `for_update`, the row is locked
/// (Postgres and MySQL; SQLite serializes writers per transaction instead).
pub fn select_row(engine: Engine, cap: &Capability, for_update: bool) -> Statement {
    let cols: Vec<String> = cap
        .read_columns()
        .into_iter()
        .map(|c| quote(engine, c))
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {} = {}",
        cols.join(", "),
        table_name(engine, cap),
        quote(engine, &cap.target.primary_key),
        placeholder(engine, 1)
    );
    let mut params = vec![LookupParam::PrimaryKey];
    if let Some(tk) = &cap.target.tenant_key {
        sql.push_str(" AND ");
        sql.push_str(&tenant_predicate(engine, tk, 2));
        params.push(LookupParam::Tenant);
    }
    if let Some(pk) = &cap.target.principal_scope_key {
        sql.push_str(" AND ");
        sql.push_str(&tenant_predicate(engine, pk, params.len() + 1));
        params.push(LookupParam::Principal);
    }
    sql.push_str(&format!(" LIMIT {}", cap.max_rows));
    if for_update && engine != Engine::Sqlite {
        sql.push_str(" FOR UPDATE");
    }
    Statement { sql, params }
}

/// The statement a capability's reads run: its row by key, or, for a
/// bounded set, the rows its reviewed selection matches, or an aggregate
/// read's aggregate.
pub fn read_statement(engine: Engine, cap: &Capability) -> Statement {
    if let Some(a) = &cap.aggregate {
        return crate::aggregate_read::statement(engine, cap, a);
    }
    match cap.proposal.as_ref().and_then(|p| p.set()) {
        Some(set) => select_set(engine, cap, set),
        None => select_row(engine, cap, false),
    }
}

/// The rows a bounded set's reviewed selection matches, within the
/// trusted tenant (and principal), in primary-key order, at most
/// `max_rows + 1` (finding one more than the cap refuses the set; it is
/// never truncated). Every value bound is the reviewer's or the trusted
/// context's. MySQL compares text loosely here: the proposer keeps only
/// rows that match exactly ([`crate::bounded_set::selection_matches`]).
pub fn select_set(engine: Engine, cap: &Capability, set: &crate::config::SetSpec) -> Statement {
    let cols: Vec<String> = cap
        .read_columns()
        .into_iter()
        .map(|c| quote(engine, c))
        .collect();
    let mut params = Vec::new();
    let mut terms = Vec::new();
    for (i, t) in set.selection.iter().enumerate() {
        params.push(LookupParam::Selection(i as u8));
        terms.push(format!(
            "{} = {}",
            quote(engine, &t.column),
            placeholder(engine, params.len())
        ));
    }
    if !set.keys.is_empty() {
        let mut phs = Vec::new();
        for i in 0..set.keys.len() {
            params.push(LookupParam::SetKey(i as u8));
            phs.push(placeholder(engine, params.len()));
        }
        terms.push(format!(
            "{} IN ({})",
            quote(engine, &cap.target.primary_key),
            phs.join(", ")
        ));
    }
    if let Some(tk) = &cap.target.tenant_key {
        params.push(LookupParam::Tenant);
        terms.push(tenant_predicate(engine, tk, params.len()));
    }
    if let Some(pk) = &cap.target.principal_scope_key {
        params.push(LookupParam::Principal);
        terms.push(tenant_predicate(engine, pk, params.len()));
    }
    Statement {
        sql: format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            cols.join(", "),
            table_name(engine, cap),
            terms.join(" AND "),
            quote(engine, &cap.target.primary_key),
            set.max_rows + 1
        ),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_config_str;

    const REFERENCE: &str = crate::REFERENCE_CONFIG;

    #[test]
    fn select_is_scoped_by_key_and_tenant() {
        let cfg = load_config_str(REFERENCE).config.unwrap();
        let cap = cfg.capability("billing.inspect_invoice").unwrap();
        let pg = select_row(Engine::Postgres, cap, false);
        assert_eq!(
            pg.sql,
            "SELECT \"id\", \"tenant_id\", \"customer_id\", \"status\", \"balance_cents\", \"late_fee_cents\", \"waiver_reason\", \"updated_at\" FROM \"public\".\"invoices\" WHERE \"id\" = $1 AND \"tenant_id\"::text = $2 LIMIT 1"
        );
        assert_eq!(
            pg.params,
            vec![LookupParam::PrimaryKey, LookupParam::Tenant]
        );
        let my = select_row(Engine::Mysql, cap, true);
        assert!(my.sql.starts_with("SELECT `id`, `tenant_id`"));
        assert!(my.sql.ends_with("WHERE `id` = ? AND CAST(CAST(`tenant_id` AS CHAR) AS BINARY) = CAST(? AS BINARY) LIMIT 1 FOR UPDATE"));
        assert!(pg.fingerprint().starts_with("sha256:"));
    }
}

// ---------------------------------------------------------------------------
// Writeback: the guarded single-row change (executor only).

/// One value to bind, and the column it is compared with or assigned to
/// (`None` for a value compared as text, such as the tenant id).
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub column: Option<String>,
    pub value: serde_json::Value,
}

impl Bind {
    fn to(column: &str, value: &serde_json::Value) -> Bind {
        Bind {
            column: Some(column.to_owned()),
            value: value.clone(),
        }
    }
}

/// A statement with the values to bind, in order. Values come from the
/// executor's own verified change set; how each is bound (text with a cast
/// on Postgres, native on SQLite) is the executor's concern, guided by the
/// bind's column.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundStatement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Whether a column type (as MySQL's catalog names it) holds text, which
/// MySQL's default collations compare without case and trailing spaces.
pub fn is_text_type(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    ["char", "text", "enum", "set"]
        .iter()
        .any(|k| t.contains(k))
}

/// How the version column advances on apply: the current time for a
/// timestamp (or text) version, `+1` for an integer version, or not at
/// all by the executor (a trigger or default of the database does it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextVersion {
    Now,
    Increment,
    Database,
}

impl NextVersion {
    /// Chosen by the type of the version value the proposal was built on.
    pub fn for_value(v: &serde_json::Value) -> NextVersion {
        if v.is_i64() || v.is_u64() {
            NextVersion::Increment
        } else {
            NextVersion::Now
        }
    }

    /// The reviewed `operation.version_advance` strategy, else chosen by
    /// the version value (the rule before strategies existed).
    pub fn for_change(cap: &Capability, cs: &crate::change_set::ChangeSet) -> NextVersion {
        use crate::config::VersionStrategy as S;
        match cap
            .proposal
            .as_ref()
            .and_then(|p| p.operation.version_advance)
        {
            Some(S::IntegerIncrement) => NextVersion::Increment,
            Some(S::Timestamp) => NextVersion::Now,
            Some(S::DatabaseGenerated) => NextVersion::Database,
            None => cs
                .guards
                .expected_version
                .as_ref()
                .map_or(NextVersion::Now, |v| NextVersion::for_value(&v.value)),
        }
    }
}

/// The current time as the writer's SQL spells it.
fn now_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "pg_catalog.now()",
        Engine::Mysql => "CURRENT_TIMESTAMP(6)",
        Engine::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

/// Per-engine SQL text for one comparison or assignment.
pub struct WriteDialect<'a> {
    pub engine: Engine,
    /// The column's type as the catalog names it (used for Postgres casts
    /// and MySQL comparison rules); `None` when unknown.
    pub column_type: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

impl WriteDialect<'_> {
    fn param(&self, column: &str, n: usize) -> String {
        match self.engine {
            Engine::Postgres => match (self.column_type)(column) {
                Some(t) => format!("CAST(${n} AS {t})"),
                None => format!("${n}"),
            },
            Engine::Mysql | Engine::Sqlite => "?".to_owned(),
        }
    }

    fn is_mysql_text(&self, column: &str) -> bool {
        (self.column_type)(column).is_some_and(|t| is_text_type(&t))
    }

    /// `column` equals the bound value, NULL-safely and exactly.
    fn null_safe_eq(&self, column: &str, n: usize) -> String {
        let col = quote(self.engine, column);
        let p = self.param(column, n);
        match self.engine {
            Engine::Postgres => format!("{col} IS NOT DISTINCT FROM {p}"),
            // Default MySQL collations ignore case and trailing spaces: compare bytes.
            Engine::Mysql if self.is_mysql_text(column) => {
                format!("CAST({col} AS BINARY) <=> CAST({p} AS BINARY)")
            }
            Engine::Mysql => format!("{col} <=> {p}"),
            Engine::Sqlite => format!("{col} IS {p}"),
        }
    }

    /// `column` equals a non-null literal exactly (byte-exact for MySQL
    /// text, whose collations ignore case), keeping the column's index
    /// usable; binds appended.
    fn literal_eq(&self, column: &str, value: &serde_json::Value, binds: &mut Vec<Bind>) -> String {
        let col = quote(self.engine, column);
        binds.push(Bind::to(column, value));
        let eq = format!("{col} = {}", self.param(column, binds.len()));
        if self.engine == Engine::Mysql && self.is_mysql_text(column) {
            binds.push(Bind::to(column, value));
            format!("({eq} AND CAST({col} AS BINARY) = CAST(? AS BINARY))")
        } else {
            eq
        }
    }

    /// `WHERE <pk> = ? AND <tenant> = ? [AND <principal> = ?]`, binds appended.
    fn row_predicate(
        &self,
        cap: &Capability,
        cs: &crate::change_set::ChangeSet,
        binds: &mut Vec<Bind>,
    ) -> String {
        let pk = &cap.target.primary_key;
        let mut sql = String::new();
        if crate::compensation::locates_by_identity(cs) {
            // The row a reviewed insert created: its full identity (a
            // unique constraint), the forward proposal's id filled in.
            // Without one, it matches no row.
            let mut parts = Vec::new();
            for d in &cs.guards.deduplication {
                binds.push(Bind::to(
                    &d.column,
                    d.value.as_ref().unwrap_or(&serde_json::Value::Null),
                ));
                parts.push(self.null_safe_eq(&d.column, binds.len()));
            }
            if parts.is_empty() {
                parts.push("1 = 0".to_owned());
            }
            sql.push_str(&parts.join(" AND "));
        } else {
            binds.push(Bind::to(pk, &cs.target.primary_key.value));
            sql.push_str(&format!(
                "{} = {}",
                quote(self.engine, pk),
                self.param(pk, binds.len())
            ));
        }
        if self.engine == Engine::Mysql
            && self.is_mysql_text(pk)
            && !crate::compensation::locates_by_identity(cs)
        {
            binds.push(Bind::to(pk, &cs.target.primary_key.value));
            sql.push_str(&format!(
                " AND CAST({} AS BINARY) = CAST(? AS BINARY)",
                quote(self.engine, pk)
            ));
        }
        if let Some(tk) = &cap.target.tenant_key {
            binds.push(Bind {
                column: None,
                value: serde_json::Value::String(cs.tenant_id.clone()),
            });
            sql.push_str(" AND ");
            sql.push_str(&writer_tenant_predicate(self.engine, tk, binds.len()));
        }
        if let Some(pk) = &cap.target.principal_scope_key {
            // The change set's principal guard; a change set without one
            // (which `verify` never lets through) matches no row.
            binds.push(Bind {
                column: None,
                value: cs
                    .guards
                    .principal
                    .as_ref()
                    .map_or(serde_json::Value::Null, |g| g.value.clone()),
            });
            sql.push_str(" AND ");
            sql.push_str(&writer_tenant_predicate(self.engine, pk, binds.len()));
        }
        sql
    }
}

/// The tenant predicate of writer SQL: as [`tenant_predicate`], with the
/// Postgres cast schema-qualified (`pg_catalog.text`). Every function and
/// type the writer names is qualified, and the writer session also pins
/// `search_path` to `pg_catalog, pg_temp`, so nothing the read credential
/// can create resolves in the writer's SQL (operators, which cannot be
/// qualified in `IS NOT DISTINCT FROM`, rely on that pin).
fn writer_tenant_predicate(engine: Engine, column: &str, n: usize) -> String {
    match engine {
        Engine::Postgres => format!(
            "{}::pg_catalog.text = {}",
            quote(engine, column),
            placeholder(engine, n)
        ),
        Engine::Mysql | Engine::Sqlite => tenant_predicate(engine, column, n),
    }
}

/// One guard checked against the locked row: a label for the receipt and
/// the column and value it must still have.
#[derive(Debug, Clone, PartialEq)]
pub struct RowCheck {
    /// `version`, `before:<col>`, `from:<col>` or `row:<col>`.
    pub label: String,
    pub column: String,
    pub expected: serde_json::Value,
}

/// The checks a writeback makes on the locked row: the version column, the
/// before-value of every patched column, the "from" value of transitions
/// guarded by another column, and — for a row-hash guard — every column of
/// the row as read (`read_row`, from the evidence).
pub fn writeback_checks(
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    read_row: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<RowCheck> {
    let mut checks: Vec<RowCheck> = Vec::new();
    let mut add = |label: String, column: &str, expected: &serde_json::Value| {
        if !checks.iter().any(|c| c.column == column) {
            checks.push(RowCheck {
                label,
                column: column.to_owned(),
                expected: expected.clone(),
            });
        }
    };
    if let Some(v) = &cs.guards.expected_version {
        add("version".into(), &v.column, &v.value);
    }
    for col in cs.patch.keys() {
        if let Some(before) = cs.before.get(col) {
            add(format!("before:{col}"), col, before);
        }
    }
    // Deleting the row a reviewed insert created: every value it wrote
    // must still be there.
    if crate::compensation::locates_by_identity(cs) {
        for (col, v) in &cs.before {
            add(format!("before:{col}"), col, v);
        }
    }
    let guards = cap.proposal.as_ref().map(|p| &p.transition_guards);
    for t in &cs.guards.transitions {
        let from_col = guards
            .and_then(|g| g.get(&t.column))
            .and_then(|g| g.from_column.as_deref())
            .unwrap_or(&t.column);
        add(format!("from:{from_col}"), from_col, &t.from);
    }
    if cs.guards.row_hash.is_some()
        && let Some(row) = read_row
    {
        for (col, v) in row {
            if col != &cs.target.primary_key.column {
                add(format!("row:{col}"), col, v);
            }
        }
    }
    checks
}

/// Lock the target row (scoped by key and tenant) and report, per check,
/// whether it still holds (`1`) or not (`0`). No row: the row is gone or
/// belongs to another tenant.
pub fn writeback_lock(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    checks: &[RowCheck],
) -> BoundStatement {
    row_checks(d, cap, cs, checks, true)
}

/// The same question as [`writeback_lock`] without taking a lock: whether
/// each check still holds now (the freshness of a pending proposal, asked
/// by a reviewer before deciding).
pub fn freshness_probe(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    checks: &[RowCheck],
) -> BoundStatement {
    row_checks(d, cap, cs, checks, false)
}

fn row_checks(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    checks: &[RowCheck],
    lock: bool,
) -> BoundStatement {
    let mut binds = Vec::new();
    let mut cols = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        binds.push(Bind::to(&c.column, &c.expected));
        cols.push(format!(
            "CASE WHEN {} THEN 1 ELSE 0 END AS c{i}",
            d.null_safe_eq(&c.column, binds.len())
        ));
    }
    if cols.is_empty() {
        cols.push("1 AS c0".to_owned());
    }
    // Placeholders are numbered by position, so the WHERE clause's follow the checks'.
    let pred = d.row_predicate(cap, cs, &mut binds);
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {pred}",
        cols.join(", "),
        table_name(d.engine, cap)
    );
    if lock && d.engine != Engine::Sqlite {
        sql.push_str(" FOR UPDATE");
    }
    BoundStatement { sql, binds }
}

/// What a freshness probe found: the row gone (or another tenant's), some
/// checks failed (their labels), or every check still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowFreshness {
    Gone,
    Changed(Vec<String>),
    Current,
}

/// Read a probe's answer: `flags[i]` is check `i`'s `1`/`0` (`None`: no row).
pub fn judge_freshness(checks: &[RowCheck], flags: Option<&[i64]>) -> RowFreshness {
    let Some(flags) = flags else {
        return RowFreshness::Gone;
    };
    let failed: Vec<String> = checks
        .iter()
        .enumerate()
        .filter(|(i, _)| flags.get(*i) != Some(&1))
        .map(|(_, c)| c.label.clone())
        .collect();
    if failed.is_empty() {
        RowFreshness::Current
    } else {
        RowFreshness::Changed(failed)
    }
}

/// The guarded UPDATE: set the patched columns and advance the version,
/// only where key, tenant and version still match.
pub fn writeback_update(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    next: NextVersion,
) -> BoundStatement {
    let mut binds = Vec::new();
    let mut sets = Vec::new();
    for (col, v) in &cs.patch {
        binds.push(Bind::to(col, v));
        sets.push(format!(
            "{} = {}",
            quote(d.engine, col),
            d.param(col, binds.len())
        ));
    }
    for col in &cs.apply_time {
        sets.push(format!("{} = {}", quote(d.engine, col), now_sql(d.engine)));
    }
    if let Some(v) = &cs.guards.expected_version {
        let col = quote(d.engine, &v.column);
        match next {
            NextVersion::Increment => sets.push(format!("{col} = {col} + 1")),
            NextVersion::Now => sets.push(format!("{col} = {}", now_sql(d.engine))),
            NextVersion::Database => {}
        }
    }
    let mut pred = d.row_predicate(cap, cs, &mut binds);
    if let Some(v) = &cs.guards.expected_version {
        binds.push(Bind::to(&v.column, &v.value));
        pred.push_str(" AND ");
        pred.push_str(&d.null_safe_eq(&v.column, binds.len()));
    }
    BoundStatement {
        sql: format!(
            "UPDATE {} SET {} WHERE {pred}",
            table_name(d.engine, cap),
            sets.join(", ")
        ),
        binds,
    }
}

/// The guarded INSERT of one new row: the patched columns, the columns
/// set to the apply time, the trusted tenant and every identity value
/// (`proposal_id`: the proposal's id, known only now).
pub fn writeback_insert(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
    proposal_id: &str,
) -> BoundStatement {
    let mut binds = Vec::new();
    let mut cols = Vec::new();
    let mut values = Vec::new();
    let mut add = |col: &str, value: &serde_json::Value, binds: &mut Vec<Bind>| {
        if cols.contains(&quote(d.engine, col)) {
            return;
        }
        binds.push(Bind::to(col, value));
        cols.push(quote(d.engine, col));
        values.push(d.param(col, binds.len()));
    };
    for (col, v) in &cs.patch {
        add(col, v, &mut binds);
    }
    for g in cs.guards.tenant.iter().chain(&cs.guards.principal) {
        add(&g.column, &g.value, &mut binds);
    }
    for c in &cs.guards.deduplication {
        let v = match &c.value {
            Some(v) => v.clone(),
            None => serde_json::Value::String(proposal_id.to_owned()),
        };
        add(&c.column, &v, &mut binds);
    }
    for col in &cs.apply_time {
        cols.push(quote(d.engine, col));
        values.push(now_sql(d.engine).to_owned());
    }
    BoundStatement {
        sql: format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table_name(d.engine, cap),
            cols.join(", "),
            values.join(", ")
        ),
        binds,
    }
}

/// The guarded DELETE of one row: only where key, tenant and the exact
/// version still match.
pub fn writeback_delete(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
) -> BoundStatement {
    let mut binds = Vec::new();
    let mut pred = d.row_predicate(cap, cs, &mut binds);
    if let Some(v) = &cs.guards.expected_version {
        binds.push(Bind::to(&v.column, &v.value));
        pred.push_str(" AND ");
        pred.push_str(&d.null_safe_eq(&v.column, binds.len()));
    }
    // An inserted row has no version: the values it was created with guard
    // its deletion in the statement itself.
    if crate::compensation::locates_by_identity(cs) {
        for (col, v) in &cs.before {
            binds.push(Bind::to(col, v));
            pred.push_str(" AND ");
            pred.push_str(&d.null_safe_eq(col, binds.len()));
        }
    }
    BoundStatement {
        sql: format!("DELETE FROM {} WHERE {pred}", table_name(d.engine, cap)),
        binds,
    }
}

/// Read the version column after the UPDATE (same transaction), as text.
pub fn writeback_new_version(
    d: &WriteDialect<'_>,
    cap: &Capability,
    cs: &crate::change_set::ChangeSet,
) -> Option<BoundStatement> {
    let v = cs.guards.expected_version.as_ref()?;
    let col = quote(d.engine, &v.column);
    let as_text = match d.engine {
        Engine::Postgres => format!("pg_catalog.to_json({col}) #>> '{{}}'"),
        Engine::Mysql => format!("CAST({col} AS CHAR)"),
        Engine::Sqlite => format!("CAST({col} AS TEXT)"),
    };
    let mut binds = Vec::new();
    let pred = d.row_predicate(cap, cs, &mut binds);
    Some(BoundStatement {
        sql: format!(
            "SELECT {as_text} FROM {} WHERE {pred}",
            table_name(d.engine, cap)
        ),
        binds,
    })
}

/// The executor's own run of a bounded set's reviewed selection, with the
/// write credential, when it takes a set proposal in: the primary keys (as
/// text) of the rows it matches now, exactly (NULL-safe, byte-exact on
/// MySQL text), in key order, at most `max_rows + 1`. Apply never runs it:
/// apply locks the frozen members by key.
pub fn set_members_query(
    d: &WriteDialect<'_>,
    cap: &Capability,
    set: &crate::config::SetSpec,
    tenant_id: &str,
    principal: &str,
) -> BoundStatement {
    let pk = &cap.target.primary_key;
    let key_text = match d.engine {
        Engine::Postgres => format!("pg_catalog.to_json({}) #>> '{{}}'", quote(d.engine, pk)),
        Engine::Mysql => format!("CAST({} AS CHAR)", quote(d.engine, pk)),
        Engine::Sqlite => format!("CAST({} AS TEXT)", quote(d.engine, pk)),
    };
    let mut binds = Vec::new();
    let mut terms = Vec::new();
    for t in &set.selection {
        terms.push(d.literal_eq(&t.column, &t.value, &mut binds));
    }
    if !set.keys.is_empty() {
        let any: Vec<String> = set
            .keys
            .iter()
            .map(|k| d.literal_eq(pk, k, &mut binds))
            .collect();
        terms.push(format!("({})", any.join(" OR ")));
    }
    if let Some(tk) = &cap.target.tenant_key {
        binds.push(Bind {
            column: None,
            value: serde_json::Value::String(tenant_id.to_owned()),
        });
        terms.push(writer_tenant_predicate(d.engine, tk, binds.len()));
    }
    if let Some(col) = &cap.target.principal_scope_key {
        binds.push(Bind {
            column: None,
            value: serde_json::Value::String(principal.to_owned()),
        });
        terms.push(writer_tenant_predicate(d.engine, col, binds.len()));
    }
    BoundStatement {
        sql: format!(
            "SELECT {key_text} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            table_name(d.engine, cap),
            terms.join(" AND "),
            quote(d.engine, pk),
            set.max_rows + 1
        ),
        binds,
    }
}

/// Name of the idempotency-receipt table: Synapsor Runner's.
pub const RECEIPTS_TABLE: &str = "synapsor_writeback_receipts";

/// The receipt table's columns, in order: exactly Synapsor Runner's, so a
/// database prepared for Synapsor Runner works as it is (Airlock's richer
/// detail — versions, rows affected, the proposal hash — is in its ledger).
pub const RECEIPT_COLUMNS: [&str; 7] = [
    "idempotency_key",
    "job_id",
    "proposal_id",
    "status",
    "result_hash",
    "created_at",
    "completed_at",
];

/// The current time as the receipt table stores it.
fn receipt_now(engine: Engine) -> &'static str {
    now_sql(engine)
}

fn receipts_name(engine: Engine, schema: &str) -> String {
    format!(
        "{}.{}",
        quote(engine, schema),
        quote(engine, RECEIPTS_TABLE)
    )
}

/// `CREATE TABLE IF NOT EXISTS` for the receipt table in `schema`: Synapsor
/// Runner's columns and types (SQLite, which Synapsor Runner does not
/// serve, stores text).
pub fn receipts_ddl(engine: Engine, schema: &str) -> String {
    let t = receipts_name(engine, schema);
    match engine {
        Engine::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n  idempotency_key text PRIMARY KEY,\n  job_id text UNIQUE NOT NULL,\n  proposal_id text NOT NULL,\n  status text NOT NULL,\n  result_hash text,\n  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n  completed_at timestamptz\n)"
        ),
        Engine::Mysql => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n  idempotency_key varchar(255) PRIMARY KEY,\n  job_id varchar(255) UNIQUE NOT NULL,\n  proposal_id varchar(512) NOT NULL,\n  status varchar(64) NOT NULL,\n  result_hash varchar(128),\n  created_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n  completed_at timestamp(6) NULL\n)"
        ),
        Engine::Sqlite => format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n  idempotency_key TEXT PRIMARY KEY,\n  job_id TEXT UNIQUE NOT NULL,\n  proposal_id TEXT NOT NULL,\n  status TEXT NOT NULL,\n  result_hash TEXT,\n  created_at TEXT NOT NULL DEFAULT ({}),\n  completed_at TEXT\n)",
            receipt_now(engine)
        ),
    }
}

/// Look up a receipt by idempotency key: `(job_id, status, result_hash)`.
pub fn receipt_lookup(engine: Engine, schema: &str) -> String {
    format!(
        "SELECT job_id, status, result_hash FROM {} WHERE idempotency_key = {}",
        receipts_name(engine, schema),
        placeholder(engine, 1)
    )
}

/// Record an applied change: 4 parameters (`idempotency_key`, `job_id`,
/// `proposal_id`, `result_hash`); status `applied`, completed now.
pub fn receipt_insert(engine: Engine, schema: &str) -> String {
    let ph: Vec<String> = (1..=4).map(|n| placeholder(engine, n)).collect();
    format!(
        "INSERT INTO {} (idempotency_key, job_id, proposal_id, status, result_hash, completed_at) VALUES ({}, {}, {}, 'applied', {}, {})",
        receipts_name(engine, schema),
        ph[0],
        ph[1],
        ph[2],
        ph[3],
        receipt_now(engine)
    )
}

#[cfg(test)]
mod writer_sql_tests {
    use super::*;
    use crate::args::validate_args;
    use crate::config::ContextProvider;
    use crate::context::TrustedContext;
    use crate::load::load_config_str;

    const REFERENCE: &str = crate::REFERENCE_CONFIG;

    /// The reference late-fee waiver, built as the executor stores it.
    fn waiver() -> (crate::config::Config, crate::change_set::ChangeSet) {
        let cfg = load_config_str(REFERENCE).config.unwrap();
        let cap = cfg.capability("billing.propose_late_fee_waiver").unwrap();
        let args = validate_args(
            cap,
            Some(&serde_json::json!({"invoice_id": "INV-3001", "reason": "r"})),
        )
        .unwrap();
        let ctx = TrustedContext {
            tenant_id: "acme".into(),
            principal: "agent".into(),
            source: ContextProvider::Environment,
        };
        let row = serde_json::json!({
            "id": "INV-3001", "tenant_id": "acme", "customer_id": "c", "status": "overdue",
            "balance_cents": 25500, "late_fee_cents": 5500, "waiver_reason": null,
            "updated_at": "2026-06-20T14:31:08Z"
        });
        let cs = crate::change_set::build(cap, &args, &ctx, row.as_object().unwrap()).unwrap();
        (cfg, cs)
    }

    #[test]
    fn a_freshness_probe_asks_what_the_lock_asks_without_locking() {
        let (cfg, cs) = waiver();
        let cap = cfg.capability("billing.propose_late_fee_waiver").unwrap();
        let types = |_: &str| Some("text".to_owned());
        for engine in [Engine::Postgres, Engine::Mysql, Engine::Sqlite] {
            let d = WriteDialect {
                engine,
                column_type: &types,
            };
            let checks = writeback_checks(cap, &cs, None);
            let lock = writeback_lock(&d, cap, &cs, &checks);
            let probe = freshness_probe(&d, cap, &cs, &checks);
            assert_eq!(probe.binds, lock.binds);
            let expected = lock.sql.trim_end_matches(" FOR UPDATE");
            assert_eq!(probe.sql, expected);
            assert!(!probe.sql.contains("FOR UPDATE"), "{}", probe.sql);
            assert_eq!(lock.sql.ends_with(" FOR UPDATE"), engine != Engine::Sqlite);
        }
    }

    #[test]
    fn freshness_is_judged_from_the_probe_flags() {
        let check = |label: &str| RowCheck {
            label: label.into(),
            column: label.into(),
            expected: serde_json::Value::Null,
        };
        let checks = [check("version"), check("before:late_fee_cents")];
        assert_eq!(judge_freshness(&checks, None), RowFreshness::Gone);
        assert_eq!(
            judge_freshness(&checks, Some(&[1, 1])),
            RowFreshness::Current
        );
        assert_eq!(
            judge_freshness(&checks, Some(&[0, 1])),
            RowFreshness::Changed(vec!["version".into()])
        );
        assert_eq!(
            judge_freshness(&checks, Some(&[1, 0])),
            RowFreshness::Changed(vec!["before:late_fee_cents".into()])
        );
        // A missing or odd flag is not a pass.
        assert_eq!(
            judge_freshness(&checks, Some(&[1])),
            RowFreshness::Changed(vec!["before:late_fee_cents".into()])
        );
        assert_eq!(
            judge_freshness(&checks, Some(&[2, 1])),
            RowFreshness::Changed(vec!["version".into()])
        );
        assert_eq!(judge_freshness(&[], Some(&[1])), RowFreshness::Current);
    }

    /// F4: on Postgres every function and cast the writer names is in
    /// `pg_catalog`, so nothing another role creates can resolve in it even
    /// with a hostile search_path; MySQL and SQLite text is unchanged.
    #[test]
    fn postgres_writer_sql_names_functions_and_casts_in_pg_catalog() {
        let (cfg, cs) = waiver();
        let cap = cfg.capability("billing.propose_late_fee_waiver").unwrap();
        let types = |c: &str| match c {
            "updated_at" => Some("timestamp with time zone".to_owned()),
            "late_fee_cents" => Some("integer".to_owned()),
            _ => Some("text".to_owned()),
        };
        let pg = WriteDialect {
            engine: Engine::Postgres,
            column_type: &types,
        };
        let checks = writeback_checks(cap, &cs, None);
        let lock = writeback_lock(&pg, cap, &cs, &checks).sql;
        let update = writeback_update(&pg, cap, &cs, NextVersion::Now).sql;
        let read_back = writeback_new_version(&pg, cap, &cs).unwrap().sql;
        assert!(
            update.contains("\"updated_at\" = pg_catalog.now()"),
            "{update}"
        );
        assert_eq!(
            read_back,
            "SELECT pg_catalog.to_json(\"updated_at\") #>> '{}' FROM \"public\".\"invoices\" WHERE \"id\" = CAST($1 AS text) AND \"tenant_id\"::pg_catalog.text = $2"
        );
        for sql in [&lock, &update, &read_back] {
            assert!(sql.contains("\"public\".\"invoices\""), "{sql}");
            assert!(sql.contains("\"tenant_id\"::pg_catalog.text = $"), "{sql}");
            assert!(!sql.contains("::text"), "{sql}");
            for f in ["now()", "to_json("] {
                for (i, _) in sql.match_indices(f) {
                    assert!(
                        sql[..i].ends_with("pg_catalog."),
                        "unqualified {f} in {sql}"
                    );
                }
            }
        }
        assert!(receipts_ddl(Engine::Postgres, "public").contains("DEFAULT pg_catalog.now()"));
        // The reader's SQL (and so its fingerprint in evidence) is unchanged.
        assert!(
            select_row(Engine::Postgres, cap, false)
                .sql
                .contains("\"tenant_id\"::text = $2")
        );
        // MySQL and SQLite have no search_path: their text is unchanged.
        let my = WriteDialect {
            engine: Engine::Mysql,
            column_type: &types,
        };
        assert!(
            writeback_update(&my, cap, &cs, NextVersion::Now)
                .sql
                .contains("`updated_at` = CURRENT_TIMESTAMP(6)")
        );
        let lite = WriteDialect {
            engine: Engine::Sqlite,
            column_type: &types,
        };
        assert!(
            writeback_new_version(&lite, cap, &cs)
                .unwrap()
                .sql
                .contains("CAST(\"updated_at\" AS TEXT)")
        );
    }
}
