//! A JSON Schema (draft 2020-12) of the reviewed config, for editors.
//!
//! `airlock config schema` prints [`config_schema_text`]; a config points at
//! it with a top-level `"$schema"` key, and an editor then completes keys,
//! shows their meaning and marks mistakes while the file is written.
//!
//! The loader ([`crate::load`]) walks the JSON by hand, so there is no
//! derived model to generate the schema from: it is written here, next to
//! the loader, and `policy/tests/config_schema.rs` keeps the two in step. It
//! reads every object's known keys out of the loader's own "unknown field"
//! errors and compares them with the schema's `properties`, checks that every
//! config in the repository the loader accepts is valid against the schema,
//! and that the broken-config fixtures the loader refuses for a structural
//! reason (an unknown key, a wrong type, a missing field, a value out of
//! range) are refused by the schema too.
//!
//! What the schema cannot say, the loader still checks: references between
//! entries (a capability's `source`, `context`, `executor`, `lookup` and
//! `from_arg`), the naming rules for capabilities and arguments, inline
//! secrets in any value, and the rules that compare two values (read and
//! write variables differ, `minimum` ≤ `maximum`, patched columns are
//! allowed, …). `airlock config validate` remains the authority.

use serde_json::{Map, Value, json};

use crate::aggregate_read::{
    DEFAULT_MAX_GROUPS, MAX_GROUP_BY, MAX_GROUPS_LIMIT, MAX_MINIMUM_GROUP_SIZE, RESERVED_NAMES,
};
use crate::config::{
    MAX_FRESHNESS_DEPENDENCIES, MAX_REQUIRED_APPROVALS, MAX_ROWS_LIMIT, MAX_SELECTION_TERMS,
    SQL_UPDATE,
};
use crate::identifier::MAX_IDENTIFIER_LEN;
use crate::list_read::{MAX_FILTERS, MAX_IN_ITEMS, MAX_LIMIT, MAX_ORDER_BY};
use crate::load::{
    MAX_ARG_LENGTH, MAX_ARGS, MAX_CAPABILITIES, MAX_DESCRIPTION_CHARS, MAX_TIMEOUT_MS,
};

