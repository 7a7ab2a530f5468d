//! /resource_providers/{uuid}/usages and /usages.

use serde_json::json;

use super::http::{ApiError, Req, Resp};
use super::schemas;

pub fn for_provider(req: &mut Req, uuid: &str) -> Result<Resp, ApiError> {
    req.check_accept()?;
    req.authorize("placement:resource_providers:usages")?;
    let v = req.api.placement.read(|s| -> Result<_, ApiError> {
        let p = s.provider_by_uuid(uuid).ok_or_else(|| {
            ApiError::not_found(format!(
                "No resource provider with uuid {uuid} found: No resource provider with uuid {uuid} found"
            ))
        })?;
        let mut usages = serde_json::Map::new();
        for r in &p.inventories {
            usages.insert(s.class_name(r.class).to_string(), json!(r.used));
        }
        Ok(json!({"resource_provider_generation": p.generation, "usages": usages}))
    })?;
    Ok(Resp::json(200, &v).cache_now(req))
}

pub fn totals(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 9))?;
    req.check_accept()?;
    let project = req.q("project_id").map(String::from);
    req.authorize_for("placement:usages", project.as_deref())?;
    let v38 = req.version >= (1, 38);
    req.validate_query(&schemas::usages_query(req.version))?;
    let project = project.unwrap_or_default();
    let user = req.q("user_id").map(String::from);
    let ctype = req.q("consumer_type").map(String::from);
    let by_type = req
        .api
        .placement
        .read(|s| s.total_usages(&project, user.as_deref(), if v38 { ctype.as_deref() } else { None }));
    let usages = if v38 {
        let mut out = serde_json::Map::new();
        let all = ctype.as_deref() == Some("all");
        if all {
            // One "all" entry: sums over every type; consumers counted once.
            let mut sums = serde_json::Map::new();
            let count = req.api.placement.read(|s| {
                s.consumers
                    .values()
                    .filter(|c| c.project == project && user.as_deref().is_none_or(|u| u == c.user))
                    .count()
            });
            for per in by_type.values() {
                for (rc, (used, _)) in per {
                    let cur = sums.get(rc).and_then(|v| v.as_i64()).unwrap_or(0);
                    sums.insert(rc.clone(), json!(cur + used));
                }
            }
            if count > 0 {
                sums.insert("consumer_count".into(), json!(count));
                out.insert("all".into(), serde_json::Value::Object(sums));
            }
        } else {
            for (ty, per) in &by_type {
                let mut m = serde_json::Map::new();
                for (rc, (used, _)) in per {
                    m.insert(rc.clone(), json!(used));
                }
                let consumers = req.api.placement.read(|s| {
                    s.consumers
                        .values()
                        .filter(|c| {
                            c.project == project
                                && user.as_deref().is_none_or(|u| u == c.user)
                                && c.consumer_type.as_deref().unwrap_or("unknown") == ty
                        })
                        .count()
                });
                m.insert("consumer_count".into(), json!(consumers));
                out.insert(ty.clone(), serde_json::Value::Object(m));
            }
        }
        serde_json::Value::Object(out)
    } else {
        let mut m = serde_json::Map::new();
        for per in by_type.values() {
            for (rc, (used, _)) in per {
                let cur = m.get(rc).and_then(|v| v.as_i64()).unwrap_or(0);
                m.insert(rc.clone(), json!(cur + used));
            }
        }
        serde_json::Value::Object(m)
    };
    Ok(Resp::json(200, &json!({"usages": usages})).cache_now(req))
}
