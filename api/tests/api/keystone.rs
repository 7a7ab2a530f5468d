//! `quiver serve` behind a real Keystone (from PyPI, SQLite, fernet
//! tokens, served by gunicorn: scripts/keystone-throwaway): the openstack
//! CLI with password auth through the catalog, roles and projects from
//! the tokens into the policies, refused and revoked tokens, and Keystone
//! going away.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::compute::Cloud;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts").join(name)
}

/// The venv is made once (scripts/keystone-venv installs it on first use);
/// tests must not race two pip installs into it.
static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

fn venv() -> PathBuf {
    let mut v = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = v.as_ref() {
        return p.clone();
    }
    let out = Command::new(script("keystone-venv")).output().expect("scripts/keystone-venv runs");
    assert!(out.status.success(), "keystone-venv: {}", String::from_utf8_lossy(&out.stderr));
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    *v = Some(p.clone());
    p
}

/// A throwaway Keystone, stopped on drop.
struct Keystone {
    dir: tempfile::TempDir,
    url: String,
    http: reqwest::blocking::Client,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        self.stop();
    }
}

const ADMIN_PASSWORD: &str = "secret";

impl Keystone {
    fn start() -> Keystone {
        let venv = venv();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(script("keystone-throwaway"))
            .args(["start", dir.path().to_str().expect("utf8")])
            .env("QUIVER_KEYSTONE_VENV", &venv)
            .env("KEYSTONE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("keystone-throwaway runs");
        assert!(out.status.success(), "keystone-throwaway: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Keystone { dir, url, http }
    }

    fn stop(&self) {
        let _ = Command::new(script("keystone-throwaway"))
            .args(["stop", self.dir.path().to_str().expect("utf8")])
            .env("QUIVER_KEYSTONE_VENV", venv())
            .output();
    }

    /// A project-scoped token for `user` (password auth).
    fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self.http.post(format!("{}/auth/tokens", self.url)).json(&body).send().expect("keystone answers");
        assert_eq!(r.status().as_u16(), 201, "token for {user}");
        r.headers()["x-subject-token"].to_str().expect("token").to_owned()
    }

    fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin")
    }

    /// POST to Keystone as admin; the created object's id.
    fn create(&self, admin: &str, path: &str, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/{path}", self.url))
            .header("X-Auth-Token", admin)
            .json(&body)
            .send()
            .expect("keystone answers");
        assert_eq!(r.status().as_u16(), 201, "POST {path}");
        let v: Value = r.json().expect("json");
        v.as_object().and_then(|o| o.values().next()).and_then(|o| o["id"].as_str()).expect("id").to_owned()
    }

    fn role_id(&self, admin: &str, name: &str) -> String {
        let v: Value = self
            .http
            .get(format!("{}/roles?name={name}", self.url))
            .header("X-Auth-Token", admin)
            .send()
            .and_then(|r| r.json())
            .expect("roles");
        v["roles"][0]["id"].as_str().unwrap_or_else(|| panic!("role {name}")).to_owned()
    }

    /// A user with `roles` on a project (made if it is not there).
    fn user(&self, admin: &str, name: &str, project: &str, roles: &[&str]) {
        let pid = match self.project_id(admin, project) {
            Some(id) => id,
            None => self.create(admin, "projects", json!({"project": {"name": project, "domain_id": "default"}})),
        };
        let uid = self.create(
            admin,
            "users",
            json!({"user": {"name": name, "password": format!("{name}-pw"), "domain_id": "default",
                "default_project_id": pid}}),
        );
        for role in roles {
            let rid = self.role_id(admin, role);
            let r = self
                .http
                .put(format!("{}/projects/{pid}/users/{uid}/roles/{rid}", self.url))
                .header("X-Auth-Token", admin)
                .send()
                .expect("keystone answers");
            assert_eq!(r.status().as_u16(), 204, "grant {role} to {name}");
        }
    }

    fn project_id(&self, admin: &str, name: &str) -> Option<String> {
        let v: Value = self
            .http
            .get(format!("{}/projects?name={name}", self.url))
            .header("X-Auth-Token", admin)
            .send()
            .and_then(|r| r.json())
            .expect("projects");
        v["projects"][0]["id"].as_str().map(str::to_owned)
    }

    /// The catalog entry of a service at `url` (public interface).
    fn endpoint(&self, admin: &str, kind: &str, name: &str, url: &str) {
        let sid = self.create(admin, "services", json!({"service": {"type": kind, "name": name}}));
        self.create(
            admin,
            "endpoints",
            json!({"endpoint": {"service_id": sid, "interface": "public", "url": url, "region_id": "RegionOne"}}),
        );
    }

