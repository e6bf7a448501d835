//! The ledger's one connection, on either backend: an SQLite file (one
//! host) or a PostgreSQL schema shared by a fleet of executors.
//!
//! The ledger's SQL is written once, in the subset both engines accept
//! (`?N` placeholders, `ON CONFLICT`, `COALESCE`, quoted `"user"`); the few
//! places that differ ask [`Db::dialect`]. PostgreSQL is driven through
//! sqlx on a private current-thread runtime, so the ledger stays the
//! synchronous, single-threaded object the group commit owns.
//!
//! On PostgreSQL every transaction first takes one transaction-scoped
//! advisory lock (`Pg::lock_key`): the writers of a fleet append to the
//! chain one at a time, so it stays linear, and a state check and the
//! write that depends on it cannot interleave with another executor's.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use sqlx::{Column, Connection as _, Row as _, TypeInfo, ValueRef as _};

/// Which engine holds the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A database error of either backend.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", describe_pg(.0))]
    Postgres(#[from] sqlx::Error),
    #[error("a query expected a row and found none")]
    NoRow,
    #[error("column {column}: {why}")]
    Type { column: String, why: String },
}

/// A PostgreSQL error without connection details (the URL's parts never
/// reach a message): the server's own message and SQLSTATE.
fn describe_pg(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_owned(),
        },
        sqlx::Error::Io(io) => format!("the connection to the ledger database failed: {io}"),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            "the ledger database connection is closed".to_owned()
        }
        sqlx::Error::Tls(_) => "TLS to the ledger database failed".to_owned(),
        sqlx::Error::Configuration(_) => "the ledger database URL is not valid".to_owned(),
        other => other.to_string(),
    }
}

impl DbError {
    /// The SQLSTATE of a PostgreSQL error.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            DbError::Postgres(sqlx::Error::Database(d)) => d.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

/// One bound parameter. NULLs carry their type: PostgreSQL will not put a
/// text NULL into a bigint column.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Int(i64),
    Text(Cow<'a, str>),
    NullInt,
    NullText,
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl From<&$t> for Arg<'_> {
            fn from(v: &$t) -> Self {
                Arg::Int(i64::try_from(*v).unwrap_or(i64::MAX))
            }
        }
        impl From<&&$t> for Arg<'_> {
            fn from(v: &&$t) -> Self {
                Arg::from(*v)
            }
        }
        impl From<&Option<$t>> for Arg<'_> {
            fn from(v: &Option<$t>) -> Self {
                v.as_ref().map_or(Arg::NullInt, Arg::from)
            }
        }
    )*};
}
int_args!(i64, i32, u32, u64, usize);

impl From<&bool> for Arg<'_> {
    fn from(v: &bool) -> Self {
        Arg::Int(i64::from(*v))
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}
impl<'a, 'b: 'a> From<&'a &'b str> for Arg<'a> {
    fn from(v: &'a &'b str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}
impl<'a, 'b: 'a> From<&'a &'b String> for Arg<'a> {
    fn from(v: &'a &'b String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}
impl<'a, 'b: 'a> From<&'a Option<&'b str>> for Arg<'a> {
    fn from(v: &'a Option<&'b str>) -> Self {
        v.map_or(Arg::NullText, Arg::from)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Arg::NullText, Arg::from)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Arg::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Arg::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Arg::NullInt | Arg::NullText => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// `args![a, b]`: the parameters of one statement, `?1`, `?2`, … (each
/// borrowed, as rusqlite's `params!` does).
#[macro_export]
macro_rules! args {
    ($($x:expr),* $(,)?) => {
        &[$($crate::ledger::db::Arg::from(&$x)),*][..]
    };
}

/// A column read by position or by name.
#[derive(Debug, Clone, Copy)]
pub enum Col<'a> {
    At(usize),
    Named(&'a str),
}

/// What `DbRow::get` takes: a position or a name (as rusqlite's `get`).
pub trait ColIdx {
    fn col(&self) -> Col<'_>;
}
impl ColIdx for usize {
    fn col(&self) -> Col<'_> {
        Col::At(*self)
    }
}
impl ColIdx for &str {
    fn col(&self) -> Col<'_> {
        Col::Named(self)
    }
}

/// One value as read, before it becomes a Rust type.
enum Cell_<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'r, str>),
}

/// One result row of either backend.
pub enum DbRow<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r sqlx::postgres::PgRow),
}

