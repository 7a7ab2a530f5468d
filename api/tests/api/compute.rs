//! The whole boot flow through `quiver serve` over real HTTP: the Compute
//! API, the scheduler, Placement claims, and compute agents on libvirt's
//! test driver (in process) or the fake driver (separate `quiver agent`
//! processes, for the fault cases).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `quiver serve` and an HTTP client for its APIs.
pub(crate) struct Cloud {
    _serve: Proc,
    pub(crate) compute: String,
    pub(crate) placement: String,
    pub(crate) images: String,
    agents: Option<String>,
    http: reqwest::blocking::Client,
}

fn client() -> reqwest::blocking::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("X-Auth-Token", "admin".parse().expect("header"));
    h.insert("OpenStack-API-Version", "compute 2.90, placement 1.39".parse().expect("header"));
    reqwest::blocking::Client::builder().default_headers(h).timeout(Duration::from_secs(60)).build().expect("client")
}

impl Cloud {
    /// `quiver serve` on free ports. Ports are picked before the server
    /// binds them, so a test running beside may take one first: a server
    /// that exits before it answers is started again on other ports.
    pub(crate) fn start(data: &Path, extra: &[&str], embedded_agents: bool) -> Cloud {
        std::fs::create_dir_all(data).expect("data directory");
        let log = data.join("serve.stderr.log");
        for _ in 0..3 {
            let (p, c, i, a) = (port(), port(), port(), port());
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
            cmd.args(["serve", "--data", data.to_str().expect("utf8")])
                .args(["--listen", &format!("127.0.0.1:{p}"), "--compute-listen", &format!("127.0.0.1:{c}")])
                .args(["--image-listen", &format!("127.0.0.1:{i}")])
                .args(extra);
            if embedded_agents {
                cmd.args(["--agent-listen", &format!("127.0.0.1:{a}")]);
            }
            let child = cmd
                .env("QUIVER_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("serve starts");
            let mut cloud = Cloud {
                _serve: Proc(child),
                compute: format!("http://127.0.0.1:{c}/v2.1"),
                placement: format!("http://127.0.0.1:{p}"),
                images: format!("http://127.0.0.1:{i}"),
                agents: embedded_agents.then(|| format!("http://127.0.0.1:{a}")),
                http: client(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if cloud.http.get(format!("{}/flavors", cloud.compute)).send().is_ok() {
                    return cloud;
                }
                if cloud._serve.0.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("timed out waiting for the API (three tries); the last server said:\n{said}");
    }

    /// [`Cloud::start`] with `config` written to `data/quiver.toml`.
    pub(crate) fn configured(data: &Path, config: &str, extra: &[&str], embedded_agents: bool) -> Cloud {
        std::fs::create_dir_all(data).expect("data directory");
        let conf = data.join("quiver.toml");
        std::fs::write(&conf, config).expect("config");
        Cloud::start(data, &[extra, &["--config", conf.to_str().expect("utf8")]].concat(), embedded_agents)
    }

    pub(crate) fn wait(&self, what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    fn call(&self, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("server answers");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn nova(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, &format!("{}{path}", self.compute), body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.nova(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    fn flavor(&self, id: &str, vcpus: u32, ram: u32, disk: u32) {
        self.ok(
            "POST",
            "/flavors",
            Some(json!({"flavor": {"id": id, "name": id, "vcpus": vcpus, "ram": ram, "disk": disk}})),
        );
    }

    fn servers(&self) -> Vec<Value> {
        self.ok("GET", "/servers/detail", None)["servers"].as_array().expect("servers").clone()
    }

    fn settle(&self, secs: u64) -> Vec<Value> {
        self.wait("servers to leave BUILD", secs, || self.servers().iter().all(|s| s["status"] != "BUILD"));
        self.servers()
    }

    /// Host name -> resource provider uuid.
    fn providers(&self) -> BTreeMap<String, String> {
        self.ok("GET", "/os-hypervisors", None)["hypervisors"]
            .as_array()
            .expect("hypervisors")
            .iter()
            .map(|h| {
                (
                    h["hypervisor_hostname"].as_str().expect("name").to_owned(),
                    h["id"].as_str().expect("uuid").to_owned(),
                )
            })
            .collect()
    }

    fn usages(&self, rp: &str) -> BTreeMap<String, i64> {
        let (s, v) = self.call("GET", &format!("{}/resource_providers/{rp}/usages", self.placement), None);
        assert_eq!(s, 200, "{v}");
        serde_json::from_value(v["usages"].clone()).expect("usages")
    }

    fn consumers_on(&self, rp: &str) -> BTreeSet<String> {
        let (_, v) = self.call("GET", &format!("{}/resource_providers/{rp}/allocations", self.placement), None);
        v["allocations"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    fn guests(&self, agent: &str, host: &str) -> Vec<Value> {
        let (s, v) = self.call("GET", &format!("{agent}/hosts/{host}/guests"), None);
        assert_eq!(s, 200, "{v}");
        v.as_array().expect("guests").clone()
    }

    /// An active image with `properties`, its bytes uploaded; its id.
    fn image(&self, name: &str, properties: Value) -> String {
        let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
        body.as_object_mut().expect("object").extend(properties.as_object().cloned().unwrap_or_default());
        let (st, v) = self.call("POST", &format!("{}/v2/images", self.images), Some(body));
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().expect("image id").to_owned();
        let resp = self
            .http
            .put(format!("{}/v2/images/{id}/file", self.images))
            .header("Content-Type", "application/octet-stream")
            .body(vec![7u8; 4096])
            .send()
            .expect("upload");
        assert_eq!(resp.status().as_u16(), 204);
        id
    }

    fn boot(&self, body: Value) -> Value {
        self.ok("POST", "/servers", Some(body))
    }
}

#[test]
fn fifty_servers_boot_on_three_libvirt_agents_and_leave_nothing_behind() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    cloud.flavor("medium", 2, 2048, 5);
    cloud.flavor("large", 4, 4096, 10);
    cloud.flavor("huge", 64, 4096, 10);
    cloud.ok(
        "PUT",
        "/os-quota-sets/admin",
        Some(json!({"quota_set": {"instances": 100, "cores": 1000, "ram": 1_000_000}})),
    );
    let agg = cloud.ok(
        "POST",
        "/os-aggregates",
        Some(json!({"aggregate": {"name": "rack-a", "availability_zone": "zone-a"}})),
    );
    let agg_id = agg["aggregate"]["id"].as_i64().expect("id");
    cloud.ok("POST", &format!("/os-aggregates/{agg_id}/action"), Some(json!({"add_host": {"host": "compute-1"}})));
    let group = cloud.ok(
        "POST",
        "/os-server-groups",
        Some(json!({"server_group": {"name": "spread", "policy": "anti-affinity"}})),
    );
    let group = group["server_group"]["id"].as_str().expect("group id").to_owned();

    for i in 0..3 {
        cloud.boot(json!({"server": {"name": format!("ha-{i}"), "flavorRef": "small", "networks": "none"},
                          "OS-SCH-HNT:scheduler_hints": {"group": group}}));
    }
    cloud.boot(json!({"server": {"name": "zonal", "flavorRef": "medium", "availability_zone": "zone-a",
                                 "min_count": 5, "max_count": 5, "networks": "none"}}));
    cloud.boot(
        json!({"server": {"name": "s", "flavorRef": "small", "min_count": 14, "max_count": 14, "networks": "none"}}),
    );
    cloud.boot(
        json!({"server": {"name": "m", "flavorRef": "medium", "min_count": 1, "max_count": 14, "networks": "none",
                                 "metadata": {"tier": "web"}}}),
    );
    for i in 0..14 {
        cloud.boot(json!({"server": {"name": format!("l-{i}"), "flavorRef": "large", "networks": "none"}}));
    }
    let servers = cloud.settle(120);
    assert_eq!(servers.len(), 50);
    for s in &servers {
        assert_eq!(s["status"], "ACTIVE", "{s}");
        let host = s["OS-EXT-SRV-ATTR:host"].as_str().expect("host");
        let guest = cloud
            .guests(&agents, host)
            .into_iter()
            .find(|g| g["uuid"] == s["id"])
            .unwrap_or_else(|| panic!("no libvirt domain for {} on {host}", s["id"]));
        assert_eq!(guest["vcpus"], s["flavor"]["vcpus"], "{s}");
        assert_eq!(guest["memory_mb"], s["flavor"]["ram"], "{s}");
        assert_eq!(guest["state"], "running");
    }
    let by_name =
        |p: &'static str| servers.iter().filter(move |s| s["name"].as_str().is_some_and(|n| n.starts_with(p)));
    let ha_hosts: BTreeSet<&str> = by_name("ha-").map(|s| s["OS-EXT-SRV-ATTR:host"].as_str().expect("host")).collect();
    assert_eq!(ha_hosts.len(), 3, "anti-affinity members share a host");
    for s in by_name("zonal") {
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "compute-1");
        assert_eq!(s["OS-EXT-AZ:availability_zone"], "zone-a");
    }
    assert_eq!(by_name("m-").filter(|s| s["metadata"]["tier"] == "web").count(), 14);

    // Placement's usages are the sums of the flavors on each host.
    let rps = cloud.providers();
    for (host, rp) in &rps {
        let mut want: BTreeMap<String, i64> =
            [("VCPU", 0), ("MEMORY_MB", 0), ("DISK_GB", 0)].map(|(k, v)| (k.to_owned(), v)).into();
        for s in servers.iter().filter(|s| s["OS-EXT-SRV-ATTR:host"] == host.as_str()) {
            *want.get_mut("VCPU").expect("k") += s["flavor"]["vcpus"].as_i64().expect("vcpus");
            *want.get_mut("MEMORY_MB").expect("k") += s["flavor"]["ram"].as_i64().expect("ram");
            *want.get_mut("DISK_GB").expect("k") += s["flavor"]["disk"].as_i64().expect("disk");
        }
        assert_eq!(cloud.usages(rp), want, "usages of {host}");
    }

    // What cannot fit ends in ERROR with Nova's fault.
    let too_big = cloud.boot(json!({"server": {"name": "too-big", "flavorRef": "huge", "networks": "none"}}));
    let fourth = cloud.boot(json!({"server": {"name": "ha-3", "flavorRef": "small", "networks": "none"},
                                   "OS-SCH-HNT:scheduler_hints": {"group": group}}));
    for (id, needle) in [(&too_big, "Placement"), (&fourth, "ServerGroupAntiAffinityFilter: (start: 3, end: 0)")] {
        let id = id["server"]["id"].as_str().expect("id");
        cloud.wait("ERROR", 30, || cloud.ok("GET", &format!("/servers/{id}"), None)["server"]["status"] == "ERROR");
        let s = cloud.ok("GET", &format!("/servers/{id}"), None);
        let msg = s["server"]["fault"]["message"].as_str().expect("fault");
        assert!(msg.starts_with("No valid host was found."), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(cloud.consumers_on(&rps["compute-1"]).iter().all(|c| c != id));
    }

    // Deleting everything brings usages to zero and leaves no domain.
    for s in cloud.servers() {
        let (st, v) = cloud.nova("DELETE", &format!("/servers/{}", s["id"].as_str().expect("id")), None);
        assert_eq!(st, 204, "{v}");
    }
    cloud.wait("every server to go", 60, || cloud.servers().is_empty());
    for (host, rp) in &rps {
        assert!(cloud.usages(rp).values().all(|&u| u == 0), "{host} still has usage");
        assert!(cloud.guests(&agents, host).is_empty(), "{host} still has domains");
    }
}

#[test]
fn compute_api_rejects_bad_input_with_nova_error_bodies() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "1", "--agent-driver", "fake"], false);
    cloud.flavor("small", 1, 512, 1);
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("POST", "/servers", Some(json!({"server": {"name": "x", "flavorRef": "nope"}})), 400, "badRequest"),
        ("POST", "/servers", Some(json!({"server": {"flavorRef": "small"}})), 400, "badRequest"),
        (
            "POST",
            "/servers",
            Some(json!({"server": {"name": "x", "flavorRef": "small", "min_count": 0}})),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/servers",
            Some(json!({"server": {"name": "x", "flavorRef": "small", "availability_zone": "mars"}})),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/servers",
            Some(json!({"server": {"name": "x", "flavorRef": "small", "min_count": 11}})),
            403,
            "forbidden",
        ),
        ("GET", "/servers/00000000-0000-0000-0000-000000000000", None, 404, "itemNotFound"),
        (
            "POST",
            "/flavors",
            Some(json!({"flavor": {"name": "bad", "vcpus": -1, "ram": 1, "disk": 1}})),
            400,
            "badRequest",
        ),
        (
            "POST",
            "/flavors",
            Some(json!({"flavor": {"name": "small", "vcpus": 1, "ram": 1, "disk": 1, "id": "small"}})),
            409,
            "conflictingRequest",
        ),
        (
            "POST",
            "/os-server-groups",
            Some(json!({"server_group": {"name": "g", "policy": "sideways"}})),
            400,
            "badRequest",
        ),
        ("POST", "/os-aggregates/99/action", Some(json!({"add_host": {"host": "compute-1"}})), 404, "itemNotFound"),
    ];
    for (method, path, body, status, key) in cases {
        let (s, v) = cloud.nova(method, path, body.clone());
        assert_eq!(s, status, "{method} {path} {body:?}: {v}");
        assert!(v[key]["message"].is_string(), "{method} {path}: {v}");
    }
    // Raw junk and an unsupported microversion.
    let r = cloud.http.post(format!("{}/servers", cloud.compute)).body("{not json").send().expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let r = cloud
        .http
        .get(format!("{}/servers", cloud.compute))
        .header("OpenStack-API-Version", "compute 2.999")
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 406);
    let r = cloud
        .http
        .get(format!("{}/servers", cloud.compute))
        .header("OpenStack-API-Version", "compute latest")
        .send()
        .expect("answer");
    assert_eq!(r.headers()["openstack-api-version"], "compute 2.91");
}

fn agent(controller: &str, host: &str, listen: u16, extra: &[&str]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["agent", "--controller", controller.trim_end_matches("/v2.1"), "--host", host, "--driver", "fake"])
        .args([
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--report-interval",
            "0.3",
            "--update-resources-interval",
            "0.6",
        ])
        .args(extra)
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent starts");
    Proc(child)
}

fn service_state(cloud: &Cloud, host: &str) -> String {
    let v = cloud.ok("GET", &format!("/os-services?host={host}"), None);
    v["services"][0]["state"].as_str().unwrap_or("missing").to_owned()
}

#[test]
fn an_agent_that_stops_heartbeating_is_marked_down_and_gets_no_servers() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::configured(data.path(), "[DEFAULT]\nservice_down_time = 2\n", &[], false);
    let _a = agent(&cloud.compute, "alive", port(), &[]);
    let mut b = agent(&cloud.compute, "silent", port(), &[]);
    cloud.wait("both agents up", 30, || {
        service_state(&cloud, "alive") == "up" && service_state(&cloud, "silent") == "up"
    });
    cloud.flavor("small", 1, 512, 1);
    b.0.kill().expect("SIGKILL");
    let _ = b.0.wait();
    cloud.wait("the silent agent to be down", 30, || service_state(&cloud, "silent") == "down");
    let hyp = cloud.ok("GET", "/os-hypervisors", None);
    let silent =
        hyp["hypervisors"].as_array().expect("list").iter().find(|h| h["hypervisor_hostname"] == "silent").cloned();
    assert_eq!(silent.expect("listed")["state"], "down");
    cloud.boot(
        json!({"server": {"name": "w", "flavorRef": "small", "min_count": 6, "max_count": 6, "networks": "none"}}),
    );
    let servers = cloud.settle(60);
    assert_eq!(servers.len(), 6);
    for s in servers {
        assert_eq!(s["status"], "ACTIVE", "{s}");
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "alive");
    }
}

#[test]
fn an_agent_restarted_during_builds_leaves_no_allocation_without_a_guest() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &[], false);
    let listen = port();
    let slow = ["--spawn-delay-ms", "1000"];
    let mut a = agent(&cloud.compute, "flaky", listen, &slow);
    cloud.wait("the agent up", 30, || service_state(&cloud, "flaky") == "up");
    cloud.flavor("small", 1, 512, 1);
    for i in 0..4 {
        cloud.boot(json!({"server": {"name": format!("early-{i}"), "flavorRef": "small", "networks": "none"}}));
    }
    // Kill it while those builds are under way, bring it back, boot more.
    cloud.wait("builds under way", 30, || cloud.servers().iter().all(|s| s["OS-EXT-STS:task_state"] == "spawning"));
    a.0.kill().expect("SIGKILL");
    let _ = a.0.wait();
    let _a = agent(&cloud.compute, "flaky", listen, &slow);
    let agent_url = format!("http://127.0.0.1:{listen}");
    cloud.wait("the agent back", 30, || cloud.http.get(format!("{agent_url}/")).send().is_ok());
    for i in 0..4 {
        cloud.boot(json!({"server": {"name": format!("late-{i}"), "flavorRef": "small", "networks": "none"}}));
    }
    let rp = cloud.providers()["flaky"].clone();
    cloud.wait("allocations to match guests", 60, || {
        let servers = cloud.servers();
        if servers.iter().any(|s| s["status"] == "BUILD") {
            return false;
        }
        let Ok(r) = cloud.http.get(format!("{agent_url}/hosts/flaky/guests")).send() else { return false };
        let guests: BTreeSet<String> = r
            .json::<Vec<Value>>()
            .unwrap_or_default()
            .iter()
            .filter_map(|g| g["uuid"].as_str().map(str::to_owned))
            .collect();
        let active: BTreeSet<String> = servers
            .iter()
            .filter(|s| s["status"] == "ACTIVE")
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        cloud.consumers_on(&rp) == guests && active == guests
    });
    let servers = cloud.servers();
    assert_eq!(servers.len(), 8);
    for s in &servers {
        let early = s["name"].as_str().is_some_and(|n| n.starts_with("early"));
        // Interrupted builds end in ERROR with a fault and no allocation;
        // builds after the restart succeed.
        assert_eq!(s["status"], if early { "ERROR" } else { "ACTIVE" }, "{s}");
        if early {
            assert!(s["fault"]["message"].is_string(), "{s}");
        }
    }
}

