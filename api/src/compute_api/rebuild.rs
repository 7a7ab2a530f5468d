//! Rebuild (Nova's `rebuild` action): the server stays on its host and
//! its guest is built again from an image, the same one or a new one.
//! Nothing is claimed: the server keeps its allocations. With a new image
//! the scheduler checks the host again (Nova's `_nova_check_type =
//! rebuild`): only the filters that look at the image, and the image's
//! required traits against the providers the server allocates from. A
//! host that no longer takes the image fails the rebuild before the guest
//! is touched: ERROR with the No valid host fault, the old image kept, the
//! guest and the allocations as they were (as Nova's conductor leaves it).

use std::collections::BTreeMap;
use std::sync::Arc;

use quiver_compute_agent::protocol::Action;
use serde_json::Value;

use super::ComputeApi;
use super::conductor::{boot_request, catch_up, guest_spec, update};
use super::http::{Ctx, NovaError};
use super::instance_actions::{self, Requester};
use super::records::{Fault, Server, now_iso};

/// What a `rebuild` asks for besides the image.
#[derive(Debug, Default)]
pub struct RebuildRequest {
    pub image_id: String,
    pub name: Option<String>,
    /// Replaces the server's metadata when given.
    pub metadata: Option<BTreeMap<String, String>>,
    /// `Some(None)` clears it (2.19+).
    pub description: Option<Option<String>>,
    /// `Some(None)` clears it (2.54+).
    pub key_name: Option<Option<String>>,
    pub admin_pass: Option<String>,
}

/// Parses the `rebuild` action's body for the request's microversion.
///
/// # Errors
/// A missing `imageRef`, a field the microversion does not know, or a
/// value of the wrong type (400).
pub fn parse(arg: &Value, ctx: &Ctx) -> Result<RebuildRequest, NovaError> {
    let bad = |m: String| NovaError::bad_request(format!("Invalid input for field/attribute rebuild. {m}"));
    let Value::Object(o) = arg else { return Err(bad(format!("Value: {arg}. It must be an object"))) };
    let mut allowed =
        vec!["imageRef", "name", "adminPass", "metadata", "preserve_ephemeral", "OS-DCF:diskConfig", "accessIPv4"];
    allowed.push("accessIPv6");
    if !ctx.at_least(2, 57) {
        allowed.push("personality");
    }
    for (key, since) in [
        ("description", (2, 19)),
        ("key_name", (2, 54)),
        ("user_data", (2, 57)),
        ("trusted_image_certificates", (2, 63)),
        ("hostname", (2, 90)),
    ] {
        if ctx.at_least(since.0, since.1) {
            allowed.push(key);
        }
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("Additional properties are not allowed ('{k}' was unexpected)")));
    }
    let image_id = match o.get("imageRef") {
        Some(Value::String(i)) if !i.trim().is_empty() => {
            i.trim_end_matches('/').rsplit('/').next().unwrap_or(i).to_owned()
        }
        Some(v) => return Err(bad(format!("imageRef: {v} is not a valid image reference"))),
        None => return Err(bad("'imageRef' is a required property".into())),
    };
    let text = |key: &str, max: usize| -> Result<Option<Option<String>>, NovaError> {
        match o.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(Some(s.clone()))),
            Some(v) => Err(bad(format!("{key}: {v} is not a string of at most {max} characters"))),
        }
    };
    let name = match text("name", 255)? {
        Some(Some(n)) if !n.trim().is_empty() => Some(n.trim().to_owned()),
        None => None,
        Some(_) => return Err(bad("name: it must be a non-empty string".into())),
    };
    Ok(RebuildRequest {
        image_id,
        name,
        metadata: super::servers::metadata_field(o.get("metadata"))?,
        description: text("description", 255)?,
        key_name: text("key_name", 255)?,
        admin_pass: text("adminPass", 255)?.flatten(),
    })
}

impl ComputeApi {
    /// Starts rebuilding server `id` (ACTIVE, SHUTOFF or ERROR, on a
    /// host) from `req.image_id`, in the background; the server as the
    /// request left it (REBUILD).
    ///
    /// # Errors
    /// An unknown or inactive image, or one the flavor is too small for
    /// (400); a state that does not allow it (409); a records failure.
    pub fn rebuild(self: &Arc<Self>, id: &str, req: RebuildRequest, by: Requester<'_>) -> Result<Server, NovaError> {
        let (orig_image, orig_state, saved) = {
            let mut r = self.records_mut();
            let mut s = r.servers.get(id).cloned().ok_or_else(|| NovaError::not_found("Instance not found"))?;
            let image = r.images.get(&req.image_id).cloned().ok_or_else(|| {
                NovaError::bad_request(format!("Cannot find image for rebuild: {} could not be found.", req.image_id))
            })?;
            if image.status != "active" {
                return Err(NovaError::bad_request(format!("Image {} is not active.", image.id)));
            }
            if image.min_ram > u64::from(s.flavor.ram) {
                return Err(NovaError::bad_request("Flavor's memory is too small for requested image."));
            }
            if s.flavor.disk > 0 && image.min_disk > u64::from(s.flavor.disk) {
                return Err(NovaError::bad_request("Flavor's disk is too small for requested image."));
            }
            if !matches!(s.vm_state.as_str(), "active" | "stopped" | "error") || s.task_state.is_some() {
                return Err(NovaError::conflict(format!(
                    "Cannot 'rebuild' instance {id} while it is in {}",
                    match &s.task_state {
                        Some(t) => format!("task_state {t}"),
                        None => format!("vm_state {}", s.vm_state),
                    }
                )));
            }
            if s.host.is_none() {
                return Err(NovaError::conflict(format!("Cannot 'rebuild' instance {id}: it is not on a host")));
            }
            let orig_image = s.image_id.replace(req.image_id.clone());
            let orig_state = s.vm_state.clone();
            if let Some(n) = req.name {
                s.name = n;
            }
            if let Some(m) = req.metadata {
                s.metadata = m;
            }
            if let Some(d) = req.description {
                s.description = d;
            }
            if let Some(k) = req.key_name {
                s.key_name = k;
            }
            s.task_state = Some("rebuilding".into());
            s.updated = now_iso();
            instance_actions::begin(&mut s, "rebuild", by);
            r.save(&s)?;
            r.put_server(s.clone());
            (orig_image, orig_state, s)
        };
        self.in_flight().insert(id.to_owned());
        let api = Arc::clone(self);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            rebuild_now(&api, &id, orig_image, &orig_state);
            api.in_flight().remove(&id);
        });
        Ok(saved)
    }
}