impl DbRow<'_> {
    /// Column `c` as a `T`.
    pub fn get<I: ColIdx, T: FromDb>(&self, idx: I) -> Result<T, DbError> {
        let c = idx.col();
        let name = || match c {
            Col::At(i) => i.to_string(),
            Col::Named(n) => n.to_owned(),
        };
        let cell = self.cell(c)?;
        T::from_cell(cell).map_err(|why| DbError::Type {
            column: name(),
            why,
        })
    }

    fn cell(&self, c: Col<'_>) -> Result<Cell_<'_>, DbError> {
        match self {
            DbRow::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                let v = match c {
                    Col::At(i) => r.get_ref(i)?,
                    Col::Named(n) => r.get_ref(n)?,
                };
                Ok(match v {
                    ValueRef::Null => Cell_::Null,
                    ValueRef::Integer(i) => Cell_::Int(i),
                    ValueRef::Real(f) => Cell_::Real(f),
                    ValueRef::Text(t) => Cell_::Text(String::from_utf8_lossy(t)),
                    ValueRef::Blob(_) => {
                        return Err(DbError::Type {
                            column: format!("{c:?}"),
                            why: "a blob where no ledger column holds one".into(),
                        });
                    }
                })
            }
            DbRow::Postgres(r) => pg_cell(r, c),
        }
    }
}

fn pg_cell<'r>(r: &'r sqlx::postgres::PgRow, c: Col<'_>) -> Result<Cell_<'r>, DbError> {
    let i = match c {
        Col::At(i) => i,
        Col::Named(n) => r
            .columns()
            .iter()
            .position(|col| col.name() == n)
            .ok_or(DbError::Postgres(sqlx::Error::ColumnNotFound(n.to_owned())))?,
    };
    let raw = r.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Cell_::Null);
    }
    let ty = raw.type_info().name().to_owned();
    Ok(match ty.as_str() {
        "INT8" => Cell_::Int(r.try_get::<i64, _>(i)?),
        "INT4" => Cell_::Int(i64::from(r.try_get::<i32, _>(i)?)),
        "INT2" => Cell_::Int(i64::from(r.try_get::<i16, _>(i)?)),
        "BOOL" => Cell_::Int(i64::from(r.try_get::<bool, _>(i)?)),
        "FLOAT8" => Cell_::Real(r.try_get::<f64, _>(i)?),
        "NUMERIC" => {
            let n: sqlx::types::BigDecimal = r.try_get(i)?;
            match n.to_string().parse::<i64>() {
                Ok(v) => Cell_::Int(v),
                Err(_) => Cell_::Real(n.to_string().parse::<f64>().unwrap_or(f64::NAN)),
            }
        }
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => {
            Cell_::Text(Cow::Borrowed(r.try_get::<&str, _>(i)?))
        }
        "JSON" | "JSONB" => {
            let v: sqlx::types::JsonValue = r.try_get(i)?;
            Cell_::Text(Cow::Owned(v.to_string()))
        }
        other => {
            return Err(DbError::Type {
                column: i.to_string(),
                why: format!("type {other} is not one the ledger reads"),
            });
        }
    })
}

/// A Rust type a ledger column is read as.
pub trait FromDb: Sized {
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String>;
}

