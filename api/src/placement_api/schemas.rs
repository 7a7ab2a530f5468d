//! Placement's JSON schemas (placement/schemas/*.py), validated with the
//! `jsonschema` crate; failures read like Python jsonschema's messages
//! ("JSON does not validate: ... Failed validating 'maxLength' ...").

use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::{Value, json};

pub const UUID_PATTERN: &str = "^[0-9a-fA-F-]{36}$";
pub const RC_PATTERN: &str = "^[A-Z0-9_]+$";
pub const CUSTOM_PATTERN: &str = "^CUSTOM_[A-Z0-9_]+$";
pub const CONSUMER_TYPE_GET_PATTERN: &str = "^[A-Z0-9_]+$|^all|^unknown$";
pub const GROUP_PAT: &str = "[1-9][0-9]*";
pub const GROUP_PAT_1_33: &str = "[a-zA-Z0-9_-]{1,64}";
pub const MAX_INT: i64 = 2_147_483_647;
/// `db_const.SQL_SP_FLOAT_MAX`.
pub const SQL_SP_FLOAT_MAX: f64 = 3.40282e38;

fn merge(mut base: Value, path: &[&str], key: &str, value: Value) -> Value {
    let mut cur = &mut base;
    for p in path {
        cur = cur.get_mut(*p).expect("schema path");
    }
    cur[key] = value;
    base
}

fn with_required(mut base: Value, add: &[&str], remove: &[&str]) -> Value {
    let req = base["required"].as_array_mut().expect("required list");
    req.retain(|v| !remove.contains(&v.as_str().unwrap_or("")));
    for a in add {
        req.push(json!(a));
    }
    base
}

pub fn rp_post(v14: bool) -> Value {
    let mut s = json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 200}, "uuid": {"type": "string", "format": "uuid"}},
        "required": ["name"], "additionalProperties": false
    });
    if v14 {
        s = merge(
            s,
            &["properties"],
            "parent_provider_uuid",
            json!({"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}),
        );
    }
    s
}

pub fn rp_put(v14: bool) -> Value {
    let mut s = rp_post(v14);
    s["properties"].as_object_mut().expect("obj").remove("uuid");
    s
}

fn inventory_base() -> Value {
    let int = |min: i64| json!({"type": "integer", "maximum": MAX_INT, "minimum": min});
    json!({
        "type": "object",
        "properties": {
            "resource_provider_generation": {"type": "integer"},
            "total": int(1), "reserved": int(0), "min_unit": int(1), "max_unit": int(1), "step_size": int(1),
            "allocation_ratio": {"type": "number", "maximum": SQL_SP_FLOAT_MAX}
        },
        "required": ["total", "resource_provider_generation"],
        "additionalProperties": false
    })
}

pub fn inventory_put_one() -> Value {
    inventory_base()
}

pub fn inventory_post() -> Value {
    let s =
        merge(inventory_base(), &["properties"], "resource_class", json!({"type": "string", "pattern": RC_PATTERN}));
    with_required(s, &["resource_class"], &["resource_provider_generation"])
}

pub fn inventories_put() -> Value {
    let record = with_required(inventory_base(), &[], &["resource_provider_generation"]);
    json!({
        "type": "object",
        "properties": {
            "resource_provider_generation": {"type": "integer"},
            "inventories": {"type": "object", "patternProperties": {RC_PATTERN: record}}
        },
        "required": ["resource_provider_generation", "inventories"],
        "additionalProperties": false
    })
}

pub fn aggregates_put(v19: bool) -> Value {
    let list = json!({"type": "array", "items": {"type": "string", "format": "uuid"}, "uniqueItems": true});
    if !v19 {
        return list;
    }
    json!({
        "type": "object",
        "properties": {"aggregates": list, "resource_provider_generation": {"type": "integer"}},
        "required": ["aggregates", "resource_provider_generation"],
        "additionalProperties": false
    })
}

pub fn traits_put_for_rp() -> Value {
    json!({
        "type": "object",
        "properties": {
            "traits": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}},
            "resource_provider_generation": {"type": "integer"}
        },
        "required": ["traits", "resource_provider_generation"],
        "additionalProperties": false
    })
}

