//! /resource_classes[/{name}].

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use super::schemas;

fn serialize(name: &str) -> Value {
    json!({"name": name, "links": [{"rel": "self", "href": format!("/resource_classes/{name}")}]})
}

pub fn list(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 2))?;
    req.check_accept()?;
    req.authorize("placement:resource_classes:list")?;
    let (out, last) = req.api.placement.read(|s| {
        let ids: Vec<u32> = s.classes.live_ids().collect();
        let last =
            ids.iter().map(|&c| s.classes.updated_at[c as usize]).max().unwrap_or_else(quiver_placement::model::now);
        (ids.iter().map(|&c| serialize(s.class_name(c))).collect::<Vec<_>>(), last)
    });
    Ok(Resp::json(200, &json!({"resource_classes": out})).cache(req, last))
}

pub fn show(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 2))?;
    req.check_accept()?;
    req.authorize("placement:resource_classes:show")?;
    let found = req
        .api
        .placement
        .read(|s| s.classes.get(name).map(|c| s.classes.updated_at[c as usize].max(s.classes.created_at[c as usize])));
    let Some(last) = found else {
        return Err(ApiError::not_found(format!("No such resource class {name}.")));
    };
    Ok(Resp::json(200, &serialize(name)).cache(req, last))
}

pub fn create(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 2))?;
    req.require_json()?;
    req.authorize("placement:resource_classes:create")?;
    let data = req.json_body(&schemas::rc_post())?;
    let name = data["name"].as_str().unwrap_or_default().to_string();
    req.api.placement.write(|s| s.create_class(&name)).map_err(|e| {
        if e.status == 409 {
            ApiError::new(409, format!("Conflicting resource class already exists: {name}"))
        } else {
            e.into()
        }
    })?;
    Ok(Resp::empty(201).header("location", req.url(&format!("/resource_classes/{name}"))))
}

pub fn update(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 2))?;
    if req.version < (1, 7) {
        req.require_json()?;
        req.authorize("placement:resource_classes:update")?;
        let data = req.json_body(&schemas::rc_post())?;
        let new = data["name"].as_str().unwrap_or_default().to_string();
        req.api.placement.write(|s| s.rename_class(name, &new)).map_err(|e| match e.status {
            400 => ApiError::bad_request(format!("Cannot update standard resource class {name}")),
            409 => ApiError::new(409, format!("Resource class already exists: {new}")),
            _ => e.into(),
        })?;
        return Ok(Resp::json(200, &serialize(&new)));
    }
    req.authorize("placement:resource_classes:update")?;
    if let Err(e) = schemas::validate(&schemas::rc_post(), &json!({"name": name})) {
        return Err(ApiError::bad_request(format!("JSON does not validate: {e}")));
    }
    let created = req.api.placement.write(|s| s.ensure_class(name))?;
    let at = req.api.placement.read(|s| s.classes.get(name).map(|c| s.classes.created_at[c as usize])).unwrap_or(0);
    let r =
        Resp::empty(if created { 201 } else { 204 }).header("location", req.url(&format!("/resource_classes/{name}")));
    let _ = at;
    Ok(r)
}

pub fn delete(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 2))?;
    req.authorize("placement:resource_classes:delete")?;
    req.api.placement.write(|s| s.delete_class(name))?;
    Ok(Resp::empty(204))
}
