//! A small image registry with the Glance v2 calls clients use to create,
//! find and inspect images: `/v2/images` (create, list with `name`,
//! `id=in:`, `status`, `visibility`, `limit`/`marker`), show, JSON-patch,
//! delete, and image data upload and download (kept in `DATA/images/`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use md5::Md5;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, empty, reply};
use super::records::{Image, now_iso};

/// Largest image upload accepted (held in memory while hashed).
const MAX_IMAGE_BYTES: usize = 1 << 30;

/// Keys Glance keeps as image fields; any other key is a property.
const CORE: [&str; 9] =
    ["id", "name", "visibility", "protected", "disk_format", "container_format", "min_ram", "min_disk", "tags"];

fn view(i: &Image) -> Value {
    let mut v = json!({
        "id": i.id, "name": i.name, "status": i.status, "visibility": i.visibility, "protected": i.protected,
        "checksum": i.checksum, "size": i.size, "virtual_size": null, "min_ram": i.min_ram, "min_disk": i.min_disk,
        "disk_format": i.disk_format, "container_format": i.container_format, "owner": i.owner,
        "created_at": i.created_at, "updated_at": i.updated_at, "tags": i.tags, "os_hidden": false,
        "os_hash_algo": i.os_hash_value.as_ref().map(|_| "sha512"), "os_hash_value": i.os_hash_value,
        "self": format!("/v2/images/{}", i.id), "file": format!("/v2/images/{}/file", i.id),
        "schema": "/v2/schemas/image",
    });
    for (k, p) in &i.properties {
        v[k] = p.clone();
    }
    v
}

fn not_found(id: &str) -> NovaError {
    NovaError::not_found(format!("No image found with ID {id}"))
}

/// Glance's limits: 255 characters for names, tags and property keys
/// (its columns), `image_tag_quota` and `image_property_quota` (128
/// each), and property values up to 64 KiB.
const MAX_NAME: usize = 255;
const MAX_TAGS: usize = 128;
const MAX_PROPERTIES: usize = 128;
const MAX_PROPERTY_BYTES: usize = 65_535;

/// Applies one image field or property.
fn set_field(i: &mut Image, k: &str, v: &Value) -> Result<(), NovaError> {
    let bad = || NovaError::bad_request(format!("Invalid value for {k}: {v}"));
    let opt_str = |v: &Value| match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= MAX_NAME => Ok(Some(s.clone())),
        _ => Err(bad()),
    };
    match k {
        "id" | "status" | "size" | "checksum" | "owner" | "created_at" | "updated_at" | "self" | "file" | "schema" => {
            return Err(NovaError::forbidden(format!("Attribute '{k}' is read-only.")));
        }
        "name" => i.name = opt_str(v)?,
        "disk_format" => i.disk_format = opt_str(v)?,
        "container_format" => i.container_format = opt_str(v)?,
        "visibility" => match v.as_str() {
            Some(s @ ("public" | "private" | "shared" | "community")) => i.visibility = s.to_owned(),
            _ => return Err(bad()),
        },
        "protected" => i.protected = v.as_bool().ok_or_else(bad)?,
        "min_ram" => i.min_ram = v.as_u64().ok_or_else(bad)?,
        "min_disk" => i.min_disk = v.as_u64().ok_or_else(bad)?,
        "tags" => {
            let tags = v.as_array().ok_or_else(bad)?;
            if tags.len() > MAX_TAGS {
                return Err(NovaError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Maximum number of tags exceeded: {} given, at most {MAX_TAGS}.", tags.len()),
                ));
            }
            if tags.iter().any(|t| t.as_str().is_none_or(|t| t.chars().count() > MAX_NAME)) {
                return Err(bad());
            }
            i.tags = tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect();
        }
        _ => {
            if k.is_empty() || k.chars().count() > MAX_NAME || v.to_string().len() > MAX_PROPERTY_BYTES {
                return Err(bad());
            }
            if !i.properties.contains_key(k) && i.properties.len() >= MAX_PROPERTIES {
                return Err(NovaError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Maximum number of image properties exceeded: at most {MAX_PROPERTIES}."),
                ));
            }
            i.properties.insert(k.to_owned(), v.clone());
        }
    }
    Ok(())
}

async fn versions() -> ApiResult {
    let v: Vec<Value> = ["2.16", "2.15", "2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"]
        .iter()
        .enumerate()
        .map(|(n, ver)| {
            json!({"id": format!("v{ver}"), "status": if n == 0 { "CURRENT" } else { "SUPPORTED" },
                   "links": [{"rel": "self", "href": "/v2/"}]})
        })
        .collect();
    reply(StatusCode::OK, json!({"versions": v}))
}

async fn create(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    let b: Map<String, Value> = body(&raw)?;
    let id = match b.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => s.clone(),
        Some(other) => return Err(NovaError::bad_request(format!("Invalid image id {other}"))),
    };
    let now = now_iso();
    let mut img = Image {
        id: id.clone(),
        name: None,
        status: "queued".into(),
        visibility: "shared".into(),
        protected: false,
        disk_format: None,
        container_format: None,
        min_ram: 0,
        min_disk: 0,
        size: None,
        checksum: None,
        os_hash_value: None,
        owner: ctx.project_id.clone(),
        tags: Vec::new(),
        properties: BTreeMap::new(),
        created_at: now.clone(),
        updated_at: now,
    };
    for (k, v) in &b {
        if k != "id" {
            set_field(&mut img, k, v)?;
        }
    }
    let mut r = api.records_mut();
    if r.images.contains_key(&id) {
        return Err(NovaError::conflict(format!("Image with identifier {id} already exists!")));
    }
    r.save(&img)?;
    let v = view(&img);
    r.images.insert(id, img);
    reply(StatusCode::CREATED, v)
}

