//! POST /reshaper (1.30+): move inventory and allocations atomically.

use serde_json::Value;

use super::allocations::consumer_write;
use super::http::{ApiError, Req, Resp};
use super::inventories::from_json;
use super::schemas;
use quiver_placement::ops::ReshapeInventory;

pub fn reshape(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 30))?;
    req.require_json()?;
    req.authorize("placement:reshaper:reshape")?;
    let version = req.version;
    let data = req.json_body(&schemas::reshaper(version))?;
    let inventories: Vec<ReshapeInventory> = data["inventories"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(uuid, v)| {
                    let invs = v["inventories"]
                        .as_object()
                        .map(|i| i.iter().map(|(rc, inv)| (rc.clone(), from_json(inv))).collect())
                        .unwrap_or_default();
                    (uuid.clone(), v["resource_provider_generation"].as_i64().unwrap_or(-1), invs)
                })
                .collect()
        })
        .unwrap_or_default();
    let writes: Vec<_> = data["allocations"]
        .as_object()
        .map(|m| m.iter().map(|(c, v): (&String, &Value)| consumer_write(c, v, version)).collect())
        .unwrap_or_default();
    let can_total = version >= (1, 26);
    req.api.placement.write(|s| s.reshape(&inventories, &writes, can_total))?;
    Ok(Resp::empty(204))
}
