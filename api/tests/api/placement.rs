//! `quiver serve` over real HTTP: concurrency, crash durability, bad input
//! and allocation candidates. (Placement's own gabbi suite runs against the
//! same server through scripts/placement-suite-server; see the README.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
}

/// A minimal HTTP/1.1 client (one connection per request) for the tests.
#[derive(Clone, Copy)]
pub(crate) struct Client {
    pub(crate) port: u16,
}

impl Server {
    pub(crate) fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// `quiver serve` on `data` with `extra` flags (`--database URL`).
    pub(crate) fn start_with(data: &Path, extra: &[&str]) -> Server {
        let mut args = extra.to_vec();
        args.extend(["--compute-listen", "127.0.0.1:0", "--image-listen", "127.0.0.1:0"]);
        Server::start_on(data, &args)
    }

    /// `quiver serve --listen` on a free port with exactly `args` besides.
    /// The port is picked before the server binds it, so a test running
    /// beside may take it first: a server that exits before it answers is
    /// started again on another.
    pub(crate) fn start_on(data: &Path, args: &[&str]) -> Server {
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
            let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data", data.to_str().expect("utf8")])
                .args(args)
                .env("QUIVER_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("quiver serve starts");
            let mut s = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if s.try_call("GET", "/", None, "1.0").is_some_and(|(status, _)| status == 200) {
                    return s;
                }
                if s.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("server did not become ready (three tries)");
    }

    pub(crate) fn client(&self) -> Client {
        Client { port: self.port }
    }

    pub(crate) fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        version: &str,
    ) -> Option<(u16, Value)> {
        self.client().try_call(method, path, body, version)
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>, version: &str) -> (u16, Value) {
        self.client().call(method, path, body, version)
    }

    fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        self.client().try_call(method, path, Some(body), "1.39").expect("server answers")
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Client {
    pub(crate) fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        version: &str,
    ) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let body = body.unwrap_or(b"");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Auth-Token: admin\r\nAccept: application/json\r\nOpenStack-API-Version: placement {version}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        let body = if chunked { dechunk(body) } else { body.to_string() };
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>, version: &str) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.try_call(method, path, bytes.as_deref(), version).expect("server answers")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A provider with `vcpus` VCPU; returns its uuid.
pub(crate) fn provider(s: &Server, name: &str, vcpus: i64) -> String {
    let (status, rp) = s.call("POST", "/resource_providers", Some(&json!({"name": name})), "1.39");
    assert_eq!(status, 200, "{rp}");
    let id = rp["uuid"].as_str().expect("uuid").to_string();
    let body = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": vcpus}, "MEMORY_MB": {"total": 65536}}});
    let (status, inv) = s.call("PUT", &format!("/resource_providers/{id}/inventories"), Some(&body), "1.39");
    assert_eq!(status, 200, "{inv}");
    id
}

pub(crate) fn allocate(s: &Server, rp: &str, consumer: &str, vcpus: i64) -> (u16, Value) {
    let body = json!({
        "allocations": {rp: {"resources": {"VCPU": vcpus}}},
        "project_id": "p", "user_id": "u", "consumer_generation": null, "consumer_type": "INSTANCE"
    });
    s.call("PUT", &format!("/allocations/{consumer}"), Some(&body), "1.39")
}

#[test]
fn racing_clients_never_over_allocate_and_every_loser_gets_409() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path());
    let rp = provider(&s, "race", 8);
    let results: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24).map(|_| scope.spawn(|| allocate(&s, &rp, &uuid(), 1))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let won = results.iter().filter(|(st, _)| *st == 204).count();
    let lost: Vec<&(u16, Value)> = results.iter().filter(|(st, _)| *st != 204).collect();
    assert_eq!(won, 8, "exactly the capacity is granted");
    assert!(lost.iter().all(|(st, b)| *st == 409 && b["errors"][0]["status"] == 409), "{lost:?}");
    let (_, usages) = s.call("GET", &format!("/resource_providers/{rp}/usages"), None, "1.39");
    assert_eq!(usages["usages"]["VCPU"], 8);

    // Writers racing on one provider generation: one wins, the rest 409.
    let (_, current) = s.call("GET", &format!("/resource_providers/{rp}"), None, "1.39");
    let generation = current["generation"].as_i64().expect("generation");
    let statuses: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (s, rp) = (&s, &rp);
                scope.spawn(move || {
                    let body = json!({"resource_provider_generation": generation,
                                      "inventories": {"VCPU": {"total": 16 + i}, "MEMORY_MB": {"total": 65536}}});
                    s.call("PUT", &format!("/resource_providers/{rp}/inventories"), Some(&body), "1.39")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(statuses.iter().filter(|(st, _)| *st == 200).count(), 1);
    for (st, body) in statuses.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 409);
        assert_eq!(body["errors"][0]["code"], "placement.concurrent_update");
    }
}