async fn list(State(api): State<Arc<ComputeApi>>, Query(q): Query<BTreeMap<String, String>>) -> ApiResult {
    let r = api.records();
    let ids: Option<Vec<&str>> = q.get("id").map(|s| s.strip_prefix("in:").unwrap_or(s).split(',').collect());
    let mut out: Vec<&Image> = r
        .images
        .values()
        .filter(|i| q.get("name").is_none_or(|n| i.name.as_deref() == Some(n.as_str())))
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id.as_str())))
        .filter(|i| q.get("status").is_none_or(|s| &i.status == s))
        .filter(|i| q.get("visibility").is_none_or(|v| v == "all" || &i.visibility == v))
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    if let Some(m) = q.get("marker") {
        let pos = out.iter().position(|i| &i.id == m).ok_or_else(|| not_found(m))?;
        out.drain(..=pos);
    }
    let mut next = None;
    if let Some(l) = q.get("limit").and_then(|l| l.parse::<usize>().ok())
        && out.len() > l
    {
        out.truncate(l);
        next = out.last().map(|i| format!("/v2/images?marker={}&limit={l}", i.id));
    }
    let mut v = json!({"images": out.into_iter().map(view).collect::<Vec<_>>(), "first": "/v2/images",
                       "schema": "/v2/schemas/images"});
    if let Some(n) = next {
        v["next"] = json!(n);
    }
    reply(StatusCode::OK, v)
}

async fn show(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>) -> ApiResult {
    let r = api.records();
    reply(StatusCode::OK, view(r.images.get(&id).ok_or_else(|| not_found(&id))?))
}

async fn patch(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>, raw: Bytes) -> ApiResult {
    let ops: Vec<Value> = body(&raw)?;
    let mut r = api.records_mut();
    let mut img = r.images.get(&id).cloned().ok_or_else(|| not_found(&id))?;
    for op in &ops {
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let key = path.strip_prefix('/').filter(|k| !k.is_empty() && !k.contains('/'));
        let Some(key) = key else {
            return Err(NovaError::bad_request(format!("Invalid JSON pointer for this resource: '{path}'")));
        };
        match op.get("op").and_then(Value::as_str) {
            Some("add" | "replace") => {
                let v = op.get("value").ok_or_else(|| NovaError::bad_request("Operation requires a value"))?;
                set_field(&mut img, key, v)?;
            }
            Some("remove") => {
                if CORE.contains(&key) {
                    return Err(NovaError::forbidden(format!("Property '{key}' is protected")));
                }
                if img.properties.remove(key).is_none() {
                    return Err(NovaError::conflict(format!("Property {key} does not exist.")));
                }
            }
            other => return Err(NovaError::bad_request(format!("Invalid operation: {other:?}"))),
        }
    }
    img.updated_at = now_iso();
    r.save(&img)?;
    let v = view(&img);
    r.images.insert(id, img);
    reply(StatusCode::OK, v)
}

async fn delete(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>) -> ApiResult {
    let mut r = api.records_mut();
    let img = r.images.get(&id).ok_or_else(|| not_found(&id))?;
    if img.protected {
        return Err(NovaError::forbidden(format!("Image {id} is protected and cannot be deleted.")));
    }
    r.remove("image", &id)?;
    r.images.remove(&id);
    drop(r);
    let _ = std::fs::remove_file(api.image_path(&id));
    empty(StatusCode::NO_CONTENT)
}

async fn upload(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>, data: Bytes) -> ApiResult {
    if !api.records().images.contains_key(&id) {
        return Err(not_found(&id));
    }
    let path = api.image_path(&id);
    let tmp = path.with_extension("part");
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        std::fs::write(&tmp, &data)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(NovaError::internal)?;
    let mut r = api.records_mut();
    let mut img = r.images.get(&id).cloned().ok_or_else(|| not_found(&id))?;
    img.size = Some(data.len() as u64);
    img.checksum = Some(format!("{:x}", Md5::digest(&data)));
    img.os_hash_value = Some(format!("{:x}", Sha512::digest(&data)));
    img.status = "active".into();
    img.updated_at = now_iso();
    r.save(&img)?;
    r.images.insert(id, img);
    empty(StatusCode::NO_CONTENT)
}

async fn download(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>) -> ApiResult {
    let checksum = {
        let r = api.records();
        let img = r.images.get(&id).ok_or_else(|| not_found(&id))?;
        img.checksum.clone()
    };
    let Some(checksum) = checksum else { return empty(StatusCode::NO_CONTENT) };
    let data = std::fs::read(api.image_path(&id)).map_err(NovaError::internal)?;
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "application/octet-stream".parse().expect("literal"));
    if let Ok(v) = checksum.parse() {
        h.insert("content-md5", v);
    }
    Ok((StatusCode::OK, h, data).into_response())
}

async fn schema() -> ApiResult {
    reply(StatusCode::OK, json!({"name": "image", "properties": {}, "additionalProperties": {"type": "string"}}))
}

/// The image API's route table.
pub fn app(api: Arc<ComputeApi>) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/versions", get(versions))
        .route("/openapi.json", get(crate::openapi::handler("images")))
        .route("/v2/images", get(list).post(create))
        .route("/v2/images/{id}", get(show).patch(patch).delete(delete))
        .route("/v2/images/{id}/file", get(download).put(upload).layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES)))
        .route("/v2/schemas/image", get(schema))
        .route("/v2/schemas/images", get(schema))
        .fallback(super::http::not_found)
        .layer(axum::middleware::from_fn(super::http::edge))
        .with_state(api)
}