impl FromDb for i64 {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        match c {
            Cell_::Int(i) => Ok(i),
            Cell_::Null => Err("NULL where a number was expected".into()),
            Cell_::Real(_) | Cell_::Text(_) => Err("not an integer".into()),
        }
    }
}
impl FromDb for u32 {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        u32::try_from(i64::from_cell(c)?).map_err(|_| "out of range".into())
    }
}
impl FromDb for u64 {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        u64::try_from(i64::from_cell(c)?).map_err(|_| "out of range".into())
    }
}
impl FromDb for bool {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        Ok(i64::from_cell(c)? != 0)
    }
}
impl FromDb for f64 {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        match c {
            Cell_::Real(f) => Ok(f),
            Cell_::Int(i) => Ok(i as f64),
            _ => Err("not a number".into()),
        }
    }
}
impl FromDb for String {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        match c {
            Cell_::Text(t) => Ok(t.into_owned()),
            Cell_::Null => Err("NULL where text was expected".into()),
            Cell_::Int(_) | Cell_::Real(_) => Err("not text".into()),
        }
    }
}
impl<T: FromDb> FromDb for Option<T> {
    #[allow(private_interfaces)]
    fn from_cell(c: Cell_<'_>) -> Result<Self, String> {
        match c {
            Cell_::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// A PostgreSQL ledger connection.
pub struct Pg {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
    /// The schema that holds the ledger (already validated as an identifier).
    pub schema: String,
    /// The advisory lock every transaction takes first (from the schema).
    lock_key: i64,
    /// Whether transactions take it (always, but in the test that shows
    /// what goes wrong without it).
    chain_lock: bool,
}

/// The ledger's connection.
pub struct Db {
    inner: Inner,
    /// Open savepoints (and, on PostgreSQL, whether a transaction is open).
    depth: Cell<u32>,
    pg_in_tx: Cell<bool>,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(RefCell<Pg>),
}

/// PostgreSQL numbers its placeholders `$N`; the ledger's SQL says `?N`.
fn to_pg(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut in_text = false;
    for ch in sql.chars() {
        match ch {
            '\'' => {
                in_text = !in_text;
                out.push(ch);
            }
            '?' if !in_text => out.push('$'),
            _ => out.push(ch),
        }
    }
    Cow::Owned(out)
}

impl Pg {
    /// Connect to `url` and use `schema` (created by `airlock ledger migrate`).
    pub fn connect(url: &str, schema: &str, lock_timeout_ms: u64) -> Result<Pg, DbError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Postgres(sqlx::Error::Io(e)))?;
        let mut conn = rt.block_on(sqlx::PgConnection::connect(url))?;
        rt.block_on(
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "SET search_path TO \"{schema}\"; SET lock_timeout = {lock_timeout_ms}; SET application_name = 'airlock-executor'"
            )))
            .execute(&mut conn),
        )?;
        let lock_key = i64::from_be_bytes(
            airlock_policy::canonical::sha256_tagged(format!("airlock-ledger:{schema}").as_bytes())
                .as_bytes()[7..15]
                .try_into()
                .unwrap_or([0; 8]),
        );
        Ok(Pg {
            rt,
            conn,
            schema: schema.to_owned(),
            lock_key,
            chain_lock: true,
        })
    }

    fn bind<'q>(
        mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        args: &'q [Arg<'q>],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        for a in args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(t) => q.bind(t.as_ref()),
                Arg::NullInt => q.bind(None::<i64>),
                Arg::NullText => q.bind(None::<String>),
            };
        }
        q
    }

    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let sql = to_pg(sql);
        let q = Self::bind(sqlx::query(sqlx::AssertSqlSafe(sql.as_ref())), args);
        Ok(self.rt.block_on(q.execute(&mut self.conn))?.rows_affected())
    }

    fn fetch(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<sqlx::postgres::PgRow>, DbError> {
        let sql = to_pg(sql);
        let q = Self::bind(sqlx::query(sqlx::AssertSqlSafe(sql.as_ref())), args);
        Ok(self.rt.block_on(q.fetch_all(&mut self.conn))?)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.rt
            .block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut self.conn))?;
        Ok(())
    }
}

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        Db {
            inner: Inner::Sqlite(conn),
            depth: Cell::new(0),
            pg_in_tx: Cell::new(false),
        }
    }

    pub fn postgres(pg: Pg) -> Db {
        Db {
            inner: Inner::Postgres(RefCell::new(pg)),
            depth: Cell::new(0),
            pg_in_tx: Cell::new(false),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection (file-level work: pragmas, archives, backups).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    pub fn as_sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL schema holding the ledger.
    pub fn pg_schema(&self) -> Option<String> {
        match &self.inner {
            Inner::Sqlite(_) => None,
            Inner::Postgres(p) => Some(p.borrow().schema.clone()),
        }
    }

    pub fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => {
                Ok(c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(args))? as u64)
            }
            Inner::Postgres(p) => p.borrow_mut().execute(sql, args),
        }
    }

    /// Several statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(p) => p.borrow_mut().batch(sql),
        }
    }

    /// Every row of a query, each through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&DbRow::Sqlite(r))?);
                }
                Ok(out)
            }
            Inner::Postgres(p) => {
                let rows = p.borrow_mut().fetch(sql, args)?;
                rows.iter().map(|r| f(&DbRow::Postgres(r))).collect()
            }
        }
    }

    /// The first row of a query through `f`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&DbRow::Sqlite(r))?)),
                    None => Ok(None),
                }
            }
            Inner::Postgres(p) => {
                let rows = p.borrow_mut().fetch(sql, args)?;
                rows.first().map(|r| f(&DbRow::Postgres(r))).transpose()
            }
        }
    }

    /// The first row of a query through `f`; `DbError::NoRow` without one.
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, args, f)?.ok_or(DbError::NoRow)
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt {
            db: self,
            sql: sql.to_owned(),
        })
    }

    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        self.prepare_cached(sql)
    }

    /// One value of the first row (`query_row` of column 0).
    pub fn one<T: FromDb>(&self, sql: &str, args: &[Arg<'_>]) -> Result<T, DbError> {
        self.query_row(sql, args, |r| r.get(0))
    }

    /// Open a transaction. On PostgreSQL it first takes the ledger's
    /// advisory lock (see the module's comment).
    pub fn begin(&self) -> Result<(), DbError> {
        self.begin_with(false)
    }

    /// [`Db::begin`]; with `deferred`, the transaction's commit does not
    /// wait for its WAL flush (PostgreSQL's `synchronous_commit = off`, as
    /// SQLite's NORMAL: made durable by the next durable commit). One round
    /// trip on PostgreSQL.
    pub fn begin_with(&self, deferred: bool) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("BEGIN")?),
            Inner::Postgres(p) => {
                let mut p = p.borrow_mut();
                let mut sql = String::from("BEGIN;");
                if p.chain_lock {
                    sql.push_str(&format!(" SELECT pg_advisory_xact_lock({});", p.lock_key));
                }
                if deferred {
                    sql.push_str(" SET LOCAL synchronous_commit = off;");
                }
                self.pg_begin(&mut p, &sql)
            }
        }
    }

    /// Run `sql`, which opens a PostgreSQL transaction.
    fn pg_begin(&self, p: &mut Pg, sql: &str) -> Result<(), DbError> {
        match p.batch(sql) {
            Ok(()) => {
                self.pg_in_tx.set(true);
                Ok(())
            }
            Err(e) => {
                // A lock timeout leaves an aborted transaction: end it, so
                // the next batch starts clean.
                let _ = p.batch("ROLLBACK");
                self.pg_in_tx.set(false);
                Err(e)
            }
        }
    }

    /// Open a transaction that only reads: on PostgreSQL one snapshot for
    /// all its statements (a reader needs no chain lock to see the chain
    /// whole), and read-only, so a write in it fails instead of bypassing
    /// the lock. On SQLite a plain (deferred) `BEGIN`, which takes no lock.
    pub fn begin_read(&self) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("BEGIN")?),
            Inner::Postgres(p) => self.pg_begin(
                &mut p.borrow_mut(),
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            ),
        }
    }

    #[cfg(test)]
    pub fn set_chain_lock_for_test(&self, on: bool) {
        if let Inner::Postgres(p) = &self.inner {
            p.borrow_mut().chain_lock = on;
        }
    }

    pub fn commit(&self) -> Result<(), DbError> {
        let r = self.execute_batch("COMMIT");
        self.pg_in_tx.set(false);
        r
    }

    pub fn rollback(&self) -> Result<(), DbError> {
        let r = self.execute_batch("ROLLBACK");
        self.pg_in_tx.set(false);
        r
    }

    /// No transaction is open.
    pub fn is_autocommit(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(c) => c.is_autocommit(),
            Inner::Postgres(_) => !self.pg_in_tx.get(),
        }
    }

    /// A savepoint: everything done through it is kept by `commit`, and
    /// undone if it is dropped first. Outside a transaction it opens one
    /// (PostgreSQL has no savepoint there).
    pub fn savepoint(&self) -> Result<Savepoint<'_>, DbError> {
        let depth = self.depth.get();
        let outermost = self.dialect() == Dialect::Postgres && self.is_autocommit();
        if outermost {
            self.begin()?;
        } else {
            self.execute_batch(&format!("SAVEPOINT sp{depth}"))?;
        }
        self.depth.set(depth + 1);
        Ok(Savepoint {
            db: self,
            depth,
            outermost,
            done: false,
        })
    }
}

