//! Three `quiver serve` replicas on one PostgreSQL database, over real
//! HTTP: racing clients spread over them never win more than the capacity,
//! a replica killed during a stream of writes loses nothing acknowledged
//! and catches up when it comes back, and a database restart under load
//! loses nothing either (503 with Placement's error body meanwhile).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::placement::{Client, Server, provider, uuid};

/// Every replica serves the Compute API too (on ports it picks); the
/// last one runs `--placement-only`, as a Placement-only tier would.
fn replica(data: &Path, url: &str, i: usize) -> Server {
    let dir = data.join(format!("replica-{i}"));
    if i < 2 {
        Server::start_on(&dir, &["--database", url, "--compute-listen", "127.0.0.1:0", "--image-listen", "127.0.0.1:0"])
    } else {
        Server::start_on(&dir, &["--database", url, "--placement-only"])
    }
}

fn replicas(data: &Path, url: &str, n: usize) -> Vec<Server> {
    (0..n).map(|i| replica(data, url, i)).collect()
}

fn used_vcpu(c: Client, rp: &str) -> Value {
    let (status, body) = c.call("GET", &format!("/resource_providers/{rp}/usages"), None, "1.39");
    assert_eq!(status, 200, "{body}");
    body["usages"]["VCPU"].clone()
}

/// One allocation of 1 VCPU on `rp` through `c` for a new consumer.
fn claim_one(c: Client, rp: &str) -> (String, Option<(u16, Value)>) {
    let consumer = uuid();
    let body = json!({
        "allocations": {rp: {"resources": {"VCPU": 1}}},
        "project_id": "p", "user_id": "u", "consumer_generation": null, "consumer_type": "INSTANCE"
    });
    let bytes = serde_json::to_vec(&body).expect("json");
    let answer = c.try_call("PUT", &format!("/allocations/{consumer}"), Some(&bytes), "1.39");
    (consumer, answer)
}

