//! The Placement API at microversion 1.39: request bodies and query
//! strings are the schemas `placement_api::schemas` validates with.

use serde_json::{Value, json};

use super::{Api, Op, document, keystone_error, list_of, object, placement_error};
use crate::placement_api::schemas as s;

/// Placement's newest microversion, which the description is of.
pub const VERSION: (u32, u32) = (1, 39);

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn generation() -> Value {
    json!({"type": "integer"})
}

fn provider() -> Value {
    object(
        &["uuid", "name", "generation", "links", "parent_provider_uuid", "root_provider_uuid"],
        json!({"uuid": uuid(), "name": {"type": "string"}, "generation": generation(),
               "parent_provider_uuid": {"type": ["string", "null"]}, "root_provider_uuid": {"type": "string"},
               "links": {"type": "array"}}),
    )
}

fn inventory() -> Value {
    object(
        &["total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"],
        json!({"total": {"type": "integer"}, "reserved": {"type": "integer"}, "min_unit": {"type": "integer"},
               "max_unit": {"type": "integer"}, "step_size": {"type": "integer"},
               "allocation_ratio": {"type": "number"}}),
    )
}

fn with_generation(key: &str, value: Value) -> Value {
    object(&[key, "resource_provider_generation"], json!({key: value, "resource_provider_generation": generation()}))
}

fn inventories() -> Value {
    with_generation("inventories", json!({"type": "object", "additionalProperties": inventory()}))
}

fn amounts() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "integer"}})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn resource_class() -> Value {
    object(&["name", "links"], json!({"name": {"type": "string"}, "links": {"type": "array"}}))
}

/// The query parameters a query-string schema allows (none required
/// unless the schema says so).
fn query_from(mut op: Op, schema: &Value) -> Op {
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if let Some(props) = schema["properties"].as_object() {
        for (name, sch) in props {
            op = op.query(name.clone(), sch.clone(), required.contains(&name.as_str()));
        }
    }
    op
}