/// Capacity planning against a running cloud: `POST /v1/query` (JSON and
/// Arrow IPC, admin only), `GET /v1/fleet`, and the CLI's `--from`.
#[test]
fn query_and_fleet_snapshot_of_a_running_cloud() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "2", "--agent-driver", "fake"], false);
    cloud.wait("two hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 2)
    });
    cloud.flavor("small", 2, 1024, 1);
    cloud.boot(
        json!({"server": {"name": "q", "flavorRef": "small", "min_count": 3, "max_count": 3, "networks": "none"}}),
    );
    assert!(cloud.settle(60).iter().all(|s| s["status"] == "ACTIVE"));
    let root = cloud.compute.trim_end_matches("/v2.1").to_owned();
    let sql = "SELECT name, vcpu_used, num_instances FROM hosts ORDER BY name";
    let (s, v) = cloud.call("POST", &format!("{root}/v1/query"), Some(json!({ "sql": sql })));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["columns"], json!(["name", "vcpu_used", "num_instances"]));
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().map(|r| r["vcpu_used"].as_i64().unwrap()).sum::<i64>(), 6, "{v}");
    assert_eq!(rows.iter().map(|r| r["num_instances"].as_i64().unwrap()).sum::<i64>(), 3, "{v}");
    // JsonFilter in SQL form
    let (s, v) = cloud.call(
        "POST",
        &format!("{root}/v1/query"),
        Some(json!({"json_filter": "[\">=\", \"$num_instances\", 0]"})),
    );
    assert_eq!((s, v["rows"].as_array().map(Vec::len)), (200, Some(2)), "{v}");
    // Arrow IPC
    let resp = cloud
        .http
        .post(format!("{root}/v1/query"))
        .header("Accept", "application/vnd.apache.arrow.file")
        .json(&json!({ "sql": sql }))
        .send()
        .expect("answer");
    assert_eq!(resp.headers()["content-type"], "application/vnd.apache.arrow.file");
    let bytes = resp.bytes().expect("body");
    assert_eq!(&bytes[..6], b"ARROW1");
    // errors: bad SQL 400, non-admin 403, both Placement-shaped
    let (s, v) = cloud.call("POST", &format!("{root}/v1/query"), Some(json!({"sql": "SELECT nope FROM hosts"})));
    assert_eq!(s, 400);
    assert!(v["errors"][0]["detail"].as_str().unwrap().contains("nope"), "{v}");
    let (s, _) = cloud.call("POST", &format!("{root}/v1/query"), Some(json!({"sql": 1})));
    assert_eq!(s, 400);
    let resp = reqwest::blocking::Client::new()
        .post(format!("{root}/v1/query"))
        .header("X-Auth-Token", "demo")
        .json(&json!({ "sql": sql }))
        .send()
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 403);
    // the CLI against the running cloud: a query, and a simulation on its snapshot
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["query", "--from", &root, "--format", "csv", "SELECT COUNT(*) AS n FROM hosts"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["simulate", "--from", &root, "--requests", "200", "--rate", "1", "--mean-lifetime", "60"])
        .args(["--no-compaction", "--out", dir.path().to_str().expect("utf8")])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["default"]["fleet_hosts"], 2);
    assert_eq!(summary["default"]["arrivals"], 200);
}

