//! `kill -9` of `quiver serve`, again and again, during a mixed stream of
//! Compute and Placement writes: every acknowledged write survives, the
//! write in flight is whole or absent, and once it settles the records,
//! Placement and the agents (separate processes that outlive the
//! controller, as nova-compute outlives nova-api) agree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The controller's fixed ports, so agents find it again after a restart.
struct Ports {
    placement: u16,
    compute: u16,
    images: u16,
}

fn serve(data: &Path, ports: &Ports) -> Proc {
    let conf = data.join("quiver.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data", data.to_str().expect("utf8"), "--config", conf.to_str().expect("utf8")])
        .args(["--listen", &format!("127.0.0.1:{}", ports.placement)])
        .args(["--compute-listen", &format!("127.0.0.1:{}", ports.compute)])
        .args(["--image-listen", &format!("127.0.0.1:{}", ports.images)])
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    Proc(child)
}

/// A fake-driver agent for `host`, and the port of its HTTP API.
fn agent(compute: u16, host: &str) -> (Proc, u16) {
    let listen = port();
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["agent", "--controller", &format!("http://127.0.0.1:{compute}"), "--host", host, "--driver", "fake"])
        .args(["--listen", &format!("127.0.0.1:{listen}"), "--vcpus", "64", "--memory-mb", "65536"])
        .args(["--report-interval", "0.3", "--update-resources-interval", "0.6"])
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent starts");
    (Proc(child), listen)
}

fn http() -> reqwest::blocking::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("X-Auth-Token", "admin".parse().expect("header"));
    h.insert("OpenStack-API-Version", "compute 2.90, placement 1.39".parse().expect("header"));
    reqwest::blocking::Client::builder().default_headers(h).timeout(Duration::from_secs(10)).build().expect("client")
}