/// The JSON Schema dialect of [`config_schema`].
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema as `airlock config schema` prints it (and as
/// `docs/airlock.config.schema.json` holds it): pretty-printed, with a final
/// newline.
pub fn config_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON Schema of the reviewed config.
pub fn config_schema() -> Value {
    let mut schema = root();
    schema["$defs"] = Value::Object(defs());
    schema
}

/// The document itself: the top-level keys.
fn root() -> Value {
    json!({
        "$schema": DIALECT,
        "title": "Airlock reviewed config",
        "description": "The reviewed config of Airlock (compatible with Synapsor Runner's config version 1, plus the `airlock` section). Check a config with `airlock config validate`: it also checks what a schema cannot, such as references between entries and inline secrets.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "mode", "sources", "trusted_context", "capabilities"],
        "properties": {
            "$schema": {
                "description": "The schema editors validate this file with (a URL or a path); Airlock ignores it.",
                "$ref": "#/$defs/non_empty_string"
            },
            "version": {
                "description": "The config format version: always 1.",
                "type": "integer",
                "const": 1
            },
            "mode": {
                "description": "`review`: read and proposal capabilities, every proposal waits for a person's approval. `read_only`: read capabilities only.",
                "enum": ["review", "read_only"]
            },
            "result_format": {
                "description": "The shape of MCP tool results: 2 (the stable envelope, default) or 1 (Synapsor's legacy shape).",
                "enum": [1, 2],
                "default": 2
            },
            "strict": {
                "description": "Accepted for compatibility; validation is always strict (`false` only warns).",
                "type": "boolean"
            },
            "storage": {"$ref": "#/$defs/storage"},
            "metrics": {
                "description": "Prometheus metrics of the HTTP proposer (/metrics) and, on executor_listen, of the executor (Synapsor Runner's shape).",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "enabled": {"description": "Serve metrics (default false).", "type": "boolean"},
                    "token_env": {"description": "The variable holding the bearer token scrapers send (required off loopback).", "$ref": "#/$defs/env_name"},
                    "executor_listen": {"description": "host:port where the executor serves its metrics.", "type": "string", "minLength": 1}
                }
            },
            "session_auth": {
                "description": "How the HTTP proposer and the executor verify the signed tokens whose claims name the tenant and principal (trusted_context.provider \"http_claims\"; Synapsor Runner's shape, asymmetric only).",
                "type": "object",
                "additionalProperties": false,
                "required": ["provider", "algorithms", "jwks_url_env", "issuer", "audience"],
                "properties": {
                    "provider": {"description": "Always \"jwt_asymmetric\": Airlock never holds a signing secret.", "const": "jwt_asymmetric"},
                    "algorithms": {
                        "description": "The signature algorithms accepted (asymmetric only).",
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": true,
                        "items": {"enum": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]}
                    },
                    "jwks_url_env": {"description": "The variable holding the issuer's JWKS URL (https, or http on loopback).", "$ref": "#/$defs/env_name"},
                    "issuer": {"description": "The exact `iss` of valid tokens.", "$ref": "#/$defs/non_empty_string"},
                    "audience": {"description": "The `aud` valid tokens carry: this MCP endpoint's URL.", "$ref": "#/$defs/non_empty_string"},
                    "tenant_claim": {"description": "The claim holding the tenant id (default tenant_id).", "type": "string", "minLength": 1, "maxLength": 64},
                    "principal_claim": {"description": "The claim holding the principal (default sub).", "type": "string", "minLength": 1, "maxLength": 64},
                    "clock_skew_seconds": {"description": "Tolerance on exp and nbf (default 30).", "type": "integer", "minimum": 0, "maximum": 300},
                    "jwks_cache_seconds": {"description": "How long fetched keys are used (default 600).", "type": "integer", "minimum": 10, "maximum": 86400},
                    "jwks_cooldown_seconds": {"description": "Least time between fetches for an unknown key id (default 30).", "type": "integer", "minimum": 1, "maximum": 3600},
                    "fetch_timeout_ms": {"description": "Time limit of one JWKS fetch (default 3000).", "type": "integer", "minimum": 100, "maximum": 30000},
                    "max_response_bytes": {"description": "Largest JWKS response read (default 1 MiB).", "type": "integer", "minimum": 1024, "maximum": 16777216}
                }
            },
            "http_security": {
                "description": "The HTTP proposer's protected-resource metadata (RFC 9728) and per-principal request limit.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "oauth_resource": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["resource", "authorization_servers"],
                        "properties": {
                            "resource": {"description": "The MCP endpoint's exact URL; equal to session_auth.audience.", "type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://\\S+$"},
                            "authorization_servers": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^\\S+$"}},
                            "scopes_supported": {"type": "array", "items": {"type": "string", "pattern": "^\\S+$"}},
                            "required_scopes": {"description": "Scopes every token must grant.", "type": "array", "items": {"type": "string", "pattern": "^\\S+$"}},
                            "resource_name": {"$ref": "#/$defs/non_empty_string"}
                        }
                    },
                    "limits": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "principal_requests_per_minute": {"description": "Requests per minute one tenant and principal may send (default 600).", "type": "integer", "minimum": 1, "maximum": 1000000}
                        }
                    }
                }
            },
            "sources": {
                "description": "The databases, by name.",
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"$ref": "#/$defs/entry_name"},
                "additionalProperties": {"$ref": "#/$defs/source"}
            },
            "trusted_context": {
                "description": "Where the tenant and principal of every call come from (never from the model).",
                "$ref": "#/$defs/context"
            },
            "contexts": {
                "description": "Named trusted contexts a capability may choose with `context`.",
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/entry_name"},
                "additionalProperties": {"$ref": "#/$defs/context"}
            },
            "executors": {
                "description": "Named executors that apply proposals; a proposal without `executor` uses the built-in sql_update.",
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/entry_name"},
                "additionalProperties": {"$ref": "#/$defs/executor"}
            },
            "capabilities": {
                "description": "The reviewed business tools the model may call.",
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_CAPABILITIES,
                "items": {"$ref": "#/$defs/capability"}
            },
            "cloud": {
                "description": "Accepted for compatibility and ignored (with a warning)."
            },
            "notifications": {"$ref": "#/$defs/notifications"},
            "airlock": {"$ref": "#/$defs/airlock"},
            "proposal_freshness": {
                "description": "Proposal capability name → reviewed dependency rows re-checked before every approval and locked at apply (docs/writeback.md).",
                "type": "object",
                "additionalProperties": {"$ref": "#/$defs/proposal_freshness"}
            }
        },
        "if": {
            "required": ["mode"],
            "properties": {"mode": {"const": "read_only"}}
        },
        "then": {
            "properties": {
                "capabilities": {
                    "items": {
                        "properties": {
                            "kind": {
                                "description": "Mode `read_only` serves no proposal capabilities.",
                                "not": {"const": "proposal"}
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The shared definitions, in the order they are printed.
fn defs() -> Map<String, Value> {
    let defs: Vec<(&str, Value)> = vec![
        (
            "non_empty_string",
            json!({"type": "string", "minLength": 1}),
        ),
        (
            "identifier",
            json!({
                "description": "A SQL identifier: letters, digits and underscores, starting with a letter or underscore.",
                "type": "string",
                "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                "maxLength": MAX_IDENTIFIER_LEN
            }),
        ),
        (
            "env_name",
            json!({
                "description": "The name of an environment variable (never its value): upper-case letters, digits and underscores.",
                "type": "string",
                "pattern": "^[A-Z_][A-Z0-9_]*$",
                "maxLength": 128
            }),
        ),
        (
            "entry_name",
            json!({
                "description": "1 to 64 letters, digits, `_` or `-`.",
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{1,64}$"
            }),
        ),
        (
            "column_list",
            json!({
                "type": "array",
                "minItems": 1,
                "uniqueItems": true,
                "items": {"$ref": "#/$defs/identifier"}
            }),
        ),
        (
            "timeout_ms",
            json!({
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TIMEOUT_MS
            }),
        ),
        (
            "storage",
            json!({
                "description": "The executor's ledger.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "sqlite_path": {
                        "description": "Path of the ledger (an SQLite file), relative to the config file's directory unless absolute.",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "shared_postgres": {
                        "description": "The ledger on PostgreSQL, shared by a fleet of executors (Synapsor Runner's shape; `mirror` is refused).",
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["mode", "url_env"],
                        "properties": {
                            "mode": {
                                "description": "`runtime_store`: the ledger lives in PostgreSQL; `disabled`: SQLite.",
                                "enum": ["runtime_store", "disabled"]
                            },
                            "url_env": {
                                "description": "The variable holding the ledger database's URL.",
                                "$ref": "#/$defs/env_name"
                            },
                            "schema": {
                                "description": "The schema holding the ledger (default airlock_ledger).",
                                "type": "string",
                                "pattern": "^[a-z_][a-z0-9_]{0,62}$"
                            },
                            "lock_timeout_ms": {
                                "description": "How long a ledger write waits for the fleet's chain lock (default 10000).",
                                "type": "integer",
                                "minimum": 100,
                                "maximum": 600000
                            },
                            "apply_lease_ms": {
                                "description": "How long an executor's lease on an apply lasts before another executor takes it over (default 30000).",
                                "type": "integer",
                                "minimum": 1000,
                                "maximum": 600000
                            },
                            "max_entries": {
                                "description": "Accepted from Synapsor Runner configs; no effect in Airlock (a warning says so).",
                                "type": "integer",
                                "minimum": 100,
                                "maximum": 100000
                            }
                        }
                    }
                }
            }),
        ),
        (
            "source",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["engine", "read_url_env"],
                "properties": {
                    "engine": {
                        "description": "The database engine (`mariadb` is `mysql`, `postgresql` is `postgres`).",
                        "enum": ["postgres", "postgresql", "mysql", "mariadb", "sqlite"]
                    },
                    "read_url_env": {
                        "description": "The variable holding a read-only connection URL (the proposer's only credential).",
                        "$ref": "#/$defs/env_name"
                    },
                    "write_url_env": {
                        "description": "The variable holding the writer's connection URL; only the executor is given it. Needed by proposals applied with sql_update.",
                        "$ref": "#/$defs/env_name"
                    },
                    "read_only": {
                        "description": "No proposal on this source is applied with sql_update.",
                        "type": "boolean",
                        "default": false
                    },
                    "statement_timeout_ms": {
                        "description": "Per-statement timeout in milliseconds.",
                        "$ref": "#/$defs/timeout_ms",
                        "default": crate::config::DEFAULT_STATEMENT_TIMEOUT_MS
                    },
                    "ssl": {
                        "description": "Ignored (with a warning): TLS settings come from the connection URL."
                    }
                }
            }),
        ),
        (
            "context",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["provider"],
                "properties": {
                    "provider": {
                        "description": "`environment`: values from the proposer's environment variables. `http_claims`: the claims of each HTTP request's verified token (needs `session_auth`). `static_dev`: values written here, for local development only.",
                        "enum": ["environment", "static_dev", "http_claims"]
                    },
                    "values": {"$ref": "#/$defs/context_values"}
                },
                "allOf": [
                    {
                        "if": {
                            "required": ["provider"],
                            "properties": {"provider": {"const": "environment"}}
                        },
                        "then": {
                            "required": ["values"],
                            "properties": {
                                "values": {
                                    "required": ["tenant_id_env"],
                                    "properties": {
                                        "tenant_id": {
                                            "description": "The environment provider reads `tenant_id_env`, not a literal tenant.",
                                            "not": true
                                        },
                                        "principal": {
                                            "description": "The environment provider reads `principal_env`, not a literal principal.",
                                            "not": true
                                        }
                                    }
                                }
                            }
                        }
                    },
                    {
                        "if": {
                            "required": ["provider"],
                            "properties": {"provider": {"const": "static_dev"}}
                        },
                        "then": {
                            "required": ["values"],
                            "properties": {"values": {"required": ["tenant_id"]}}
                        }
                    }
                ]
            }),
        ),
        (
            "context_values",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "tenant_id_env": {
                        "description": "The variable holding the tenant id (environment provider).",
                        "$ref": "#/$defs/env_name"
                    },
                    "principal_env": {
                        "description": "The variable holding the principal (environment provider).",
                        "$ref": "#/$defs/env_name"
                    },
                    "tenant_id": {
                        "description": "The tenant id itself (static_dev provider only).",
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
                    },
                    "principal": {
                        "description": "The principal itself (static_dev provider only).",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "tenant_id_key": {
                        "description": "The token claim holding the tenant (http_claims only; must equal session_auth.tenant_claim).",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "principal_key": {
                        "description": "The token claim holding the principal (http_claims only; must equal session_auth.principal_claim).",
                        "$ref": "#/$defs/non_empty_string"
                    }
                }
            }),
        ),
        (
            "executor",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["type"],
                "properties": {
                    "type": {
                        "description": "`sql_update`: a guarded single-row UPDATE with the source's write URL. `http_handler`: a signed request to your application. `command_handler`: a local program.",
                        "enum": [SQL_UPDATE, "http_handler", "command_handler"]
                    },
                    "url_env": {
                        "description": "The variable holding the handler's URL (http_handler).",
                        "$ref": "#/$defs/env_name"
                    },
                    "method": {
                        "description": "The HTTP method (http_handler).",
                        "enum": ["POST", "PUT", "PATCH"],
                        "default": "POST"
                    },
                    "auth": {"$ref": "#/$defs/http_auth"},
                    "signing_secret_env": {
                        "description": "The variable holding the request-signing secret (http_handler).",
                        "$ref": "#/$defs/env_name"
                    },
                    "timeout_ms": {
                        "description": "The handler's timeout in milliseconds (handlers only).",
                        "$ref": "#/$defs/timeout_ms",
                        "default": crate::config::DEFAULT_HANDLER_TIMEOUT_MS
                    },
                    "command_env": {
                        "description": "The variable holding the handler program's path (command_handler).",
                        "$ref": "#/$defs/env_name"
                    }
                },
                "allOf": [
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": SQL_UPDATE}}},
                        "then": {
                            "properties": {
                                "url_env": false,
                                "method": false,
                                "auth": false,
                                "signing_secret_env": false,
                                "timeout_ms": false,
                                "command_env": false
                            }
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "http_handler"}}},
                        "then": {
                            "required": ["url_env"],
                            "properties": {"command_env": false}
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "command_handler"}}},
                        "then": {
                            "required": ["command_env"],
                            "properties": {
                                "url_env": false,
                                "method": false,
                                "auth": false,
                                "signing_secret_env": false
                            }
                        }
                    }
                ]
            }),
        ),
        (
            "http_auth",
            json!({
                "description": "Bearer-token authentication: the variable holding the token, as `token_env` or the short form `bearer_env`.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "type": {"enum": ["bearer_env"]},
                    "token_env": {"$ref": "#/$defs/env_name"},
                    "bearer_env": {"$ref": "#/$defs/env_name"}
                },
                "oneOf": [
                    {"required": ["token_env"]},
                    {"required": ["bearer_env"]}
                ]
            }),
        ),
        (
            "notifications",
            json!({
                "description": "Where the executor sends notifications of proposal events (docs/notifications.md). A notification informs; it never authorizes.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "enabled": {
                        "description": "Nothing is sent unless this is true.",
                        "type": "boolean",
                        "default": false
                    },
                    "sinks": {
                        "type": "array",
                        "maxItems": crate::load::MAX_NOTIFICATION_SINKS,
                        "items": {"$ref": "#/$defs/notification_sink"}
                    },
                    "workbench_url_env": {
                        "description": "Synapsor Runner's Workbench link: accepted and ignored (with a warning)."
                    }
                }
            }),
        ),
        (
            "notification_sink",
            json!({
                "description": "A webhook (signed CloudEvents JSON, or a Slack-compatible message) or a JSON-lines file.",
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "type"],
                "properties": {
                    "id": {"$ref": "#/$defs/entry_name"},
                    "type": {"enum": ["webhook", "jsonl"]},
                    "enabled": {"type": "boolean", "default": true},
                    "events": {
                        "description": "The events this sink receives (default: all). Synapsor's `proposal.review_required` is `proposal.created`; other Synapsor event names are ignored with a warning.",
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": "^[a-z_]+\\.[a-z_]+$"}
                    },
                    "capabilities": {
                        "description": "Only proposals of these capabilities (default: all).",
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/$defs/non_empty_string"}
                    },
                    "url_env": {
                        "description": "webhook: the variable (or systemd credential) holding the URL.",
                        "$ref": "#/$defs/env_name"
                    },
                    "signing_secret_env": {
                        "description": "webhook: the variable (or systemd credential) holding the HMAC-SHA256 key. Required unless `format` is `slack`.",
                        "$ref": "#/$defs/env_name"
                    },
                    "format": {
                        "description": "webhook: `cloudevents` (default) or `slack` ({\"text\": …}).",
                        "enum": ["cloudevents", "slack"],
                        "default": "cloudevents"
                    },
                    "timeout_ms": {
                        "type": "integer",
                        "minimum": 100,
                        "maximum": crate::notify::MAX_TIMEOUT_MS,
                        "default": crate::notify::DEFAULT_TIMEOUT_MS
                    },
                    "max_attempts": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": crate::notify::MAX_ATTEMPTS,
                        "default": crate::notify::DEFAULT_MAX_ATTEMPTS
                    },
                    "allow_private_destinations": {
                        "description": "webhook: allow private and link-local addresses of the hosts in `private_host_allowlist` (metadata addresses never).",
                        "type": "boolean",
                        "default": false
                    },
                    "private_host_allowlist": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^[A-Za-z0-9.:\\[\\]-]{1,253}$"}
                    },
                    "path": {
                        "description": "jsonl: the file to append to, relative to the config file's directory unless absolute.",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "destination": {
                        "description": "jsonl, Synapsor's name: a file path, or \"stdout\".",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "minimum_severity": {"description": "Synapsor Runner's; ignored with a warning."},
                    "environments": {"description": "Synapsor Runner's; ignored with a warning."},
                    "delivery": {"description": "Synapsor Runner's; ignored with a warning."},
                    "budgets": {"description": "Synapsor Runner's; ignored with a warning."},
                    "quiet_hours": {"description": "Synapsor Runner's; ignored with a warning."},
                    "recovery_notifications": {"description": "Synapsor Runner's; ignored with a warning."},
                    "max_response_bytes": {"description": "Synapsor Runner's; ignored with a warning."},
                    "replay_window_seconds": {"description": "Synapsor Runner's; ignored with a warning."}
                },
                "allOf": [
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "webhook"}}},
                        "then": {
                            "required": ["url_env"],
                            "properties": {"path": false, "destination": false},
                            "if": {"not": {"required": ["format"], "properties": {"format": {"const": "slack"}}}},
                            "then": {"required": ["signing_secret_env"]}
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "jsonl"}}},
                        "then": {
                            "oneOf": [{"required": ["path"]}, {"required": ["destination"]}],
                            "properties": {
                                "url_env": false, "signing_secret_env": false, "format": false,
                                "timeout_ms": false, "max_attempts": false,
                                "allow_private_destinations": false, "private_host_allowlist": false
                            }
                        }
                    }
                ]
            }),
        ),
        (
            "airlock",
            json!({
                            "description": "Airlock's own settings (other runners ignore this section).",
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "socket_dir": {
                                    "description": "The executor's socket directory.",
                                    "$ref": "#/$defs/non_empty_string"
                                },
                                "socket_group": {
                                    "description": "The group that owns the socket directory and sockets.",
                                    "$ref": "#/$defs/non_empty_string"
                                },
                                "proposers": {
                                    "description": "The OS users allowed to connect as proposers, and their tenants (default: only the executor's own user).",
                                    "type": "array",
                                    "items": {"$ref": "#/$defs/proposer"}
                                },
                                "approvers": {
                                    "description": "The OS users allowed to approve, and their roles (default: only the executor's own user, holding every role).",
                                    "type": "array",
                                    "items": {"$ref": "#/$defs/approver"}
                                },
                                "proposal_ttl_seconds": {
                                    "description": "How long a proposal may wait for approval and apply.",
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": 366 * 24 * 3600,
                                    "default": crate::config::DEFAULT_PROPOSAL_TTL_SECONDS
                                },
                                "limits": {"$ref": "#/$defs/limits"},
                                "schema_lock": {
                                    "description": "Per capability, its table's columns and types as reviewed (`airlock config lock` writes it); a capability whose table drifted from it is disabled at start.",
                                    "type": "object",
                                    "additionalProperties": {
                                        "description": "One capability's locked table (written by `airlock config lock`; do not edit by hand: the loader recomputes the fingerprint).",
                                        "type": "object",
                                        "additionalProperties": false,
                                        "required": ["schema", "table", "columns", "fingerprint"],
                                        "properties": {
                                            "schema": {"$ref": "#/$defs/non_empty_string"},
                                            "table": {"$ref": "#/$defs/non_empty_string"},
                                            "columns": {
                                                "description": "Every column of the table and its type, as the catalog spells it.",
                                                "type": "object",
                                                "minProperties": 1,
                                                "additionalProperties": {"type": "string"}
                                            },
                                            "fingerprint": {
                                                "description": "`sha256:` and the hex digest of the entry's canonical JSON.",
                                                "type": "string",
                                                "pattern": "^sha256:"
                                            }
                                        }
                                    }
                                },
                                "disabled_capabilities": {
                                    "description": "Capabilities validated but not served until a person reviews them (`airlock init` drafts ambiguous ones here): capability name → why. Remove an entry to serve the capability.",
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "string",
                                        "minLength": 1,
                                        "maxLength": 500,
                                        "pattern": "^[^\\u0000-\\u001f\\u007f]*$"
                                    }
                                }
            ,
                                "explore": {"$ref": "#/$defs/explore"}
                            }
                        }),
        ),
        (
            "explore",
            json!({
                "description": "Scoped Explore's reviewed boundary: the resources the model may ask typed questions about (app.describe_data, app.explore_data), what each field may be used for, and the privacy limits. See docs/explore.md.",
                "type": "object",
                "additionalProperties": false,
                "required": ["source", "resources"],
                "properties": {
                    "source": {"description": "The entry of `sources` the resources are read from (with its read credential).", "$ref": "#/$defs/non_empty_string"},
                    "context": {"description": "The entry of `contexts` giving the trusted tenant and principal (default: `trusted_context`).", "$ref": "#/$defs/non_empty_string"},
                    "minimum_cohort_size": {"description": "Groups with fewer records release no value.", "type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
                    "limits": {"$ref": "#/$defs/explore_limits"},
                    "resources": {
                        "description": "Resource id → one reviewed table or view.",
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 32,
                        "additionalProperties": {"$ref": "#/$defs/explore_resource"}
                    }
                }
            }),
        ),
        (
            "explore_limits",
            json!({
                "description": "Budgets (kept by the executor per tenant and principal over a rolling 24 hours) and bounds.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max_queries_per_rolling_24_hours": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_u64, "default": 500},
                    "max_extracted_cells_per_rolling_24_hours": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_u64, "default": 20_000},
                    "max_differencing_variants_per_rolling_24_hours": {"description": "Distinct cohort-protected plans per resource; an exact replay reuses its variant.", "type": "integer", "minimum": 1, "maximum": 10_000, "default": 16},
                    "max_rows": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "max_groups": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    "max_top_n": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
                    "max_ranked_groups": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500},
                    "max_measures": {"type": "integer", "minimum": 1, "maximum": 8, "default": 4},
                    "max_dimensions": {"type": "integer", "minimum": 1, "maximum": 4, "default": 3},
                    "max_filters": {"type": "integer", "minimum": 1, "maximum": 16, "default": 8}
                }
            }),
        ),
        (
            "explore_resource",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["schema", "table", "primary_key", "tenant_key", "fields"],
                "properties": {
                    "schema": {"$ref": "#/$defs/identifier"},
                    "table": {"$ref": "#/$defs/identifier"},
                    "primary_key": {"$ref": "#/$defs/identifier"},
                    "tenant_key": {"$ref": "#/$defs/identifier"},
                    "principal_scope_key": {"$ref": "#/$defs/identifier"},
                    "label": {"type": "string", "minLength": 1, "maxLength": 64},
                    "description": {"type": "string", "minLength": 1, "maxLength": 280},
                    "minimum_cohort_size": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "fields": {
                        "description": "Column → what the model may do with it. Columns not listed (and the scope columns) cannot be used.",
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 128,
                        "additionalProperties": {"$ref": "#/$defs/explore_field"}
                    },
                    "kept_out": {"description": "Columns the model may never use or learn of.", "type": "array", "items": {"$ref": "#/$defs/identifier"}},
                    "relationships": {
                        "description": "Name → a many-to-one path: `column` holds the primary key of `resource`.",
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["column", "resource"],
                            "properties": {
                                "column": {"$ref": "#/$defs/identifier"},
                                "resource": {"$ref": "#/$defs/non_empty_string"}
                            }
                        }
                    }
                }
            }),
        ),
        (
            "explore_field",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["type", "uses"],
                "properties": {
                    "type": {"enum": ["text", "number", "time"]},
                    "uses": {"type": "array", "items": {"enum": ["rows", "dimension", "filter", "measure", "count_distinct", "time"]}},
                    "measures": {"type": "array", "minItems": 1, "items": {"enum": ["sum", "avg", "min", "max"]}},
                    "buckets": {"type": "array", "minItems": 1, "items": {"enum": ["day", "week", "month", "quarter", "year"]}},
                    "withheld": {"description": "Values reach the model only as response-local tokens.", "type": "boolean"},
                    "values": {"description": "The reviewed value domain.", "type": "array", "minItems": 1, "maxItems": 200},
                    "label": {"type": "string", "minLength": 1, "maxLength": 64},
                    "description": {"type": "string", "minLength": 1, "maxLength": 280}
                }
            }),
        ),
        (
            "limits",
            json!({
                "description": "Per-proposer-uid limits on what reaches the ledger.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "rate_window_seconds": {"type": "integer", "minimum": 1, "maximum": 86_400, "default": 60},
                    "evidence_per_window": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_u64, "default": 6_000},
                    "proposals_per_window": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_u64, "default": 600},
                    "max_evidence_bytes": {"type": "integer", "minimum": 64, "maximum": 1_048_576, "default": 65_536},
                    "max_change_set_bytes": {"type": "integer", "minimum": 64, "maximum": 1_048_576, "default": 16_384},
                    "ledger_bytes_per_day": {"type": "integer", "minimum": 4096, "maximum": 1_u64 << 50, "default": 536_870_912}
                }
            }),
        ),
        (
            "peer",
            json!({
                "oneOf": [
                    {"required": ["user"]},
                    {"required": ["uid"]}
                ]
            }),
        ),
        (
            "peer_user",
            json!({
                "description": "A login name (give `user` or `uid`, not both).",
                "$ref": "#/$defs/non_empty_string"
            }),
        ),
        (
            "peer_uid",
            json!({
                "description": "A numeric uid (give `user` or `uid`, not both).",
                "type": "integer",
                "minimum": 0,
                "maximum": u32::MAX
            }),
        ),
        (
            "name_set",
            json!({
                "oneOf": [
                    {"const": "*"},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": 128}
                    }
                ]
            }),
        ),
        (
            "proposer",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["tenants"],
                "properties": {
                    "user": {"$ref": "#/$defs/peer_user"},
                    "uid": {"$ref": "#/$defs/peer_uid"},
                    "tenants": {
                        "description": "The tenants this proposer may act for, or \"*\" for all.",
                        "$ref": "#/$defs/name_set"
                    }
                },
                "$ref": "#/$defs/peer"
            }),
        ),
        (
            "approver",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["roles"],
                "properties": {
                    "user": {"$ref": "#/$defs/peer_user"},
                    "uid": {"$ref": "#/$defs/peer_uid"},
                    "roles": {
                        "description": "The approval roles this person holds, or \"*\" for all.",
                        "$ref": "#/$defs/name_set"
                    }
                },
                "$ref": "#/$defs/peer"
            }),
        ),
        (
            "capability",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "kind", "source", "target", "args", "visible_columns"],
                "properties": {
                    "name": {
                        "description": "`domain.action`, e.g. `billing.inspect_invoice`; never a word such as approve, apply, commit, execute, grant or sql.",
                        "type": "string",
                        "pattern": "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$",
                        "maxLength": 64
                    },
                    "kind": {
                        "description": "`read` looks one row up (or, with `list`, lists rows by reviewed filters); `aggregate_read` returns one reviewed aggregate (or one per reviewed group), never rows; `proposal` proposes a change a person approves.",
                        "enum": ["read", "aggregate_read", "proposal"]
                    },
                    "description": {
                        "description": "What the model is told the tool does.",
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_DESCRIPTION_CHARS
                    },
                    "returns_hint": {"$ref": "#/$defs/non_empty_string"},
                    "source": {
                        "description": "The name of an entry in `sources`.",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "context": {
                        "description": "The name of an entry in `contexts` (default: `trusted_context`).",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "executor": {
                        "description": "The name of an entry in `executors` (default: the built-in sql_update). Proposals only.",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "target": {"$ref": "#/$defs/target"},
                    "args": {
                        "description": "The arguments the model gives, by name; never tenant, identity, role, table, column or SQL. At least one, except on a list read; `{}` for an aggregate read.",
                        "type": "object",
                        "maxProperties": MAX_ARGS,
                        "propertyNames": {"$ref": "#/$defs/identifier"},
                        "additionalProperties": {"$ref": "#/$defs/arg"}
                    },
                    "lookup": {"$ref": "#/$defs/lookup"},
                    "visible_columns": {
                        "description": "The only columns the model sees; `[]` for an aggregate read.",
                        "type": "array",
                        "uniqueItems": true,
                        "items": {"$ref": "#/$defs/identifier"}
                    },
                    "evidence": {
                        "description": "Whether a proposal must cite the read it is based on.",
                        "enum": ["required", "optional"],
                        "default": "required"
                    },
                    "max_rows": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ROWS_LIMIT,
                        "default": 1
                    },
                    "patch": {
                        "description": "Column → its new value: fixed, from an argument, the value before plus or minus an argument, or the apply time. Proposals only; none for a delete.",
                        "type": "object",
                        "propertyNames": {"$ref": "#/$defs/identifier"},
                        "additionalProperties": {"$ref": "#/$defs/patch_binding"}
                    },
                    "allowed_columns": {
                        "description": "The only columns a proposal may change (never the primary key, tenant key or conflict-guard column). Proposals only.",
                        "$ref": "#/$defs/column_list"
                    },
                    "numeric_bounds": {
                        "description": "Column → the range its new value must fall in. Proposals only.",
                        "type": "object",
                        "propertyNames": {"$ref": "#/$defs/identifier"},
                        "additionalProperties": {"$ref": "#/$defs/bounds"}
                    },
                    "transition_guards": {
                        "description": "Column → the state transitions a proposal may make. Proposals only.",
                        "type": "object",
                        "propertyNames": {"$ref": "#/$defs/identifier"},
                        "additionalProperties": {"$ref": "#/$defs/transition_guard"}
                    },
                    "conflict_guard": {"$ref": "#/$defs/conflict_guard"},
                    "approval": {"$ref": "#/$defs/approval"},
                    "operation": {"$ref": "#/$defs/operation"},
                    "reversibility": {
                        "description": "Opt-in reviewed compensation: the executor captures each applied change's inverse, and `airlock revert` proposes it for its own approval. sql_update updates with a version column, and inserts, only. Proposals only.",
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["mode"],
                        "properties": {"mode": {"const": "reviewed_inverse"}}
                    },
                    "single_tenant_dev_ack": {
                        "description": "Acknowledges `target.single_tenant_dev`: every row of the table is in scope.",
                        "type": "boolean"
                    },
                    "list": {"$ref": "#/$defs/list"},
                    "aggregate": {"$ref": "#/$defs/aggregate"}
                },
                "allOf": [
                    {
                        "if": {"required": ["kind"], "properties": {"kind": {"const": "read"}}},
                        "then": {
                            "properties": {
                                "executor": false,
                                "patch": false,
                                "allowed_columns": false,
                                "numeric_bounds": false,
                                "transition_guards": false,
                                "conflict_guard": false,
                                "approval": false,
                                "operation": false,
                                "reversibility": false
                            }
                        }
                    },
                    {
                        "description": "Every capability but an aggregate read, an insert, a bounded set or a list read looks its row up by key.",
                        "if": {"anyOf": [
                            {"required": ["list"]},
                            {"required": ["kind"], "properties": {"kind": {"const": "aggregate_read"}}},
                            {"required": ["operation"], "properties": {"operation": {"anyOf": [
                                {"required": ["kind"], "properties": {"kind": {"const": "insert"}}},
                                {"required": ["cardinality"], "properties": {"cardinality": {"const": "set"}}}
                            ]}}}
                        ]},
                        "else": {"required": ["lookup"]}
                    },
                    {
                        "description": "A list read is a read that finds its rows by its filters, a page at a time; only it takes array arguments, and it may take none.",
                        "if": {"required": ["list"]},
                        "then": {
                            "properties": {
                                "kind": {"const": "read"},
                                "lookup": false,
                                "max_rows": false
                            }
                        },
                        "else": {
                            "properties": {
                                "args": {
                                    "additionalProperties": {"properties": {"type": {"not": {"const": "array"}}}}
                                }
                            },
                            "description": "Only an aggregate read (and a list read) may take no argument.",
                            "if": {"required": ["kind"], "properties": {"kind": {"const": "aggregate_read"}}},
                            "else": {"properties": {"args": {"minProperties": 1}}}
                        }
                    },
                    {
                        "description": "An aggregate read takes no arguments, shows no column, looks up no record and changes nothing; `aggregate` belongs to it alone.",
                        "if": {"required": ["kind"], "properties": {"kind": {"const": "aggregate_read"}}},
                        "then": {
                            "required": ["aggregate"],
                            "properties": {
                                "args": {"maxProperties": 0},
                                "visible_columns": {"maxItems": 0},
                                "lookup": false,
                                "max_rows": false,
                                "executor": false,
                                "patch": false,
                                "allowed_columns": false,
                                "numeric_bounds": false,
                                "transition_guards": false,
                                "conflict_guard": false,
                                "approval": false,
                                "operation": false,
                                "reversibility": false
                            }
                        },
                        "else": {
                            "properties": {
                                "aggregate": false,
                                "visible_columns": {"minItems": 1}
                            }
                        }
                    },
                    {
                        "description": "A bounded set is chosen by its selection, never looked up.",
                        "if": {"required": ["operation"], "properties": {"operation": {"required": ["cardinality"], "properties": {"cardinality": {"const": "set"}}}}},
                        "then": {"properties": {"lookup": false}}
                    },
                    {
                        "if": {"required": ["kind"], "properties": {"kind": {"const": "proposal"}}},
                        "then": {
                            "if": {"required": ["operation"], "properties": {"operation": {"required": ["kind"], "properties": {"kind": {"const": "insert"}}}}},
                            "then": {
                                "required": ["patch", "allowed_columns"],
                                "properties": {"patch": {"minProperties": 1}, "transition_guards": false}
                            },
                            "else": {
                                "if": {"required": ["operation"], "properties": {"operation": {"required": ["kind"], "properties": {"kind": {"const": "delete"}}}}},
                                "then": {
                                    "required": ["conflict_guard"],
                                    "properties": {
                                        "patch": {"maxProperties": 0},
                                        "allowed_columns": {"maxItems": 0},
                                        "numeric_bounds": false,
                                        "transition_guards": false,
                                        "conflict_guard": {"required": ["column"]}
                                    }
                                },
                                "else": {
                                    "required": ["patch", "allowed_columns", "conflict_guard"],
                                    "properties": {"patch": {"minProperties": 1}}
                                }
                            }
                        }
                    },
                    {
                        "description": "Every capability is scoped by the trusted tenant: `target.tenant_key`, or an acknowledged single-tenant development target.",
                        "anyOf": [
                            {"properties": {"target": {"required": ["tenant_key"]}}},
                            {
                                "required": ["single_tenant_dev_ack"],
                                "properties": {
                                    "single_tenant_dev_ack": {"const": true},
                                    "target": {
                                        "required": ["single_tenant_dev"],
                                        "properties": {"single_tenant_dev": {"const": true}}
                                    }
                                }
                            }
                        ]
                    }
                ]
            }),
        ),
        (
            "aggregate",
            json!({
                "description": "An aggregate read's reviewed aggregate: Synapsor Runner's `function` (count, sum, avg), `count_mode`, `column`, `selection` and `minimum_group_size`, plus Airlock's `min`/`max`, `group_by` and `max_groups`. A result over fewer than `minimum_group_size` records is withheld.",
                "type": "object",
                "additionalProperties": false,
                "required": ["function", "minimum_group_size"],
                "properties": {
                    "function": {
                        "description": "`count`, `sum`, `avg` (Synapsor Runner's), `min` or `max` (Airlock's: they release one record's own value).",
                        "enum": ["count", "sum", "avg", "min", "max"]
                    },
                    "count_mode": {
                        "description": "Count only: `rows` (every matching record) or `non_null` (the records where `column` is set).",
                        "enum": ["rows", "non_null"]
                    },
                    "column": {
                        "description": "The aggregated column (none for a count of rows).",
                        "$ref": "#/$defs/identifier"
                    },
                    "selection": {
                        "description": "The records aggregated: `all` fixed equality terms, within the trusted tenant.",
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["all"],
                        "properties": {
                            "all": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_SELECTION_TERMS,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["column", "operator", "value"],
                                    "properties": {
                                        "column": {"$ref": "#/$defs/identifier"},
                                        "operator": {"const": "eq"},
                                        "value": {"type": ["string", "number"]}
                                    }
                                }
                            }
                        }
                    },
                    "minimum_group_size": {
                        "description": "A result (or group) over fewer records is withheld: no value, no count. 1 withholds nothing (validation warns).",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_MINIMUM_GROUP_SIZE
                    },
                    "group_by": {
                        "description": "Airlock's: up to 3 reviewed columns to group by (never the tenant, principal scope or primary key).",
                        "type": "array",
                        "maxItems": MAX_GROUP_BY,
                        "uniqueItems": true,
                        "items": {
                            "$ref": "#/$defs/identifier",
                            "not": {"enum": RESERVED_NAMES}
                        }
                    },
                    "max_groups": {
                        "description": "Airlock's: the most groups one read may have; more is refused, never cut short. Grouped aggregates only.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_GROUPS_LIMIT,
                        "default": DEFAULT_MAX_GROUPS
                    }
                },
                "allOf": [
                    {
                        "if": {"required": ["function"], "properties": {"function": {"const": "count"}}},
                        "then": {
                            "required": ["count_mode"],
                            "if": {"required": ["count_mode"], "properties": {"count_mode": {"const": "rows"}}},
                            "then": {"properties": {"column": false}},
                            "else": {"required": ["column"]}
                        },
                        "else": {"required": ["column"], "properties": {"count_mode": false}}
                    },
                    {
                        "if": {"required": ["group_by"], "properties": {"group_by": {"minItems": 1}}},
                        "else": {"properties": {"max_groups": false}}
                    }
                ]
            }),
        ),
        (
            "target",
            json!({
                "description": "The one table a capability reads or changes.",
                "type": "object",
                "additionalProperties": false,
                "required": ["schema", "table", "primary_key"],
                "properties": {
                    "schema": {
                        "description": "`public` (Postgres), the database name (MySQL/MariaDB) or `main` (SQLite).",
                        "$ref": "#/$defs/identifier"
                    },
                    "table": {"$ref": "#/$defs/identifier"},
                    "primary_key": {"$ref": "#/$defs/identifier"},
                    "tenant_key": {
                        "description": "The column holding the tenant id; every statement is scoped by the trusted tenant.",
                        "$ref": "#/$defs/identifier"
                    },
                    "single_tenant_dev": {
                        "description": "No tenant key (development only; needs `single_tenant_dev_ack` on the capability).",
                        "type": "boolean"
                    },
                    "principal_scope_key": {
                        "description": "Principal row scope: the column that must equal the trusted principal, AND-ed with the tenant scope on every read, proposal and write. Needs `tenant_key` and a context with a principal source.",
                        "$ref": "#/$defs/identifier"
                    }
                },
                "dependentRequired": {"principal_scope_key": ["tenant_key"]}
            }),
        ),
        (
            "arg",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["string", "number", "integer", "boolean", "array"]},
                    "description": {"$ref": "#/$defs/non_empty_string"},
                    "required": {"type": "boolean", "default": false},
                    "max_length": {
                        "description": "Strings only.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ARG_LENGTH
                    },
                    "minimum": {"description": "Numbers and integers only.", "type": "number"},
                    "maximum": {"description": "Numbers and integers only.", "type": "number"},
                    "enum": {
                        "description": "The only values allowed, of the argument's type.",
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 256
                    },
                    "format": {
                        "description": "Strings only: `date` (YYYY-MM-DD) or `date-time` (RFC 3339 with an offset), checked at call time; what a list read's range filter on a time column needs.",
                        "enum": ["date", "date-time"]
                    },
                    "items": {"$ref": "#/$defs/arg_items"},
                    "max_items": {
                        "description": "Arrays only: the most values one call may give.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_IN_ITEMS
                    }
                },
                "allOf": [
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "string"}}},
                        "then": {
                            "properties": {
                                "minimum": false,
                                "maximum": false,
                                "enum": {"items": {"type": "string"}},
                                "items": false,
                                "max_items": false
                            }
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "number"}}},
                        "then": {
                            "properties": {
                                "max_length": false,
                                "enum": {"items": {"type": "number"}},
                                "format": false,
                                "items": false,
                                "max_items": false
                            }
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "integer"}}},
                        "then": {
                            "properties": {
                                "max_length": false,
                                "enum": {"items": {"type": "integer"}},
                                "format": false,
                                "items": false,
                                "max_items": false
                            }
                        }
                    },
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "boolean"}}},
                        "then": {
                            "properties": {
                                "max_length": false,
                                "minimum": false,
                                "maximum": false,
                                "enum": {"items": {"type": "boolean"}},
                                "format": false,
                                "items": false,
                                "max_items": false
                            }
                        }
                    },
                    {
                        "description": "An array argument (a list read's `in` filter) picks 1 to `max_items` values of its reviewed `items.enum`.",
                        "if": {"required": ["type"], "properties": {"type": {"const": "array"}}},
                        "then": {
                            "required": ["items", "max_items"],
                            "properties": {
                                "max_length": false,
                                "minimum": false,
                                "maximum": false,
                                "enum": false,
                                "format": false
                            }
                        }
                    }
                ]
            }),
        ),
        (
            "lookup",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["id_from_arg"],
                "properties": {
                    "id_from_arg": {
                        "description": "The required argument that carries the primary-key value.",
                        "$ref": "#/$defs/non_empty_string"
                    }
                }
            }),
        ),
        (
            "patch_binding",
            json!({
                "description": "Exactly one of `fixed`, `from_arg`, `increment_from_arg`, `decrement_from_arg` or `apply_time`.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "fixed": {
                        "description": "A fixed new value.",
                        "type": ["string", "number", "boolean", "null"]
                    },
                    "from_arg": {
                        "description": "The argument whose value becomes the new value.",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "increment_from_arg": {
                        "description": "The value before plus this bounded number argument (updates only; the column needs `numeric_bounds` with both ends).",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "decrement_from_arg": {
                        "description": "The value before minus this bounded number argument (updates only; the column needs `numeric_bounds` with both ends).",
                        "$ref": "#/$defs/non_empty_string"
                    },
                    "apply_time": {
                        "description": "The time the executor applies the change.",
                        "const": true
                    }
                },
                "oneOf": [
                    {"required": ["fixed"]},
                    {"required": ["from_arg"]},
                    {"required": ["increment_from_arg"]},
                    {"required": ["decrement_from_arg"]},
                    {"required": ["apply_time"]}
                ]
            }),
        ),
        (
            "bounds",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "minimum": {"type": "number"},
                    "maximum": {"type": "number"}
                }
            }),
        ),
        (
            "transition_guard",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["allowed"],
                "properties": {
                    "from_column": {
                        "description": "The column holding the current state (default: the guarded column); a patched column or the version column.",
                        "$ref": "#/$defs/identifier"
                    },
                    "allowed": {
                        "description": "From-state → the states it may move to.",
                        "type": "object",
                        "additionalProperties": {
                            "type": "array",
                            "items": {"type": "string"}
                        }
                    }
                }
            }),
        ),
        (
            "conflict_guard",
            json!({
                "description": "How a stale proposal is caught at apply time: a version or timestamp `column`, or an acknowledged weak row-hash guard.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "column": {"$ref": "#/$defs/identifier"},
                    "weak_guard_ack": {"type": "boolean"}
                },
                "anyOf": [
                    {"required": ["column"]},
                    {
                        "required": ["weak_guard_ack"],
                        "properties": {"weak_guard_ack": {"const": true}}
                    }
                ]
            }),
        ),
        (
            "approval",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "mode": {
                        "description": "Always a person.",
                        "enum": ["human"]
                    },
                    "required_role": {
                        "description": "The role an approver must hold (default: any approver).",
                        "type": "string",
                        "pattern": "^[A-Za-z0-9_.-]{1,64}$"
                    },
                    "required_approvals": {
                        "description": "How many distinct approvers (OS users), each holding the required role, must approve.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_REQUIRED_APPROVALS,
                        "default": 1
                    }
                }
            }),
        ),
        (
            "proposal_freshness",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["approval"],
                "properties": {
                    "approval": {
                        "description": "Every approval re-reads the target and dependency rows.",
                        "const": "required"
                    },
                    "dependencies": {
                        "type": "array",
                        "maxItems": MAX_FRESHNESS_DEPENDENCIES,
                        "items": {"$ref": "#/$defs/freshness_dependency"}
                    }
                }
            }),
        ),
        (
            "freshness_dependency",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "capability", "identity_from_arg", "version_column"],
                "properties": {
                    "id": {
                        "description": "A stable label for the dependency.",
                        "type": "string",
                        "pattern": "^[A-Za-z0-9_.-]{1,64}$"
                    },
                    "capability": {
                        "description": "A read capability on the proposal's source and context that finds the row.",
                        "type": "string",
                        "minLength": 1
                    },
                    "identity_from_arg": {
                        "description": "The proposal argument whose value is the row's key.",
                        "type": "string",
                        "minLength": 1
                    },
                    "version_column": {
                        "description": "The row's version or updated-at column.",
                        "$ref": "#/$defs/identifier"
                    }
                }
            }),
        ),
        (
            "operation",
            json!({
                "description": "What the proposal does to its table (default: update one row).",
                "type": "object",
                "additionalProperties": false,
                "required": ["kind"],
                "properties": {
                    "kind": {"enum": ["update", "insert", "delete"]},
                    "cardinality": {
                        "description": "`single` (one row) or `set` (a bounded set UPDATE or DELETE).",
                        "enum": ["single", "set"]
                    },
                    "deduplication": {"$ref": "#/$defs/deduplication"},
                    "version_advance": {"$ref": "#/$defs/version_advance"},
                    "acknowledge_effects": {"$ref": "#/$defs/acknowledge_effects"},
                    "selection": {
                        "description": "A set's reviewed rows: `all` fixed equality terms and/or `keys`.",
                        "type": "object",
                        "additionalProperties": false,
                        "minProperties": 1,
                        "properties": {
                            "all": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 8,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "required": ["column", "operator", "value"],
                                    "properties": {
                                        "column": {"$ref": "#/$defs/identifier"},
                                        "operator": {"const": "eq"},
                                        "value": {"type": ["string", "number"]}
                                    }
                                }
                            },
                            "keys": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "uniqueItems": true,
                                "items": {"type": ["string", "number"]}
                            }
                        }
                    },
                    "max_rows": {"type": "integer", "minimum": 1, "maximum": 100},
                    "aggregate_bounds": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 8,
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["column", "measure", "maximum"],
                            "properties": {
                                "column": {"$ref": "#/$defs/identifier"},
                                "measure": {"enum": ["before", "after", "absolute_delta"]},
                                "maximum": {"type": "number", "minimum": 0}
                            }
                        }
                    },
                    "batch": false
                },
                "allOf": [
                    {
                        "if": {"required": ["cardinality"], "properties": {"cardinality": {"const": "set"}}},
                        "then": {
                            "required": ["selection", "max_rows", "aggregate_bounds"],
                            "properties": {"kind": {"enum": ["update", "delete"]}},
                            "if": {"properties": {"kind": {"const": "update"}}},
                            "then": {
                                "description": "A set UPDATE advances an integer version by one.",
                                "required": ["version_advance"],
                                "properties": {"version_advance": {"properties": {"strategy": {"const": "integer_increment"}}}}
                            }
                        },
                        "else": {"properties": {"selection": false, "max_rows": false, "aggregate_bounds": false}}
                    },
                    {
                        "if": {"properties": {"kind": {"const": "insert"}}},
                        "then": {"required": ["deduplication"], "properties": {"version_advance": false, "acknowledge_effects": false}}
                    },
                    {
                        "if": {"properties": {"kind": {"const": "delete"}}},
                        "then": {"properties": {"deduplication": false, "version_advance": false}}
                    },
                    {
                        "if": {"properties": {"kind": {"const": "update"}}},
                        "then": {"properties": {"deduplication": false, "acknowledge_effects": false}}
                    }
                ]
            }),
        ),
        (
            "deduplication",
            json!({
                "description": "An insert's identity: columns a PRIMARY KEY or UNIQUE constraint of the table covers, filled by the executor, one of them the proposal id.",
                "type": "object",
                "additionalProperties": false,
                "required": ["components"],
                "properties": {
                    "components": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 8,
                        "items": {"$ref": "#/$defs/dedup_component"},
                        "contains": {"properties": {"source": {"const": "proposal_id"}}}
                    }
                }
            }),
        ),
        (
            "dedup_component",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["column", "source"],
                "properties": {
                    "column": {"$ref": "#/$defs/identifier"},
                    "source": {"enum": ["proposal_id", "trusted_tenant", "fixed"]},
                    "fixed": {
                        "description": "The value, for `source: \"fixed\"`.",
                        "type": ["string", "number", "boolean"]
                    }
                },
                "if": {"properties": {"source": {"const": "fixed"}}},
                "then": {"required": ["fixed"]},
                "else": {"properties": {"fixed": false}}
            }),
        ),
        (
            "version_advance",
            json!({
                "description": "How the conflict-guard column advances on apply (default: `+ 1` for an integer, else the apply time).",
                "type": "object",
                "additionalProperties": false,
                "required": ["column", "strategy"],
                "properties": {
                    "column": {"$ref": "#/$defs/identifier"},
                    "strategy": {"enum": ["integer_increment", "timestamp", "database_generated"]}
                }
            }),
        ),
        (
            "acknowledge_effects",
            json!({
                "description": "A delete's reviewed side effects: DELETE triggers by name, and `schema.table` of each table whose foreign key cascades (or sets null or a default) from this one.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "triggers": {"$ref": "#/$defs/column_list"},
                    "cascades": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*$"}
                    }
                }
            }),
        ),
    ];
    defs.into_iter()
        .chain(list_read_defs())
        .map(|(name, def)| (name.to_owned(), def))
        .collect()
}

