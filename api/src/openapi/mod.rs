//! OpenAPI 3.1 descriptions of the APIs Quiver serves (Placement, the
//! Compute subset, Glance v2 images), served at `/openapi.json` on each
//! port and written into `docs/` (`quiver openapi`). Request bodies reuse
//! the JSON schemas the handlers validate with where they have them; each
//! description is of the newest microversion, which its
//! `OpenStack-API-Version` parameter names.

pub mod compute;
pub mod images;
pub mod placement;

use serde_json::{Map, Value, json};

/// One operation of a description.
#[derive(Debug, Default)]
pub struct Op {
    pub method: &'static str,
    /// `/resource_providers/{uuid}`
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    /// Path parameters' schemas, by name.
    pub params: Vec<(&'static str, Value)>,
    /// Query parameters: name, schema, required.
    pub query: Vec<(String, Value, bool)>,
    pub body: Option<Value>,
    /// The body's media type (default `application/json`).
    pub content_type: Option<&'static str>,
    /// Success statuses and their body schemas (`None`: no body).
    pub ok: Vec<(u16, Option<Value>)>,
    /// Stateful links from the first success status: name, operationId,
    /// parameter name, runtime expression.
    pub links: Vec<(&'static str, &'static str, &'static str, &'static str)>,
}

impl Op {
    pub fn new(method: &'static str, path: &'static str, id: &'static str, summary: &'static str) -> Op {
        Op { method, path, id, summary, ..Op::default() }
    }
    pub fn param(mut self, name: &'static str, schema: Value) -> Op {
        self.params.push((name, schema));
        self
    }
    pub fn query(mut self, name: impl Into<String>, schema: Value, required: bool) -> Op {
        self.query.push((name.into(), schema, required));
        self
    }
    /// A body of another media type (a JSON patch, raw bytes).
    pub fn body_as(mut self, content_type: &'static str, schema: Value) -> Op {
        self.body = Some(schema);
        self.content_type = Some(content_type);
        self
    }
    pub fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self
    }
    pub fn ok(mut self, status: u16, schema: Option<Value>) -> Op {
        self.ok.push((status, schema));
        self
    }
    pub fn link(mut self, name: &'static str, op: &'static str, param: &'static str, expr: &'static str) -> Op {
        self.links.push((name, op, param, expr));
        self
    }
}

/// What differs between the three APIs' documents.
#[derive(Debug)]
pub struct Api {
    pub title: &'static str,
    pub description: &'static str,
    /// The microversion header's value (`placement 1.39`), or none.
    pub microversion: Option<&'static str>,
    /// The schema of every 4xx body.
    pub error: Value,
}

/// A whole OpenAPI 3.1 document.
pub fn document(api: &Api, ops: Vec<Op>) -> Value {
    let mut paths = Map::new();
    for op in ops {
        let mut parameters: Vec<Value> =
            op.params.iter().map(|(n, s)| json!({"name": n, "in": "path", "required": true, "schema": s})).collect();
        parameters
            .extend(op.query.iter().map(|(n, s, r)| json!({"name": n, "in": "query", "required": r, "schema": s})));
        if api.microversion.is_some() {
            parameters.push(json!({"$ref": "#/components/parameters/microversion"}));
        }
        let mut responses = Map::new();
        for (i, (status, schema)) in op.ok.iter().enumerate() {
            let mut r = json!({"description": "success"});
            if let Some(s) = schema {
                r["content"] = json!({"application/json": {"schema": s}});
            }
            if i == 0 && !op.links.is_empty() {
                let mut links = Map::new();
                for (name, target, param, expr) in &op.links {
                    links.insert((*name).to_owned(), json!({"operationId": target, "parameters": {*param: expr}}));
                }
                r["links"] = Value::Object(links);
            }
            responses.insert(status.to_string(), r);
        }
        responses.insert("4XX".into(), json!({"$ref": "#/components/responses/error"}));
        let mut o = json!({"operationId": op.id, "summary": op.summary, "parameters": parameters,
                           "responses": responses});
        if let Some(b) = op.body {
            let media = op.content_type.unwrap_or("application/json");
            o["requestBody"] = json!({"required": true, "content": {media: {"schema": b}}});
        }
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method.to_ascii_lowercase()] = o;
    }
    let mut components = json!({
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
            "description": "A Keystone token (auth_strategy = keystone) or noauth2's `admin` / `user:project`."}},
        "responses": {"error": {"description": "The request was refused (the body says why).",
            "content": {"application/json": {"schema": api.error}}}},
    });
    if let Some(v) = api.microversion {
        components["parameters"] = json!({"microversion": {"name": "OpenStack-API-Version", "in": "header",
            "required": true, "description": "The microversion this description is of.",
            "schema": {"type": "string", "enum": [v]}}});
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": env!("CARGO_PKG_VERSION"), "description": api.description},
        "security": [{"token": []}],
        "paths": paths,
        "components": components,
    })
}