pub fn custom_trait() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": CUSTOM_PATTERN})
}

pub fn rc_post() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": CUSTOM_PATTERN, "maxLength": 255}},
        "required": ["name"], "additionalProperties": false
    })
}

fn resources_schema() -> Value {
    json!({"type": "object", "minProperties": 1,
           "patternProperties": {RC_PATTERN: {"type": "integer", "minimum": 1}},
           "additionalProperties": false})
}

fn id_string() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255})
}

/// PUT /allocations/{consumer} per microversion.
pub fn allocation_put(v: (u32, u32)) -> Value {
    if v < (1, 12) {
        let mut s = json!({
            "type": "object",
            "properties": {"allocations": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "properties": {
                    "resource_provider": {"type": "object", "properties": {"uuid": {"type": "string", "format": "uuid"}},
                                          "additionalProperties": false, "required": ["uuid"]},
                    "resources": resources_schema()
                },
                "required": ["resource_provider", "resources"], "additionalProperties": false
            }}},
            "required": ["allocations"], "additionalProperties": false
        });
        if v >= (1, 8) {
            s["properties"]["project_id"] = id_string();
            s["properties"]["user_id"] = id_string();
            s = with_required(s, &["project_id", "user_id"], &[]);
        }
        return s;
    }
    let mut s = deletable_allocations(if v >= (1, 28) { 0 } else { 1 });
    if v >= (1, 28) {
        s = consumer_generation(s);
    }
    if v >= (1, 34) {
        s["properties"]["mappings"] = mappings_schema();
    }
    if v >= (1, 38) {
        s = consumer_type(s);
    }
    s
}

fn deletable_allocations(min_props: u64) -> Value {
    json!({
        "type": "object",
        "properties": {
            "allocations": {"type": "object", "minProperties": min_props, "patternProperties": {UUID_PATTERN: {
                "type": "object",
                "properties": {"generation": {"type": "integer"}, "resources": resources_schema()},
                "required": ["resources"], "additionalProperties": false
            }}, "additionalProperties": false},
            "project_id": id_string(),
            "user_id": id_string()
        },
        "additionalProperties": false,
        "required": ["allocations", "project_id", "user_id"]
    })
}

fn consumer_generation(s: Value) -> Value {
    let s = merge(
        s,
        &["properties"],
        "consumer_generation",
        json!({"type": ["integer", "null"], "additionalProperties": false}),
    );
    with_required(s, &["consumer_generation"], &[])
}

fn consumer_type(s: Value) -> Value {
    let s = merge(
        s,
        &["properties"],
        "consumer_type",
        json!({"type": "string", "pattern": RC_PATTERN, "minLength": 1, "maxLength": 255}),
    );
    with_required(s, &["consumer_type"], &[])
}