/// The definitions of a list read's `list` and of array arguments' `items`.
fn list_read_defs() -> Vec<(&'static str, Value)> {
    vec![
        (
            "arg_items",
            json!({
                "description": "The reviewed values an array argument may hold.",
                "type": "object",
                "additionalProperties": false,
                "required": ["type", "enum"],
                "properties": {
                    "type": {"enum": ["string", "integer"]},
                    "enum": {"type": "array", "minItems": 1, "maxItems": 256, "uniqueItems": true}
                },
                "allOf": [
                    {
                        "if": {"required": ["type"], "properties": {"type": {"const": "string"}}},
                        "then": {"properties": {"enum": {"items": {"type": "string"}}}},
                        "else": {"properties": {"enum": {"items": {"type": "integer"}}}}
                    }
                ]
            }),
        ),
        (
            "list",
            json!({
                "description": "A list read (Airlock's own key): the tenant's rows that match the reviewed filters, a page at a time, in a reviewed order. Replaces `lookup` and `max_rows`.",
                "type": "object",
                "additionalProperties": false,
                "required": ["max_limit"],
                "properties": {
                    "filters": {
                        "description": "Each applies when the call gives its argument; never on the tenant or principal scope column; columns must be visible.",
                        "type": "array",
                        "maxItems": MAX_FILTERS,
                        "items": {"$ref": "#/$defs/list_filter"}
                    },
                    "order_by": {
                        "description": "Visible columns; the primary key is always added last, ascending.",
                        "type": "array",
                        "maxItems": MAX_ORDER_BY,
                        "items": {"$ref": "#/$defs/list_order"}
                    },
                    "max_limit": {
                        "description": "The most rows one page may hold.",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT
                    },
                    "default_limit": {
                        "description": "Rows per page when the call gives no `limit` (at most `max_limit`; default 20 or `max_limit` if smaller).",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT
                    }
                }
            }),
        ),
        (
            "list_filter",
            json!({
                "description": "`column <op> <value of arg>`: `eq` any scalar; `gt`/`gte`/`lt`/`lte` numbers or strings with a `format`; `in` an array argument.",
                "type": "object",
                "additionalProperties": false,
                "required": ["column", "op", "arg"],
                "properties": {
                    "column": {"$ref": "#/$defs/identifier"},
                    "op": {"enum": ["eq", "gt", "gte", "lt", "lte", "in"]},
                    "arg": {"$ref": "#/$defs/non_empty_string"}
                }
            }),
        ),
        (
            "list_order",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["column"],
                "properties": {
                    "column": {"$ref": "#/$defs/identifier"},
                    "direction": {"enum": ["asc", "desc"], "default": "asc"}
                }
            }),
        ),
    ]
}
