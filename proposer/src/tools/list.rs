//! A list read's tool call: check the call (filters, `limit`, `cursor`)
//! with the policy, run the page statement with one row more than the
//! limit, keep only rows of the trusted scope that satisfy every filter
//! exactly, record the page as evidence and answer with the rows and the
//! next page's cursor. Every decision is `airlock_policy::list_read`'s.

use airlock_ipc::message::{ParamMeta, RecordRead, Request, Response};
use airlock_policy::config::{Capability, Kind};
use airlock_policy::list_read::{
    CallError, INVALID_CURSOR, ListCall, ListSpec, ORDER_BY_NULL, PageQuery, next_cursor,
    page_query, parse_call, row_violation,
};
use serde_json::{Map, Value, json};

use super::{Prepared, Proposer, refused};
use crate::envelope::{Evidence, Outcome, ToolError};
use crate::executor_link::LinkError;

impl Proposer {
    pub(super) async fn list(
        &self,
        cap: &Capability,
        prep: &Prepared,
        spec: &ListSpec,
        args: Option<&Value>,
    ) -> Outcome {
        let ctx = prep.call_context();
        let fail = |e: ToolError| Outcome::failed(&cap.name, Some(Kind::Read), Some(&ctx), e);
        // Refused before any query: arguments, limit, and a cursor that is
        // not this listing's.
        let call = match parse_call(cap, spec, args) {
            Ok(c) => c,
            Err(CallError::Arguments(errs)) => {
                let message = errs
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                return fail(
                    ToolError::new("invalid_arguments", message).with_details(json!(errs)),
                );
            }
            Err(CallError::Cursor(message)) => {
                return fail(ToolError::new(INVALID_CURSOR, message));
            }
        };
        let Some(pool) = self.sources.get(&cap.source) else {
            return fail(ToolError::new("internal", "the source is not configured"));
        };
        let page = page_query(pool.engine(), cap, spec, &call, &prep.context);
        let limit = call.limit as usize;
        let fetched = match pool.fetch_values(&page.sql, &page.values, limit + 1).await {
            Ok(rows) => rows,
            Err(e) => return fail(self.source_failure(cap, e)),
        };
        // One row more than the page says whether there is a next page;
        // the cursor points after the last row examined, kept or not, so
        // a dropped row is never fetched again.
        let more = fetched.len() > limit;
        let examined = &fetched[..fetched.len().min(limit)];
        let next = match examined.last().filter(|_| more) {
            Some(last) => match next_cursor(cap, spec, &call, last) {
                Ok(c) => Some(c),
                Err(message) => return fail(ToolError::new(ORDER_BY_NULL, message)),
            },
            None => None,
        };
        // Defence in depth and exactness: rows of another tenant or
        // principal, or that do not satisfy a filter exactly (MySQL
        // compares loosely), are dropped whatever the database returned.
        let engine = pool.engine();
        let kept: Vec<&Map<String, Value>> = examined
            .iter()
            .filter(|row| Self::in_trusted_scope(cap, prep, row))
            .filter(|row| row_violation(engine, cap, spec, &call, row).is_none())
            .collect();
        let recorded = kept.iter().map(|r| list_evidence_row(cap, r)).collect();
        let mut warnings = Vec::new();
        let evidence = match self.record_page(cap, prep, &call, &page, recorded).await {
            Ok(Some(id)) => Some(Evidence {
                bundle_id: id,
                query_fingerprint: page.fingerprint(),
            }),
            Ok(None) => {
                warnings.push("evidence was not recorded: the Airlock executor is not running; reads still work, proposals will not".to_owned());
                None
            }
            Err(e) => return fail(e),
        };
        let rows: Vec<Value> = kept
            .iter()
            .map(|r| Value::Object(Self::visible(cap, r)))
            .collect();
        Outcome {
            capability: cap.name.clone(),
            kind: Some(Kind::Read),
            summary: format!(
                "Listed {} {} record{} (tenant {}); more: {}. Source database changed: no.",
                rows.len(),
                cap.target.table,
                if rows.len() == 1 { "" } else { "s" },
                prep.context.tenant_id,
                if next.is_some() { "yes" } else { "no" }
            ),
            data: Some(json!({"rows": rows, "next_cursor": next, "limit": call.limit})),
            object: None,
            proposal: None,
            error: None,
            evidence,
            context: Some(ctx.clone()),
            warnings,
        }
    }

    /// Record one page's evidence; `Ok(None)` when the executor is not
    /// reachable.
    async fn record_page(
        &self,
        cap: &Capability,
        prep: &Prepared,
        call: &ListCall,
        page: &PageQuery,
        rows: Vec<Map<String, Value>>,
    ) -> Result<Option<String>, ToolError> {
        let parameters = page
            .parameters()
            .into_iter()
            .enumerate()
            .map(|(i, (bound_from, json_type))| ParamMeta {
                position: i as u32 + 1,
                bound_from,
                json_type: json_type.to_owned(),
            })
            .collect();
        let req = Request::RecordRead(RecordRead {
            capability: cap.name.clone(),
            args: call.recorded_args(),
            context: prep.context.clone(),
            query_fingerprint: page.fingerprint(),
            parameters,
            rows,
            identity_token: prep.identity_token.as_deref().map(str::to_owned),
        });
        match self.link.call(req, true).await {
            Ok(Response::ReadRecorded(r)) => Ok(Some(r.evidence_id)),
            Ok(other) => Err(ToolError::new(
                "internal",
                format!("unexpected executor answer `{}`", other.type_name()),
            )),
            Err(LinkError::Refused(e)) => Err(refused(&e, false)),
            Err(LinkError::Untrusted(msg)) => Err(ToolError::new("executor_untrusted", msg)),
            Err(_) => Ok(None),
        }
    }
}

/// What a list read's evidence records of a row: the visible columns,
/// the primary key, and the tenant (and principal scope) column, so the
/// executor can check each row's scope and filters.
fn list_evidence_row(cap: &Capability, row: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Proposer::visible(cap, row);
    let t = &cap.target;
    for col in std::iter::once(&t.primary_key)
        .chain(&t.tenant_key)
        .chain(&t.principal_scope_key)
    {
        if let Some(v) = row.get(col) {
            out.insert(col.clone(), v.clone());
        }
    }
    out
}