#[test]
fn kill_9_during_a_stream_of_writes_loses_no_acknowledged_allocation() {
    kill_9_loses_nothing_acknowledged(&[]);
}

#[test]
fn kill_9_with_placement_in_postgresql_loses_no_acknowledged_allocation() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("placement");
    kill_9_loses_nothing_acknowledged(&["--database", &url]);
}

/// A stream of acknowledged allocation writes, `kill -9`, a restart on the
/// same store: every acknowledged write is there.
fn kill_9_loses_nothing_acknowledged(extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start_with(dir.path(), extra);
    let rp = provider(&s, "durable", 100_000);
    let client = s.client();
    let writer = std::thread::spawn(move || {
        let mut acked = vec![];
        loop {
            let consumer = uuid();
            let body = json!({
                "allocations": {&rp: {"resources": {"VCPU": 1}}},
                "project_id": "p", "user_id": "u", "consumer_generation": null, "consumer_type": "INSTANCE"
            });
            let bytes = serde_json::to_vec(&body).expect("json");
            match client.try_call("PUT", &format!("/allocations/{consumer}"), Some(&bytes), "1.39") {
                Some((204, _)) => acked.push(consumer),
                _ => return (acked, rp),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    s.kill9();
    let (acked, rp) = writer.join().expect("writer");
    assert!(acked.len() > 10, "the stream was running ({} writes acknowledged)", acked.len());
    let s = Server::start_with(dir.path(), extra);
    for consumer in &acked {
        let (status, body) = s.call("GET", &format!("/allocations/{consumer}"), None, "1.39");
        assert_eq!(status, 200);
        assert_eq!(body["allocations"][&rp]["resources"]["VCPU"], 1, "acknowledged allocation {consumer} survived");
    }
    let (_, usages) = s.call("GET", &format!("/resource_providers/{rp}/usages"), None, "1.39");
    let used = usages["usages"]["VCPU"].as_u64().expect("usage");
    // The write in flight at the kill may or may not have committed.
    assert!(used == acked.len() as u64 || used == acked.len() as u64 + 1, "{used} vs {}", acked.len());
}

#[test]
fn bad_input_gets_a_placement_error_body_never_a_500() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path());
    let rp = provider(&s, "bad-input", 4);
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("POST", "/resource_providers".into(), b"{not json".to_vec(), 400),
        ("POST", "/resource_providers".into(), br#"{"name": 42}"#.to_vec(), 400),
        ("POST", "/resource_providers".into(), br#"{"name": "x", "colour": "blue"}"#.to_vec(), 400),
        (
            "PUT",
            format!("/resource_providers/{rp}/inventories"),
            br#"{"resource_provider_generation": "one", "inventories": {}}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/resource_providers/{rp}/inventories"),
            br#"{"resource_provider_generation": 1, "inventories": {"VCPU": {"total": -1}}}"#.to_vec(),
            400,
        ),
        ("GET", "/allocation_candidates?resources=VCPU:one".into(), vec![], 400),
        ("GET", "/allocation_candidates?resources=VCPU:1&required=!!".into(), vec![], 400),
        ("GET", "/allocation_candidates?resources=VCPU:1&member_of=not-a-uuid".into(), vec![], 400),
        ("GET", "/allocation_candidates?resources=NO_SUCH_CLASS:1".into(), vec![], 400),
        ("GET", "/resource_providers?bogus=1".into(), vec![], 400),
        ("PUT", format!("/allocations/{}", uuid()), br#"{"allocations": {}, "project_id": 1}"#.to_vec(), 400),
        ("POST", "/resource_providers".into(), vec![b' '; 5 << 20], 400),
        ("GET", format!("/resource_providers/{}", uuid()), vec![], 404),
    ];
    for (method, path, body, want) in cases {
        let (status, err) = s.raw(method, &path, &body);
        assert_eq!(status, want, "{method} {path}: {err}");
        assert_eq!(err["errors"][0]["status"], want, "{method} {path}: {err}");
        assert!(err["errors"][0]["detail"].as_str().is_some_and(|d| !d.is_empty()), "{err}");
    }
    // The server is still up and its data intact.
    let (status, rp_now) = s.call("GET", &format!("/resource_providers/{rp}"), None, "1.39");
    assert_eq!((status, rp_now["name"].as_str()), (200, Some("bad-input")));
}

#[test]
fn allocation_candidates_filter_by_trait_capacity_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path());
    let small = provider(&s, "small", 2);
    let big = provider(&s, "big", 64);
    let avx = provider(&s, "avx", 64);
    let (st, _) = s.call(
        "PUT",
        &format!("/resource_providers/{avx}/traits"),
        Some(&json!({"traits": ["HW_CPU_X86_AVX2"], "resource_provider_generation": 1})),
        "1.39",
    );
    assert_eq!(st, 200);
    let (st, c) = s.call("GET", "/allocation_candidates?resources=VCPU:4", None, "1.39");
    assert_eq!(st, 200);
    let got: Vec<&String> = c["allocation_requests"]
        .as_array()
        .expect("list")
        .iter()
        .flat_map(|a| a["allocations"].as_object().expect("obj").keys())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&&big) && got.contains(&&avx) && !got.contains(&&small));
    assert_eq!(c["provider_summaries"][&big]["resources"]["VCPU"]["capacity"], 64);
    let (_, c) = s.call("GET", "/allocation_candidates?resources=VCPU:4&required=HW_CPU_X86_AVX2", None, "1.39");
    assert_eq!(c["allocation_requests"].as_array().map(Vec::len), Some(1));
    assert!(c["allocation_requests"][0]["allocations"].get(&avx).is_some());
    let (_, c) = s.call("GET", "/allocation_candidates?resources=VCPU:1&limit=1", None, "1.39");
    assert_eq!(c["allocation_requests"].as_array().map(Vec::len), Some(1));
    // A claim moves the capacity the next query sees.
    let (st, _) = allocate(&s, &big, &uuid(), 62);
    assert_eq!(st, 204);
    let (_, c) = s.call("GET", "/allocation_candidates?resources=VCPU:4", None, "1.39");
    assert_eq!(c["allocation_requests"].as_array().map(Vec::len), Some(1));
}

