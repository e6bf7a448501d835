//! Scoped Explore's two tools: `app.describe_data` (the reviewed catalog)
//! and `app.explore_data` (one typed plan).
//!
//! A plan runs only after the executor has validated it against its own
//! boundary and reserved its budgets (`explore_reserve`); the result is
//! suppressed and cut here (`policy::explore::release`), and released only
//! after the executor accepted it (`explore_commit`), which is where a
//! complementary release is refused. A failed query gives its reservation
//! back (`explore_release`). The executor's ledger keeps the budgets and
//! the audit, so a new session or a restart of this process resets nothing.

use airlock_ipc::message::{
    ExploreCommit, ExploreRelease, ExploreReserve, ExploreReserved, Request, Response,
};
use airlock_policy::config::Kind;
use airlock_policy::context::TrustedContext;
use airlock_policy::explore::compile::{Param, compile};
use airlock_policy::explore::release::{ReleaseError, release};
use airlock_policy::explore::{
    Boundary, DESCRIBE_TOOL, EXPLORE_TOOL, MAX_PLAN_BYTES, describe::describe, validate_plan,
};
use serde_json::{Map, Value, json};

use crate::envelope::{CallContext, Outcome, ToolError};
use crate::executor_link::LinkError;
use crate::tools::{Proposer, refused};

/// The boundary this proposer serves, with its resolved trusted context.
#[derive(Debug)]
pub struct ExploreState {
    pub boundary: Boundary,
    pub context: TrustedContext,
}

/// Which Explore tool a name is (canonical or OpenAI-safe alias).
pub fn tool_of(name: &str) -> Option<&'static str> {
    [DESCRIBE_TOOL, EXPLORE_TOOL]
        .into_iter()
        .find(|t| *t == name || airlock_policy::catalog::openai_alias(t) == name)
}

/// The input schema of `app.explore_data`: the plan grammar's top-level
/// keys, nothing else.
pub fn explore_input_schema() -> Value {
    let field = json!({"anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"field": {"type": "string"}, "relationship": {"type": "string"}}, "required": ["field"], "additionalProperties": false},
    ]});
    let range = json!({"type": "object", "properties": {"start": {"type": "string", "description": "YYYY-MM-DD (UTC)"}, "end": {"type": "string", "description": "YYYY-MM-DD (UTC), exclusive"}}, "required": ["start", "end"], "additionalProperties": false});
    json!({
        "type": "object",
        "properties": {
            "kind": {"enum": ["rows", "aggregate"]},
            "resource": {"type": "string", "description": "A resource id from app.describe_data"},
            "select": {"type": "array", "items": field, "description": "rows: fields with the use `rows`"},
            "measures": {"type": "array", "items": {"type": "object", "properties": {
                "function": {"enum": ["count", "count_distinct", "sum", "avg", "min", "max"]},
                "field": {"type": "string"}}, "required": ["function"], "additionalProperties": false}},
            "dimensions": {"type": "array", "items": field},
            "time_bucket": {"type": "object", "properties": {"field": {"type": "string"}, "bucket": {"enum": ["day", "week", "month", "quarter", "year"]}}, "required": ["field", "bucket"], "additionalProperties": false},
            "time_window": {"type": "object", "properties": {"field": {"type": "string"}, "start": {"type": "string"}, "end": {"type": "string"}}, "required": ["field", "start", "end"], "additionalProperties": false},
            "where": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "relationship": {"type": "string"},
                "op": {"enum": ["eq", "neq", "in", "lt", "lte", "gt", "gte"]},
                "value": {}}, "required": ["field", "op", "value"], "additionalProperties": false}},
            "order_by": {},
            "top_n": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 1},
            "comparison": {"type": "object", "properties": {"field": {"type": "string"}, "ranges": {"type": "array", "items": range, "minItems": 2, "maxItems": 2}}, "required": ["field", "ranges"], "additionalProperties": false},
        },
        "required": ["kind", "resource"],
        "additionalProperties": false,
    })
}

/// The input schema of `app.describe_data`.
pub fn describe_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "resource": {"type": "string", "description": "One resource id, for its detail"},
            "cursor": {"type": "integer", "minimum": 0, "description": "next_cursor of the previous page"},
        },
        "additionalProperties": false,
    })
}

