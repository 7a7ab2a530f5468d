//! /resource_providers/{uuid}/aggregates.

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use super::schemas;

fn payload(req: &Req, uuid: &str) -> Result<Value, ApiError> {
    let version = req.version;
    req.api.placement.read(|s| {
        let p = s.get_provider(uuid)?;
        let mut v = json!({"aggregates": s.aggregate_uuids(p)});
        if version >= (1, 19) {
            v["resource_provider_generation"] = json!(p.generation);
        }
        Ok(v)
    })
}

pub fn list(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.require_version((1, 1))?;
    req.authorize("placement:resource_providers:aggregates:list")?;
    Ok(Resp::json(200, &payload(req, uuid)?).cache_now(req))
}

pub fn set(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.require_version((1, 1))?;
    req.authorize("placement:resource_providers:aggregates:update")?;
    let v19 = req.version >= (1, 19);
    req.api.placement.read(|s| s.get_provider(uuid).map(|_| ()))?;
    let data = req.json_body(&schemas::aggregates_put(v19))?;
    let (list, generation) =
        if v19 { (data["aggregates"].clone(), data["resource_provider_generation"].as_i64()) } else { (data, None) };
    let aggs: Vec<String> =
        list.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
    req.api.placement.write(|s| s.set_provider_aggregates(uuid, &aggs, generation))?;
    let mut v = payload(req, uuid)?;
    v["aggregates"] = json!(aggs);
    Ok(Resp::json(200, &v).cache_now(req))
}
