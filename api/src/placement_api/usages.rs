//! /resource_providers/{uuid}/usages and /usages.

use std::collections::BTreeMap;

use serde_json::{Value, json};

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
    // Before 1.38, and for consumer_type=all, one sum over every type.
    let merged = || {
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        let mut consumers = 0;
        for (per, count) in by_type.values() {
            consumers += count;
            for (rc, used) in per {
                *sums.entry(rc.clone()).or_default() += used;
            }
        }
        (sums, consumers)
    };
    let with_count = |per: &BTreeMap<String, i64>, count: u64| {
        let mut m: serde_json::Map<String, Value> = per.iter().map(|(rc, used)| (rc.clone(), json!(used))).collect();
        m.insert("consumer_count".into(), json!(count));
        Value::Object(m)
    };
    let usages = if !v38 {
        json!(merged().0)
    } else if ctype.as_deref() == Some("all") {
        let (sums, consumers) = merged();
        if consumers == 0 { json!({}) } else { json!({"all": with_count(&sums, consumers)}) }
    } else {
        let out: serde_json::Map<String, Value> =
            by_type.iter().map(|(ty, (per, count))| (ty.clone(), with_count(per, *count))).collect();
        Value::Object(out)
    };
    Ok(Resp::json(200, &json!({"usages": usages})).cache_now(req))
}