/// The tool descriptions.
pub const DESCRIBE_DESCRIPTION: &str = "List what can be asked of this database: reviewed resources, their fields, what each field may be used for (rows, dimension, filter, measure, count_distinct, time), relationships and limits. Call it before app.explore_data. Never returns row values.";
pub const EXPLORE_DESCRIPTION: &str = "Ask one typed question (a plan, never SQL) over the reviewed resources: `rows` (a few records' visible fields) or `aggregate` (count, count_distinct, sum, avg, min, max by dimensions, time buckets, filters, top-N, or a two-period comparison). Groups smaller than the reviewed minimum are withheld. Each distinct question uses a daily budget kept by Airlock; the database is never changed.";

fn call_context(ctx: &TrustedContext) -> CallContext {
    CallContext {
        tenant_id: ctx.tenant_id.clone(),
        principal: ctx.principal.clone(),
        provenance: match ctx.source {
            airlock_policy::config::ContextProvider::Environment => "environment",
            airlock_policy::config::ContextProvider::StaticDev => "static_dev",
            airlock_policy::config::ContextProvider::HttpClaims => "http_claims",
        },
    }
}

fn ok(tool: &str, ctx: &TrustedContext, summary: String, data: Value) -> Outcome {
    Outcome {
        capability: tool.to_owned(),
        kind: Some(Kind::Read),
        summary,
        data: Some(data),
        object: None,
        proposal: None,
        error: None,
        evidence: None,
        context: Some(call_context(ctx)),
        warnings: Vec::new(),
    }
}

impl Proposer {
    /// Serve an Explore tool (`tool` is canonical).
    pub(crate) async fn explore_call(
        &self,
        state: &ExploreState,
        tool: &'static str,
        arguments: Option<&Map<String, Value>>,
        identity: Option<&crate::tools::CallIdentity>,
    ) -> Outcome {
        let empty = Map::new();
        let args = arguments.unwrap_or(&empty);
        let context = identity.map_or(&state.context, |who| &who.context);
        let token = identity.map(|who| who.token.to_string());
        let ctx = call_context(context);
        let fail = |e: ToolError| Outcome::failed(tool, Some(Kind::Read), Some(&ctx), e);
        if tool == DESCRIBE_TOOL {
            return match describe(&state.boundary, args) {
                Ok(data) => ok(
                    tool,
                    context,
                    "The reviewed resources that can be asked about. Source database changed: no."
                        .into(),
                    data,
                ),
                Err(e) => fail(ToolError::new("invalid_arguments", e.to_string())),
            };
        }
        let plan = Value::Object(args.clone());
        let size = serde_json::to_vec(&plan).map_or(usize::MAX, |b| b.len());
        if size > MAX_PLAN_BYTES {
            return fail(ToolError::new(
                "too_large",
                format!("the plan is {size} bytes; at most {MAX_PLAN_BYTES} are accepted"),
            ));
        }
        match self.explore(state, context, token, plan).await {
            Ok((summary, data)) => ok(tool, context, summary, data),
            Err(e) => fail(e),
        }
    }

