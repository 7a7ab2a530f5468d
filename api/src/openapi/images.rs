//! The Glance v2 image API Quiver serves (no microversions).

use serde_json::{Value, json};

use super::{Api, Op, document, list_of, object};

fn image() -> Value {
    object(
        &["id", "status", "visibility"],
        json!({"id": {"type": "string"}, "status": {"type": "string"},
        "visibility": {"type": "string"}}),
    )
}

fn image_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255})
}

/// Every operation.
pub fn operations() -> Vec<Op> {
    vec![
        Op::new("GET", "/", "versions", "The version document").ok(200, Some(list_of("versions", json!({})))),
        Op::new("GET", "/versions", "versionsAgain", "The version document")
            .ok(200, Some(list_of("versions", json!({})))),
        Op::new("GET", "/v2/images", "listImages", "List images").ok(200, Some(list_of("images", image()))),
        Op::new("POST", "/v2/images", "createImage", "Create an image record")
            .body(json!({"type": "object"}))
            .ok(201, Some(image()))
            .link("ShowCreated", "showImage", "image_id", "$response.body#/id")
            .link("UploadCreated", "uploadImage", "image_id", "$response.body#/id"),
        Op::new("GET", "/v2/images/{image_id}", "showImage", "Show an image")
            .param("image_id", image_id())
            .ok(200, Some(image())),
        Op::new("PATCH", "/v2/images/{image_id}", "updateImage", "JSON-patch an image")
            .param("image_id", image_id())
            .body_as(
                "application/openstack-images-v2.1-json-patch",
                json!({"type": "array", "items": {"type": "object"}}),
            )
            .ok(200, Some(image())),
        Op::new("DELETE", "/v2/images/{image_id}", "deleteImage", "Delete an image")
            .param("image_id", image_id())
            .ok(204, None),
        Op::new("GET", "/v2/images/{image_id}/file", "downloadImage", "The image's data")
            .param("image_id", image_id())
            .ok(200, None)
            .ok(204, None),
        Op::new("PUT", "/v2/images/{image_id}/file", "uploadImage", "Upload the image's data")
            .param("image_id", image_id())
            .body_as("application/octet-stream", json!({"type": "string", "format": "binary"}))
            .ok(204, None),
        Op::new("GET", "/v2/schemas/image", "imageSchema", "The image schema").ok(200, Some(json!({"type": "object"}))),
        Op::new("GET", "/v2/schemas/images", "imagesSchema", "The images schema")
            .ok(200, Some(json!({"type": "object"}))),
    ]
}

/// The description served at `/openapi.json` on the image port.
pub fn description() -> Value {
    let error = json!({"type": "object", "minProperties": 1});
    let api = Api {
        title: "Quiver Image API",
        description: "The Glance v2 image API Quiver serves.",
        microversion: None,
        error,
    };
    document(&api, operations())
}
