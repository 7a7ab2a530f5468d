//! /resource_providers and /resource_providers/{uuid}.

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use quiver_placement::model::{Provider, State};
use quiver_placement::ops::ProviderFilters;
use quiver_placement::request;

pub fn serialize(state: &State, p: &Provider, version: (u32, u32)) -> Value {
    let url = format!("/resource_providers/{}", p.uuid);
    let mut links = vec![json!({"rel": "self", "href": url})];
    let mut rels = vec!["inventories", "usages"];
    if version >= (1, 1) {
        rels.push("aggregates");
    }
    if version >= (1, 6) {
        rels.push("traits");
    }
    if version >= (1, 11) {
        rels.push("allocations");
    }
    for rel in rels {
        links.push(json!({"rel": rel, "href": format!("{url}/{rel}")}));
    }
    let mut v = json!({"uuid": p.uuid, "name": p.name, "generation": p.generation, "links": links});
    if version >= (1, 14) {
        v["parent_provider_uuid"] = json!(state.parent_uuid(p));
        v["root_provider_uuid"] = json!(state.root_uuid(p));
    }
    v
}

pub fn list(req: &mut Req) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:list")?;
    req.validate_query(&super::schemas::rps_query(req.version))?;
    let mut f = ProviderFilters::default();
    if req.has_q("member_of") {
        (f.member_of, f.forbidden_aggs) = request::parse_member_of_params(&req.q_all("member_of"), "", req.version)?;
    }
    if req.has_q("required") {
        (f.required, f.forbidden_traits) = request::parse_traits_params(&req.q_all("required"), req.version)?;
    }
    f.uuid = req.q("uuid").map(String::from);
    f.name = req.q("name").map(String::from);
    f.in_tree = req.q("in_tree").map(String::from);
    if let Some(r) = req.q("resources") {
        f.resources = request::parse_resources(r)?;
    }
    let version = req.version;
    let (out, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let ids = s.list_providers(&f)?;
        let mut last = 0;
        let out: Vec<Value> = ids
            .iter()
            .map(|&id| {
                let p = s.provider(id);
                last = last.max(p.last_modified());
                serialize(s, p, version)
            })
            .collect();
        Ok((out, if ids.is_empty() { quiver_placement::model::now() } else { last }))
    })?;
    Ok(Resp::json(200, &json!({"resource_providers": out})).cache(req, last))
}

pub fn show(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:show")?;
    let version = req.version;
    let (v, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let p = s.get_provider(uuid)?;
        Ok((serialize(s, p, version), p.last_modified()))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn create(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:resource_providers:create")?;
    let data = req.json_body(&super::schemas::rp_post(req.version >= (1, 14)))?;
    let name = data["name"].as_str().unwrap_or_default().to_string();
    let uuid = match data.get("uuid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => uuid::Uuid::parse_str(u)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| ApiError::bad_request(format!("Malformed uuid: {u}")))?,
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let parent = data.get("parent_provider_uuid").and_then(Value::as_str).map(String::from);
    if name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Unable to create resource provider \"{name}\", {uuid}: Object action create failed because: name is required"
        )));
    }
    let version = req.version;
    let (v, last) = req.api.placement.write(|s| {
        let id = s.create_provider(uuid.clone(), name, parent)?;
        let p = s.provider(id);
        Ok((serialize(s, p, version), p.last_modified()))
    })?;
    let location = req.url(&format!("/resource_providers/{uuid}"));
    if req.version >= (1, 20) {
        Ok(Resp::json(200, &v).header("location", location).cache(req, last))
    } else {
        Ok(Resp::empty(201).header("location", location))
    }
}

pub fn update(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:resource_providers:update")?;
    req.api.placement.read(|s| s.get_provider(uuid).map(|_| ()))?;
    let data = req.json_body(&super::schemas::rp_put(req.version >= (1, 14)))?;
    let name = data["name"].as_str().unwrap_or_default().to_string();
    let parent = data.get("parent_provider_uuid").map(|v| v.as_str().map(String::from));
    let version = req.version;
    let allow = version >= (1, 37);
    let (v, last) = req.api.placement.write(|s| {
        let id = s.update_provider(uuid, name, parent, allow)?;
        let p = s.provider(id);
        Ok((serialize(s, p, version), p.updated_at))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn delete(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.authorize("placement:resource_providers:delete")?;
    req.api.placement.write(|s| s.delete_provider(uuid))?;
    Ok(Resp::empty(204))
}