fn mappings_schema() -> Value {
    json!({"type": "object", "minProperties": 1, "patternProperties": {
        format!("^{GROUP_PAT_1_33}$"): {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uuid"}}
    }})
}

/// POST /allocations (1.13+) and the reshaper's `allocations`.
pub fn allocations_post(v: (u32, u32), min_props: u64) -> Value {
    let mut per = deletable_allocations(0);
    if v >= (1, 28) {
        per = consumer_generation(per);
    }
    if v >= (1, 34) {
        per["properties"]["mappings"] = mappings_schema();
    }
    if v >= (1, 38) {
        per = consumer_type(per);
    }
    json!({"type": "object", "minProperties": min_props, "additionalProperties": false,
           "patternProperties": {UUID_PATTERN: per}})
}

pub fn reshaper(v: (u32, u32)) -> Value {
    let alloc_v = if v >= (1, 38) {
        v
    } else if v >= (1, 34) {
        (1, 34)
    } else {
        (1, 28)
    };
    json!({
        "type": "object",
        "properties": {
            "inventories": {"type": "object", "patternProperties": {UUID_PATTERN: inventories_put()},
                            "minProperties": 1, "additionalProperties": false},
            "allocations": allocations_post(alloc_v, 0)
        },
        "required": ["inventories", "allocations"],
        "additionalProperties": false
    })
}

// ----- query-string schemas ----------------------------------------------------

pub fn rps_query(v: (u32, u32)) -> Value {
    let mut props = json!({"name": {"type": "string"}, "uuid": {"type": "string", "format": "uuid"}});
    if v >= (1, 3) {
        props["member_of"] = json!({"type": "string"});
    }
    if v >= (1, 4) {
        props["resources"] = json!({"type": "string"});
    }
    if v >= (1, 14) {
        props["in_tree"] = json!({"type": "string", "format": "uuid"});
    }
    if v >= (1, 18) {
        props["required"] = json!({"type": "string"});
    }
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

pub fn traits_query() -> Value {
    json!({"type": "object", "properties": {"name": {"type": "string"}, "associated": {"type": "string"}},
           "additionalProperties": false})
}

pub fn usages_query(v: (u32, u32)) -> Value {
    let mut s = json!({
        "type": "object",
        "properties": {"project_id": id_string(), "user_id": id_string()},
        "required": ["project_id"], "additionalProperties": false
    });
    if v >= (1, 38) {
        s["properties"]["consumer_type"] =
            json!({"type": "string", "pattern": CONSUMER_TYPE_GET_PATTERN, "minLength": 1, "maxLength": 255});
    }
    s
}

pub fn candidates_query(v: (u32, u32)) -> Value {
    let limit = json!({"type": ["integer", "string"], "pattern": "^[1-9][0-9]*$", "minimum": 1, "minLength": 1});
    if v < (1, 25) {
        let mut props = json!({"resources": {"type": "string"}});
        if v >= (1, 16) {
            props["limit"] = limit;
        }
        if v >= (1, 17) {
            props["required"] = json!({"type": ["string"]});
        }
        if v >= (1, 21) {
            props["member_of"] = json!({"type": ["string"]});
        }
        return json!({"type": "object", "properties": props, "required": ["resources"], "additionalProperties": false});
    }
    let pat = if v >= (1, 33) { GROUP_PAT_1_33 } else { GROUP_PAT };
    let mut kinds = vec!["resources", "required", "member_of"];
    if v >= (1, 31) {
        kinds.push("in_tree");
    }
    let mut pattern_props = serde_json::Map::new();
    for k in kinds {
        pattern_props.insert(format!("^{k}({pat})?$"), json!({"type": "string"}));
    }
    let mut props = json!({"limit": limit, "group_policy": {"type": "string", "enum": ["none", "isolate"]}});
    if v >= (1, 35) {
        props["root_required"] = json!({"type": ["string"]});
    }
    if v >= (1, 36) {
        props["same_subtree"] = json!({"type": ["string"]});
    }
    json!({"type": "object", "properties": props, "patternProperties": pattern_props, "additionalProperties": false})
}

// ----- validation ----------------------------------------------------------------

fn uuid_format(s: &str) -> bool {
    quiver_placement::request::is_uuid_like(s)
}

/// Compiles `schema` (cached per distinct schema text) and validates.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    static CACHE: LazyLock<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Validator>>>> =
        LazyLock::new(Default::default);
    let key = schema.to_string();
    let validator = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&key) {
            Some(v) => v.clone(),
            None => {
                let v = jsonschema::options()
                    .should_validate_formats(true)
                    .with_format("uuid", uuid_format)
                    .build(schema)
                    .map_err(|e| format!("invalid schema: {e}"))?;
                let v = std::sync::Arc::new(v);
                cache.insert(key, v.clone());
                v
            }
        }
    };
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(err) => {
            let schema_path: Vec<&str> = err.schema_path.as_str().split('/').filter(|s| !s.is_empty()).collect();
            let keyword = schema_path.last().copied().unwrap_or("").to_string();
            let py_path = |segs: &[&str]| -> String {
                segs.iter()
                    .map(|s| if s.parse::<u64>().is_ok() { format!("[{s}]") } else { format!("['{s}']") })
                    .collect()
            };
            let instance_path: Vec<&str> = err.instance_path.as_str().split('/').filter(|s| !s.is_empty()).collect();
            Err(format!(
                "{}\n\nFailed validating '{keyword}' in schema{}:\n    {{...}}\n\nOn instance{}:\n    {}",
                python_message(&err, schema, &schema_path),
                py_path(&schema_path[..schema_path.len().saturating_sub(1)]),
                py_path(&instance_path),
                err.instance
            ))
        }
    }
}