/// Issue 15: `POST /v1/explain` on a running cloud names, for each host
/// asked about, the stage that rejects it and why (an anti-affinity peer,
/// a short resource), answers an existing server's RequestSpec, claims
/// nothing, refuses bad input and non-admins; `quiver explain --from`
/// prints the same.
#[test]
fn explain_names_the_stage_and_reason_that_rejects_each_host_and_claims_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "2", "--agent-driver", "fake"], false);
    cloud.wait("two hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 2)
    });
    cloud.flavor("small", 2, 1024, 1);
    cloud.flavor("huge", 4096, 1024, 1);
    let group = cloud.ok(
        "POST",
        "/os-server-groups",
        Some(json!({"server_group": {"name": "spread", "policy": "anti-affinity"}})),
    );
    let group = group["server_group"]["id"].as_str().expect("group id").to_owned();
    let server = cloud.boot(json!({"server": {"name": "peer", "flavorRef": "small", "networks": "none"},
                                   "OS-SCH-HNT:scheduler_hints": {"group": group}}));
    let server = server["server"]["id"].as_str().expect("id").to_owned();
    let servers = cloud.settle(60);
    assert_eq!(servers[0]["status"], "ACTIVE", "{servers:?}");
    let busy = servers[0]["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let providers = cloud.providers();
    let free = providers.keys().find(|h| **h != busy).expect("another host").clone();
    let usage_before: Vec<_> = providers.values().map(|rp| cloud.usages(rp)).collect();

    let root = cloud.compute.trim_end_matches("/v2.1").to_owned();
    let explain = |body: Value| cloud.call("POST", &format!("{root}/v1/explain"), Some(body));
    let (s, v) = explain(json!({"flavor": "small", "scheduler_hints": {"group": group},
                                "hosts": [busy, free, "no-such-host"]}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["hosts"], 2, "{v}");
    assert_eq!(v["decision"]["chosen"], json!([free]), "{v}");
    let anti = v["stages"].as_array().expect("stages").iter().find(|s| s["name"] == "ServerGroupAntiAffinityFilter");
    assert_eq!(anti.map(|s| s["kept"].clone()), Some(json!(1)), "{v}");
    let named = &v["named"];
    assert_eq!(named[0]["rejected_by"], "ServerGroupAntiAffinityFilter", "{v}");
    assert_eq!(
        named[0]["reason"],
        format!("already runs 1 member of anti-affinity group {group} (max_server_per_host 1)")
    );
    assert_eq!(named[1]["verdict"], "chosen", "{v}");
    assert_eq!(named[2]["verdict"], "unknown", "{v}");

    // A flavor that fits nowhere: stopped at Placement, the shortfall named.
    let (s, v) = explain(json!({"flavor": "huge", "hosts": [free]}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["decision"]["status"], "no_valid_host");
    assert_eq!(v["named"][0]["stage"], "placement");
    assert!(v["named"][0]["reason"].as_str().unwrap_or("").starts_with("VCPU: asks 4096"), "{v}");

    // An existing server's RequestSpec: its own host does not count
    // against it (as for a move), so both hosts pass the group's filter.
    let (s, v) = explain(json!({"server": server, "hosts": [busy]}));
    assert_eq!(s, 200, "{v}");
    assert_ne!(v["named"][0]["rejected_by"], "ServerGroupAntiAffinityFilter", "{v}");

    // Nothing was claimed and nothing was booted.
    let usage_after: Vec<_> = providers.values().map(|rp| cloud.usages(rp)).collect();
    assert_eq!(usage_before, usage_after);
    assert_eq!(cloud.servers().len(), 1);

    // Bad input: Placement-style error bodies, never a 500.
    for (body, status) in [
        (json!({"flavor": "nope"}), 404),
        (json!({}), 400),
        (json!({"flavor": "small", "bogus": 1}), 400),
        (json!({"flavor": "small", "num_instances": 0}), 400),
        (json!({"flavor": "small", "scheduler_hints": {"group": "not-a-group"}}), 404),
        (json!({"server": server, "flavor": "small"}), 400),
    ] {
        let (s, v) = explain(body.clone());
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["errors"][0]["detail"].is_string(), "{body}: {v}");
    }
    let resp = reqwest::blocking::Client::new()
        .post(format!("{root}/v1/explain"))
        .header("X-Auth-Token", "demo")
        .json(&json!({"flavor": "small"}))
        .send()
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 403);

    // The CLI against the running cloud.
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["explain", "--from", &root, "--flavor", "small", "--hint", &format!("group={group}")])
        .args(["--host", &busy])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ServerGroupAntiAffinityFilter") && text.contains("already runs 1 member"), "{text}");
    assert!(text.contains(&format!("Decision: {free}")), "{text}");
}

/// Issue 11: the claim allocates what the flavor asked for (extra-spec
/// classes included), the live fleet follows every write in place, and
/// builds that finished no longer count as I/O operations.
#[test]
fn gpu_flavor_claims_its_gpu_and_the_live_fleet_follows_boots_and_deletes() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3", "--agent-driver", "fake"], false);
    cloud.wait("three hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 3)
    });
    let placement = cloud.placement.clone();
    let (s, v) = cloud.call("PUT", &format!("{placement}/resource_classes/CUSTOM_GPU"), None);
    assert!(s == 201 || s == 204, "{s} {v}");
    // One GPU on each compute node, added through the Placement API.
    let rps = cloud.providers();
    for rp in rps.values() {
        let (_, inv) = cloud.call("GET", &format!("{placement}/resource_providers/{rp}/inventories"), None);
        let mut inventories = inv["inventories"].clone();
        inventories["CUSTOM_GPU"] = json!({"total": 1});
        let body =
            json!({"resource_provider_generation": inv["resource_provider_generation"], "inventories": inventories});
        let (s, v) = cloud.call("PUT", &format!("{placement}/resource_providers/{rp}/inventories"), Some(body));
        assert_eq!(s, 200, "{v}");
    }
    cloud.flavor("gpu", 1, 512, 1);
    cloud.ok("POST", "/flavors/gpu/os-extra_specs", Some(json!({"extra_specs": {"resources:CUSTOM_GPU": "1"}})));
    cloud.flavor("small", 1, 256, 1);
    cloud.ok(
        "PUT",
        "/os-quota-sets/admin",
        Some(json!({"quota_set": {"instances": 100, "cores": 1000, "ram": 1_000_000}})),
    );
    for i in 0..3 {
        cloud.boot(json!({"server": {"name": format!("g{i}"), "flavorRef": "gpu", "networks": "none"}}));
        cloud.settle(60);
    }
    assert!(cloud.servers().iter().all(|s| s["status"] == "ACTIVE"), "{:?}", cloud.servers());
    for rp in rps.values() {
        let u = cloud.usages(rp);
        assert_eq!((u.get("CUSTOM_GPU"), u.get("VCPU"), u.get("MEMORY_MB")), (Some(&1), Some(&1), Some(&512)), "{u:?}");
    }
    // Every GPU is taken: the fourth GPU server finds no valid host.
    let fourth = cloud.boot(json!({"server": {"name": "g3", "flavorRef": "gpu", "networks": "none"}}));
    let id = fourth["server"]["id"].as_str().expect("id").to_owned();
    cloud.settle(60);
    let (_, shown) = cloud.nova("GET", &format!("/servers/{id}"), None);
    assert_eq!(shown["server"]["status"], "ERROR", "{shown}");
    assert!(shown["server"]["fault"]["message"].as_str().unwrap_or("").contains("No valid host"), "{shown}");
    // 50 builds; once they finished, no host counts an I/O operation.
    cloud.boot(
        json!({"server": {"name": "s", "flavorRef": "small", "min_count": 50, "max_count": 50, "networks": "none"}}),
    );
    let servers = cloud.settle(120);
    assert_eq!(servers.iter().filter(|s| s["status"] == "ACTIVE").count(), 53);
    let root = cloud.compute.trim_end_matches("/v2.1").to_owned();
    let sums = |cloud: &Cloud| {
        let sql = "SELECT SUM(num_io_ops) AS io, SUM(num_instances) AS n, SUM(custom_gpu_used) AS gpu, SUM(vcpu_used) AS vcpu FROM hosts";
        let (s, v) = cloud.call("POST", &format!("{root}/v1/query"), Some(json!({ "sql": sql })));
        assert_eq!(s, 200, "{v}");
        let row = v["rows"][0].clone();
        [row["io"].as_i64(), row["n"].as_i64(), row["gpu"].as_i64(), row["vcpu"].as_i64()]
    };
    assert_eq!(sums(&cloud), [Some(0), Some(53), Some(3), Some(53)]);
    let total_ram: i64 = rps.values().map(|rp| cloud.usages(rp).get("MEMORY_MB").copied().unwrap_or(0)).sum();
    assert_eq!(total_ram, 3 * 512 + 50 * 256);
    // Deletes: usages, instances and GPUs all come back.
    for s in cloud.servers() {
        cloud.ok("DELETE", &format!("/servers/{}", s["id"].as_str().expect("id")), None);
    }
    cloud.wait("every server to go", 60, || cloud.servers().is_empty());
    cloud.wait("allocations to go", 30, || rps.values().all(|rp| cloud.usages(rp).values().all(|&v| v == 0)));
    assert_eq!(sums(&cloud), [Some(0), Some(0), Some(0), Some(0)]);
    // And the GPUs can be had again.
    cloud.boot(json!({"server": {"name": "again", "flavorRef": "gpu", "networks": "none"}}));
    assert!(cloud.settle(60).iter().all(|s| s["status"] == "ACTIVE"));
}

/// Issue 11: a numbered request group (`resources1:VGPU=1`) lands on the
/// host whose child provider has VGPU inventory, and the allocation names
/// the child (Placement's candidates pick the tree, as in Nova).
#[test]
fn numbered_group_lands_on_the_child_provider_that_has_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3", "--agent-driver", "fake"], false);
    cloud.wait("three hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 3)
    });
    let placement = cloud.placement.clone();
    let rps = cloud.providers();
    let root = rps["compute-2"].clone();
    let child = "5c4e2a3b-9d7f-4c1e-8a6b-000000000001";
    let (s, v) = cloud.call(
        "POST",
        &format!("{placement}/resource_providers"),
        Some(json!({"name": "compute-2_pgpu0", "uuid": child, "parent_provider_uuid": root})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = cloud.call(
        "PUT",
        &format!("{placement}/resource_providers/{child}/inventories"),
        Some(json!({"resource_provider_generation": 0, "inventories": {"VGPU": {"total": 2}}})),
    );
    assert_eq!(s, 200, "{v}");
    cloud.flavor("vgpu", 1, 512, 1);
    cloud.ok("POST", "/flavors/vgpu/os-extra_specs", Some(json!({"extra_specs": {"resources1:VGPU": "1"}})));
    cloud.flavor("vgpu-nvidia", 1, 512, 1);
    cloud.ok(
        "POST",
        "/flavors/vgpu-nvidia/os-extra_specs",
        Some(json!({"extra_specs": {"resources1:VGPU": "1", "trait1:CUSTOM_VGPU_NVIDIA": "required"}})),
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let v = cloud.boot(json!({"server": {"name": format!("v{i}"), "flavorRef": "vgpu", "networks": "none"}}));
        ids.push(v["server"]["id"].as_str().expect("id").to_owned());
        cloud.settle(60);
    }
    for id in &ids[..2] {
        let (_, shown) = cloud.nova("GET", &format!("/servers/{id}"), None);
        assert_eq!(shown["server"]["status"], "ACTIVE", "{shown}");
        assert_eq!(shown["server"]["OS-EXT-SRV-ATTR:host"], "compute-2", "{shown}");
        let (s, a) = cloud.call("GET", &format!("{placement}/allocations/{id}"), None);
        assert_eq!(s, 200, "{a}");
        assert_eq!(a["allocations"][child]["resources"], json!({"VGPU": 1}), "{a}");
        assert_eq!(a["allocations"][&root]["resources"]["VCPU"], 1, "{a}");
    }
    // Two VGPUs, two servers: the third finds no valid host.
    let (_, third) = cloud.nova("GET", &format!("/servers/{}", ids[2]), None);
    assert_eq!(third["server"]["status"], "ERROR", "{third}");
    assert!(third["server"]["fault"]["message"].as_str().unwrap_or("").contains("No valid host"), "{third}");
    assert_eq!(cloud.usages(child).get("VGPU"), Some(&2));
    // A trait no VGPU provider has: no valid host either.
    cloud.ok("DELETE", &format!("/servers/{}", ids[0]), None);
    cloud.wait("a VGPU to be free", 30, || cloud.usages(child).get("VGPU") == Some(&1));
    let v = cloud.boot(json!({"server": {"name": "n", "flavorRef": "vgpu-nvidia", "networks": "none"}}));
    let id = v["server"]["id"].as_str().expect("id").to_owned();
    cloud.settle(60);
    let (_, shown) = cloud.nova("GET", &format!("/servers/{id}"), None);
    assert_eq!(shown["server"]["status"], "ERROR", "{shown}");
    for s in cloud.servers() {
        cloud.ok("DELETE", &format!("/servers/{}", s["id"].as_str().expect("id")), None);
    }
    cloud.wait("every server to go", 60, || cloud.servers().is_empty());
    cloud.wait("the VGPUs to be free", 30, || cloud.usages(child).get("VGPU") == Some(&0));
}

/// Issue 11: Nova's provider config files give compute nodes custom
/// inventory and traits; a bad file stops `quiver serve` naming it.
#[test]
fn provider_config_files_add_gpus_that_flavors_can_claim() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("provider_config");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("gpu.yaml"),
        "meta: {schema_version: '1.0'}\nproviders:\n  - identification: {uuid: $COMPUTE_NODE}\n    \
         inventories:\n      additional:\n        - CUSTOM_GPU: {total: 1}\n    \
         traits:\n      additional: [CUSTOM_GPU_A100]\n",
    )
    .expect("write");
    let conf = data.path().join("quiver.toml");
    std::fs::write(&conf, format!("[compute]\nprovider_config_location = {:?}\n", dir.display().to_string()))
        .expect("write");
    let cloud = Cloud::start(
        &data.path().join("data"),
        &["--with-agents", "2", "--agent-driver", "fake", "--config", conf.to_str().expect("utf8")],
        false,
    );
    let rps = cloud.providers();
    assert_eq!(rps.len(), 2);
    for rp in rps.values() {
        let (_, inv) = cloud.call("GET", &format!("{}/resource_providers/{rp}/inventories", cloud.placement), None);
        assert_eq!(inv["inventories"]["CUSTOM_GPU"]["total"], 1, "{inv}");
        let (_, t) = cloud.call("GET", &format!("{}/resource_providers/{rp}/traits", cloud.placement), None);
        assert!(t["traits"].as_array().expect("traits").contains(&json!("CUSTOM_GPU_A100")), "{t}");
    }
    cloud.flavor("a100", 1, 512, 1);
    cloud.ok(
        "POST",
        "/flavors/a100/os-extra_specs",
        Some(json!({"extra_specs": {"resources:CUSTOM_GPU": "1", "trait:CUSTOM_GPU_A100": "required"}})),
    );
    for i in 0..3 {
        cloud.boot(json!({"server": {"name": format!("a{i}"), "flavorRef": "a100", "networks": "none"}}));
        cloud.settle(60);
    }
    let servers = cloud.servers();
    assert_eq!(servers.iter().filter(|s| s["status"] == "ACTIVE").count(), 2, "{servers:?}");
    assert_eq!(servers.iter().filter(|s| s["status"] == "ERROR").count(), 1, "{servers:?}");
    for rp in rps.values() {
        assert_eq!(cloud.usages(rp).get("CUSTOM_GPU"), Some(&1));
    }
    drop(cloud);
    // A file that overrides what the hypervisor reports stops the service.
    std::fs::write(
        dir.join("vcpu.yaml"),
        "meta: {schema_version: '1.0'}\nproviders:\n  - identification: {name: compute-1}\n    \
         inventories:\n      additional:\n        - VCPU: {total: 512}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data", data.path().join("data2").to_str().expect("utf8")])
        .args(["--listen", &format!("127.0.0.1:{}", port()), "--compute-listen", &format!("127.0.0.1:{}", port())])
        .args(["--image-listen", &format!("127.0.0.1:{}", port())])
        .args(["--with-agents", "1", "--agent-driver", "fake", "--config", conf.to_str().expect("utf8")])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vcpu.yaml") && err.contains("cannot be overridden"), "{err}");
}