/// One call; `None` when the server is gone (the kill).
fn try_call(http: &reqwest::blocking::Client, method: &str, url: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut req = http.request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().ok()?;
    let status = r.status().as_u16();
    let text = r.text().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn call(http: &reqwest::blocking::Client, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    try_call(http, method, url, body).unwrap_or_else(|| panic!("{method} {url}: no answer"))
}

fn wait(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A write the client sent; `acked` once the answer said it was done.
#[derive(Clone, Debug)]
enum Write {
    CreateServer(String),
    DeleteServer(String),
    Allocate(String),
    Free(String),
}

/// What the client knows: acknowledged writes, and the one in flight at
/// each kill (sent, never answered).
#[derive(Default)]
struct Ledger {
    servers: BTreeSet<String>,
    deleted_servers: BTreeSet<String>,
    allocations: BTreeSet<String>,
    freed: BTreeSet<String>,
    in_flight: Vec<Write>,
    acked: usize,
}

const VCPU_PER_ALLOCATION: u64 = 1;

/// Writes until the server stops answering; a server create's name tells
/// an in-flight create apart.
fn stream(http: &reqwest::blocking::Client, ports: &Ports, ledger: &mut Ledger, ledger_rp: &str, cycle: usize) {
    let compute = format!("http://127.0.0.1:{}/v2.1", ports.compute);
    let placement = format!("http://127.0.0.1:{}", ports.placement);
    for step in 0.. {
        let write = match step % 4 {
            0 => Write::CreateServer(format!("c{cycle}-{step}")),
            1 if ledger.servers.len() > 6 => Write::DeleteServer(ledger.servers.iter().next().cloned().expect("one")),
            2 => Write::Allocate(uuid::Uuid::new_v4().to_string()),
            3 if ledger.allocations.len() > 20 => Write::Free(ledger.allocations.iter().next().cloned().expect("one")),
            _ => continue,
        };
        let answer = match &write {
            Write::CreateServer(name) => {
                let body = json!({"server": {"name": name, "flavorRef": "tiny", "networks": "none"}});
                try_call(http, "POST", &format!("{compute}/servers"), Some(&body))
            }
            Write::DeleteServer(id) => try_call(http, "DELETE", &format!("{compute}/servers/{id}"), None),
            Write::Allocate(c) => {
                let body = json!({"allocations": {ledger_rp: {"resources": {"VCPU": VCPU_PER_ALLOCATION}}},
                    "project_id": "p", "user_id": "u", "consumer_generation": null, "consumer_type": "INSTANCE"});
                try_call(http, "PUT", &format!("{placement}/allocations/{c}"), Some(&body))
            }
            Write::Free(c) => try_call(http, "DELETE", &format!("{placement}/allocations/{c}"), None),
        };
        let Some((status, body)) = answer else {
            // Sent, never answered: it may or may not have happened, so
            // what it would remove is no longer promised either way.
            match &write {
                Write::DeleteServer(id) => {
                    ledger.servers.remove(id);
                }
                Write::Free(c) => {
                    ledger.allocations.remove(c);
                }
                Write::CreateServer(_) | Write::Allocate(_) => {}
            }
            ledger.in_flight.push(write);
            return;
        };
        match (&write, status) {
            (Write::CreateServer(_), 202) => {
                ledger.servers.insert(body["server"]["id"].as_str().expect("id").to_owned());
            }
            (Write::DeleteServer(id), 204) => {
                ledger.servers.remove(id);
                ledger.deleted_servers.insert(id.clone());
            }
            (Write::Allocate(c), 204) => {
                ledger.allocations.insert(c.clone());
            }
            (Write::Free(c), 204) => {
                ledger.allocations.remove(c);
                ledger.freed.insert(c.clone());
            }
            (w, s) => panic!("{w:?} answered {s}: {body}"),
        }
        ledger.acked += 1;
    }
}

/// Every acknowledged write is there; the writes in flight are whole or
/// absent.
fn check_acknowledged(http: &reqwest::blocking::Client, ports: &Ports, ledger: &Ledger, ledger_rp: &str) {
    let compute = format!("http://127.0.0.1:{}/v2.1", ports.compute);
    let placement = format!("http://127.0.0.1:{}", ports.placement);
    for id in &ledger.servers {
        let (s, v) = call(http, "GET", &format!("{compute}/servers/{id}"), None);
        assert_eq!(s, 200, "acknowledged server {id} lost: {v}");
    }
    let (_, v) = call(http, "GET", &format!("{placement}/resource_providers/{ledger_rp}/allocations"), None);
    let on_ledger: BTreeSet<String> = v["allocations"].as_object().expect("allocations").keys().cloned().collect();
    for c in &ledger.allocations {
        assert!(on_ledger.contains(c), "acknowledged allocation {c} lost");
    }
    for c in &ledger.freed {
        assert!(!on_ledger.contains(c), "acknowledged free of {c} undone");
    }
    for w in &ledger.in_flight {
        if let Write::Allocate(c) | Write::Free(c) = w {
            let (s, v) = call(http, "GET", &format!("{placement}/allocations/{c}"), None);
            assert_eq!(s, 200);
            let vcpu = &v["allocations"][ledger_rp]["resources"]["VCPU"];
            assert!(vcpu.is_null() || *vcpu == VCPU_PER_ALLOCATION, "half-applied allocation {c}: {v}");
        }
    }
    // The ledger's usage is exactly the sum of its allocations.
    let (_, u) = call(http, "GET", &format!("{placement}/resource_providers/{ledger_rp}/usages"), None);
    assert_eq!(u["usages"]["VCPU"].as_u64(), Some(on_ledger.len() as u64 * VCPU_PER_ALLOCATION));
}

#[test]
fn a_hundred_kill_9s_during_compute_and_placement_writes_lose_nothing_acknowledged() {
    let cycles: usize = std::env::var("QUIVER_KILL_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        data.path().join("quiver.toml"),
        "[DEFAULT]\nservice_down_time = 30\n[quota]\ninstances = -1\ncores = -1\nram = -1\n",
    )
    .expect("config");
    let ports = Ports { placement: port(), compute: port(), images: port() };
    let http = http();
    let compute = format!("http://127.0.0.1:{}/v2.1", ports.compute);
    let placement = format!("http://127.0.0.1:{}", ports.placement);
    let up = |http: &reqwest::blocking::Client| {
        wait("serve to answer", 60, || try_call(http, "GET", &format!("{compute}/flavors"), None).is_some())
    };
    let mut server = serve(data.path(), &ports);
    up(&http);
    let agents = [("kill-a", agent(ports.compute, "kill-a")), ("kill-b", agent(ports.compute, "kill-b"))];
    wait("both agents up", 30, || {
        let (_, v) = call(&http, "GET", &format!("{compute}/os-services"), None);
        v["services"].as_array().is_some_and(|s| s.iter().filter(|s| s["state"] == "up").count() == 2)
    });
    let (s, v) = call(
        &http,
        "POST",
        &format!("{compute}/flavors"),
        Some(&json!({"flavor": {"id": "tiny", "name": "tiny", "vcpus": 1, "ram": 64, "disk": 1}})),
    );
    assert_eq!(s, 200, "{v}");
    let ledger_rp = uuid::Uuid::new_v4().to_string();
    let (s, v) = call(
        &http,
        "POST",
        &format!("{placement}/resource_providers"),
        Some(&json!({"name": "ledger", "uuid": ledger_rp})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &http,
        "PUT",
        &format!("{placement}/resource_providers/{ledger_rp}/inventories"),
        Some(&json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 1_000_000}}})),
    );
    assert_eq!(s, 200, "{v}");

    let mut ledger = Ledger::default();
    for cycle in 0..cycles {
        // Kill it 50 to 400 ms into the stream, wherever that is.
        let pause = Duration::from_millis(50 + (cycle as u64 * 37) % 350);
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let client = crate::faults::http();
                stream(&client, &ports, &mut ledger, &ledger_rp, cycle);
            });
            std::thread::sleep(pause);
            server.0.kill().expect("kill -9");
            let _ = server.0.wait();
            writer.join().expect("writer");
        });
        server = serve(data.path(), &ports);
        up(&http);
        check_acknowledged(&http, &ports, &ledger, &ledger_rp);
    }
    assert!(ledger.acked >= cycles * 2, "the stream was running ({} writes acknowledged)", ledger.acked);

    // Settled: records, Placement and agents agree.
    let unsettled = || -> Vec<String> {
        let (_, v) = call(&http, "GET", &format!("{compute}/servers/detail"), None);
        v["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter(|s| s["status"] == "BUILD" || !s["OS-EXT-STS:task_state"].is_null())
            .map(|s| format!("{} {} {} {}", s["id"], s["name"], s["status"], s["OS-EXT-STS:task_state"]))
            .collect()
    };
    let settle_by = Instant::now() + Duration::from_secs(60);
    while !unsettled().is_empty() && Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(unsettled(), Vec::<String>::new(), "servers left unsettled");
    for id in &ledger.deleted_servers {
        wait(&format!("deleted server {id} gone"), 30, || {
            call(&http, "GET", &format!("{compute}/servers/{id}"), None).0 == 404
        });
    }
    let (_, v) = call(&http, "GET", &format!("{compute}/servers/detail"), None);
    let servers = v["servers"].as_array().expect("servers").clone();
    let (_, hyp) = call(&http, "GET", &format!("{compute}/os-hypervisors"), None);
    let rps: BTreeMap<String, String> = hyp["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|h| {
            (h["hypervisor_hostname"].as_str().expect("name").to_owned(), h["id"].as_str().expect("id").to_owned())
        })
        .collect();
    wait("allocations to match the active servers", 30, || {
        rps.iter().all(|(host, rp)| {
            let (_, v) = call(&http, "GET", &format!("{placement}/resource_providers/{rp}/allocations"), None);
            let consumers: BTreeSet<String> =
                v["allocations"].as_object().expect("allocations").keys().cloned().collect();
            let active: BTreeSet<String> = servers
                .iter()
                .filter(|s| s["status"] == "ACTIVE" && s["OS-EXT-SRV-ATTR:host"] == host.as_str())
                .map(|s| s["id"].as_str().expect("id").to_owned())
                .collect();
            consumers == active
        })
    });
    for s in &servers {
        assert!(matches!(s["status"].as_str(), Some("ACTIVE" | "ERROR")), "{s}");
    }
    // Each hypervisor runs exactly its host's ACTIVE servers.
    for (host, (_, listen)) in &agents {
        let active: BTreeSet<String> = servers
            .iter()
            .filter(|s| s["status"] == "ACTIVE" && s["OS-EXT-SRV-ATTR:host"] == *host)
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect();
        wait(&format!("{host}'s guests to match its servers"), 30, || {
            let (_, g) = call(&http, "GET", &format!("http://127.0.0.1:{listen}/hosts/{host}/guests"), None);
            let guests: BTreeSet<String> =
                g.as_array().expect("guests").iter().map(|g| g["uuid"].as_str().expect("uuid").to_owned()).collect();
            guests == active
        });
    }
    for id in &ledger.servers {
        assert!(servers.iter().any(|s| s["id"] == id.as_str()), "acknowledged server {id} lost at the end");
    }
    check_acknowledged(&http, &ports, &ledger, &ledger_rp);
    eprintln!(
        "kill -9 x{cycles}: {} writes acknowledged, {} in flight at a kill, {} servers at the end ({} ACTIVE)",
        ledger.acked,
        ledger.in_flight.len(),
        servers.len(),
        servers.iter().filter(|s| s["status"] == "ACTIVE").count()
    );
    drop(server);
}