    async fn explore(
        &self,
        state: &ExploreState,
        context: &TrustedContext,
        identity_token: Option<String>,
        plan: Value,
    ) -> Result<(String, Value), ToolError> {
        // 1. The executor validates, audits and reserves: nothing runs
        //    without its say, and a refused plan is audited there.
        let reserved = self
            .explore_ipc(Request::ExploreReserve(ExploreReserve {
                context: context.clone(),
                plan: plan.clone(),
                identity_token,
            }))
            .await?;
        let Response::ExploreReserved(ExploreReserved {
            reservation_id,
            remaining,
            ..
        }) = reserved
        else {
            return Err(unexpected(&reserved));
        };
        let give_back = |reason: &'static str| {
            let id = reservation_id.clone();
            async move {
                let _ = self
                    .explore_ipc(Request::ExploreRelease(ExploreRelease {
                        reservation_id: id,
                        reason: reason.to_owned(),
                    }))
                    .await;
            }
        };
        // 2. The same validation here (the executor's config is this one).
        let valid = match validate_plan(&state.boundary, &plan) {
            Ok(v) => v,
            Err(e) => {
                give_back("config_mismatch").await;
                return Err(plan_error(&e));
            }
        };
        let engine = self.source_engine(&state.boundary.source);
        let Some(compiled) = engine.and_then(|e| compile(e, &state.boundary, &valid)) else {
            give_back("internal").await;
            return Err(ToolError::new(
                "internal",
                "the boundary's source is not ready",
            ));
        };
        // 3. The one statement, with the read credential.
        let values: Vec<Value> = compiled
            .params
            .iter()
            .map(|p| match p {
                Param::Tenant => Value::String(context.tenant_id.clone()),
                Param::Principal => Value::String(context.principal.clone()),
                Param::Value(v) => v.clone(),
            })
            .collect();
        let rows = match self
            .run_explore_query(
                &state.boundary.source,
                &compiled.sql,
                &values,
                compiled.fetch_limit,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                give_back(if e.code == "source_timeout" {
                    "source_timeout"
                } else {
                    "source_unavailable"
                })
                .await;
                return Err(e);
            }
        };
        // 4. Suppress, rank, cut.
        let released = match release(&state.boundary, &valid, &rows) {
            Ok(r) => r,
            Err(e @ ReleaseError::TooManyGroups { .. }) => {
                give_back("too_many_groups").await;
                return Err(ToolError::new("too_many_groups", e.to_string()));
            }
            Err(e) => {
                give_back("internal").await;
                return Err(ToolError::new("internal", e.to_string()));
            }
        };
        // 5. The executor decides whether it may be released.
        let committed = self
            .explore_ipc(Request::ExploreCommit(ExploreCommit {
                reservation_id: reservation_id.clone(),
                cells: released.cells,
                suppressed_groups: released.suppressed_groups,
                complete: released.complete,
            }))
            .await?;
        let Response::ExploreCommitted(c) = committed else {
            return Err(unexpected(&committed));
        };
        let _ = remaining;
        let mut data = released.data;
        if let Value::Object(m) = &mut data {
            m.insert(
                "budget_remaining".into(),
                json!({"queries": c.remaining.queries, "cells": c.remaining.cells, "variants": c.remaining.variants}),
            );
        }
        let summary = if released.suppressed_groups > 0 {
            format!(
                "Answered over `{}`; {} group(s) withheld as smaller than the reviewed minimum. Source database changed: no.",
                valid.resource, released.suppressed_groups
            )
        } else {
            format!(
                "Answered over `{}`. Source database changed: no.",
                valid.resource
            )
        };
        Ok((summary, data))
    }

    async fn explore_ipc(&self, req: Request) -> Result<Response, ToolError> {
        match self.link().call(req, false).await {
            Ok(r) => Ok(r),
            Err(LinkError::Refused(e)) => Err(explore_refused(&e)),
            Err(LinkError::Untrusted(m)) => Err(ToolError::new("executor_untrusted", m)),
            Err(_) => Err(ToolError::new(
                "executor_unavailable",
                "Scoped Explore needs the Airlock executor, which keeps its privacy budgets, and it is not reachable; try again shortly",
            )),
        }
    }
}

fn unexpected(r: &Response) -> ToolError {
    ToolError::new(
        "internal",
        format!("unexpected executor answer `{}`", r.type_name()),
    )
}

fn plan_error(e: &airlock_policy::explore::PlanError) -> ToolError {
    ToolError::new(e.code.as_str(), e.message.clone()).with_details(json!({"path": e.path}))
}

/// An executor refusal of an Explore request, as the model sees it.
fn explore_refused(e: &airlock_ipc::ErrorBody) -> ToolError {
    use airlock_ipc::error::ErrorCode;
    let code: &'static str = match e.code {
        ErrorCode::PlanRefused => {
            // The plan error's own code, when the executor gave it.
            match e
                .details
                .as_ref()
                .and_then(|d| d.get("code"))
                .and_then(Value::as_str)
            {
                Some("resource_forbidden") => "resource_forbidden",
                Some("field_forbidden") => "field_forbidden",
                Some("relationship_forbidden") => "relationship_forbidden",
                Some("scope_forbidden") => "scope_forbidden",
                Some("too_large") => "too_large",
                _ => "plan_invalid",
            }
        }
        ErrorCode::BudgetExhausted => "budget_exhausted",
        ErrorCode::ComplementaryRelease => "complementary_release",
        _ => return refused(e, false),
    };
    let mut t = ToolError::new(code, e.message.clone());
    t.details = e.details.clone();
    t
}