#[test]
fn a_cloud_on_postgresql_boots_and_keeps_its_servers_across_kill_9() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("quiver");
    let data = tempfile::tempdir().expect("tempdir");
    let args = ["--with-agents", "2", "--agent-driver", "fake", "--database", url.as_str()];
    let mut cloud = Cloud::start(data.path(), &args, false);
    cloud.wait("two hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 2)
    });
    cloud.flavor("small", 1, 512, 1);
    for i in 0..3 {
        cloud.boot(json!({"server": {"name": format!("pg{i}"), "flavorRef": "small", "networks": "none"}}));
    }
    let servers = cloud.settle(60);
    assert!(servers.iter().all(|s| s["status"] == "ACTIVE"), "{servers:?}");
    let used =
        |c: &Cloud| -> i64 { c.providers().values().map(|rp| c.usages(rp).get("VCPU").copied().unwrap_or(0)).sum() };
    assert_eq!(used(&cloud), 3);
    // kill -9, then a new process on the same database: records and
    // allocations are the database's.
    cloud._serve.0.kill().expect("kill -9");
    let _ = cloud._serve.0.wait();
    cloud = Cloud::start(data.path(), &args, false);
    cloud.wait("two hypervisors again", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 2)
    });
    let mut names: Vec<String> = cloud
        .servers()
        .iter()
        .filter(|s| s["status"] == "ACTIVE")
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["pg0", "pg1", "pg2"]);
    assert_eq!(used(&cloud), 3);
}

#[test]
fn three_replicas_booting_onto_the_last_slots_never_double_book_a_host() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("quiver");
    let data = tempfile::tempdir().expect("tempdir");
    let serve_conf = data.path().join("serve.toml");
    std::fs::write(&serve_conf, "[quota]\ninstances = 100\ncores = 1000\nram = 1000000\n").expect("config");
    let clouds: Vec<Cloud> = (0..3)
        .map(|i| {
            let args = ["--database", url.as_str(), "--config", serve_conf.to_str().expect("utf8")];
            Cloud::start(&data.path().join(format!("replica-{i}")), &args, false)
        })
        .collect();
    // One agent reporting to each replica; RAM binds: 4,096 MiB per host,
    // nothing reserved, ratio 1.0, so four 1,024 MiB servers per host.
    let agent_conf = data.path().join("agent.toml");
    std::fs::write(&agent_conf, "[DEFAULT]\nreserved_host_memory_mb = 0\nram_allocation_ratio = 1.0\n")
        .expect("config");
    let listens: Vec<u16> = (0..3).map(|_| port()).collect();
    let _agents: Vec<Proc> = (0..3)
        .map(|i| {
            let extra = ["--memory-mb", "4096", "--config", agent_conf.to_str().expect("utf8")];
            agent(&clouds[i].compute, &format!("race-{i}"), listens[i], &extra)
        })
        .collect();
    for c in &clouds {
        c.wait("every replica to see three hosts up", 60, || {
            (0..3).all(|i| service_state(c, &format!("race-{i}")) == "up") && c.providers().len() == 3
        });
    }
    // A flavor made on one replica is what the others boot.
    clouds[0].flavor("slot", 1, 1024, 1);
    let booted: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let c = &clouds[i % 3];
                scope.spawn(move || {
                    let body = json!({"server": {"name": format!("race{i}"), "flavorRef": "slot", "networks": "none"}});
                    c.boot(body)["server"]["id"].as_str().expect("id").to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    assert_eq!(booted.iter().collect::<BTreeSet<_>>().len(), 30);
    let views: Vec<BTreeSet<(String, String, String)>> = clouds
        .iter()
        .map(|c| {
            c.settle(120)
                .iter()
                .map(|s| {
                    let host = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or("").to_owned();
                    (s["id"].as_str().expect("id").to_owned(), s["status"].as_str().expect("status").to_owned(), host)
                })
                .collect()
        })
        .collect();
    assert!(views.iter().all(|v| v == &views[0]), "every replica lists the same servers, states and hosts");
    let servers = clouds[1].servers();
    assert_eq!(servers.len(), 30);
    let active: Vec<&Value> = servers.iter().filter(|s| s["status"] == "ACTIVE").collect();
    assert_eq!(active.len(), 12, "exactly the twelve slots are won");
    for s in servers.iter().filter(|s| s["status"] != "ACTIVE") {
        assert_eq!(s["status"], "ERROR", "{s}");
        assert!(s["fault"]["message"].as_str().is_some_and(|m| m.starts_with("No valid host")), "{s}");
    }
    // Placement agrees host by host, from any replica: four servers' RAM,
    // and exactly the ACTIVE servers as consumers; each hypervisor runs them.
    let rps = clouds[2].providers();
    for (i, listen) in listens.iter().enumerate() {
        let host = format!("race-{i}");
        let on_host: BTreeSet<String> = active
            .iter()
            .filter(|s| s["OS-EXT-SRV-ATTR:host"] == host.as_str())
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(on_host.len(), 4, "{host} holds four servers");
        let rp = &rps[&host];
        assert_eq!(clouds[i].usages(rp).get("MEMORY_MB"), Some(&4096), "{host}");
        assert_eq!(clouds[(i + 1) % 3].consumers_on(rp), on_host, "{host}");
        let guests: BTreeSet<String> = clouds[0]
            .guests(&format!("http://127.0.0.1:{listen}"), &host)
            .iter()
            .map(|g| g["uuid"].as_str().expect("uuid").to_owned())
            .collect();
        assert_eq!(guests, on_host, "{host}'s hypervisor runs exactly its servers");
    }
}

/// Waits until server `id` shows `status`; returns its view.
fn server_in(cloud: &Cloud, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    cloud.wait(&format!("server {id} in {status}"), 60, || {
        last = cloud.ok("GET", &format!("/servers/{id}"), None)["server"].clone();
        last["status"] == status
    });
    last
}

/// Every host's VCPU and MEMORY_MB usage in Placement equals the sum of
/// the flavors placed on it: the servers' own, and a move's source side.
fn usage_matches(cloud: &Cloud, expected: &BTreeMap<String, (i64, i64)>) {
    for (host, rp) in cloud.providers() {
        let u = cloud.usages(&rp);
        let got = (u.get("VCPU").copied().unwrap_or(0), u.get("MEMORY_MB").copied().unwrap_or(0));
        assert_eq!(got, expected.get(&host).copied().unwrap_or((0, 0)), "usage on {host}");
    }
}

#[test]
fn cold_migrate_and_resize_confirm_and_revert_move_allocations_and_guests() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    cloud.flavor("big", 2, 1024, 1);
    cloud.flavor("too-big", 2, 1_000_000, 1);
    // Bigger than any host, so the quota must not stop it first.
    cloud.ok("PUT", "/os-quota-sets/admin", Some(json!({"quota_set": {"ram": -1}})));
    let id = cloud.boot(json!({"server": {"name": "mover", "flavorRef": "small", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let host_of = |v: &Value| v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let first = host_of(&server_in(&cloud, &id, "ACTIVE"));
    let guests_on =
        |host: &str| -> usize { cloud.guests(&agents, host).iter().filter(|g| g["uuid"] == id.as_str()).count() };
    let action = |body: Value| {
        let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(body));
        assert!(st == 202 || st == 204, "{st} {v}");
    };
    // 1. Cold migration: VERIFY_RESIZE elsewhere; the instance holds the
    // destination, the migration's consumer the source.
    action(json!({"migrate": null}));
    let second = host_of(&server_in(&cloud, &id, "VERIFY_RESIZE"));
    assert_ne!(second, first);
    usage_matches(&cloud, &BTreeMap::from([(first.clone(), (1, 512)), (second.clone(), (1, 512))]));
    let ms = cloud.ok("GET", "/os-migrations", None)["migrations"].clone();
    assert_eq!(ms.as_array().map(Vec::len), Some(1), "{ms}");
    assert_eq!((ms[0]["status"].as_str(), ms[0]["migration_type"].as_str()), (Some("finished"), Some("migration")));
    assert_eq!(
        (ms[0]["source_compute"].as_str(), ms[0]["dest_compute"].as_str()),
        (Some(first.as_str()), Some(second.as_str()))
    );
    let migration_consumer = ms[0]["uuid"].as_str().expect("uuid").to_owned();
    assert!(cloud.consumers_on(&cloud.providers()[&first]).contains(&migration_consumer));
    assert_eq!((guests_on(&first), guests_on(&second)), (1, 1), "the source keeps its powered-off guest");
    // Confirm: the source's guest and allocations are gone.
    action(json!({"confirmResize": null}));
    assert_eq!(host_of(&server_in(&cloud, &id, "ACTIVE")), second);
    cloud.wait("the migration confirmed", 30, || {
        cloud.ok("GET", "/os-migrations", None)["migrations"][0]["status"] == "confirmed"
    });
    usage_matches(&cloud, &BTreeMap::from([(second.clone(), (1, 512))]));
    assert_eq!((guests_on(&first), guests_on(&second)), (0, 1));
    // 2. Resize up, then revert: usage returns exactly to the old flavor on
    // the old host.
    action(json!({"resize": {"flavorRef": "big"}}));
    let v = server_in(&cloud, &id, "VERIFY_RESIZE");
    let third = host_of(&v);
    assert_ne!(third, second);
    assert_eq!(v["flavor"]["original_name"], "big", "{v}");
    usage_matches(&cloud, &BTreeMap::from([(second.clone(), (1, 512)), (third.clone(), (2, 1024))]));
    action(json!({"revertResize": null}));
    let v = server_in(&cloud, &id, "ACTIVE");
    assert_eq!(host_of(&v), second);
    assert_eq!(v["flavor"]["original_name"], "small");
    usage_matches(&cloud, &BTreeMap::from([(second.clone(), (1, 512))]));
    assert_eq!((guests_on(&second), guests_on(&third)), (1, 0));
    // 3. A resize nothing can take: the server stays ACTIVE where it was,
    // the migration is in error, nothing moved.
    action(json!({"resize": {"flavorRef": "too-big"}}));
    cloud.wait("the failed resize recorded", 30, || {
        let ms = cloud.ok("GET", "/os-migrations?status=error", None);
        ms["migrations"].as_array().is_some_and(|m| m.len() == 1)
    });
    let v = server_in(&cloud, &id, "ACTIVE");
    assert_eq!((host_of(&v), v["flavor"]["original_name"].as_str()), (second.clone(), Some("small")));
    usage_matches(&cloud, &BTreeMap::from([(second.clone(), (1, 512))]));
    // ... and its instance actions say why, as Nova's do.
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    let names: Vec<&str> = actions.as_array().expect("actions").iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["resize", "revertResize", "resize", "confirmResize", "migrate", "create"]);
    assert_eq!(actions[0]["message"], "Error");
    assert!(actions[1]["message"].is_null() && actions[5]["message"].is_null(), "{actions}");
    let failed = actions[0]["request_id"].as_str().expect("request id");
    let failed =
        cloud.ok("GET", &format!("/servers/{id}/os-instance-actions/{failed}"), None)["instanceAction"].clone();
    let event = &failed["events"][0];
    assert_eq!((event["event"].as_str(), event["result"].as_str()), (Some("conductor_migrate_server"), Some("Error")));
    assert!(event["details"].as_str().is_some_and(|d| d.starts_with("No valid host")), "{failed}");
    // 4. Migrate to a named host (2.56+), and bad requests.
    let (st, _) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"migrate": {"host": "nowhere"}})));
    assert_eq!(st, 400);
    let (st, _) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"resize": {"flavorRef": "small"}})));
    assert_eq!(st, 400, "a resize must change the flavor");
    let (st, body) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"confirmResize": null})));
    assert_eq!(st, 409, "{body}");
    action(json!({"migrate": {"host": first}}));
    assert_eq!(host_of(&server_in(&cloud, &id, "VERIFY_RESIZE")), first);
    action(json!({"confirmResize": null}));
    server_in(&cloud, &id, "ACTIVE");
    cloud.wait("no migration consumer left", 30, || {
        cloud.providers().values().map(|rp| cloud.consumers_on(rp)).all(|c| c.iter().all(|x| *x == id))
    });
    usage_matches(&cloud, &BTreeMap::from([(first.clone(), (1, 512))]));
    // Deleting leaves nothing behind.
    cloud.ok("DELETE", &format!("/servers/{id}"), None);
    cloud.wait("the server gone", 30, || cloud.servers().is_empty());
    usage_matches(&cloud, &BTreeMap::new());
}

