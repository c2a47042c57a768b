//! Schema pieces shared by the API types: CEL rules and hand-written schemas.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator, json_schema};

/// CEL: a DNS-1123 label (lower-case alphanumerics and '-').
pub const DNS_LABEL: &str = "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";

/// CEL: a semantic version 2.0.0 (no leading `v`).
pub const SEMVER: &str = "self.matches('^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)([.](0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?([+][0-9a-zA-Z-]+([.][0-9a-zA-Z-]+)*)?$')";

/// CEL: a Go-style duration such as 90s, 10m or 1h30m.
pub const DURATION: &str = "self.matches('^([0-9]+([.][0-9]+)?(ms|s|m|h))+$')";

/// Conditions as a list keyed by type, so server-side apply merges them per condition.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// An embedded Kubernetes object (a Job or pod template) kept without its full schema: the
/// full PodSpec schema would make the CRD too large to store. The API server validates it
/// when relman creates the object; relman reports a rejection as a Stalled condition.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A Job template: only the path to the containers is declared (so CEL rules can check it); the
/// rest is kept as written, see [`preserve_unknown_object`].
pub fn job_template_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": true,
                                "properties": {
                                    "containers": {
                                        "type": "array",
                                        "maxItems": 20,
                                        "items": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": true,
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    })
}

/// [`preserve_unknown_object`] for an optional field.
pub fn preserve_unknown_object_opt(generator: &mut SchemaGenerator) -> Schema {
    preserve_unknown_object(generator)
}

/// A label selector with every list, map and string bounded, so a policy's size and the cost of
/// matching it are known at admission; the operator is checked there too.
pub fn label_selector_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "A Kubernetes label selector: matchLabels and matchExpressions, ANDed.",
        "properties": {
            "matchLabels": {
                "type": "object",
                "maxProperties": 32,
                "additionalProperties": {"type": "string", "maxLength": 63},
            },
            "matchExpressions": {
                "type": "array",
                "maxItems": 16,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string", "maxLength": 317},
                        "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": {
                            "type": "array",
                            "maxItems": 32,
                            "items": {"type": "string", "maxLength": 63},
                        },
                    },
                },
            },
        },
    })
}
