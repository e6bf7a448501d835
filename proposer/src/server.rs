//! The MCP face of the proposer: an rmcp `ServerHandler` written by hand so
//! the tool list comes from the reviewed config at run time.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, MetaObject, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;

use crate::envelope::output_schema;
use crate::tools::Proposer;

const INSTRUCTIONS: &str = "These are reviewed business tools over a live database. Read tools return one \
record of your tenant. Proposal tools never change the database: they record a proposal that a person \
approves or rejects outside your reach. Aggregate tools return one reviewed total and withhold results \
over too few records. Where app.describe_data and app.explore_data are offered, they answer typed analytical \
questions over reviewed fields, withholding small groups. There are no SQL, approval or commit tools.";

/// One MCP session's handler (cheap to clone; the state is shared).
#[derive(Clone)]
pub struct McpServer {
    proposer: Arc<Proposer>,
    tools: Arc<Vec<Tool>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("tools", &self.tools.len())
            .finish()
    }
}

impl McpServer {
    pub fn new(proposer: Arc<Proposer>) -> McpServer {
        let format = proposer.result_format();
        let tools = proposer
            .catalog()
            .tools()
            .iter()
            // A capability the schema lock disabled is not offered.
            .filter(|t| !proposer.is_disabled(&t.canonical))
            .map(|t| {
                let schema = match &t.input_schema {
                    Value::Object(m) => m.clone(),
                    _ => serde_json::Map::new(),
                };
                let read_only = matches!(
                    t.kind,
                    airlock_policy::config::Kind::Read
                        | airlock_policy::config::Kind::AggregateRead
                );
                let mut tool = Tool::new(t.name.clone(), t.description.clone(), schema);
                tool.title = Some(t.title.clone());
                if let Value::Object(out) = output_schema(&t.canonical, t.kind, format) {
                    tool.output_schema = Some(Arc::new(out));
                }
                // Neither kind changes the database; proposals record a request for review.
                tool.annotations = Some(ToolAnnotations::from_raw(
                    None,
                    Some(read_only),
                    Some(false),
                    Some(read_only),
                    Some(false),
                ));
                let mut meta = canonical_meta(&t.canonical);
                // A proposal renders as the display-only card where the host can.
                if !read_only {
                    crate::app_card::link(&mut meta);
                }
                tool.meta = Some(meta);
                tool
            })
            .collect::<Vec<Tool>>();
        let mut tools = tools;
        if proposer.explore_enabled() {
            tools.extend(explore_tools(&proposer, format));
        }
        McpServer {
            proposer,
            tools: Arc::new(tools),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = Implementation::new("airlock-proposer", env!("CARGO_PKG_VERSION"));
        info.title = Some("Airlock".into());
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(info)
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            crate::app_card::resource(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != crate::app_card::CARD_URI {
            let shown: String = request.uri.chars().take(128).collect();
            return Err(McpError::resource_not_found(
                format!(
                    "there is no resource `{shown}`; the only one is {}",
                    crate::app_card::CARD_URI
                ),
                None,
            ));
        }
        Ok(ReadResourceResult::new(vec![crate::app_card::contents()]).into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = std::time::Instant::now();
        // On HTTP with verified identities, the request's identity (set by
        // `http_identity::require_identity`) is the call's trusted context.
        let identity = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::tools::CallIdentity>());
        // The root of this call's trace (exported only with
        // --otel-traces-endpoint); the tool is named once it is known to
        // be a served one, like the metrics' label.
        let span = tracing::debug_span!(
            target: crate::telemetry::TARGET,
            "tools/call",
            mcp.tool = tracing::field::Empty,
            outcome = tracing::field::Empty,
            otel.kind = "server"
        );
        let outcome = {
            use tracing::Instrument as _;
            self.proposer
                .call_as(&request.name, request.arguments.as_ref(), identity)
                .instrument(span.clone())
                .await
        };
        // Labels from a closed set: a served tool's canonical name, and
        // `ok` or the envelope's stable error code.
        let tool = if self.tools.iter().any(|t| t.name == request.name) {
            outcome.capability.as_str()
        } else {
            "unknown"
        };
        let code = outcome.error.as_ref().map_or("ok", |e| e.code);
        span.record("mcp.tool", tool);
        span.record("outcome", code);
        crate::observability::record_call(tool, code, started.elapsed());
        let envelope = outcome.to_json(self.proposer.result_format());
        let text = serde_json::to_string(&envelope).unwrap_or_default();
        let mut result = if outcome.ok() {
            CallToolResult::success(vec![ContentBlock::text(text)])
        } else {
            CallToolResult::error(vec![ContentBlock::text(text)])
        };
        result.structured_content = Some(envelope);
        result.meta = Some(canonical_meta(&outcome.capability));
        Ok(result.into())
    }
}

/// Scoped Explore's two tools, under the catalog's alias mode.
fn explore_tools(proposer: &Proposer, format: airlock_policy::config::ResultFormat) -> Vec<Tool> {
    use airlock_policy::explore::{DESCRIBE_TOOL, EXPLORE_TOOL};
    let mut out = Vec::new();
    for (canonical, description, schema) in [
        (
            DESCRIBE_TOOL,
            crate::explore::DESCRIBE_DESCRIPTION,
            crate::explore::describe_input_schema(),
        ),
        (
            EXPLORE_TOOL,
            crate::explore::EXPLORE_DESCRIPTION,
            crate::explore::explore_input_schema(),
        ),
    ] {
        for name in proposer.catalog().names_for(canonical) {
            let Value::Object(input) = schema.clone() else {
                continue;
            };
            let mut tool = Tool::new(name, description, input);
            tool.title = Some(airlock_policy::catalog::title(canonical));
            if let Value::Object(out) =
                output_schema(canonical, airlock_policy::config::Kind::Read, format)
            {
                tool.output_schema = Some(Arc::new(out));
            }
            tool.annotations = Some(ToolAnnotations::from_raw(
                None,
                Some(true),
                Some(false),
                Some(false),
                Some(false),
            ));
            tool.meta = Some(canonical_meta(canonical));
            out.push(tool);
        }
    }
    out
}

/// `_meta.canonical_capability`, present on every tool and every result.
fn canonical_meta(canonical: &str) -> MetaObject {
    let mut map = serde_json::Map::new();
    map.insert(
        "canonical_capability".into(),
        Value::String(canonical.to_owned()),
    );
    MetaObject(map)
}
