//! /traits[/{name}] and /resource_providers/{uuid}/traits.

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use super::schemas;

const INVALID_TRAIT: &str = "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"";

pub fn list(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.check_accept()?;
    req.authorize("placement:traits:list")?;
    req.validate_query(&schemas::traits_query())?;
    let name = req.q("name").map(String::from);
    if let Some(n) = &name
        && !n.contains(':')
    {
        return Err(ApiError::bad_request(format!(
            "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{n}\""
        )));
    }
    let associated = match req.q("associated") {
        None => None,
        Some(a) => match a.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                return Err(ApiError::bad_request(
                    "The query parameter \"associated\" only accepts \"true\" or \"false\"",
                ));
            }
        },
    };
    let (names, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let name = name.as_deref().filter(|n| n.starts_with("in:") || n.starts_with("startswith:"));
        let ids = s.list_traits(name, associated)?;
        let last =
            ids.iter().map(|&t| s.traits.updated_at[t as usize]).max().unwrap_or_else(quiver_placement::model::now);
        Ok((ids.iter().map(|&t| s.traits.name(t).to_string()).collect::<Vec<_>>(), last))
    })?;
    Ok(Resp::json(200, &json!({"traits": names})).cache(req, last))
}

pub fn show(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.authorize("placement:traits:show")?;
    let created = req.api.placement.read(|s| s.traits.get(name).map(|t| s.traits.created_at[t as usize]));
    let Some(created) = created else {
        return Err(ApiError::not_found(format!("No such trait(s): {name}.")));
    };
    Ok(Resp::empty(204).cache(req, created))
}

pub fn put(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.authorize("placement:traits:update")?;
    if schemas::validate(&schemas::custom_trait(), &Value::String(name.to_string())).is_err() {
        return Err(ApiError::bad_request(INVALID_TRAIT));
    }
    let (created, at) = req.api.placement.write(|s| {
        let created = s.ensure_trait(name);
        let t = s.traits.get(name).expect("ensured");
        Ok((created, s.traits.created_at[t as usize]))
    })?;
    Ok(Resp::empty(if created { 201 } else { 204 })
        .header("location", req.url(&format!("/traits/{name}")))
        .cache(req, at))
}

pub fn delete(req: &mut Req, name: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.authorize("placement:traits:delete")?;
    req.api.placement.write(|s| s.delete_trait(name))?;
    Ok(Resp::empty(204))
}

fn provider_traits(req: &Req, uuid: &str, missing: impl Fn() -> ApiError) -> Result<(Value, i64), ApiError> {
    req.api.placement.read(|s| {
        let p = s.provider_by_uuid(uuid).ok_or_else(&missing)?;
        let names: Vec<&str> = p.traits.iter().map(|&t| s.traits.name(t)).collect();
        let last = p
            .traits
            .iter()
            .map(|&t| s.traits.updated_at[t as usize])
            .max()
            .unwrap_or_else(quiver_placement::model::now);
        Ok((json!({"traits": names, "resource_provider_generation": p.generation}), last))
    })
}

pub fn for_provider(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.check_accept()?;
    req.authorize("placement:resource_providers:traits:list")?;
    let (v, last) = provider_traits(req, uuid, || {
        ApiError::not_found(format!(
            "No resource provider with uuid {uuid} found: No resource provider with uuid {uuid} found"
        ))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn set_for_provider(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.require_json()?;
    req.authorize("placement:resource_providers:traits:update")?;
    let data = req.json_body(&schemas::traits_put_for_rp())?;
    let generation = data["resource_provider_generation"].as_i64().unwrap_or(-1);
    let names: Vec<String> = data["traits"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    req.api.placement.write(|s| s.set_provider_traits(uuid, generation, &names))?;
    let (v, last) =
        provider_traits(req, uuid, || ApiError::not_found(format!("No resource provider with uuid {uuid} found")))?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn delete_for_provider(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_version((1, 6))?;
    req.authorize("placement:resource_providers:traits:delete")?;
    req.api.placement.write(|s| s.delete_provider_traits(uuid))?;
    Ok(Resp::empty(204))
}
