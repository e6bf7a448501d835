//! Scoped Explore: typed analytical questions over a reviewed boundary.
//!
//! The model never writes SQL. It sends a JSON plan (`rows` or
//! `aggregate`) naming a reviewed resource and its reviewed fields; the
//! plan is validated here ([`plan::validate_plan`]) against the boundary a
//! person wrote under `airlock.explore`, compiled to one parameterized
//! statement per engine ([`compile`]), and its result is suppressed,
//! ranked and cut ([`release`]) before anything reaches the model. The
//! budgets that make repeated questions safe are charged by the executor
//! ([`budget`]), which the model-facing process cannot reset.
//!
//! Everything here is pure: the proposer and the executor run the same
//! validation, so the executor's audit and budgets describe exactly the
//! plan the proposer compiled.

pub mod boundary;
pub mod budget;
pub mod compile;
pub mod describe;
pub mod plan;
pub mod release;

pub use boundary::{Boundary, ExploreLimits, FieldSpec, FieldType, Relationship, Resource};
pub use plan::{Charge, PlanError, PlanErrorCode, ValidPlan, validate_plan};

/// The two tools Scoped Explore serves (Synapsor Runner's names).
pub const DESCRIBE_TOOL: &str = "app.describe_data";
pub const EXPLORE_TOOL: &str = "app.explore_data";

/// Default smallest group whose values are released.
pub const DEFAULT_MINIMUM_COHORT: u32 = 5;
/// Largest plan accepted, as JSON bytes (before validation).
pub const MAX_PLAN_BYTES: usize = 16 * 1024;