/// The message Python's jsonschema gives for the same failure, where the
/// wording differs from the Rust crate's.
fn python_message(err: &jsonschema::ValidationError, schema: &Value, schema_path: &[&str]) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let inst = py_repr(&err.instance);
    match &err.kind {
        K::Required { property } => format!("{} is a required property", py_repr(property)),
        K::AdditionalProperties { unexpected } if has_pattern_properties(schema, schema_path) => {
            let mut names: Vec<String> = unexpected.iter().map(|u| format!("'{u}'")).collect();
            names.sort();
            let verb = if names.len() == 1 { "does" } else { "do" };
            let parent = schema_at(schema, &schema_path[..schema_path.len().saturating_sub(1)]);
            let patterns: Vec<String> = parent
                .and_then(|p| p.get("patternProperties"))
                .and_then(Value::as_object)
                .map(|m| m.keys().map(|k| format!("'{k}'")).collect())
                .unwrap_or_default();
            format!("{} {verb} not match any of the regexes: {}", names.join(", "), patterns.join(", "))
        }
        K::AdditionalProperties { unexpected } => {
            let names: Vec<String> = unexpected.iter().map(|u| format!("'{u}'")).collect();
            let verb = if names.len() == 1 { "was" } else { "were" };
            format!("Additional properties are not allowed ({} {verb} unexpected)", names.join(", "))
        }
        K::Type { .. } => {
            let ty = err.schema_path.as_str().to_string();
            let _ = ty;
            format!("{inst} is not of type {}", type_names(err))
        }
        K::MinProperties { .. } => format!("{inst} does not have enough properties"),
        K::Minimum { limit } => format!("{inst} is less than the minimum of {limit}"),
        K::Maximum { limit } => format!("{inst} is greater than the maximum of {limit}"),
        K::MinLength { .. } => format!("{inst} is too short"),
        K::MaxLength { .. } => format!("{inst} is too long"),
        K::Pattern { pattern } => format!("{inst} does not match '{pattern}'"),
        K::MinItems { .. } => format!("{inst} is too short"),
        K::Format { format } => format!("{inst} is not a '{format}'"),
        K::Enum { options } => format!("{inst} is not one of {}", py_repr(options)),
        K::UniqueItems => format!("{inst} has non-unique elements"),
        K::AnyOf { .. } => format!("{inst} is not valid under any of the given schemas"),
        _ => err.to_string(),
    }
}

fn type_names(err: &jsonschema::ValidationError) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    if let K::Type { kind } = &err.kind {
        return match kind {
            TypeKind::Single(t) => format!("'{t}'"),
            TypeKind::Multiple(ts) => {
                let names: Vec<String> = ts.iter().map(|t| format!("'{t}'")).collect();
                names.join(", ")
            }
        };
    }
    String::new()
}

/// Python's `repr` of a JSON value, near enough for messages.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("'{k}': {}", py_repr(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

fn schema_at<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = schema;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m.get(*seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn has_pattern_properties(schema: &Value, schema_path: &[&str]) -> bool {
    schema_at(schema, &schema_path[..schema_path.len().saturating_sub(1)])
        .is_some_and(|p| p.get("patternProperties").is_some())
}