/// Every operation.
pub fn operations() -> Vec<Op> {
    let v = VERSION;
    let rc_name = json!({"type": "string", "pattern": s::RC_PATTERN, "maxLength": 255});
    let custom_rc = json!({"type": "string", "pattern": s::CUSTOM_PATTERN, "maxLength": 255});
    let trait_name = json!({"type": "string", "maxLength": 255});
    let mut candidates = Op::new("GET", "/allocation_candidates", "listAllocationCandidates", "Allocation candidates");
    let cq = s::candidates_query(v);
    for k in ["resources", "required", "member_of", "in_tree"] {
        candidates = candidates.query(k, json!({"type": "string"}), false);
    }
    candidates = query_from(candidates, &cq);
    vec![
        Op::new("GET", "/", "versions", "The version document")
            .ok(200, Some(list_of("versions", object(&["id", "max_version", "min_version"], json!({}))))),
        Op::new("GET", "/resource_classes", "listResourceClasses", "List resource classes")
            .ok(200, Some(list_of("resource_classes", resource_class()))),
        Op::new("POST", "/resource_classes", "createResourceClass", "Create a custom resource class")
            .body(s::rc_post())
            .ok(201, None),
        Op::new("GET", "/resource_classes/{name}", "showResourceClass", "Show a resource class")
            .param("name", rc_name.clone())
            .ok(200, Some(resource_class())),
        Op::new("PUT", "/resource_classes/{name}", "updateResourceClass", "Create or confirm a custom resource class")
            .param("name", custom_rc.clone())
            .ok(201, None)
            .ok(204, None),
        Op::new("DELETE", "/resource_classes/{name}", "deleteResourceClass", "Delete a custom resource class")
            .param("name", custom_rc)
            .ok(204, None),
        query_from(
            Op::new("GET", "/resource_providers", "listResourceProviders", "List resource providers")
                .ok(200, Some(list_of("resource_providers", provider()))),
            &s::rps_query(v),
        ),
        Op::new("POST", "/resource_providers", "createResourceProvider", "Create a resource provider")
            .body(s::rp_post(true))
            .ok(200, Some(provider()))
            .link("ShowCreated", "showResourceProvider", "uuid", "$response.body#/uuid")
            .link("InventoriesOfCreated", "replaceInventories", "uuid", "$response.body#/uuid")
            .link("TraitsOfCreated", "replaceProviderTraits", "uuid", "$response.body#/uuid")
            .link("AggregatesOfCreated", "replaceProviderAggregates", "uuid", "$response.body#/uuid")
            .link("DeleteCreated", "deleteResourceProvider", "uuid", "$response.body#/uuid"),
        Op::new("GET", "/resource_providers/{uuid}", "showResourceProvider", "Show a resource provider")
            .param("uuid", uuid())
            .ok(200, Some(provider())),
        Op::new("PUT", "/resource_providers/{uuid}", "updateResourceProvider", "Rename or re-parent a provider")
            .param("uuid", uuid())
            .body(s::rp_put(true))
            .ok(200, Some(provider())),
        Op::new("DELETE", "/resource_providers/{uuid}", "deleteResourceProvider", "Delete a resource provider")
            .param("uuid", uuid())
            .ok(204, None),
        Op::new("GET", "/resource_providers/{uuid}/inventories", "listInventories", "A provider's inventories")
            .param("uuid", uuid())
            .ok(200, Some(inventories())),
        Op::new("POST", "/resource_providers/{uuid}/inventories", "createInventory", "Add one inventory")
            .param("uuid", uuid())
            .body(s::inventory_post())
            .ok(201, Some(inventory())),
        Op::new("PUT", "/resource_providers/{uuid}/inventories", "replaceInventories", "Replace all inventories")
            .param("uuid", uuid())
            .body(s::inventories_put())
            .ok(200, Some(inventories()))
            .link("UsagesAfter", "providerUsages", "uuid", "$request.path.uuid"),
        Op::new("DELETE", "/resource_providers/{uuid}/inventories", "deleteInventories", "Delete all inventories")
            .param("uuid", uuid())
            .ok(204, None),
        Op::new("GET", "/resource_providers/{uuid}/inventories/{resource_class}", "showInventory", "One inventory")
            .param("uuid", uuid())
            .param("resource_class", rc_name.clone())
            .ok(200, Some(inventory())),
        Op::new(
            "PUT",
            "/resource_providers/{uuid}/inventories/{resource_class}",
            "updateInventory",
            "Set one inventory",
        )
        .param("uuid", uuid())
        .param("resource_class", rc_name.clone())
        .body(s::inventory_put_one())
        .ok(200, Some(inventory())),
        Op::new(
            "DELETE",
            "/resource_providers/{uuid}/inventories/{resource_class}",
            "deleteInventory",
            "Drop one inventory",
        )
        .param("uuid", uuid())
        .param("resource_class", rc_name)
        .ok(204, None),
        Op::new("GET", "/resource_providers/{uuid}/usages", "providerUsages", "A provider's usages")
            .param("uuid", uuid())
            .ok(200, Some(with_generation("usages", amounts()))),
        Op::new("GET", "/resource_providers/{uuid}/aggregates", "listProviderAggregates", "A provider's aggregates")
            .param("uuid", uuid())
            .ok(200, Some(with_generation("aggregates", strings()))),
        Op::new("PUT", "/resource_providers/{uuid}/aggregates", "replaceProviderAggregates", "Set its aggregates")
            .param("uuid", uuid())
            .body(s::aggregates_put(true))
            .ok(200, Some(with_generation("aggregates", strings()))),
        Op::new("GET", "/resource_providers/{uuid}/allocations", "providerAllocations", "Allocations against it")
            .param("uuid", uuid())
            .ok(200, Some(with_generation("allocations", json!({"type": "object"})))),
        Op::new("GET", "/resource_providers/{uuid}/traits", "listProviderTraits", "A provider's traits")
            .param("uuid", uuid())
            .ok(200, Some(with_generation("traits", strings()))),
        Op::new("PUT", "/resource_providers/{uuid}/traits", "replaceProviderTraits", "Set its traits")
            .param("uuid", uuid())
            .body(s::traits_put_for_rp())
            .ok(200, Some(with_generation("traits", strings()))),
        Op::new("DELETE", "/resource_providers/{uuid}/traits", "deleteProviderTraits", "Drop its traits")
            .param("uuid", uuid())
            .ok(204, None),
        Op::new("POST", "/allocations", "manageAllocations", "Write several consumers' allocations at once")
            .body(s::allocations_post(v, 1))
            .ok(204, None),
        Op::new("GET", "/allocations/{consumer_uuid}", "showAllocations", "A consumer's allocations")
            .param("consumer_uuid", uuid())
            .ok(200, Some(object(&["allocations"], json!({"allocations": {"type": "object"}})))),
        Op::new("PUT", "/allocations/{consumer_uuid}", "replaceAllocations", "Set a consumer's allocations")
            .param("consumer_uuid", uuid())
            .body(s::allocation_put(v))
            .ok(204, None)
            .link("ShowWritten", "showAllocations", "consumer_uuid", "$request.path.consumer_uuid")
            .link("DeleteWritten", "deleteAllocations", "consumer_uuid", "$request.path.consumer_uuid"),
        Op::new("DELETE", "/allocations/{consumer_uuid}", "deleteAllocations", "Drop a consumer's allocations")
            .param("consumer_uuid", uuid())
            .ok(204, None),
        candidates.ok(200, Some(object(&["allocation_requests", "provider_summaries"], json!({})))),
        query_from(
            Op::new("GET", "/traits", "listTraits", "List traits")
                .ok(200, Some(object(&["traits"], json!({"traits": strings()})))),
            &s::traits_query(),
        ),
        Op::new("GET", "/traits/{name}", "showTrait", "Whether a trait exists")
            .param("name", trait_name.clone())
            .ok(204, None),
        Op::new("PUT", "/traits/{name}", "createTrait", "Create a custom trait")
            .param("name", json!({"type": "string", "pattern": "^CUSTOM_[A-Z0-9_]+$", "maxLength": 255}))
            .ok(201, None)
            .ok(204, None),
        Op::new("DELETE", "/traits/{name}", "deleteTrait", "Delete a custom trait")
            .param("name", trait_name)
            .ok(204, None),
        query_from(
            Op::new("GET", "/usages", "projectUsages", "A project's usages")
                .ok(200, Some(object(&["usages"], json!({"usages": {"type": "object"}})))),
            &s::usages_query(v),
        ),
        Op::new("POST", "/reshaper", "reshape", "Move inventories and allocations in one step")
            .body(s::reshaper(v))
            .ok(204, None),
    ]
}

/// The description served at `/openapi.json` on the Placement port.
pub fn description() -> Value {
    let error = json!({"anyOf": [placement_error(), keystone_error()]});
    let api = Api {
        title: "Quiver Placement API",
        description: "OpenStack Placement, as Quiver serves it, at microversion 1.39.",
        microversion: Some("placement 1.39"),
        error,
    };
    document(&api, operations())
}
