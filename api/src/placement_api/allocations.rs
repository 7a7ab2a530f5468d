//! /allocations, /allocations/{consumer_uuid} and
//! /resource_providers/{uuid}/allocations.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{ApiError, Req, Resp};
use super::schemas;
use quiver_placement::ops::{AllocationWriteKind, ConsumerWrite};

pub fn for_consumer(req: &mut Req, consumer: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:allocations:list")?;
    let version = req.version;
    let (v, last) = req.api.placement.read(|s| {
        let mut allocs = serde_json::Map::new();
        let Some(c) = s.consumers.get(consumer) else {
            return (json!({"allocations": {}}), quiver_placement::model::now());
        };
        let mut by_rp: BTreeMap<&str, (serde_json::Map<String, Value>, i64)> = BTreeMap::new();
        for a in &c.allocations {
            let p = s.provider(a.rp);
            let e = by_rp.entry(p.uuid.as_str()).or_insert_with(|| (serde_json::Map::new(), p.generation));
            e.0.insert(s.class_name(a.class).to_string(), json!(a.used));
        }
        for (uuid, (res, generation)) in by_rp {
            allocs.insert(uuid.to_string(), json!({"resources": res, "generation": generation}));
        }
        let mut v = json!({"allocations": allocs});
        if !c.allocations.is_empty() && version >= (1, 12) {
            v["project_id"] = json!(c.project);
            v["user_id"] = json!(c.user);
            if version >= (1, 28) {
                v["consumer_generation"] = json!(c.generation);
            }
            if version >= (1, 38) {
                v["consumer_type"] = json!(c.consumer_type.as_deref().unwrap_or("unknown"));
            }
        }
        (v, c.updated_at.max(c.created_at))
    });
    Ok(Resp::json(200, &v).cache(req, last))
}

pub fn for_provider(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:allocations:list")?;
    let version = req.version;
    let (v, last) = req.api.placement.read(|s| -> Result<_, ApiError> {
        let p = s.provider_by_uuid(uuid).ok_or_else(|| {
            ApiError::not_found(format!(
                "Resource provider '{uuid}' not found: No resource provider with uuid {uuid} found"
            ))
        })?;
        let mut allocs = serde_json::Map::new();
        let mut last = 0;
        for (consumer, lines) in s.allocations_on(p.id) {
            let c = &s.consumers[consumer];
            last = last.max(c.updated_at);
            let res: serde_json::Map<String, Value> =
                lines.iter().map(|a| (s.class_name(a.class).to_string(), json!(a.used))).collect();
            let mut e = json!({"resources": res});
            if version >= (1, 28) {
                e["consumer_generation"] = json!(c.generation);
            }
            allocs.insert(consumer.to_string(), e);
        }
        if last == 0 {
            last = quiver_placement::model::now();
        }
        Ok((json!({"allocations": allocs, "resource_provider_generation": p.generation}), last))
    })?;
    Ok(Resp::json(200, &v).cache(req, last))
}

fn resources_of(v: &Value) -> Vec<(String, i64)> {
    v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0))).collect()).unwrap_or_default()
}

/// One consumer's entry of a validated body (1.12+ dict form).
pub fn consumer_write(consumer: &str, data: &Value, version: (u32, u32)) -> ConsumerWrite {
    let allocations = data["allocations"]
        .as_object()
        .map(|m| m.iter().map(|(rp, v)| (rp.clone(), resources_of(&v["resources"]))).collect())
        .unwrap_or_default();
    ConsumerWrite {
        consumer: consumer.to_string(),
        project: data.get("project_id").and_then(Value::as_str).map(String::from),
        user: data.get("user_id").and_then(Value::as_str).map(String::from),
        generation_check: (version >= (1, 28)).then(|| data.get("consumer_generation").and_then(Value::as_i64)),
        consumer_type: if version >= (1, 38) {
            data.get("consumer_type").and_then(Value::as_str).map(String::from)
        } else {
            None
        },
        allocations,
    }
}

pub fn put(req: &mut Req, consumer: &str) -> Result<Resp, ApiError> {
    req.require_json()?;
    req.authorize("placement:allocations:update")?;
    let Ok(parsed) = uuid::Uuid::parse_str(consumer) else {
        return Err(ApiError::bad_request(format!("Malformed consumer_uuid: {consumer}")));
    };
    let consumer = parsed.hyphenated().to_string();
    let version = req.version;
    let data = req.json_body(&schemas::allocation_put(version))?;
    let mut w = if version >= (1, 12) {
        consumer_write(&consumer, &data, version)
    } else {
        let allocations = data["allocations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["resource_provider"]["uuid"].as_str().unwrap_or_default().to_string(),
                            resources_of(&e["resources"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        ConsumerWrite {
            consumer: consumer.clone(),
            project: data.get("project_id").and_then(Value::as_str).map(String::from),
            user: data.get("user_id").and_then(Value::as_str).map(String::from),
            allocations,
            ..Default::default()
        }
    };
    if w.project.is_none() {
        w.user = None;
    }
    req.api.placement.write(|s| s.write_allocations(std::slice::from_ref(&w), AllocationWriteKind::Put))?;
    Ok(Resp::empty(204))
}

pub fn post(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 13))?;
    req.require_json()?;
    req.authorize("placement:allocations:manage")?;
    let version = req.version;
    let data = req.json_body(&schemas::allocations_post(version, 1))?;
    let writes: Vec<ConsumerWrite> =
        data.as_object().map(|m| m.iter().map(|(c, v)| consumer_write(c, v, version)).collect()).unwrap_or_default();
    req.api.placement.write(|s| s.write_allocations(&writes, AllocationWriteKind::Post))?;
    Ok(Resp::empty(204))
}

pub fn delete(req: &mut Req, consumer: &str) -> Result<Resp, ApiError> {
    req.authorize("placement:allocations:delete")?;
    req.api.placement.write(|s| s.delete_allocations(consumer))?;
    Ok(Resp::empty(204))
}