/// `quiver db ...` on `url`: exit status and stdout + stderr.
fn db(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver")).arg("db").args(args).output().expect("quiver db runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn postgresql_store_status_sync_healthcheck_and_a_database_restart() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("placement");
    let (ok, text) = db(&["status", "--database", &url]);
    assert!(ok && text.contains("schema version  0 of 2 (behind"), "{text}");
    let (ok, text) = db(&["sync", "--database", &url]);
    assert!(ok && text.contains("schema version 2"), "{text}");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with(dir.path(), &["--database", &url]);
    provider(&s, "pg-node", 8);
    // Beside the running server: status reads, with the server's place in
    // the change feed once it reported; sync is a no-op.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let (ok, text) = db(&["status", "--database", &url]);
        assert!(ok && text.contains("(current)") && text.contains("providers       1"), "{text}");
        if text.contains("behind 0") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let newest = text.split("newest change ").nth(1).and_then(|t| t.split_whitespace().next()).expect("the feed");
    assert!(text.contains(&format!("applied {newest}  behind 0")), "{text}");
    let (ok, text) = db(&["sync", "--database", &url]);
    assert!(ok && text.contains("schema version 2"), "{text}");
    let (status, _) = s.raw("GET", "/healthcheck", b"");
    assert_eq!(status, 200);
    // The database goes away: the healthcheck says so, with Placement's
    // body; a write is refused with 503 and nothing is served from memory
    // that the store did not acknowledge.
    cluster.stop();
    let (status, body) = s.raw("GET", "/healthcheck", b"");
    assert_eq!(status, 503, "{body}");
    let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("database"), "{body}");
    let (status, body) = s.call("POST", "/resource_providers", Some(&json!({"name": "lost"})), "1.39");
    assert_eq!(status, 503, "{body}");
    let (status, _) = s.call("GET", "/resource_providers", None, "1.39");
    assert_eq!(status, 503, "no stale answers while the store is gone");
    // It comes back: the server reconnects; the refused write is not there.
    cluster.restart();
    let (status, _) = s.raw("GET", "/healthcheck", b"");
    assert_eq!(status, 200);
    let (status, body) = s.call("GET", "/resource_providers", None, "1.39");
    assert_eq!(status, 200);
    let names: Vec<&str> =
        body["resource_providers"].as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["pg-node"]);
    provider(&s, "after-restart", 4);
}