/// A statement to run, as rusqlite's `prepare_cached` gives one (both
/// backends cache the prepared statement by its text).
pub struct Stmt<'a> {
    db: &'a Db,
    sql: String,
}

impl Stmt<'_> {
    pub fn execute(&mut self, args: &[Arg<'_>]) -> Result<u64, DbError> {
        self.db.execute(&self.sql, args)
    }

    pub fn query_row<T>(
        &mut self,
        args: &[Arg<'_>],
        f: impl FnOnce(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.db.query_row(&self.sql, args, f)
    }

    /// Every row through `f`, as an iterator of results (rusqlite's shape).
    pub fn query_map<T>(
        &mut self,
        args: &[Arg<'_>],
        f: impl FnMut(&DbRow<'_>) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let mut f = f;
        let rows = self.db.query_map(&self.sql, args, |r| Ok(f(r)))?;
        Ok(rows.into_iter())
    }
}

/// `.optional()` on a single-row result: no row is `None`.
pub trait OptionalExt<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExt<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRow) => Ok(None),
            Err(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// See [`Db::savepoint`].
pub struct Savepoint<'a> {
    db: &'a Db,
    depth: u32,
    outermost: bool,
    done: bool,
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Savepoint<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.done = true;
        self.db.depth.set(self.depth);
        if self.outermost {
            self.db.commit()
        } else {
            self.db.execute_batch(&format!("RELEASE sp{}", self.depth))
        }
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.db.depth.set(self.depth);
        // The transaction may be gone already (SQLite ends it on a full
        // disk); then there is nothing to undo here.
        if self.outermost {
            let _ = self.db.rollback();
        } else if !self.db.is_autocommit() {
            let d = self.depth;
            let _ = self
                .db
                .execute_batch(&format!("ROLLBACK TO sp{d}; RELEASE sp{d}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_pg;

    #[test]
    fn placeholders_become_dollar_numbers_outside_literals() {
        assert_eq!(
            to_pg("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(to_pg("SELECT 1"), "SELECT 1");
    }
}
