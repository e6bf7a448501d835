//! The display-only MCP App card (MCP Apps, SEP-1865): hosts that render
//! MCP Apps show a proposal inline — its target, its diff and that it
//! awaits approval outside the chat. Proposal tools name it in
//! `_meta.ui.resourceUri`; `resources/read` returns the page.
//!
//! It carries no authority: the page is a constant embedded in the binary
//! (no token, no config value, no URL is ever written into it), it has no
//! approve action and calls no tool, and its CSP asks for no network at
//! all (`connectDomains` and `resourceDomains` empty).

use rmcp::model::{MetaObject, Resource, ResourceContents};
use serde_json::{Value, json};

/// The card's resource URI.
pub const CARD_URI: &str = "ui://airlock/proposal-card.html";

/// The MCP Apps profile of HTML.
pub const CARD_MIME: &str = "text/html;profile=mcp-app";

/// The page, as shipped.
pub const CARD_HTML: &str = include_str!("card.html");

/// `_meta.ui` of the resource: no network, no external resources, a border.
fn resource_ui() -> Value {
    json!({"csp": {"connectDomains": [], "resourceDomains": []}, "prefersBorder": true})
}

/// The resource `resources/list` announces.
pub fn resource() -> Resource {
    let mut r = Resource::new(CARD_URI, "proposal-card")
        .with_title("Airlock proposal")
        .with_description("A display-only card for a proposal awaiting approval outside the chat.");
    r.mime_type = Some(CARD_MIME.into());
    r.meta = Some(MetaObject(
        [("ui".to_owned(), resource_ui())].into_iter().collect(),
    ));
    r
}

/// `resources/read` of the card: the page, with the same `_meta.ui`.
pub fn contents() -> ResourceContents {
    ResourceContents::TextResourceContents {
        uri: CARD_URI.into(),
        mime_type: Some(CARD_MIME.into()),
        text: CARD_HTML.into(),
        meta: Some(MetaObject(
            [("ui".to_owned(), resource_ui())].into_iter().collect(),
        )),
    }
}

/// Add `ui.resourceUri` to a proposal tool's `_meta`.
pub fn link(meta: &mut MetaObject) {
    meta.0.insert("ui".into(), json!({"resourceUri": CARD_URI}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_asks_for_nothing_and_can_do_nothing() {
        for forbidden in [
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
            "EventSource",
            "tools/call",
            "<form",
            "<button",
            "<a ",
            "<iframe",
            "src=",
            "href=",
            "innerHTML",
            "eval(",
        ] {
            assert!(!CARD_HTML.contains(forbidden), "{forbidden}");
        }
        assert!(CARD_HTML.contains("Awaiting approval outside this chat"));
        assert_eq!(
            resource_ui()["csp"],
            json!({"connectDomains": [], "resourceDomains": []})
        );
    }

    #[test]
    fn the_resource_and_the_link_name_the_same_uri() {
        let r = serde_json::to_value(resource()).unwrap();
        assert_eq!(r["uri"], CARD_URI);
        assert_eq!(r["mimeType"], CARD_MIME);
        assert_eq!(r["_meta"]["ui"]["csp"]["connectDomains"], json!([]));
        let mut meta = MetaObject::default();
        link(&mut meta);
        assert_eq!(meta.0["ui"]["resourceUri"], CARD_URI);
        let c = serde_json::to_value(contents()).unwrap();
        assert_eq!(c["uri"], CARD_URI);
        assert_eq!(c["text"], CARD_HTML);
    }
}