#[test]
fn an_anti_affinity_member_never_migrates_onto_a_peers_host() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3", "--agent-driver", "fake"], false);
    cloud.flavor("small", 1, 512, 1);
    let g = cloud.ok(
        "POST",
        "/os-server-groups",
        Some(json!({"server_group": {"name": "apart", "policy": "anti-affinity"}})),
    );
    let g = g["server_group"]["id"].as_str().expect("group").to_owned();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let body = json!({"server": {"name": format!("m{i}"), "flavorRef": "small", "networks": "none"},
                              "os:scheduler_hints": {"group": g}});
            cloud.boot(body)["server"]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let hosts: Vec<String> = ids
        .iter()
        .map(|id| server_in(&cloud, id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned())
        .collect();
    assert_eq!(hosts.iter().collect::<BTreeSet<_>>().len(), 3, "one member per host");
    // Every other host has a peer: the move finds no host and nothing moves.
    let (st, v) = cloud.nova("POST", &format!("/servers/{}/action", ids[0]), Some(json!({"migrate": null})));
    assert_eq!(st, 202, "{v}");
    cloud.wait("the migration to fail", 30, || {
        cloud.ok("GET", "/os-migrations?status=error", None)["migrations"].as_array().is_some_and(|m| m.len() == 1)
    });
    assert_eq!(server_in(&cloud, &ids[0], "ACTIVE")["OS-EXT-SRV-ATTR:host"], hosts[0].as_str());
    // A named host with a peer is refused by the filters too.
    let (st, _) =
        cloud.nova("POST", &format!("/servers/{}/action", ids[0]), Some(json!({"migrate": {"host": hosts[1]}})));
    assert_eq!(st, 202);
    cloud.wait("the second migration to fail", 30, || {
        cloud.ok("GET", "/os-migrations?status=error", None)["migrations"].as_array().is_some_and(|m| m.len() == 2)
    });
    // Once a peer's host is free, that is where it goes.
    cloud.ok("DELETE", &format!("/servers/{}", ids[2]), None);
    cloud.wait("the peer gone", 30, || cloud.servers().len() == 2);
    let (st, _) = cloud.nova("POST", &format!("/servers/{}/action", ids[0]), Some(json!({"migrate": null})));
    assert_eq!(st, 202);
    assert_eq!(server_in(&cloud, &ids[0], "VERIFY_RESIZE")["OS-EXT-SRV-ATTR:host"], hosts[2].as_str());
}

/// Issue 15: `quiver plan drain` of one host on a running cloud, then the
/// real cold migrations of its servers, one by one in the plan's order:
/// each lands where the plan said, and the one the plan says stays (an
/// anti-affinity member whose peers hold every other host) fails to move.
#[test]
fn plan_drain_says_where_each_server_of_a_host_lands_and_the_migrations_agree() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "4", "--agent-driver", "fake"], false);
    cloud.wait("four hypervisors", 30, || {
        cloud.ok("GET", "/os-hypervisors", None)["hypervisors"].as_array().is_some_and(|h| h.len() == 4)
    });
    cloud.flavor("small", 1, 512, 1);
    cloud.flavor("medium", 2, 4096, 10);
    cloud.flavor("large", 8, 16384, 40);
    cloud.ok("PUT", "/os-quota-sets/admin", Some(json!({"quota_set": {"cores": -1, "ram": -1, "instances": -1}})));
    let g = cloud.ok(
        "POST",
        "/os-server-groups",
        Some(json!({"server_group": {"name": "apart", "policy": "anti-affinity"}})),
    );
    let g = g["server_group"]["id"].as_str().expect("group").to_owned();
    let boot = |name: String, flavor: &str, group: Option<&str>| {
        let mut body = json!({"server": {"name": name, "flavorRef": flavor, "networks": "none"}});
        if let Some(group) = group {
            body["os:scheduler_hints"] = json!({"group": group});
        }
        assert!(cloud.boot(body)["server"]["id"].is_string());
        cloud.settle(60);
    };
    // One group member per host, then a mix.
    for i in 0..4 {
        boot(format!("apart-{i}"), "small", Some(&g));
    }
    for (i, f) in ["large", "medium", "small", "large", "medium", "medium", "small", "large"].iter().enumerate() {
        boot(format!("mix-{i}"), f, None);
    }
    let servers = cloud.settle(60);
    assert!(servers.iter().all(|s| s["status"] == "ACTIVE"), "{servers:?}");
    let host_of = |v: &Value| v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    // Drain the busiest host.
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for s in &servers {
        *per_host.entry(host_of(s)).or_default() += 1;
    }
    let drained =
        per_host.iter().max_by_key(|(h, n)| (**n, std::cmp::Reverse((*h).clone()))).expect("a host").0.clone();
    let on_drained = per_host[&drained];
    assert!(on_drained >= 2, "{per_host:?}");
    let providers = cloud.providers();
    let usage_before: Vec<_> = providers.values().map(|rp| cloud.usages(rp)).collect();

    let root = cloud.compute.trim_end_matches("/v2.1").to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["plan", "drain", "--from", &root, "--hosts", &drained, "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let moves = plan["moves"].as_array().expect("moves").clone();
    assert_eq!(moves.len(), on_drained, "{plan}");
    assert_eq!(plan["sources"], json!([drained]));
    // The drained host's group member has a peer on every other host.
    let stuck: Vec<&Value> = moves.iter().filter(|m| m["destination"].is_null()).collect();
    assert_eq!(stuck.len(), 1, "{plan}");
    assert!(stuck[0]["name"].as_str().is_some_and(|n| n.starts_with("apart-")), "{plan}");
    assert_eq!(stuck[0]["stopped_by"], "ServerGroupAntiAffinityFilter", "{plan}");
    assert_eq!((plan["moved"].as_u64(), plan["stuck"].as_u64()), (Some(on_drained as u64 - 1), Some(1)));
    assert_eq!(plan["by_zone"][0]["hosts"], 3, "{plan}");
    // Planning claimed nothing.
    let usage_after: Vec<_> = providers.values().map(|rp| cloud.usages(rp)).collect();
    assert_eq!(usage_before, usage_after);
    // The tables, as the CLI prints them.
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["plan", "drain", "--from", &root, "--hosts", &drained])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("draining {drained}: {on_drained} instance(s)")), "{text}");
    assert!(text.contains("ServerGroupAntiAffinityFilter") && text.contains("zone after the drain"), "{text}");

    // Now move them for real, in the plan's order, each confirmed before
    // the next (as an operator draining a host does).
    let mut errors = 0;
    for m in &moves {
        let id = m["instance"].as_str().expect("uuid");
        let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"migrate": null})));
        assert_eq!(st, 202, "{v}");
        match m["destination"].as_str() {
            Some(dest) => {
                let v = server_in(&cloud, id, "VERIFY_RESIZE");
                assert_eq!(host_of(&v), dest, "{} went elsewhere than planned: {plan}", m["name"]);
                let (st, v) =
                    cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"confirmResize": null})));
                assert_eq!(st, 204, "{v}");
                assert_eq!(host_of(&server_in(&cloud, id, "ACTIVE")), dest);
                cloud.wait("the migration confirmed", 30, || {
                    let ms = cloud.ok("GET", &format!("/os-migrations?instance_uuid={id}"), None);
                    ms["migrations"].as_array().is_some_and(|a| a.iter().any(|x| x["status"] == "confirmed"))
                });
            }
            None => {
                errors += 1;
                cloud.wait("the move to fail", 30, || {
                    let ms = cloud.ok("GET", "/os-migrations?status=error", None);
                    ms["migrations"].as_array().is_some_and(|a| a.len() == errors)
                });
                assert_eq!(host_of(&server_in(&cloud, id, "ACTIVE")), drained);
            }
        }
    }
    // Bad input, and non-admins.
    let plan_call = |body: Value| cloud.call("POST", &format!("{root}/v1/plan/drain"), Some(body));
    for (body, status) in [
        (json!({"hosts": ["no-such-host"]}), 404),
        (json!({}), 400),
        (json!({"hosts": [drained], "zone": "nova"}), 400),
        (json!({"aggregate": "nope"}), 404),
        (json!({"hosts": "compute-1"}), 400),
    ] {
        let (s, v) = plan_call(body.clone());
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["errors"][0]["detail"].is_string(), "{body}: {v}");
    }
    let resp = reqwest::blocking::Client::new()
        .post(format!("{root}/v1/plan/drain"))
        .header("X-Auth-Token", "demo")
        .json(&json!({"hosts": [drained]}))
        .send()
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 403);
    // Headroom and size answer on the same cloud.
    let (s, v) = cloud.call("POST", &format!("{root}/v1/plan/headroom"), Some(json!({"flavors": ["large"]})));
    assert_eq!(s, 200, "{v}");
    assert!(v["flavors"][0]["exact"].as_u64().is_some_and(|n| n > 0), "{v}");
    // 40 servers of the large shape that never leave: more than the
    // cloud holds, so some hosts of that shape must be added.
    let mut trace = String::from("arrival,flavor,vcpus,memory_mb,disk_gb\n");
    for i in 0..40 {
        trace.push_str(&format!("{i},large,8,16384,40\n"));
    }
    let (s, v) = cloud.call(
        "POST",
        &format!("{root}/v1/plan/size"),
        Some(json!({"trace_csv": trace, "host_shape": {"like": drained, "vcpus": 16, "memory_mb": 32768}})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["requests"], 40, "{v}");
    let added = v["added"].as_u64().expect("an answer") as usize;
    let at = |k: usize| {
        v["curve"].as_array().expect("curve").iter().find(|p| p["added"] == k).map(|p| p["rejected"].clone())
    };
    assert!(added > 0, "{v}");
    assert_eq!((at(added), at(added - 1).is_some_and(|r| r != 0)), (Some(json!(0)), true), "{v}");
    let (s, v) = cloud.call("POST", &format!("{root}/v1/plan/size"), Some(json!({"trace_csv": "arrival\n"})));
    assert_eq!(s, 400, "{v}");
}

