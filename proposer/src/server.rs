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
approves or rejects outside your reach. There are no SQL, approval or commit tools.";

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
                let read_only = t.kind == airlock_policy::config::Kind::Read;
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
            .collect();
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
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let outcome = self
            .proposer
            .call(&request.name, request.arguments.as_ref())
            .await;
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

/// `_meta.canonical_capability`, present on every tool and every result.
fn canonical_meta(canonical: &str) -> MetaObject {
    let mut map = serde_json::Map::new();
    map.insert(
        "canonical_capability".into(),
        Value::String(canonical.to_owned()),
    );
    MetaObject(map)
}
