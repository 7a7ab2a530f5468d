//! /resource_providers/{uuid}/inventories[/{resource_class}].

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use super::schemas;
use quiver_placement::model::{Inventory, InventoryRecord, State};

fn serialize(inv: &Inventory) -> Value {
    json!({
        "total": inv.total, "reserved": inv.reserved, "min_unit": inv.min_unit,
        "max_unit": inv.max_unit, "step_size": inv.step_size, "allocation_ratio": inv.allocation_ratio,
    })
}

/// An inventory from a validated body, with Placement's defaults.
pub fn from_json(v: &Value) -> Inventory {
    let d = Inventory::default();
    let int = |k: &str, def: i64| v.get(k).and_then(Value::as_i64).unwrap_or(def);
    Inventory {
        total: int("total", 0),
        reserved: int("reserved", d.reserved),
        min_unit: int("min_unit", d.min_unit),
        max_unit: int("max_unit", d.max_unit),
        step_size: int("step_size", d.step_size),
        allocation_ratio: v.get("allocation_ratio").and_then(Value::as_f64).unwrap_or(d.allocation_ratio),
    }
}

fn all(s: &State, id: u32) -> (Value, i64) {
    let p = s.provider(id);
    let mut invs = serde_json::Map::new();
    let mut last = 0;
    for r in &p.inventories {
        last = last.max(r.updated_at.max(r.created_at));
        invs.insert(s.class_name(r.class).to_string(), serialize(&r.inv));
    }
    if p.inventories.is_empty() {
        last = quiver_placement::model::now();
    }
    (json!({"resource_provider_generation": p.generation, "inventories": invs}), last)
}

fn one(s: &State, id: u32, r: &InventoryRecord) -> Value {
    let mut v = serialize(&r.inv);
    v["resource_provider_generation"] = json!(s.provider(id).generation);
    v
}

pub fn list(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:inventories:list")?;
    let (v, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let p = s.provider_by_uuid(uuid).ok_or_else(|| {
            ApiError::not_found(format!(
                "No resource provider with uuid {uuid} found : No resource provider with uuid {uuid} found"
            ))
        })?;
        Ok(all(s, p.id))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn show(req: &mut Req, uuid: &str, rc: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:inventories:show")?;
    let (v, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let p = s.provider_by_uuid(uuid).ok_or_else(|| {
            ApiError::not_found(format!(
                "No resource provider with uuid {uuid} found : No resource provider with uuid {uuid} found"
            ))
        })?;
        let r = s
            .classes
            .get(rc)
            .and_then(|c| p.inventory(c))
            .ok_or_else(|| ApiError::not_found(format!("No inventory of class {rc} for {uuid}")))?;
        Ok((one(s, p.id, r), r.updated_at.max(r.created_at)))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn create(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:resource_providers:inventories:create")?;
    req.api.placement.read(|s| s.get_provider(uuid).map(|_| ()))?;
    let data = req.json_body(&schemas::inventory_post())?;
    let rc = data["resource_class"].as_str().unwrap_or_default().to_string();
    let inv = from_json(&data);
    let can_total = req.version >= (1, 26);
    let (v, last) = req.api.placement.write(|s| {
        let id = s.add_inventory(uuid, &rc, inv, can_total)?;
        let class = s.classes.get(&rc).expect("just added");
        let r = s.provider(id).inventory(class).expect("just added");
        Ok((one(s, id, r), r.updated_at))
    })?;
    Ok(Resp::json(201, &v)
        .header("location", req.url(&format!("/resource_providers/{uuid}/inventories/{rc}")))
        .cache(req, last))
}

pub fn set_all(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:resource_providers:inventories:update")?;
    req.api.placement.read(|s| s.get_provider(uuid).map(|_| ()))?;
    let data = req.json_body(&schemas::inventories_put())?;
    let generation = data["resource_provider_generation"].as_i64().unwrap_or(-1);
    let invs: Vec<(String, Inventory)> = data["inventories"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        .unwrap_or_default();
    let can_total = req.version >= (1, 26);
    let (v, last) = req.api.placement.write(|s| {
        let id = s.set_inventories(uuid, generation, &invs, can_total)?;
        Ok(all(s, id))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn update(req: &mut Req, uuid: &str, rc: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:resource_providers:inventories:update")?;
    req.api.placement.read(|s| s.get_provider(uuid).map(|_| ()))?;
    let data = req.json_body(&schemas::inventory_put_one())?;
    let generation = data["resource_provider_generation"].as_i64().unwrap_or(-1);
    let inv = from_json(&data);
    let can_total = req.version >= (1, 26);
    let (v, last) = req.api.placement.write(|s| {
        let id = s.update_inventory(uuid, rc, generation, inv, can_total)?;
        let class = s.classes.get(rc).expect("updated");
        let r = s.provider(id).inventory(class).expect("updated");
        Ok((one(s, id, r), r.updated_at))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn delete(req: &mut Req, uuid: &str, rc: &str) -> Result<Resp, ApiError> {
    req.authorize("placement:resource_providers:inventories:delete")?;
    req.api.placement.write(|s| s.delete_inventory(uuid, rc))?;
    Ok(Resp::empty(204))
}

pub fn delete_all(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    if req.version < (1, 5) {
        return Err(ApiError::method_not_allowed("DELETE", &["GET", "POST", "PUT"]));
    }
    req.authorize("placement:resource_providers:inventories:delete")?;
    req.api.placement.write(|s| s.delete_inventories(uuid))?;
    Ok(Resp::empty(204))
}