#[test]
fn live_migration_keeps_the_guest_running_on_exactly_one_host() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    let id = cloud.boot(json!({"server": {"name": "live", "flavorRef": "small", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let host_of = |v: &Value| v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let mut here = host_of(&server_in(&cloud, &id, "ACTIVE"));
    let running_on = || -> Vec<String> {
        (1..=3)
            .map(|i| format!("compute-{i}"))
            .filter(|h| cloud.guests(&agents, h).iter().any(|g| g["uuid"] == id.as_str() && g["state"] == "running"))
            .collect()
    };
    let bad = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"os-migrateLive": {"host": null}})));
    assert_eq!(bad.0, 400, "block_migration is required at 2.25+: {}", bad.1);
    // To any host, then to a named one.
    for named in [false, true] {
        let target = if named {
            json!((1..=3).map(|i| format!("compute-{i}")).find(|h| *h != here).expect("another host"))
        } else {
            Value::Null
        };
        let body = json!({"os-migrateLive": {"host": target, "block_migration": "auto"}});
        let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(body));
        assert_eq!(st, 202, "{v}");
        let mut now = String::new();
        cloud.wait("the live migration to complete", 30, || {
            let v = cloud.ok("GET", &format!("/servers/{id}"), None)["server"].clone();
            now = v["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or("").to_owned();
            v["status"] == "ACTIVE" && now != here
        });
        if named {
            assert_eq!(json!(now), target);
        }
        assert_eq!(running_on(), [now.clone()], "the guest runs on exactly one host");
        usage_matches(&cloud, &BTreeMap::from([(now.clone(), (1, 512))]));
        here = now;
    }
    let ms = cloud.ok("GET", "/os-migrations?migration_type=live-migration", None)["migrations"].clone();
    assert_eq!(ms.as_array().map(Vec::len), Some(2));
    assert!(ms.as_array().expect("list").iter().all(|m| m["status"] == "completed"), "{ms}");
    let running = cloud.ok("GET", &format!("/servers/{id}/migrations"), None);
    assert_eq!(running["migrations"].as_array().map(Vec::len), Some(0), "none in progress");
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    assert_eq!(actions[0]["action"], "live-migration");
}

#[test]
fn live_migrations_and_boots_racing_on_a_nearly_full_fleet_leak_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let conf = data.path().join("quiver.toml");
    std::fs::write(
        &conf,
        "[DEFAULT]\nreserved_host_memory_mb = 0\nram_allocation_ratio = 1.0\n[quota]\ninstances = 100\ncores = 1000\nram = 1000000\n",
    )
    .expect("config");
    let args = ["--with-agents", "6", "--agent-driver", "fake", "--agent-memory-mb", "5120"];
    let cloud = Cloud::start(data.path(), &[&args[..], &["--config", conf.to_str().expect("utf8")]].concat(), false);
    // 6 hosts x 5 slots of 1,024 MiB; 20 servers first.
    cloud.flavor("slot", 1, 1024, 1);
    let boot = |name: String| {
        cloud.boot(json!({"server": {"name": name, "flavorRef": "slot", "networks": "none"}}))["server"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let first: Vec<String> = (0..20).map(|i| boot(format!("base{i}"))).collect();
    for id in &first {
        server_in(&cloud, id, "ACTIVE");
    }
    // 20 live migrations and 20 boots at once.
    std::thread::scope(|scope| {
        for id in &first {
            let cloud = &cloud;
            scope.spawn(move || {
                let body = json!({"os-migrateLive": {"host": null, "block_migration": "auto"}});
                let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(body));
                assert!(st == 202 || st == 409, "{st} {v}");
            });
        }
        for i in 0..20 {
            let boot = &boot;
            scope.spawn(move || boot(format!("late{i}")));
        }
    });
    let servers = cloud.settle(120);
    cloud.wait("every move to end", 60, || {
        let ms = cloud.ok("GET", "/os-migrations", None)["migrations"].clone();
        ms.as_array().expect("list").iter().all(|m| m["status"] == "completed" || m["status"] == "error")
            && cloud.servers().iter().all(|s| s["status"] != "MIGRATING")
    });
    let servers: Vec<Value> =
        if servers.iter().any(|s| s["status"] == "MIGRATING") { cloud.servers() } else { servers };
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for s in servers.iter().filter(|s| s["status"] == "ACTIVE") {
        let e = expected.entry(s["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned()).or_default();
        *e = (e.0 + 1, e.1 + 1024);
    }
    assert!(expected.values().all(|&(_, ram)| ram <= 5120), "no host over capacity: {expected:?}");
    assert!(servers.iter().all(|s| s["status"] == "ACTIVE" || s["status"] == "ERROR"), "{servers:?}");
    assert_eq!(
        servers
            .iter()
            .filter(|s| s["status"] == "ACTIVE" && s["name"].as_str().is_some_and(|n| n.starts_with("base")))
            .count(),
        20,
        "every moved server is still ACTIVE"
    );
    // Placement holds exactly the ACTIVE servers, and no migration consumer.
    usage_matches(&cloud, &expected);
    let active: BTreeSet<String> =
        servers.iter().filter(|s| s["status"] == "ACTIVE").map(|s| s["id"].as_str().expect("id").to_owned()).collect();
    let consumers: BTreeSet<String> = cloud.providers().values().flat_map(|rp| cloud.consumers_on(rp)).collect();
    assert_eq!(consumers, active, "no leaked allocation");
    let ms = cloud.ok("GET", "/os-migrations?status=completed", None)["migrations"].as_array().map_or(0, Vec::len);
    eprintln!("{} ACTIVE of 40, {ms} of 20 live migrations completed", active.len());
}

#[test]
fn shelve_offload_frees_the_host_and_unshelve_builds_it_again() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    let id = cloud.boot(json!({"server": {"name": "shelf", "flavorRef": "small", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let v = server_in(&cloud, &id, "ACTIVE");
    let host = v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let action = |body: Value| {
        let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(body));
        assert_eq!(st, 202, "{v}");
    };
    // shelved_offload_time = 0: offloaded at once; the host is free.
    action(json!({"shelve": null}));
    let v = server_in(&cloud, &id, "SHELVED_OFFLOADED");
    assert!(v["OS-EXT-SRV-ATTR:host"].is_null(), "{v}");
    usage_matches(&cloud, &BTreeMap::new());
    assert!(cloud.guests(&agents, &host).iter().all(|g| g["uuid"] != id.as_str()), "the guest is gone");
    let (st, _) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"shelve": null})));
    assert_eq!(st, 409, "already shelved");
    // Unshelve schedules it again; usage is back where it lands.
    action(json!({"unshelve": null}));
    let v = server_in(&cloud, &id, "ACTIVE");
    let back = v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    usage_matches(&cloud, &BTreeMap::from([(back.clone(), (1, 512))]));
    assert!(cloud.guests(&agents, &back).iter().any(|g| g["uuid"] == id.as_str() && g["state"] == "running"));
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    let names: Vec<&str> = actions.as_array().expect("list").iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["unshelve", "shelve", "create"]);
    // os-resetState (admin): a stuck server is set back by hand.
    action(json!({"os-resetState": {"state": "error"}}));
    assert_eq!(cloud.ok("GET", &format!("/servers/{id}"), None)["server"]["status"], "ERROR");
    action(json!({"os-resetState": {"state": "active"}}));
    assert_eq!(cloud.ok("GET", &format!("/servers/{id}"), None)["server"]["status"], "ACTIVE");
    let (st, _) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"os-resetState": {"state": "on"}})));
    assert_eq!(st, 400);
    // Unshelve to a named host (2.91, admin): only for an offloaded server.
    let at_291 = |body: Value| -> u16 {
        let resp = cloud
            .http
            .post(format!("{}/servers/{id}/action", cloud.compute))
            .header("OpenStack-API-Version", "compute 2.91")
            .json(&body)
            .send()
            .expect("answer");
        resp.status().as_u16()
    };
    let target = (1..=3).map(|i| format!("compute-{i}")).find(|h| *h != back).expect("another host");
    assert_eq!(at_291(json!({"unshelve": {"host": target}})), 409, "not offloaded");
    action(json!({"shelve": null}));
    server_in(&cloud, &id, "SHELVED_OFFLOADED");
    assert_eq!(at_291(json!({"unshelve": {"host": "nowhere"}})), 400);
    let (st, _) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"unshelve": {"host": target}})));
    assert_eq!(st, 400, "host is a 2.91 field");
    assert_eq!(at_291(json!({"unshelve": {"host": target, "availability_zone": null}})), 202);
    let v = server_in(&cloud, &id, "ACTIVE");
    assert_eq!(v["OS-EXT-SRV-ATTR:host"].as_str(), Some(target.as_str()));
    usage_matches(&cloud, &BTreeMap::from([(target.clone(), (1, 512))]));
}

