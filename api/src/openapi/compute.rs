//! The Compute API subset at microversion 2.91. Nova validates bodies in
//! its handlers; here each body is described by its wrapper (`server`,
//! `flavor`, ...) and the handlers answer a bad inside with a 400.

use serde_json::{Value, json};

use super::{Api, Op, document, list_of, object, placement_error};

fn id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255})
}

fn int_id() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 2_147_483_647})
}

/// `{"key": {...}}` with the inside left to the handler.
fn wrapped(key: &str) -> Value {
    object(&[key], json!({key: {"type": "object"}}))
}

fn wrapped_list(key: &str) -> Value {
    list_of(key, json!({"type": "object"}))
}

/// Most hosts `POST /v1/plan/size` may add (each replay builds the fleet
/// with them).
pub const MAX_ADDED: usize = crate::compute_api::PLAN_MAX_ADDED;

fn list_items(item: Value) -> Value {
    json!({"type": "array", "items": item})
}

/// Every operation.
pub fn operations() -> Vec<Op> {
    vec![
        Op::new("GET", "/", "versions", "The version document").ok(200, Some(wrapped_list("versions"))),
        Op::new("GET", "/v2.1", "version", "The v2.1 version document").ok(200, Some(wrapped("version"))),
        Op::new("GET", "/v2.1/flavors", "listFlavors", "List flavors").ok(200, Some(wrapped_list("flavors"))),
        Op::new("GET", "/v2.1/flavors/detail", "listFlavorsDetail", "List flavors with details")
            .ok(200, Some(wrapped_list("flavors"))),
        Op::new("POST", "/v2.1/flavors", "createFlavor", "Create a flavor (admin)")
            .body(wrapped("flavor"))
            .ok(200, Some(wrapped("flavor")))
            .link("ShowCreated", "showFlavor", "flavor_id", "$response.body#/flavor/id"),
        Op::new("GET", "/v2.1/flavors/{flavor_id}", "showFlavor", "Show a flavor")
            .param("flavor_id", id())
            .ok(200, Some(wrapped("flavor"))),
        Op::new("DELETE", "/v2.1/flavors/{flavor_id}", "deleteFlavor", "Delete a flavor (admin)")
            .param("flavor_id", id())
            .ok(202, None),
        Op::new("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", "listExtraSpecs", "A flavor's extra specs")
            .param("flavor_id", id())
            .ok(200, Some(wrapped("extra_specs"))),
        Op::new("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs", "createExtraSpecs", "Add extra specs (admin)")
            .param("flavor_id", id())
            .body(wrapped("extra_specs"))
            .ok(200, Some(wrapped("extra_specs"))),
        Op::new("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "showExtraSpec", "One extra spec")
            .param("flavor_id", id())
            .param("key", id())
            .ok(200, Some(json!({"type": "object"}))),
        Op::new("PUT", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "updateExtraSpec", "Set one (admin)")
            .param("flavor_id", id())
            .param("key", id())
            .body(json!({"type": "object", "minProperties": 1, "maxProperties": 1}))
            .ok(200, Some(json!({"type": "object"}))),
        Op::new("DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", "deleteExtraSpec", "Drop one (admin)")
            .param("flavor_id", id())
            .param("key", id())
            .ok(200, None),
        Op::new("GET", "/v2.1/servers", "listServers", "List servers").ok(200, Some(wrapped_list("servers"))),
        Op::new("GET", "/v2.1/servers/detail", "listServersDetail", "List servers with details")
            .ok(200, Some(wrapped_list("servers"))),
        Op::new("POST", "/v2.1/servers", "createServer", "Boot a server (or several)")
            .body(wrapped("server"))
            .ok(202, Some(json!({"type": "object"})))
            .link("ShowCreated", "showServer", "server_id", "$response.body#/server/id")
            .link("ActOnCreated", "serverAction", "server_id", "$response.body#/server/id")
            .link("DeleteCreated", "deleteServer", "server_id", "$response.body#/server/id"),
        Op::new("GET", "/v2.1/servers/{server_id}", "showServer", "Show a server")
            .param("server_id", id())
            .ok(200, Some(wrapped("server"))),
        Op::new("DELETE", "/v2.1/servers/{server_id}", "deleteServer", "Delete a server")
            .param("server_id", id())
            .ok(204, None),
        Op::new("POST", "/v2.1/servers/{server_id}/action", "serverAction", "A server action (one key: its name)")
            .param("server_id", id())
            .body(json!({"type": "object", "minProperties": 1, "maxProperties": 1}))
            .ok(200, Some(json!({"type": "object"})))
            .ok(202, None)
            .ok(204, None),
        Op::new("GET", "/v2.1/servers/{server_id}/metadata", "serverMetadata", "A server's metadata")
            .param("server_id", id())
            .ok(200, Some(wrapped("metadata"))),
        Op::new("GET", "/v2.1/servers/{server_id}/os-instance-actions", "listInstanceActions", "A server's actions")
            .param("server_id", id())
            .ok(200, Some(wrapped_list("instanceActions"))),
        Op::new(
            "GET",
            "/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
            "showInstanceAction",
            "One action and its events",
        )
        .param("server_id", id())
        .param("request_id", id())
        .ok(200, Some(wrapped("instanceAction"))),
        Op::new("GET", "/v2.1/servers/{server_id}/migrations", "listServerMigrations", "Live migrations in progress")
            .param("server_id", id())
            .ok(200, Some(wrapped_list("migrations"))),
        Op::new("GET", "/v2.1/servers/{server_id}/migrations/{migration_id}", "showServerMigration", "One of them")
            .param("server_id", id())
            .param("migration_id", int_id())
            .ok(200, Some(wrapped("migration"))),
        Op::new("DELETE", "/v2.1/servers/{server_id}/migrations/{migration_id}", "abortServerMigration", "Abort it")
            .param("server_id", id())
            .param("migration_id", int_id())
            .ok(202, None),
        Op::new(
            "POST",
            "/v2.1/servers/{server_id}/migrations/{migration_id}/action",
            "forceComplete",
            "force_complete",
        )
        .param("server_id", id())
        .param("migration_id", int_id())
        .body(json!({"type": "object", "minProperties": 1, "maxProperties": 1}))
        .ok(202, None),
        Op::new("GET", "/v2.1/os-migrations", "listMigrations", "All migrations (admin)")
            .ok(200, Some(wrapped_list("migrations"))),
        Op::new("GET", "/v2.1/os-server-groups", "listServerGroups", "List server groups")
            .ok(200, Some(wrapped_list("server_groups"))),
        Op::new("POST", "/v2.1/os-server-groups", "createServerGroup", "Create a server group")
            .body(wrapped("server_group"))
            .ok(200, Some(wrapped("server_group")))
            .link("ShowCreated", "showServerGroup", "group_id", "$response.body#/server_group/id"),
        Op::new("GET", "/v2.1/os-server-groups/{group_id}", "showServerGroup", "Show a server group")
            .param("group_id", id())
            .ok(200, Some(wrapped("server_group"))),
        Op::new("DELETE", "/v2.1/os-server-groups/{group_id}", "deleteServerGroup", "Delete a server group")
            .param("group_id", id())
            .ok(204, None),
        Op::new("GET", "/v2.1/os-aggregates", "listAggregates", "List aggregates (admin)")
            .ok(200, Some(wrapped_list("aggregates"))),
        Op::new("POST", "/v2.1/os-aggregates", "createAggregate", "Create an aggregate (admin)")
            .body(wrapped("aggregate"))
            .ok(200, Some(wrapped("aggregate")))
            .link("ShowCreated", "showAggregate", "aggregate_id", "$response.body#/aggregate/id")
            .link("ActOnCreated", "aggregateAction", "aggregate_id", "$response.body#/aggregate/id"),
        Op::new("GET", "/v2.1/os-aggregates/{aggregate_id}", "showAggregate", "Show an aggregate (admin)")
            .param("aggregate_id", int_id())
            .ok(200, Some(wrapped("aggregate"))),
        Op::new("PUT", "/v2.1/os-aggregates/{aggregate_id}", "updateAggregate", "Rename or re-zone it (admin)")
            .param("aggregate_id", int_id())
            .body(wrapped("aggregate"))
            .ok(200, Some(wrapped("aggregate"))),
        Op::new("DELETE", "/v2.1/os-aggregates/{aggregate_id}", "deleteAggregate", "Delete an aggregate (admin)")
            .param("aggregate_id", int_id())
            .ok(200, None),
        Op::new(
            "POST",
            "/v2.1/os-aggregates/{aggregate_id}/action",
            "aggregateAction",
            "add_host, remove_host, set_metadata",
        )
        .param("aggregate_id", int_id())
        .body(json!({"type": "object", "minProperties": 1, "maxProperties": 1}))
        .ok(200, Some(wrapped("aggregate"))),
        Op::new("POST", "/v2.1/os-aggregates/{aggregate_id}/images", "cacheImages", "Pre-cache images (admin)")
            .param("aggregate_id", int_id())
            .body(object(&["cache"], json!({"cache": {"type": "array", "items": {"type": "object"}}})))
            .ok(202, None),
        Op::new("GET", "/v2.1/os-availability-zone", "listZones", "Availability zones")
            .ok(200, Some(wrapped_list("availabilityZoneInfo"))),
        Op::new("GET", "/v2.1/os-availability-zone/detail", "listZonesDetail", "With hosts (admin)")
            .ok(200, Some(wrapped_list("availabilityZoneInfo"))),
        Op::new("GET", "/v2.1/os-hypervisors", "listHypervisors", "Hypervisors (admin)")
            .ok(200, Some(wrapped_list("hypervisors"))),
        Op::new("GET", "/v2.1/os-hypervisors/detail", "listHypervisorsDetail", "With details (admin)")
            .ok(200, Some(wrapped_list("hypervisors"))),
        Op::new("GET", "/v2.1/os-hypervisors/{hypervisor_id}", "showHypervisor", "One hypervisor (admin)")
            .param("hypervisor_id", id())
            .ok(200, Some(wrapped("hypervisor"))),
        Op::new("GET", "/v2.1/os-services", "listServices", "Compute services (admin)")
            .ok(200, Some(wrapped_list("services"))),
        Op::new("PUT", "/v2.1/os-services/{service_id}", "updateService", "Disable, enable, force down (admin)")
            .param("service_id", id())
            .body(json!({"type": "object"}))
            .ok(200, Some(wrapped("service"))),
        Op::new("DELETE", "/v2.1/os-services/{service_id}", "deleteService", "Delete a compute service (admin)")
            .param("service_id", id())
            .ok(204, None),
        Op::new("GET", "/v2.1/os-quota-sets/{project_id}", "showQuotas", "A project's quotas")
            .param("project_id", id())
            .ok(200, Some(wrapped("quota_set"))),
        Op::new("PUT", "/v2.1/os-quota-sets/{project_id}", "updateQuotas", "Set a project's quotas (admin)")
            .param("project_id", id())
            .body(wrapped("quota_set"))
            .ok(200, Some(wrapped("quota_set"))),
        Op::new("GET", "/v2.1/os-quota-sets/{project_id}/defaults", "quotaDefaults", "The default quotas")
            .param("project_id", id())
            .ok(200, Some(wrapped("quota_set"))),
        Op::new("GET", "/v2.1/os-quota-sets/{project_id}/detail", "quotaDetail", "Quotas with usage")
            .param("project_id", id())
            .ok(200, Some(wrapped("quota_set"))),
        Op::new("GET", "/v2.1/limits", "limits", "The caller's limits").ok(200, Some(wrapped("limits"))),
        Op::new("GET", "/v1/fleet", "fleet", "The live fleet as Arrow IPC (admin)").ok(200, None),
        Op::new("POST", "/v1/query", "query", "SQL over the live fleet (admin)")
            .body(object(&["sql"], json!({"sql": {"type": "string"}})))
            .ok(200, None),
        Op::new("POST", "/v1/explain", "explain", "Why a request lands where it does, or nowhere (admin)")
            .body(json!({"type": "object", "additionalProperties": false, "properties": {
                "flavor": {"type": ["string", "null"], "description": "A flavor id or name."},
                "image": {"type": ["string", "null"]},
                "availability_zone": {"type": ["string", "null"]},
                "scheduler_hints": {"type": "object"},
                "num_instances": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
                "server": {"type": ["string", "null"], "description": "An existing server: its RequestSpec."},
                "hosts": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}}}))
            .ok(
                200,
                Some(object(
                    &["hosts", "stages", "decision", "named"],
                    json!({
                        "hosts": {"type": "integer"},
                        "stages": list_items(object(&["kind", "name", "kept"], json!({
                            "kind": {"enum": ["request_filter", "placement", "filter"]},
                            "name": {"type": "string"}, "kept": {"type": "integer"}}))),
                        "decision": object(&["status", "chosen"], json!({"status": {"type": "string"},
                            "chosen": {"type": "array", "items": {"type": "string"}}})),
                        "named": list_items(object(&["host", "verdict", "reason"], json!({
                            "host": {"type": "string"},
                            "verdict": {"enum": ["chosen", "alternate", "passed", "rejected", "unknown"]},
                            "reason": {"type": "string"}}))),
                    }),
                )),
            ),
        Op::new("POST", "/v1/plan/drain", "planDrain", "Where every server on some hosts would go (admin)")
            .body(json!({"type": "object", "additionalProperties": false, "properties": {
                "hosts": {"type": "array", "items": {"type": "string"}},
                "aggregate": {"type": ["string", "null"]},
                "zone": {"type": ["string", "null"]}}}))
            .ok(
                200,
                Some(object(
                    &["sources", "moves", "moved", "stuck", "by_zone", "seconds"],
                    json!({
                        "sources": {"type": "array", "items": {"type": "string"}},
                        "moves": list_items(object(&["instance", "name", "source", "destination", "alternates", "stopped_by"], json!({
                            "instance": {"type": "string"}, "name": {"type": "string"}, "source": {"type": "string"},
                            "destination": {"type": ["string", "null"]},
                            "alternates": {"type": "array", "items": {"type": "string"}},
                            "stopped_by": {"type": ["string", "null"]}}))),
                        "moved": {"type": "integer"}, "stuck": {"type": "integer"},
                        "by_zone": list_items(object(&["name", "hosts", "free", "used_percent"], json!({
                            "name": {"type": "string"}, "hosts": {"type": "integer"},
                            "free": {"type": "object"}, "used_percent": {"type": "object"}}))),
                        "seconds": {"type": "number"},
                    }),
                )),
            ),
        Op::new("POST", "/v1/plan/headroom", "planHeadroom", "How many more servers of each flavor fit (admin)")
            .body(object(&["flavors"], json!({
                "flavors": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
                "limit": {"type": ["integer", "null"], "minimum": 0}})))
            .ok(
                200,
                Some(object(&["flavors"], json!({"flavors": list_items(object(
                    &["flavor", "exact", "naive", "stranded", "stopped_by", "by_zone", "by_aggregate"],
                    json!({"flavor": {"type": "string"}, "exact": {"type": "integer"}, "naive": {"type": "integer"},
                        "stranded": {"type": "integer"}, "stopped_by": {"type": "string"},
                        "by_zone": {"type": "array"}, "by_aggregate": {"type": "array"}}),
                ))}))),
            ),
        Op::new("POST", "/v1/plan/size", "planSize", "Fewest hosts of a shape for a trace to replay with no rejection (admin)")
            .body(object(&["trace_csv"], json!({
                "trace_csv": {"type": "string", "description": "A trace as CSV (the columns of quiver simulate --trace)."},
                "host_shape": {"type": "object", "additionalProperties": false, "properties": {
                    "like": {"type": ["string", "null"]},
                    "vcpus": {"type": ["integer", "null"], "minimum": 0},
                    "memory_mb": {"type": ["integer", "null"], "minimum": 0},
                    "disk_gb": {"type": ["integer", "null"], "minimum": 0}}},
                "max_added": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_ADDED}})))
            .ok(
                200,
                Some(object(
                    &["shape", "fleet_hosts", "requests", "added", "curve", "remaining", "replays", "seconds"],
                    json!({"shape": {"type": "string"}, "fleet_hosts": {"type": "integer"},
                        "requests": {"type": "integer"}, "added": {"type": ["integer", "null"]},
                        "curve": list_items(object(&["added", "rejected", "accepted"], json!({
                            "added": {"type": "integer"}, "rejected": {"type": "integer"}, "accepted": {"type": "integer"}}))),
                        "remaining": {"type": "object"}, "replays": {"type": "integer"}, "seconds": {"type": "number"}}),
                )),
            ),
    ]
}

/// The description served at `/openapi.json` on the Compute port.
pub fn description() -> Value {
    // Nova's `{"itemNotFound": {"code": 404, "message": ...}}` (the key
    // names the fault; keystonemiddleware's `{"error": {...}}` has the same
    // shape), or Placement's for the `/v1/*` calls.
    let nova = json!({"type": "object", "minProperties": 1, "maxProperties": 1,
        "additionalProperties": object(&["code", "message"], json!({"code": {"type": "integer"}, "message": {"type": "string"}}))});
    let error = json!({"anyOf": [nova, placement_error()]});
    let api = Api {
        title: "Quiver Compute API",
        description: "The subset of the OpenStack Compute API Quiver serves, at microversion 2.91.",
        microversion: Some("compute 2.91"),
        error,
    };
    document(&api, operations())
}
