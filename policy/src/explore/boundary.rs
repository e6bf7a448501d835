//! The reviewed boundary (`airlock.explore`): which tables may be asked
//! about, what each field may be used for, how tables relate, and the
//! privacy limits. Values of these types come only out of the loader
//! (`crate::load`), which checked every identifier and reference.

use std::collections::BTreeMap;

use serde::Serialize;

/// Time buckets a time field may be grouped by (UTC; weeks start Monday).
pub const TIME_BUCKETS: &[&str] = &["day", "week", "month", "quarter", "year"];

/// Measures a number field may carry.
pub const NUMBER_MEASURES: &[&str] = &["sum", "avg", "min", "max"];

/// Deepest relationship path (`customer.account` is two).
pub const MAX_PATH_DEPTH: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boundary {
    /// The source every resource is read from (with the read credential).
    pub source: String,
    /// The named trusted context (`contexts.<name>`); `None`: `trusted_context`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Groups smaller than this release no value (default 5).
    pub minimum_cohort_size: u32,
    pub limits: ExploreLimits,
    pub resources: BTreeMap<String, Resource>,
}

/// Budgets and bounds (`airlock.explore.limits`). The three rolling
/// budgets use Synapsor Runner's `production_explore.tenant_limits` names
/// and are kept per trusted tenant and principal by the executor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExploreLimits {
    pub max_queries_per_rolling_24_hours: u64,
    pub max_extracted_cells_per_rolling_24_hours: u64,
    /// Distinct cohort-protected plan variants per resource (an exact
    /// replay reuses its variant).
    pub max_differencing_variants_per_rolling_24_hours: u64,
    /// Most rows a `rows` plan returns.
    pub max_rows: u32,
    /// Most groups an aggregate returns (`top_n` may not exceed it).
    pub max_groups: u32,
    /// Largest `top_n` a plan may ask for.
    pub max_top_n: u32,
    /// Most candidate groups read before suppression and ranking; a
    /// larger result is refused, never ranked incompletely.
    pub max_ranked_groups: u32,
    pub max_measures: u32,
    pub max_dimensions: u32,
    pub max_filters: u32,
}

impl Default for ExploreLimits {
    fn default() -> Self {
        ExploreLimits {
            max_queries_per_rolling_24_hours: 500,
            max_extracted_cells_per_rolling_24_hours: 20_000,
            max_differencing_variants_per_rolling_24_hours: 16,
            max_rows: 100,
            max_groups: 50,
            max_top_n: 25,
            max_ranked_groups: 500,
            max_measures: 4,
            max_dimensions: 3,
            max_filters: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub schema: String,
    pub table: String,
    pub primary_key: String,
    /// `None` only with `single_tenant_dev_ack` (every row in scope).
    pub tenant_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_scope_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// This resource's minimum cohort (the boundary's unless overridden).
    pub minimum_cohort_size: u32,
    /// Reviewed fields by column name.
    pub fields: BTreeMap<String, FieldSpec>,
    /// Columns a reviewer decided the model may never use or learn of.
    pub kept_out: Vec<String>,
    /// Reviewed many-to-one paths by name.
    pub relationships: BTreeMap<String, Relationship>,
}

impl Resource {
    /// Whether small groups of this resource are suppressed (and so
    /// differencing and complements matter).
    pub fn cohort_protected(&self) -> bool {
        self.minimum_cohort_size > 1
    }

    /// Columns whose values identify one record: the primary key, the
    /// relationship columns and every `count_distinct` field. Only `eq` may
    /// filter them (a `neq` or `in` on a near-unique field is the tracker
    /// attack: two large counts that differ by one record).
    pub fn is_identifier(&self, column: &str) -> bool {
        column == self.primary_key
            || self.relationships.values().any(|r| r.column == column)
            || self.fields.get(column).is_some_and(|f| f.count_distinct)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Time,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Time => "time",
        }
    }
}

/// What one reviewed field may be used for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub ty: FieldType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Selectable, filterable and sortable in `rows` plans.
    pub visible: bool,
    /// Groupable in aggregate plans.
    pub dimension: bool,
    /// Filterable in aggregate plans.
    pub filter: bool,
    /// Measures allowed on it (`sum`, `avg`, `min`, `max`; number fields).
    pub measures: Vec<String>,
    /// May be counted with `count_distinct` (an identifier).
    pub count_distinct: bool,
    /// Time buckets allowed (time fields; also makes it a time-window field).
    pub buckets: Vec<String>,
    /// Values shown to the model as response-local opaque tokens.
    pub withheld: bool,
    /// The reviewed value domain, if any (shown unless withheld).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
}

impl FieldSpec {
    pub fn is_time(&self) -> bool {
        self.ty == FieldType::Time && !self.buckets.is_empty()
    }
}

/// `column` of this resource refers to the primary key of `resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relationship {
    pub column: String,
    pub resource: String,
}