#[test]
fn evacuate_rebuilds_elsewhere_and_the_returning_host_gives_back_its_allocation() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::configured(data.path(), "[DEFAULT]\nservice_down_time = 2\n", &[], false);
    let listens = [port(), port()];
    let mut agents: Vec<Proc> =
        ["ev-a", "ev-b"].iter().zip(listens).map(|(h, l)| agent(&cloud.compute, h, l, &[])).collect();
    cloud.wait("both agents up", 30, || service_state(&cloud, "ev-a") == "up" && service_state(&cloud, "ev-b") == "up");
    cloud.flavor("small", 1, 512, 1);
    let id = cloud.boot(json!({"server": {"name": "evac", "flavorRef": "small", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let source = server_in(&cloud, &id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let (which, dest) = if source == "ev-a" { (0, "ev-b") } else { (1, "ev-a") };
    let evacuate = || cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"evacuate": {}})));
    let (st, v) = evacuate();
    assert_eq!(st, 409, "the source is up: {v}");
    agents[which].0.kill().expect("SIGKILL");
    let _ = agents[which].0.wait();
    cloud.wait("the source down", 30, || service_state(&cloud, &source) == "down");
    let (st, v) = evacuate();
    assert_eq!(st, 200, "{v}");
    assert_eq!(server_in(&cloud, &id, "ACTIVE")["OS-EXT-SRV-ATTR:host"], dest);
    let rps = cloud.providers();
    let migration = cloud.ok("GET", "/os-migrations?migration_type=evacuation", None)["migrations"][0].clone();
    assert_eq!(migration["status"], "done", "{migration}");
    let migration_uuid = migration["uuid"].as_str().expect("uuid").to_owned();
    // Until the source is back it keeps the migration's allocation.
    assert_eq!(cloud.consumers_on(&rps[dest]), BTreeSet::from([id.clone()]));
    assert_eq!(cloud.consumers_on(&rps[&source]), BTreeSet::from([migration_uuid]));
    // The source comes back: its reconcile drops the stale allocation.
    agents[which] = agent(&cloud.compute, &source, listens[which], &[]);
    cloud.wait("the evacuation completed", 30, || {
        cloud.ok("GET", "/os-migrations?migration_type=evacuation", None)["migrations"][0]["status"] == "completed"
    });
    cloud.wait("one allocation left", 30, || cloud.consumers_on(&rps[&source]).is_empty());
    assert_eq!(cloud.consumers_on(&rps[dest]), BTreeSet::from([id.clone()]));
    assert!(cloud.guests(&format!("http://127.0.0.1:{}", listens[which]), &source).is_empty());
    usage_matches(&cloud, &BTreeMap::from([(dest.to_owned(), (1, 512))]));
}

#[test]
fn rebuild_stays_on_its_host_and_an_image_a_filter_rejects_there_fails_cleanly() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    let first = cloud.image("first", json!({}));
    let second = cloud.image("second", json!({"hw_architecture": "x86_64"}));
    // The libvirt hosts run x86_64 guests only: ImagePropertiesFilter
    // rejects this image on every host.
    let arm = cloud.image("arm", json!({"hw_architecture": "aarch64"}));
    let id = cloud.boot(json!({"server": {"name": "r", "flavorRef": "small", "imageRef": first, "networks": "none"}}))
        ["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let host = server_in(&cloud, &id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let guest = || -> Vec<(String, String, Option<String>)> {
        (1..=3)
            .map(|i| format!("compute-{i}"))
            .flat_map(|h| cloud.guests(&agents, &h).into_iter().map(move |g| (h.clone(), g)))
            .filter(|(_, g)| g["uuid"] == id.as_str())
            .map(|(h, g)| (h, g["state"].as_str().unwrap_or("").to_owned(), g["image_id"].as_str().map(str::to_owned)))
            .collect()
    };
    assert_eq!(guest(), [(host.clone(), "running".to_owned(), Some(first.clone()))]);
    let rebuild = |body: Value| cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"rebuild": body})));
    // 1. A new image and name: REBUILD at once, then ACTIVE on the same
    // host, the guest built again from the new image, nothing claimed.
    let (st, v) = rebuild(json!({"imageRef": second, "name": "rebuilt", "metadata": {"k": "v"}}));
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["server"]["status"], "REBUILD", "{v}");
    assert!(v["server"]["adminPass"].is_string(), "{v}");
    let v = server_in(&cloud, &id, "ACTIVE");
    assert_eq!((v["name"].as_str(), v["image"]["id"].as_str()), (Some("rebuilt"), Some(second.as_str())), "{v}");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["OS-EXT-SRV-ATTR:host"].as_str(), Some(host.as_str()));
    assert_eq!(guest(), [(host.clone(), "running".to_owned(), Some(second.clone()))]);
    usage_matches(&cloud, &BTreeMap::from([(host.clone(), (1, 512))]));
    // 2. An image the host's filters reject: ERROR with Nova's No valid
    // host fault, the old image kept, the guest and allocations untouched.
    let (st, v) = rebuild(json!({"imageRef": arm}));
    assert_eq!(st, 202, "{v}");
    let v = server_in(&cloud, &id, "ERROR");
    let fault = v["fault"]["message"].as_str().unwrap_or("");
    assert!(fault.starts_with("No valid host") && fault.contains("ImagePropertiesFilter"), "{v}");
    assert_eq!(v["image"]["id"].as_str(), Some(second.as_str()), "the image is rolled back");
    assert_eq!(guest(), [(host.clone(), "running".to_owned(), Some(second.clone()))]);
    usage_matches(&cloud, &BTreeMap::from([(host.clone(), (1, 512))]));
    let consumers: BTreeSet<String> = cloud.providers().values().flat_map(|rp| cloud.consumers_on(rp)).collect();
    assert_eq!(consumers, BTreeSet::from([id.clone()]));
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    assert_eq!((actions[0]["action"].as_str(), actions[0]["message"].as_str()), (Some("rebuild"), Some("Error")));
    assert_eq!(actions[1]["action"], "rebuild");
    assert!(actions[1]["message"].is_null(), "{actions}");
    // 3. An ERROR server can be rebuilt (Nova allows it); a stopped one
    // comes back stopped.
    let (st, v) = rebuild(json!({"imageRef": first}));
    assert_eq!(st, 202, "{v}");
    server_in(&cloud, &id, "ACTIVE");
    cloud.ok("POST", &format!("/servers/{id}/action"), Some(json!({"os-stop": null})));
    server_in(&cloud, &id, "SHUTOFF");
    let (st, v) = rebuild(json!({"imageRef": second}));
    assert_eq!(st, 202, "{v}");
    cloud.wait("the rebuild of a stopped server", 60, || {
        let v = cloud.ok("GET", &format!("/servers/{id}"), None)["server"].clone();
        v["status"] == "SHUTOFF" && v["image"]["id"] == second.as_str()
    });
    assert_eq!(guest(), [(host.clone(), "shutdown".to_owned(), Some(second.clone()))]);
    usage_matches(&cloud, &BTreeMap::from([(host.clone(), (1, 512))]));
    // 4. Bad requests.
    for (body, want) in [
        (json!({}), 400),
        (json!({"imageRef": "00000000-0000-0000-0000-000000000000"}), 400),
        (json!({"imageRef": first, "flavorRef": "small"}), 400),
        (json!({"imageRef": first, "metadata": {"k": 1}}), 400),
        (json!("no"), 400),
    ] {
        let (st, v) = rebuild(body.clone());
        assert_eq!(st, want, "{body}: {v}");
        assert!(v["badRequest"]["message"].is_string(), "{v}");
    }
    let (st, _) = cloud.nova("POST", "/servers/nope/action", Some(json!({"rebuild": {"imageRef": first}})));
    assert_eq!(st, 404);
    cloud.ok("DELETE", &format!("/servers/{id}"), None);
    cloud.wait("the server gone", 30, || cloud.servers().is_empty());
    usage_matches(&cloud, &BTreeMap::new());
}

#[test]
fn a_running_live_migration_reports_progress_and_can_be_aborted_or_forced_to_complete() {
    let data = tempfile::tempdir().expect("tempdir");
    // 2,048 MiB at 64 MiB/s: a 32-second copy to watch, abort and force.
    let config = "[libvirt]\nlive_migration_bandwidth = 64\n";
    let cloud = Cloud::configured(data.path(), config, &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("wide", 1, 2048, 1);
    let id = cloud.boot(json!({"server": {"name": "slow", "flavorRef": "wide", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let host_of = |v: &Value| v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    let source = host_of(&server_in(&cloud, &id, "ACTIVE"));
    let running_on = || -> Vec<String> {
        (1..=3)
            .map(|i| format!("compute-{i}"))
            .filter(|h| cloud.guests(&agents, h).iter().any(|g| g["uuid"] == id.as_str() && g["state"] == "running"))
            .collect()
    };
    let live = || {
        let body = json!({"os-migrateLive": {"host": null, "block_migration": "auto"}});
        let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(body));
        assert_eq!(st, 202, "{v}");
        // Running, with some memory copied.
        let mut m = Value::Null;
        cloud.wait("the copy under way", 30, || {
            m = cloud.ok("GET", &format!("/servers/{id}/migrations"), None)["migrations"][0].clone();
            m["status"] == "running" && m["memory_processed_bytes"].as_u64().is_some_and(|b| b > 0)
        });
        assert_eq!(m["memory_total_bytes"].as_u64(), Some(2048 * 1024 * 1024), "{m}");
        assert_eq!(m["server_uuid"].as_str(), Some(id.as_str()));
        m["id"].as_i64().expect("migration id")
    };
    let path = |mid: i64| format!("/servers/{id}/migrations/{mid}");
    // 1. Abort: the destination's copy and allocations go; the server keeps
    // running where it was.
    let mid = live();
    let shown = cloud.ok("GET", &path(mid), None)["migration"].clone();
    assert_eq!(shown["id"].as_i64(), Some(mid));
    let (st, v) = cloud.nova("DELETE", &path(mid), None);
    assert_eq!(st, 202, "{v}");
    let (st, v) = cloud.nova("DELETE", &path(mid), None);
    assert_eq!(st, 400, "already being aborted: {v}");
    cloud.wait("the migration cancelled", 30, || {
        cloud.ok("GET", "/os-migrations?migration_type=live-migration", None)["migrations"][0]["status"] == "cancelled"
    });
    let v = server_in(&cloud, &id, "ACTIVE");
    assert_eq!(host_of(&v), source);
    assert_eq!(running_on(), std::slice::from_ref(&source));
    usage_matches(&cloud, &BTreeMap::from([(source.clone(), (1, 2048))]));
    let consumers: BTreeSet<String> = cloud.providers().values().flat_map(|rp| cloud.consumers_on(rp)).collect();
    assert_eq!(consumers, BTreeSet::from([id.clone()]), "the migration's consumer is gone");
    let (st, _) = cloud.nova("GET", &path(mid), None);
    assert_eq!(st, 404, "not in progress any more");
    let (st, _) = cloud.nova("DELETE", &path(mid), None);
    assert_eq!(st, 409, "the server is not migrating");
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    let names: Vec<&str> = actions.as_array().expect("list").iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["live_migration_cancel", "live-migration", "create"]);
    // 2. Force complete: the copy ends at once, the server lands.
    let mid = live();
    let (st, v) = cloud.nova("POST", &format!("{}/action", path(mid)), Some(json!({"force_complete": null})));
    assert_eq!(st, 202, "{v}");
    let mut dest = String::new();
    cloud.wait("the forced migration to land", 20, || {
        let v = cloud.ok("GET", &format!("/servers/{id}"), None)["server"].clone();
        dest = v["OS-EXT-SRV-ATTR:host"].as_str().unwrap_or("").to_owned();
        v["status"] == "ACTIVE" && dest != source
    });
    assert_eq!(running_on(), [dest.clone()]);
    usage_matches(&cloud, &BTreeMap::from([(dest.clone(), (1, 2048))]));
    let ms = cloud.ok("GET", "/os-migrations?migration_type=live-migration", None)["migrations"].clone();
    assert_eq!((ms[0]["status"].as_str(), ms[1]["status"].as_str()), (Some("completed"), Some("cancelled")));
    // Bad requests.
    let (st, _) = cloud.nova("GET", &format!("/servers/{id}/migrations/x"), None);
    assert_eq!(st, 400);
    let (st, _) = cloud.nova("DELETE", &path(9999), None);
    assert_eq!(st, 404);
    let (st, _) = cloud.nova("POST", &format!("{}/action", path(mid)), Some(json!({"finish": null})));
    assert_eq!(st, 400);
}

#[test]
fn a_resize_grows_only_within_quota_and_an_unconfirmed_one_confirms_after_the_window() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = "[DEFAULT]\nresize_confirm_window = 1\nupdate_resources_interval = 0.5\nreport_interval = 0.25\n";
    let cloud = Cloud::configured(data.path(), config, &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    cloud.flavor("small", 1, 512, 1);
    cloud.flavor("medium", 2, 1024, 1);
    cloud.flavor("large", 4, 1024, 1);
    cloud.ok("PUT", "/os-quota-sets/admin", Some(json!({"quota_set": {"cores": 3}})));
    let id = cloud.boot(json!({"server": {"name": "grow", "flavorRef": "small", "networks": "none"}}))["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let source = server_in(&cloud, &id, "ACTIVE")["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    // 1 core used of 3: +3 cores does not fit, +1 does (Nova checks the
    // difference, not the whole new flavor).
    let (st, v) = cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"resize": {"flavorRef": "large"}})));
    assert_eq!(st, 403, "{v}");
    let message = v["forbidden"]["message"].as_str().unwrap_or("");
    assert_eq!(message, "Quota exceeded for cores: Requested 3, but already used 1 of 3 cores", "{v}");
    assert!(cloud.ok("GET", "/os-migrations", None)["migrations"].as_array().is_some_and(Vec::is_empty));
    let (st, v) =
        cloud.nova("POST", &format!("/servers/{id}/action"), Some(json!({"resize": {"flavorRef": "medium"}})));
    assert_eq!(st, 202, "{v}");
    // Nobody confirms: the destination's agent does, a window later.
    cloud.wait("the resize confirmed by the window", 30, || {
        cloud.ok("GET", "/os-migrations", None)["migrations"][0]["status"] == "confirmed"
    });
    let v = server_in(&cloud, &id, "ACTIVE");
    let dest = v["OS-EXT-SRV-ATTR:host"].as_str().expect("host").to_owned();
    assert_ne!(dest, source);
    assert_eq!(v["flavor"]["original_name"], "medium");
    usage_matches(&cloud, &BTreeMap::from([(dest.clone(), (2, 1024))]));
    assert!(cloud.guests(&agents, &source).iter().all(|g| g["uuid"] != id.as_str()), "the source guest is gone");
    let actions = cloud.ok("GET", &format!("/servers/{id}/os-instance-actions"), None)["instanceActions"].clone();
    let names: Vec<&str> = actions.as_array().expect("list").iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(names, ["confirmResize", "resize", "create"]);
}