#[test]
fn sixty_four_clients_over_three_replicas_win_exactly_the_capacity() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("placement");
    let dir = tempfile::tempdir().expect("tempdir");
    let rs = replicas(dir.path(), &url, 3);
    let a = provider(&rs[0], "race-a", 8);
    let b = provider(&rs[1], "race-b", 8);
    let clients: Vec<Client> = rs.iter().map(Server::client).collect();
    let results: Vec<(usize, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let (c, rp) = (clients[i % 3], if i % 2 == 0 { &a } else { &b });
                scope.spawn(move || {
                    let (_, answer) = claim_one(c, rp);
                    let (status, body) = answer.expect("the replica answers");
                    (i % 2, status, body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    for which in 0..2 {
        let won = results.iter().filter(|(p, st, _)| *p == which && *st == 204).count();
        assert_eq!(won, 8, "exactly the capacity of provider {which} is granted");
    }
    let lost: Vec<_> = results.iter().filter(|(_, st, _)| *st != 204).collect();
    assert_eq!(lost.len(), 48);
    assert!(lost.iter().all(|(_, st, b)| *st == 409 && b["errors"][0]["status"] == 409), "{lost:?}");
    // Every replica answers with the truth at once, and its fleet agrees.
    for c in &clients {
        assert_eq!(used_vcpu(*c, &a), 8);
        assert_eq!(used_vcpu(*c, &b), 8);
        let (_, cands) = c.call("GET", "/allocation_candidates?resources=VCPU:1", None, "1.39");
        assert_eq!(cands["allocation_requests"].as_array().map(Vec::len), Some(0), "{cands}");
    }
    // A write on one replica is what the next read on another sees.
    let (st, _) = rs[2].call("DELETE", &format!("/resource_providers/{a}/inventories"), None, "1.39");
    assert_eq!(st, 409, "inventory in use");
    let (st, rp) = rs[2].call("POST", "/resource_providers", Some(&json!({"name": "fresh"})), "1.39");
    assert_eq!(st, 200);
    let (st, _) =
        rs[0].call("GET", &format!("/resource_providers/{}", rp["uuid"].as_str().expect("uuid")), None, "1.39");
    assert_eq!(st, 200, "read-your-writes across replicas");
    // Each replica's place in the change feed is in its /metrics.
    let metrics = text(rs[1].port, "/metrics");
    let gauge = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(gauge("quiver_change_feed_applied_seq ") > 16);
    assert!(gauge("quiver_change_feed_lag_changes ") >= 0);
    assert!(metrics.contains("quiver_change_feed_lag_seconds{quantile=\"0.99\"}"), "{metrics}");
}

/// The body of a plain-text GET.
fn text(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

#[test]
fn a_replica_killed_during_writes_through_all_three_loses_nothing_and_catches_up() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("placement");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rs = replicas(dir.path(), &url, 3);
    let rp = provider(&rs[0], "durable", 1_000_000);
    let stop = AtomicBool::new(false);
    let acked: Vec<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = rs
            .iter()
            .map(|s| {
                let (c, rp, stop) = (s.client(), &rp, &stop);
                scope.spawn(move || {
                    let mut acked = vec![];
                    while !stop.load(Ordering::Relaxed) {
                        match claim_one(c, rp) {
                            (consumer, Some((204, _))) => acked.push(consumer),
                            (_, Some((st, body))) => panic!("a live replica refused a write: {st} {body}"),
                            (_, None) => break, // the killed replica
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        rs[1].kill9();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        writers.into_iter().flat_map(|w| w.join().expect("writer")).collect()
    });
    assert!(acked.len() > 30, "the stream was running ({} writes acknowledged)", acked.len());
    // The killed replica comes back and catches up.
    rs[1] = replica(dir.path(), &url, 1);
    for s in &rs {
        let c = s.client();
        let used = used_vcpu(c, &rp).as_u64().expect("usage");
        // The write in flight at the kill may or may not have committed.
        assert!(used == acked.len() as u64 || used == acked.len() as u64 + 1, "{used} vs {}", acked.len());
        for consumer in acked.iter().step_by(7) {
            let (status, body) = c.call("GET", &format!("/allocations/{consumer}"), None, "1.39");
            assert_eq!(status, 200);
            assert_eq!(body["allocations"][&rp]["resources"]["VCPU"], 1, "acknowledged allocation {consumer}");
        }
    }
}

#[test]
fn postgresql_restarted_under_load_replicas_reconnect_and_lose_nothing_acknowledged() {
    let cluster = quiver_placement::store::test_cluster::TestCluster::start();
    let url = cluster.url("placement");
    let dir = tempfile::tempdir().expect("tempdir");
    let rs = replicas(dir.path(), &url, 2);
    let rp = provider(&rs[0], "restart", 1_000_000);
    let stop = AtomicBool::new(false);
    let (acked, refused): (Vec<String>, Vec<Value>) = std::thread::scope(|scope| {
        let writers: Vec<_> = rs
            .iter()
            .map(|s| {
                let (c, rp, stop) = (s.client(), &rp, &stop);
                scope.spawn(move || {
                    let (mut acked, mut refused) = (vec![], vec![]);
                    while !stop.load(Ordering::Relaxed) {
                        match claim_one(c, rp) {
                            (consumer, Some((204, _))) => acked.push(consumer),
                            (_, Some((503, body))) => {
                                refused.push(body);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            (_, answer) => panic!("neither acknowledged nor 503: {answer:?}"),
                        }
                    }
                    (acked, refused)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1000));
        cluster.stop();
        // Meanwhile reads are refused too: never a stale answer.
        for s in &rs {
            let (status, body) = s.call("GET", &format!("/resource_providers/{rp}/usages"), None, "1.39");
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["errors"][0]["status"], 503, "{body}");
        }
        std::thread::sleep(Duration::from_millis(500));
        cluster.restart();
        std::thread::sleep(Duration::from_millis(2000));
        stop.store(true, Ordering::Relaxed);
        let mut acked = vec![];
        let mut refused = vec![];
        for w in writers {
            let (a, r) = w.join().expect("writer");
            acked.extend(a);
            refused.extend(r);
        }
        (acked, refused)
    });
    assert!(!refused.is_empty(), "writes were refused while the database was down");
    assert!(refused.iter().all(|b| b["errors"][0]["status"] == 503), "{refused:?}");
    assert!(acked.len() > 20, "{} writes acknowledged", acked.len());
    for s in &rs {
        let used = used_vcpu(s.client(), &rp).as_u64().expect("usage");
        // A write whose commit was cut by the restart may have landed
        // without its acknowledgement; none acknowledged is missing.
        assert!(used >= acked.len() as u64 && used <= acked.len() as u64 + 2, "{used} vs {}", acked.len());
        for consumer in acked.iter().step_by(5) {
            let (status, body) = s.call("GET", &format!("/allocations/{consumer}"), None, "1.39");
            assert_eq!((status, &body["allocations"][&rp]["resources"]["VCPU"]), (200, &json!(1)), "{consumer}");
        }
    }
}