    fn revoke(&self, admin: &str, token: &str) {
        let r = self
            .http
            .delete(format!("{}/auth/tokens", self.url))
            .header("X-Auth-Token", admin)
            .header("X-Subject-Token", token)
            .send()
            .expect("keystone answers");
        assert_eq!(r.status().as_u16(), 204, "revoke");
    }

    /// The Quiver config that validates tokens with this Keystone.
    fn quiver_config(&self, cache_secs: u64) -> String {
        format!(
            "[api]\nauth_strategy = \"keystone\"\n[keystone_authtoken]\nwww_authenticate_uri = \"{u}\"\n\
             auth_url = \"{u}\"\nusername = \"quiver\"\npassword = \"quiver-pw\"\nproject_name = \"service\"\n\
             user_domain_name = \"Default\"\nproject_domain_name = \"Default\"\ntoken_cache_time = {cache_secs}\n",
            u = self.url
        )
    }
}

/// One HTTP call with `token` (none: no header); status and body.
fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let mut req = http
        .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url)
        .header("OpenStack-API-Version", "compute 2.90, placement 1.39");
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().expect("quiver answers");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().unwrap_or(Value::Null))
}

/// The openstack CLI as `user`, password auth through Keystone's catalog
/// (no endpoint overrides); its stdout.
fn osc(ks: &Keystone, user: &str, password: &str, project: &str, args: &[&str]) -> String {
    let out = Command::new(venv().join("bin").join("openstack"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", ks.dir.path())
        .env("OS_AUTH_URL", &ks.url)
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_USERNAME", user)
        .env("OS_PASSWORD", password)
        .env("OS_PROJECT_NAME", project)
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_REGION_NAME", "RegionOne")
        .output()
        .expect("openstack runs");
    assert!(out.status.success(), "openstack {} (as {user}): {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keystone with the service user, a member of `demo` and a reader of
/// `other`, and Quiver's endpoints in its catalog.
fn cloud_behind(ks: &Keystone, data: &Path, cache_secs: u64) -> Cloud {
    let admin = ks.admin();
    ks.user(&admin, "quiver", "service", &["admin", "service"]);
    ks.user(&admin, "alice", "demo", &["member"]);
    ks.user(&admin, "rita", "other", &["reader"]);
    let cloud = Cloud::configured(data, &ks.quiver_config(cache_secs), &["--with-agents", "2"], true);
    ks.endpoint(&admin, "placement", "placement", &cloud.placement);
    ks.endpoint(&admin, "compute", "nova", &cloud.compute);
    ks.endpoint(&admin, "image", "glance", &cloud.images);
    cloud
}

#[test]
fn keystone_tokens_say_who_calls_and_their_roles_decide_what_they_may_do() {
    let ks = Keystone::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = cloud_behind(&ks, data.path(), 3);
    let admin_osc = |args: &[&str]| osc(&ks, "admin", ADMIN_PASSWORD, "admin", args);
    let alice_osc = |args: &[&str]| osc(&ks, "alice", "alice-pw", "demo", args);

    // The openstack CLI, password auth, endpoints from the catalog.
    let providers = admin_osc(&["resource", "provider", "list", "-f", "value", "-c", "name"]);
    assert!(providers.lines().any(|l| l == "compute-1"), "providers: {providers}");
    admin_osc(&["flavor", "create", "--vcpus", "1", "--ram", "256", "--disk", "1", "tiny"]);
    let image = data.path().join("image.raw");
    std::fs::write(&image, vec![7u8; 65536]).expect("image");
    let img = image.to_str().expect("utf8");
    admin_osc(&[
        "image",
        "create",
        "--public",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--file",
        img,
        "cirros",
    ]);
    let boot = |who: &dyn Fn(&[&str]) -> String, name: &str| {
        let status = who(&[
            "server", "create", "--flavor", "tiny", "--image", "cirros", "--nic", "none", "--wait", name, "-f",
            "value", "-c", "status",
        ]);
        assert_eq!(status.trim(), "ACTIVE", "{name}");
    };
    boot(&admin_osc, "admin-vm");
    boot(&alice_osc, "alice-vm");
    let names = |out: String| -> Vec<String> { out.lines().map(str::to_owned).collect() };
    assert_eq!(names(alice_osc(&["server", "list", "-f", "value", "-c", "Name"])), ["alice-vm"]);
    let all = names(admin_osc(&["server", "list", "--all-projects", "-f", "value", "-c", "Name"]));
    assert!(all.contains(&"admin-vm".to_owned()) && all.contains(&"alice-vm".to_owned()), "{all:?}");
    assert_eq!(names(admin_osc(&["server", "list", "-f", "value", "-c", "Name"])), ["admin-vm"]);

    // The member: its project's servers, none of Placement's admin calls.
    let alice = ks.token("alice", "alice-pw", "demo");
    let (s, _, _) = call("GET", &format!("{}/resource_providers", cloud.placement), Some(&alice), None);
    assert_eq!(s, 403, "a member lists resource providers");
    let (s, _, v) = call("GET", &format!("{}/servers", cloud.compute), Some(&alice), None);
    assert_eq!(s, 200);
    assert_eq!(v["servers"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, _, _) = call("GET", &format!("{}/os-hypervisors", cloud.compute), Some(&alice), None);
    assert_eq!(s, 403, "a member lists hypervisors");

    // The reader of another project: reads, but cannot create.
    let rita = ks.token("rita", "rita-pw", "other");
    let (s, _, v) = call("GET", &format!("{}/servers", cloud.compute), Some(&rita), None);
    assert_eq!((s, v["servers"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    let flavor = json!({"server": {"name": "nope", "flavorRef": "tiny", "imageRef": "cirros", "networks": "none"}});
    let (s, _, v) = call("POST", &format!("{}/servers", cloud.compute), Some(&rita), Some(flavor));
    assert_eq!(s, 403, "a reader creates a server: {v}");

    // No token, a garbage token, a forged identity header: 401 with
    // where to get a token, on every port.
    for url in [
        format!("{}/resource_providers", cloud.placement),
        format!("{}/servers", cloud.compute),
        format!("{}/v2/images", cloud.images),
    ] {
        for token in [None, Some("garbage"), Some("admin")] {
            let (s, h, v) = call("GET", &url, token, None);
            assert_eq!(s, 401, "{url} with {token:?}: {v}");
            let www = h.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
            assert_eq!(www, format!("Keystone uri=\"{}\"", ks.url));
            assert_eq!(v["error"]["code"], 401);
        }
    }
    // The version documents stay open.
    assert_eq!(call("GET", &format!("{}/", cloud.placement), None, None).0, 200);

    // A service token lets a service call on a user's behalf; a bad one is refused.
    let service = ks.token("quiver", "quiver-pw", "service");
    let http = reqwest::blocking::Client::new();
    let with_service = |st: &str| {
        http.get(format!("{}/servers", cloud.compute))
            .header("X-Auth-Token", &alice)
            .header("X-Service-Token", st)
            .send()
            .expect("answers")
            .status()
            .as_u16()
    };
    assert_eq!(with_service(&service), 200);
    assert_eq!(with_service("garbage"), 401);

    // A revoked token: served from the cache for at most token_cache_time
    // (3 s here), then refused.
    let admin = ks.admin();
    ks.revoke(&admin, &alice);
    let revoked_at = Instant::now();
    cloud.wait("the revoked token to be refused", 20, || {
        call("GET", &format!("{}/servers", cloud.compute), Some(&alice), None).0 == 401
    });
    assert!(revoked_at.elapsed() <= Duration::from_secs(3 + 5), "refused {:?} after revocation", revoked_at.elapsed());
    // Alice's new token works.
    let again = ks.token("alice", "alice-pw", "demo");
    assert_eq!(call("GET", &format!("{}/servers", cloud.compute), Some(&again), None).0, 200);
}

#[test]
fn with_keystone_down_cached_tokens_still_work_and_new_ones_get_503() {
    let ks = Keystone::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = cloud_behind(&ks, data.path(), 600);
    let seen = ks.token("alice", "alice-pw", "demo");
    let unseen = ks.token("alice", "alice-pw", "demo");
    let servers = format!("{}/servers", cloud.compute);
    assert_eq!(call("GET", &servers, Some(&seen), None).0, 200);
    ks.stop();
    cloud.wait("Keystone to stop", 20, || reqwest::blocking::get(&ks.url).is_err());
    for _ in 0..3 {
        assert_eq!(call("GET", &servers, Some(&seen), None).0, 200, "a cached token with Keystone down");
        let (s, _, v) = call("GET", &servers, Some(&unseen), None);
        assert_eq!(s, 503, "a new token with Keystone down: {v}");
        assert_eq!(v["error"]["code"], 503);
    }
    let (s, _, _) = call("GET", &format!("{}/resource_providers", cloud.placement), Some(&unseen), None);
    assert_eq!(s, 503);
    // Still alive, and health checks need no Keystone.
    assert_eq!(call("GET", &format!("{}/healthcheck", cloud.placement), None, None).0, 200);
}