/// An object with these required properties (others allowed).
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// A list of `item` under `key`.
pub fn list_of(key: &str, item: Value) -> Value {
    object(&[key], json!({key: {"type": "array", "items": item}}))
}

/// Placement's `{"errors": [{"status", "title", "detail", "code"}]}` (also
/// the body of Quiver's own `/v1/*` errors).
pub fn placement_error() -> Value {
    object(
        &["errors"],
        json!({"errors": {"type": "array", "items": object(&["status", "title", "detail"],
            json!({"status": {"type": "integer"}, "title": {"type": "string"}, "detail": {"type": "string"},
                   "code": {"type": "string"}, "request_id": {"type": "string"}}))}}),
    )
}

/// Keystone's own 401/503 body (keystonemiddleware's).
pub fn keystone_error() -> Value {
    object(
        &["error"],
        json!({"error": object(&["code", "message"], json!({"code": {"type": "integer"}, "message": {"type": "string"}}))}),
    )
}

/// The three descriptions by name, rendered once.
pub fn rendered(api: &str) -> Option<&'static str> {
    use std::sync::OnceLock;
    static PLACEMENT: OnceLock<String> = OnceLock::new();
    static COMPUTE: OnceLock<String> = OnceLock::new();
    static IMAGES: OnceLock<String> = OnceLock::new();
    let (cell, make): (&OnceLock<String>, fn() -> Value) = match api {
        "placement" => (&PLACEMENT, placement::description),
        "compute" => (&COMPUTE, compute::description),
        "images" => (&IMAGES, images::description),
        _ => return None,
    };
    Some(cell.get_or_init(|| serde_json::to_string_pretty(&make()).unwrap_or_default() + "\n").as_str())
}

/// The names [`rendered`] knows.
pub const APIS: [&str; 3] = ["placement", "compute", "images"];

/// `GET /openapi.json` for axum routers.
pub fn handler(api: &'static str) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone {
    move || {
        use axum::response::IntoResponse;
        let body = rendered(api).unwrap_or("{}");
        std::future::ready(([("content-type", "application/json")], body).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptions_in_docs_are_the_ones_served() {
        for api in APIS {
            let path = format!("{}/../docs/openapi-{api}.json", env!("CARGO_MANIFEST_DIR"));
            let written = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                written == rendered(api).expect("known"),
                "{path} is stale: run `cargo run -p quiver-api -- openapi --out docs`"
            );
        }
    }

    #[test]
    fn every_operation_has_a_unique_id_and_each_link_names_one() {
        for api in APIS {
            let doc: Value = serde_json::from_str(rendered(api).expect("known")).expect("json");
            assert_eq!(doc["openapi"], "3.1.0");
            let mut ids = std::collections::BTreeSet::new();
            let mut targets = Vec::new();
            for (_, item) in doc["paths"].as_object().expect("paths") {
                for (_, op) in item.as_object().expect("item") {
                    assert!(ids.insert(op["operationId"].as_str().expect("id").to_owned()), "{api}: duplicate {op}");
                    for (_, r) in op["responses"].as_object().expect("responses") {
                        for (_, l) in r["links"].as_object().into_iter().flatten() {
                            targets.push(l["operationId"].as_str().expect("target").to_owned());
                        }
                    }
                }
            }
            for t in targets {
                assert!(ids.contains(&t), "{api}: a link to unknown operation {t}");
            }
        }
    }
}