#[test]
fn image_precaching_fetches_the_image_onto_every_up_host_of_the_aggregate() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "3"], true);
    let agents = cloud.agents.clone().expect("agent API");
    let image = cloud.image("precached", json!({}));
    let agg = cloud.ok("POST", "/os-aggregates", Some(json!({"aggregate": {"name": "warm"}})))["aggregate"]["id"]
        .as_i64()
        .expect("id");
    for h in ["compute-1", "compute-2", "compute-3"] {
        cloud.ok("POST", &format!("/os-aggregates/{agg}/action"), Some(json!({"add_host": {"host": h}})));
    }
    // compute-3 is forced down: it is skipped, as Nova skips hosts that
    // are not up.
    let down = cloud.ok("GET", "/os-services?host=compute-3", None)["services"][0]["id"].clone();
    let down = down.as_str().expect("service id").to_owned();
    cloud.ok("PUT", &format!("/os-services/{down}"), Some(json!({"forced_down": true})));
    let cached_on = |h: &str| -> Vec<String> {
        let (st, v) = cloud.call("GET", &format!("{agents}/hosts/{h}/images"), None);
        assert_eq!(st, 200, "{v}");
        serde_json::from_value(v).expect("ids")
    };
    assert!(cached_on("compute-1").is_empty());
    let metrics = || -> String {
        let base = cloud.compute.trim_end_matches("/v2.1");
        cloud.http.get(format!("{base}/metrics")).send().expect("metrics").text().expect("text")
    };
    let counter = |m: &str, outcome: &str| -> u64 {
        let key = format!("quiver_image_precache_total{{outcome=\"{outcome}\"}} ");
        m.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let ask = |version: &str, body: Value| -> (u16, Value) {
        let resp = cloud
            .http
            .post(format!("{}/os-aggregates/{agg}/images", cloud.compute))
            .header("OpenStack-API-Version", format!("compute {version}"))
            .json(&body)
            .send()
            .expect("answer");
        let st = resp.status().as_u16();
        (st, resp.json().unwrap_or(Value::Null))
    };
    let (st, v) = ask("2.81", json!({"cache": [{"id": image}]}));
    assert_eq!(st, 202, "{v}");
    cloud.wait("the up hosts to cache the image", 30, || {
        let m = metrics();
        counter(&m, "cached") == 2 && counter(&m, "skipped") == 1
    });
    assert_eq!(cached_on("compute-1"), std::slice::from_ref(&image));
    assert_eq!(cached_on("compute-2"), std::slice::from_ref(&image));
    assert!(cached_on("compute-3").is_empty(), "the down host was skipped");
    // The cached file is the image's bytes.
    let file = data.path().join("instances/compute-1/_base").join(&image);
    assert_eq!(std::fs::read(&file).expect("cached file"), vec![7u8; 4096]);
    // Asking again finds it there.
    let (st, _) = ask("2.81", json!({"cache": [{"id": image}]}));
    assert_eq!(st, 202);
    cloud.wait("the second request's results", 30, || counter(&metrics(), "existing") == 2);
    // A boot with the image still works from the cache.
    cloud.flavor("small", 1, 512, 1);
    let booted =
        cloud.boot(json!({"server": {"name": "warm", "flavorRef": "small", "imageRef": image, "networks": "none"}}));
    server_in(&cloud, booted["server"]["id"].as_str().expect("id"), "ACTIVE");
    // Bad requests, as Nova answers them.
    for (version, body, want) in [
        ("2.80", json!({"cache": [{"id": image}]}), 404),
        ("2.81", json!({"cache": []}), 400),
        ("2.81", json!({"cache": [{"id": image}, {"id": image}]}), 400),
        ("2.81", json!({"cache": [{"id": "not-a-uuid"}]}), 400),
        ("2.81", json!({"cache": [{"id": "00000000-0000-0000-0000-000000000000"}]}), 400),
        ("2.81", json!({"images": [{"id": image}]}), 400),
    ] {
        let (st, v) = ask(version, body.clone());
        assert_eq!(st, want, "{version} {body}: {v}");
    }
    let resp = cloud
        .http
        .post(format!("{}/os-aggregates/999/images", cloud.compute))
        .header("OpenStack-API-Version", "compute 2.81")
        .json(&json!({"cache": [{"id": image}]}))
        .send()
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 404);
}

/// 32 creates at once over `clouds` (round robin); how many were accepted,
/// and that every other one was Nova's over-quota 403.
fn race_creates(clouds: &[Cloud]) -> usize {
    clouds[0].flavor("tiny", 1, 64, 1);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let c = &clouds[i % clouds.len()];
                scope.spawn(move || {
                    let body = json!({"server": {"name": format!("q{i}"), "flavorRef": "tiny", "networks": "none"}});
                    c.nova("POST", "/servers", Some(body))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    for (st, v) in &answers {
        assert!(*st == 202 || (*st == 403 && v["forbidden"]["message"].is_string()), "{st} {v}");
    }
    answers.iter().filter(|(st, _)| *st == 202).count()
}

#[test]
fn racing_creates_for_the_last_quota_slots_pass_exactly_as_many_as_fit() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::configured(data.path(), "[quota]\ninstances = 4\n", &[], false);
    assert_eq!(race_creates(std::slice::from_ref(&cloud)), 4);
    assert_eq!(cloud.servers().len(), 4);
    // Two replicas on one PostgreSQL database: the same four, not eight.
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("quiver");
    let shared = tempfile::tempdir().expect("tempdir");
    let replicas: Vec<Cloud> = (0..2)
        .map(|i| {
            let dir = shared.path().join(format!("replica-{i}"));
            Cloud::configured(&dir, "[quota]\ninstances = 4\n", &["--database", url.as_str()], false)
        })
        .collect();
    assert_eq!(race_creates(&replicas), 4);
    assert!(replicas.iter().all(|c| c.servers().len() == 4), "both replicas list the four");
}

#[test]
fn a_slow_or_oversized_request_head_is_cut_off_and_the_server_serves_on() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::configured(data.path(), "[api]\nheader_read_timeout = 1\nmax_header_bytes = 8192\n", &[], false);
    let addr = cloud.compute.trim_start_matches("http://").trim_end_matches("/v2.1").to_owned();
    // A head that never ends (slowloris): the server closes the connection.
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    slow.write_all(b"GET /v2.1/flavors HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin\r\n").expect("write");
    let mut got = Vec::new();
    let read = slow.read_to_end(&mut got);
    assert!(read.is_ok(), "closed by the server, not by our 30 s read timeout: {read:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A head over the limit: 431, not a hung or dropped connection.
    let mut big = std::net::TcpStream::connect(&addr).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let pad = "a".repeat(16 * 1024);
    big.write_all(format!("GET /v2.1/flavors HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").as_bytes()).expect("write");
    let mut got = Vec::new();
    let _ = big.read_to_end(&mut got);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431"), "{}", String::from_utf8_lossy(&got));
    // Everyone else is served as before.
    assert!(cloud.ok("GET", "/flavors", None)["flavors"].is_array());
}

#[test]
fn fields_past_their_limits_are_refused_with_an_error_body_and_nothing_is_written() {
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = Cloud::start(data.path(), &["--with-agents", "1", "--agent-driver", "fake"], false);
    cloud.flavor("small", 1, 512, 1);
    let images = |body: Value| cloud.call("POST", &format!("{}/v2/images", cloud.images), Some(body));
    let many = |n: usize, f: &dyn Fn(usize) -> Value| -> Vec<Value> { (0..n).map(f).collect() };
    let long = "x".repeat(256);
    let cases: Vec<(Value, u16)> = vec![
        (json!({"name": long}), 400),
        (json!({"name": "t", "tags": many(129, &|i| json!(format!("t{i}")))}), 413),
        (json!({"name": "t", "tags": [long]}), 400),
        (json!({"name": "t", long.clone(): "v"}), 400),
        (json!({"name": "t", "p": "v".repeat(70_000)}), 400),
    ];
    for (body, want) in cases {
        let (st, v) = images(body);
        assert_eq!(st, want, "{v}");
        assert!(v.as_object().is_some_and(|o| !o.is_empty()), "an error body: {v}");
    }
    let mut props = serde_json::Map::new();
    props.insert("name".into(), json!("t"));
    for i in 0..129 {
        props.insert(format!("p{i}"), json!("v"));
    }
    assert_eq!(images(Value::Object(props)).0, 413);
    let (_, v) = cloud.call("GET", &format!("{}/v2/images", cloud.images), None);
    assert_eq!(v["images"].as_array().map(Vec::len), Some(0), "nothing written: {v}");

    let metadata: serde_json::Map<String, Value> = (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
    let server = |name: &str, metadata: Value| {
        cloud.nova(
            "POST",
            "/servers",
            Some(json!({"server": {"name": name, "flavorRef": "small", "networks": "none", "metadata": metadata}})),
        )
    };
    let (st, v) = server("m", Value::Object(metadata));
    assert_eq!(st, 403, "{v}");
    let (st, v) = server(&long, json!({}));
    assert_eq!(st, 400, "{v}");
    let (st, v) = server("m", json!({"k": long}));
    assert_eq!(st, 400, "{v}");
    assert!(cloud.servers().is_empty());
}