/// Whether `host` still takes server `s` with its new image: `Err` with
/// Nova's No valid host text when it does not.
fn check_host(api: &ComputeApi, s: &Server, host: &str) -> Result<(), String> {
    let mut st = api.conductor.lock();
    catch_up(&mut st, api)?;
    let req = boot_request(&api.records(), std::slice::from_ref(s));
    let required: Vec<&str> = req
        .image
        .iter()
        .flat_map(|i| &i.properties)
        .filter(|(k, v)| k.starts_with("trait:") && v.as_str() == "required")
        .map(|(k, _)| &k["trait:".len()..])
        .collect();
    let forbidden: Vec<&str> = required
        .iter()
        .copied()
        .filter(|t| req.flavor.extra_specs.get(&format!("trait:{t}")).is_some_and(|v| v == "forbidden"))
        .collect();
    if !forbidden.is_empty() {
        return Err(format!(
            "No valid host was found. Image traits are part of forbidden traits in flavor associated with the server \
             ({}). Either specify a different image during rebuild or create a new server with the specified image and \
             a compatible flavor.",
            forbidden.join(", ")
        ));
    }
    api.placement.with_fleet(|state, fleet| {
        // The traits of the providers the server allocates from.
        let have: Vec<&str> = state
            .consumers
            .get(&s.id)
            .map(|c| c.allocations.as_slice())
            .unwrap_or_default()
            .iter()
            .flat_map(|a| state.provider(a.rp).traits.iter().map(|&t| state.traits.name(t)))
            .collect();
        let missing: Vec<&str> = required.iter().copied().filter(|t| !have.contains(t)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "No valid host was found. Image traits cannot be satisfied by the current resource providers ({} \
                 missing). Either specify a different image during rebuild or create a new server with the specified \
                 image.",
                missing.join(", ")
            ));
        }
        let row = fleet.index_of(host).ok_or_else(|| format!("No valid host was found. Host {host} is not known."))?;
        match st.scheduler().check_rebuild(fleet, &req, row) {
            Ok(None) => Ok(()),
            Ok(Some(filter)) => Err(format!(
                "No valid host was found. The server's host {host} does not take the new image: {filter} rejects it."
            )),
            Err(e) => Err(format!("No valid host was found. {e}")),
        }
    })
}

fn rebuild_now(api: &ComputeApi, id: &str, orig_image: Option<String>, orig_state: &str) {
    let Some(s) = api.records().servers.get(id).cloned() else { return };
    let Some(host) = s.host.clone() else { return };
    if s.image_id != orig_image
        && let Err(message) = check_host(api, &s, &host)
    {
        tracing::warn!(server = id, %host, %message, "rebuild refused");
        update(api, id, |x| {
            x.image_id = orig_image.clone();
            x.vm_state = "error".into();
            x.task_state = None;
            instance_actions::event(x, "rebuild", "rebuild_server", None, Err(&message));
            x.fault = Some(Fault { code: 500, message: message.clone(), details: String::new(), created: now_iso() });
        });
        return;
    }
    update(api, id, |x| {
        instance_actions::event(x, "rebuild", "rebuild_server", None, Ok(()));
        x.task_state = Some("rebuild_spawning".into());
    });
    // The compute side: the old guest goes, the new one is built from the
    // image in the same place, and a server that was SHUTOFF stays so.
    let result = match api.agent(&host) {
        Some(agent) => agent
            .delete(&host, id)
            .map_err(|e| e.to_string())
            .and_then(|()| agent.build(&host, &guest_spec(api, &s)).map_err(|e| e.to_string()))
            .and_then(|g| {
                if orig_state == "stopped" {
                    agent.action(&host, id, Action::Stop).map_err(|e| e.to_string())
                } else {
                    Ok(g)
                }
            }),
        None => Err(format!("no agent is connected for host {host}")),
    };
    update(api, id, |x| {
        x.task_state = None;
        match &result {
            Ok(g) => {
                x.vm_state = if orig_state == "stopped" { "stopped" } else { "active" }.into();
                x.power_state = g.state.code();
                x.launched_at = Some(now_iso());
                x.fault = None;
                instance_actions::event(x, "rebuild", "compute_rebuild_instance", Some(&host), Ok(()));
            }
            Err(e) => {
                x.vm_state = "error".into();
                x.power_state = 0;
                instance_actions::event(x, "rebuild", "compute_rebuild_instance", Some(&host), Err(e));
                x.fault = Some(Fault { code: 500, message: e.clone(), details: String::new(), created: now_iso() });
            }
        }
    });
}
