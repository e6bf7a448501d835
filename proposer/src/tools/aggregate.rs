//! A call of an aggregate read: run the reviewed aggregate statement in the
//! trusted tenant (and principal), let the policy decide what it releases
//! (small results and groups withheld), record the released result — never
//! a member row, id or record count — as evidence, and answer.

use airlock_policy::aggregate_read::{self, AggregateSpec, ReleaseError, Released};
use airlock_policy::config::{Capability, Kind};
use airlock_policy::db_error::{SOURCE_MISCONFIGURED, SOURCE_MISCONFIGURED_MESSAGE};
use airlock_policy::statement::LookupParam;
use serde_json::{Map, Value};

use super::{Prepared, Proposer};
use crate::envelope::{Evidence, Outcome, ToolError};

impl Proposer {
    pub(super) async fn aggregate(
        &self,
        cap: &Capability,
        prep: &Prepared,
        args: Map<String, Value>,
    ) -> Outcome {
        let ctx = prep.call_context();
        let fail =
            |e: ToolError| Outcome::failed(&cap.name, Some(Kind::AggregateRead), Some(&ctx), e);
        let (Some(spec), Some(pool)) = (&cap.aggregate, self.sources.get(&cap.source)) else {
            return fail(ToolError::new("internal", "the tool is not ready"));
        };
        let scoped = |p: LookupParam| prep.statement.params.contains(&p);
        let rows = match pool
            .fetch_aggregate_rows(
                &prep.statement,
                &spec.selection,
                scoped(LookupParam::Tenant).then_some(prep.context.tenant_id.as_str()),
                scoped(LookupParam::Principal).then_some(prep.context.principal.as_str()),
                spec.fetch_limit(),
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) => return fail(self.source_failure(cap, e)),
        };
        let released = match aggregate_read::release(spec, &rows) {
            Ok(r) => r,
            Err(e @ ReleaseError::TooManyGroups { .. }) => {
                return fail(ToolError::new("policy_refused", e.to_string()));
            }
            Err(e) => {
                // Which column and what came back are for the operator.
                tracing::warn!(capability = %cap.name, error = %e, "aggregate read misconfigured");
                return fail(ToolError::new(
                    SOURCE_MISCONFIGURED,
                    SOURCE_MISCONFIGURED_MESSAGE,
                ));
            }
        };
        let mut warnings = Vec::new();
        let evidence = match self
            .record(cap, prep, &args, released.evidence_rows())
            .await
        {
            Ok(Some(id)) => Some(Evidence {
                bundle_id: id,
                query_fingerprint: prep.statement.fingerprint(),
            }),
            Ok(None) => {
                warnings.push("evidence was not recorded: the Airlock executor is not running; reads still work, proposals will not".to_owned());
                None
            }
            Err(e) => return fail(e),
        };
        Outcome {
            capability: cap.name.clone(),
            kind: Some(Kind::AggregateRead),
            summary: summary(cap, spec, &released, &prep.context.tenant_id),
            data: Some(released.data(spec)),
            // Synapsor's business object of an aggregate: the table's
            // aggregate, identified by the statement (there is no record).
            object: Some((
                format!("{}_aggregate", cap.target.table),
                prep.statement.fingerprint(),
            )),
            proposal: None,
            error: None,
            evidence,
            context: Some(ctx.clone()),
            warnings,
        }
    }
}

/// `The number of support_tickets records where status = "open": 12
/// (tenant acme). Source database changed: no.`, or the value replaced by
/// why it is withheld, or how many groups were released and withheld.
fn summary(cap: &Capability, spec: &AggregateSpec, released: &Released, tenant: &str) -> String {
    let what = aggregate_read::what(cap, spec);
    let mut chars = what.chars();
    let what: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => what,
    };
    let min = spec.minimum_group_size;
    let records = match &spec.column {
        Some(col) => format!("records with a {col}"),
        None => "records".to_owned(),
    };
    let result = match released {
        Released::Scalar(Some(v)) => v.to_string(),
        Released::Scalar(None) => format!("withheld: fewer than {min} {records} match"),
        Released::Groups { groups, withheld } => {
            let n = groups.len();
            let plural = if n == 1 { "" } else { "s" };
            if *withheld == 0 {
                format!("{n} group{plural} released")
            } else {
                format!(
                    "{n} group{plural} released, {withheld} withheld (fewer than {min} {records} each)"
                )
            }
        }
    };
    format!("{what}: {result} (tenant {tenant}). Source database changed: no.")
}
