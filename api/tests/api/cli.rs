//! The `quiver` command line through its public interface: good runs and
//! clear, panic-free errors on bad input.

use std::process::Command;

fn quiver(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver")).args(args).output().expect("quiver runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn fixture(name: &str) -> String {
    format!("{}/../datasets/fixtures/nova-parity/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn decide_writes_a_header_and_one_line_per_request() {
    let (code, out, err) =
        quiver(&["decide", "--fleet", &fixture("fleet-200-s1.json"), "--requests", &fixture("requests-300-s1.json")]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 301);
    assert_eq!(lines[0]["header"], true);
    assert_eq!(lines[0]["filters"].as_array().map(Vec::len), Some(5));
    assert_eq!(lines[1]["chosen"][0], "cmp-co-0000181");
}

#[test]
fn fleet_gen_then_show_then_decide_on_parquet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("fleet.parquet");
    let f = f.to_str().expect("utf8");
    let (code, _, err) = quiver(&["fleet", "gen", "--hosts", "500", "--seed", "3", "-o", f]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = quiver(&["fleet", "show", f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hosts: 500") && out.contains("VCPU") && out.contains("az-1"), "{out}");
    let (code, out, err) =
        quiver(&["decide", "--fleet", f, "--requests", &fixture("requests-300-s1.json"), "--profile", "all"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().skip(1).any(|l| l.contains("\"status\":\"ok\"")));
}

#[test]
fn bad_input_gives_one_clear_error_and_no_panic() {
    let fleet = fixture("fleet-200-s1.json");
    let reqs = fixture("requests-300-s1.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["decide", "--fleet", "/nonexistent.json", "--requests", &reqs], "/nonexistent.json"),
        (
            vec!["decide", "--fleet", &fleet, "--requests", &reqs, "--filters", "RamFilter"],
            "unknown filter \"RamFilter\"",
        ),
        (vec!["decide", "--fleet", &fleet, "--requests", &reqs, "--weighers", "FooWeigher"], "unknown weigher"),
        (
            vec!["decide", "--fleet", &fleet, "--requests", &reqs, "--conf", "filter_scheduler.nope=1"],
            "filter_scheduler.nope",
        ),
        (
            vec!["decide", "--fleet", &fleet, "--requests", &reqs, "--conf", "filter_scheduler.host_subset_size=x"],
            "host_subset_size",
        ),
        (vec!["decide", "--fleet", &reqs, "--requests", &reqs], "hosts"),
        (vec!["fleet", "gen", "--hosts", "10", "-o", "/tmp/x.csv"], "unknown extension"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = quiver(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn malformed_fleet_names_the_host_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bad.json");
    std::fs::write(&p, r#"{"format":"nova-sched-fleet/v1","hosts":[{"name":"h1","vcpus_total":"many","memory_mb_total":1,"disk_gb_total":1}]}"#)
        .expect("write");
    let (code, _, err) = quiver(&["fleet", "show", p.to_str().expect("utf8")]);
    assert_eq!(code, 2);
    assert!(err.contains("h1") && err.contains("vcpus_total"), "{err}");
}

/// `quiver simulate` on a small trace with two policies, then `quiver
/// query` over its timeline and over a fleet.
#[test]
fn simulate_writes_summary_timeline_and_plots_then_query_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).to_str().expect("utf8").to_owned();
    let mut trace = String::from("arrival,lifetime,flavor\n");
    for i in 0..400 {
        let flavor = ["m1.small", "m1.medium", "m1.large"][i % 3];
        trace += &format!("{},{},{flavor}\n", i as f64 * 0.5, 60 + (i * 7) % 300);
    }
    std::fs::write(d("trace.csv"), trace).expect("write");
    std::fs::write(d("spread.toml"), "[filter_scheduler]\nram_weight_multiplier = 1.0\n").expect("write");
    std::fs::write(d("pack.toml"), "[filter_scheduler]\nram_weight_multiplier = -1.0\ncpu_weight_multiplier = -1.0\n")
        .expect("write");
    let args = [
        "simulate",
        "--hosts",
        "300",
        "--empty",
        "--trace",
        &d("trace.csv"),
        "--policy",
        &d("spread.toml"),
        "--policy",
        &d("pack.toml"),
        "--out",
        &d("out"),
    ];
    let (code, out, err) = quiver(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("spread") && out.contains("pack") && out.contains("peak hosts in use"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("out/summary.json")).expect("summary")).expect("json");
    for p in ["spread", "pack"] {
        let s = &summary[p];
        for k in [
            "events",
            "accepted",
            "rejected",
            "peak_hosts_in_use",
            "compaction_hosts",
            "wall_seconds",
            "events_per_second",
        ] {
            assert!(s[k].is_number(), "{p}.{k} in {s}");
        }
        assert_eq!(s["accepted"].as_u64().unwrap() + s["rejected"].as_u64().unwrap(), 400);
        assert_eq!(s["events"].as_u64(), Some(400 + s["accepted"].as_u64().unwrap()));
        assert!(s["compaction_hosts"].as_u64().unwrap() <= 300);
    }
    assert!(
        summary["pack"]["peak_hosts_in_use"].as_u64() < summary["spread"]["peak_hosts_in_use"].as_u64(),
        "{summary}"
    );
    for f in ["timeline.parquet", "timeline.csv", "simulation.png", "simulation.svg"] {
        assert!(std::fs::metadata(d(&format!("out/{f}"))).expect(f).len() > 100, "{f}");
    }
    // the same run again: identical decisions
    let (code, _, err) = quiver(&[&args[..10], &["--out", &d("again")]].concat());
    assert_eq!(code, 0, "{err}");
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("again/summary.json")).expect("summary")).expect("json");
    assert_eq!(again["pack"]["decisions_digest"], summary["pack"]["decisions_digest"]);
    // SQL over the timeline
    let (code, out, err) = quiver(&[
        "query",
        "--hosts",
        "10",
        "--timeline",
        &d("out/timeline.parquet"),
        "--format",
        "json",
        "SELECT policy, MAX(hosts_in_use) AS peak FROM timeline GROUP BY policy ORDER BY policy",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json rows");
    assert_eq!(rows[0]["policy"], "pack");
    assert!(rows[0]["peak"].as_u64().unwrap() <= summary["pack"]["peak_hosts_in_use"].as_u64().unwrap());
}

#[test]
fn query_answers_sql_and_json_filter_over_a_generated_fleet() {
    let (code, out, err) = quiver(&[
        "query",
        "--hosts",
        "2000",
        "--format",
        "csv",
        "SELECT availability_zone, SUM(vcpu_free) AS free_vcpus, COUNT(*) AS hosts FROM hosts GROUP BY 1 ORDER BY 1",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "availability_zone,free_vcpus,hosts");
    let hosts: u64 = lines[1..].iter().map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(hosts, 2000);
    // the same number from the long tables
    let (code, a, err) = quiver(&["query", "--hosts", "2000", "--format", "csv", "SELECT SUM(vcpu_free) FROM hosts"]);
    assert_eq!(code, 0, "{err}");
    let (code, b, err) = quiver(&[
        "query",
        "--hosts",
        "2000",
        "--format",
        "csv",
        "SELECT SUM(free) FROM inventories WHERE resource_class = 'VCPU'",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(a.lines().nth(1), b.lines().nth(1));
    // JsonFilter, compiled to SQL
    let (code, out, err) = quiver(&[
        "query",
        "--hosts",
        "500",
        "--format",
        "json",
        "--json-filter",
        r#"["and", [">=", "$free_ram_mb", 200000], ["=", "$hypervisor_type", "QEMU"]]"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("WHERE ((free_ram_mb >= 200000) AND (hypervisor_type = 'QEMU'))"), "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert!(!rows.is_empty() && rows.len() < 500, "{}", rows.len());
    // errors name the problem
    let (code, _, err) = quiver(&["query", "--hosts", "10", "SELECT nope FROM hosts"]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
    let (code, _, err) = quiver(&["query", "--hosts", "10", "DROP TABLE hosts"]);
    assert_eq!(code, 2);
    assert!(err.to_lowercase().contains("not supported") || err.contains("DDL"), "{err}");
}

#[test]
fn simulate_rejects_bad_policies_and_traces_before_replaying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).to_str().expect("utf8").to_owned();
    std::fs::write(d("bad.toml"), "[filter_scheduler]\nenabled_filters = [\"ComputeFilter\", \"RamFilter\"]\n")
        .expect("w");
    std::fs::write(d("typo.toml"), "[filter_scheduler]\nram_weight_multipler = -1.0\n").expect("w");
    std::fs::write(d("trace.csv"), "arrival,flavor\n0,m1.small\n1,m1.small\n-4,m1.small\n").expect("w");
    let (code, _, err) = quiver(&["simulate", "--policy", &d("bad.toml"), "--out", &d("out")]);
    assert_eq!(code, 2);
    assert!(err.contains("RamFilter") && err.contains("bad.toml"), "{err}");
    assert!(!std::path::Path::new(&d("out")).exists(), "nothing replayed or written");
    let (code, _, err) = quiver(&["simulate", "--policy", &d("typo.toml")]);
    assert_eq!(code, 2);
    assert!(err.contains("ram_weight_multipler"), "{err}");
    let (code, _, err) = quiver(&["simulate", "--hosts", "10", "--trace", &d("trace.csv")]);
    assert_eq!(code, 2);
    assert!(err.contains("row 3") && err.contains("arrival"), "{err}");
}

/// `quiver bench candidates` builds Placement's nested perf shape and its
/// query answers as Placement's does: per tree, the COMPUTE group can only
/// be the CUSTOM_FOO NUMA node and FPGA one of its two FPGAs.
#[test]
fn bench_candidates_builds_the_nested_perf_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("nested.json");
    let (code, out, err) =
        quiver(&["bench", "candidates", "--trees", "3", "--repeat", "2", "--json", json.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 trees (21 providers)"), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(doc["queries"][0]["candidates"], 6, "{doc}");
    assert_eq!(doc["queries"][1]["candidates"], 5, "{doc}");
}

#[test]
fn db_sync_and_status_on_a_data_directory_and_bad_store_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf8");
    let (code, out, err) = quiver(&["db", "sync", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version 1"), "{out}");
    let (code, out, err) = quiver(&["db", "status", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version  1 of 1 (current)") && out.contains("providers       0"), "{out}");
    let (code, _, err) = quiver(&["db", "status", "--data", "/nonexistent/quiver"]);
    assert_eq!(code, 2);
    assert!(err.contains("no store at /nonexistent/quiver/placement.sqlite"), "{err}");
    let (code, _, err) = quiver(&["db", "status", "--data", data, "--database", "postgresql://x@y/z"]);
    assert_eq!(code, 2);
    assert!(err.contains("--data and --database"), "{err}");
    let (code, _, err) = quiver(&["db", "sync", "--database", "./not-a-url"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected a postgresql:// URL"), "{err}");
}

/// `quiver serve` on port 0 says which ports it got, and they answer.
#[test]
fn serve_on_port_zero_prints_the_ports_it_bound() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data", dir.path().to_str().expect("utf8"), "--listen", "127.0.0.1:0"])
        .args(["--compute-listen", "127.0.0.1:0", "--image-listen", "127.0.0.1:0"])
        .env("QUIVER_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("quiver: Placement on "))
        .expect("the ready line");
    let port = |after: &str| -> u16 {
        let rest = line.split(after).nth(1).expect("address");
        let addr: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
        addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
    };
    let (placement, compute) = (port("Placement on http://"), port("Compute on http://"));
    assert!(placement != 0 && compute != 0 && placement != compute, "{line}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", placement)).expect("Placement answers");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 15: `quiver plan headroom` and `quiver explain` on a fleet file.
/// Headroom: the exact count is the number of servers the decisions of
/// `quiver decide` would place one after another; zones add up; a bad
/// flavor names the flag. Explain: the chosen host of a request is the one
/// `quiver decide` chooses.
#[test]
fn plan_headroom_and_explain_on_a_fleet_file() {
    let fleet = fixture("fleet-200-s1.json");
    let (code, out, err) = quiver(&["plan", "headroom", "--fleet", &fleet, "--flavor", "m1.xlarge", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let h = &v[0];
    let exact = h["exact"].as_u64().expect("exact");
    assert!(exact > 0 && exact <= h["naive"].as_u64().expect("naive"), "{h}");
    assert_eq!(
        h["by_zone"].as_array().expect("zones").iter().map(|z| z["exact"].as_u64().unwrap()).sum::<u64>(),
        exact
    );
    // The same number through the full pipeline: a stream of exact + 1
    // m1.xlarge requests, decided in order, places exactly `exact`.
    let dir = tempfile::tempdir().expect("tempdir");
    let reqs = dir.path().join("reqs.json");
    let flavor = serde_json::json!({"name": "m1.xlarge", "flavorid": "m1.xlarge", "vcpus": 8, "memory_mb": 16384,
                                    "root_gb": 160});
    let stream = serde_json::json!({"format": "nova-sched-requests/v1",
        "requests": (0..=exact).map(|_| serde_json::json!({"flavor": flavor})).collect::<Vec<_>>()});
    std::fs::write(&reqs, stream.to_string()).expect("write");
    let (code, out, err) = quiver(&["decide", "--fleet", &fleet, "--requests", reqs.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    let ok = out.lines().skip(1).filter(|l| l.contains("\"status\":\"ok\"")).count() as u64;
    assert_eq!(ok, exact, "decide placed {ok}, headroom said {exact}");

    let (code, _, err) = quiver(&["plan", "headroom", "--fleet", &fleet, "--flavor", "big:x:1"]);
    assert_ne!(code, 0);
    assert!(err.contains("--flavor big:x:1") && !err.contains("panicked"), "{err}");

    let (code, out, err) = quiver(&[
        "explain",
        "--fleet",
        &fleet,
        "--requests",
        &fixture("requests-300-s1.json"),
        "--index",
        "0",
        "--host",
        "cmp-co-0000181",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(e["decision"]["chosen"][0], "cmp-co-0000181");
    assert_eq!(e["named"][0]["verdict"], "chosen");
    let (code, _, err) = quiver(&["explain", "--fleet", &fleet, "--hint", "nonsense"]);
    assert_ne!(code, 0);
    assert!(err.contains("--hint") && !err.contains("panicked"), "{err}");
}

/// Issue 15: `plan drain` on a fleet file moves exactly the instances the
/// boots put on the drained host (as `quiver decide` places them), newest
/// first, never onto it; `plan size` answers with a curve that checks
/// itself both ways and writes its plot.
#[test]
fn plan_drain_and_size_on_a_fleet_file() {
    let fleet = fixture("fleet-200-s1.json");
    let reqs = fixture("requests-300-s1.json");
    // decide keeps every build in progress (num_io_ops grows, as in one
    // scheduler run); a drain's boots are finished. With the I/O weigher
    // off both place alike.
    let io_off = "filter_scheduler.io_ops_weight_multiplier=0.0";
    let (code, out, err) = quiver(&["decide", "--fleet", &fleet, "--requests", &reqs, "--conf", io_off]);
    assert_eq!(code, 0, "{err}");
    // Instances per host, and the request index of each on the busiest.
    let mut on: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for line in out.lines().skip(1) {
        let d: serde_json::Value = serde_json::from_str(line).expect("json line");
        for i in d["instances"].as_array().into_iter().flatten() {
            if let (Some(h), Some(u)) = (i["chosen"].as_str(), i["uuid"].as_str()) {
                on.entry(h.to_owned()).or_default().push(u.to_owned());
            }
        }
    }
    let (busiest, placed) = on.iter().max_by_key(|(_, v)| v.len()).expect("placements");
    let (code, out, err) = quiver(&[
        "plan",
        "drain",
        "--fleet",
        &fleet,
        "--requests",
        &reqs,
        "--hosts",
        busiest,
        "--conf",
        io_off,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).expect("json");
    let moves = d["moves"].as_array().expect("moves");
    let mut planned: Vec<String> = moves.iter().map(|m| m["instance"].as_str().expect("uuid").to_owned()).collect();
    // Newest first: the reverse of the boot order.
    assert_eq!(planned.iter().rev().cloned().collect::<Vec<_>>(), *placed, "{d}");
    planned.sort();
    assert!(moves.iter().all(|m| m["source"] == busiest.as_str() && m["destination"] != busiest.as_str()), "{d}");
    assert_eq!(d["moved"].as_u64().unwrap() + d["stuck"].as_u64().unwrap(), moves.len() as u64);
    let (code, _, err) = quiver(&["plan", "drain", "--fleet", &fleet, "--requests", &reqs, "--hosts", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("--hosts: no host nope") && !err.contains("panicked"), "{err}");

    // 1,000 m1.xlarge that never leave: the fleet holds 857 (plan headroom).
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("trace.csv");
    let rows: String = (0..1000).map(|i| format!("{i},m1.xlarge\n")).collect();
    std::fs::write(&trace, format!("arrival,flavor\n{rows}")).expect("write");
    let out_dir = dir.path().join("size");
    let args = ["plan", "size", "--fleet", &fleet, "--trace", trace.to_str().expect("utf8")];
    let (code, out, err) = quiver(
        &[&args[..], &["--host-shape", "64:262144:2000", "--json", "--out", out_dir.to_str().expect("utf8")]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("json");
    let added = s["added"].as_u64().expect("an answer");
    let at =
        |k: u64| s["curve"].as_array().expect("curve").iter().find(|p| p["added"] == k).map(|p| p["rejected"].as_u64());
    assert!(added > 0, "{s}");
    assert_eq!(at(added), Some(Some(0)), "{s}");
    assert!(at(added - 1).flatten().is_some_and(|r| r > 0), "{s}");
    assert!(at(0).flatten().is_some_and(|r| r > 0), "{s}");
    assert!(out_dir.join("size.png").exists() && out_dir.join("size.json").exists());
    let (code, _, err) = quiver(&[&args[..], &["--host-shape", "8:lots:1"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("--host-shape 8:lots:1: RAM_MB") && !err.contains("panicked"), "{err}");
}

/// Issue 15: `quiver simulate --sweep` replays every grid point; each
/// point equals a plain replay under a policy file with the same options,
/// the best per metric is the least, and the heat map is written.
#[test]
fn a_policy_sweep_replays_each_grid_point_as_its_policy_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |n: &str| dir.path().join(n).to_str().expect("utf8").to_owned();
    let mut trace = String::from("arrival,lifetime,flavor\n");
    for i in 0..300 {
        let flavor = ["m1.small", "m1.medium", "m1.large"][i % 3];
        trace += &format!("{},{},{flavor}\n", i as f64 * 0.5, 60 + (i * 7) % 300);
    }
    std::fs::write(d("trace.csv"), trace).expect("write");
    let base = ["simulate", "--hosts", "100", "--empty", "--trace", &d("trace.csv")];
    let sweep = "filter_scheduler.ram_weight_multiplier=-1:1:1,filter_scheduler.cpu_weight_multiplier=-1:0:1";
    let (code, out, err) = quiver(&[&base[..], &["--sweep", sweep, "--out", &d("sweep")]].concat());
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("sweep/sweep.json")).expect("sweep.json")).expect("json");
    let points = s["points"].as_array().expect("points");
    assert_eq!(points.len(), 6, "{s}");
    assert!(dir.path().join("sweep/sweep.png").exists() && dir.path().join("sweep/sweep.svg").exists());
    let peak = |p: &serde_json::Value| p["peak_hosts_in_use"].as_u64().expect("peak");
    let least = points.iter().map(peak).min().expect("a point");
    let best = s["best"]["peak_hosts_in_use"].as_u64().expect("best") as usize;
    assert_eq!(peak(&points[best]), least, "{s}");
    assert!(
        out.contains(&format!("best peak hosts in use: {}", points[best]["policy"].as_str().expect("name"))),
        "{out}"
    );
    // The point ram=-1, cpu=-1 (packing) is the replay under that policy.
    std::fs::write(d("pack.toml"), "[filter_scheduler]\nram_weight_multiplier = -1.0\ncpu_weight_multiplier = -1.0\n")
        .expect("write");
    let (code, _, err) = quiver(&[&base[..], &["--policy", &d("pack.toml"), "--out", &d("pack")]].concat());
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("pack/summary.json")).expect("summary")).expect("json");
    let pack = &points[0];
    assert_eq!(pack["policy"], "ram_weight_multiplier=-1,cpu_weight_multiplier=-1");
    for k in ["rejected", "peak_hosts_in_use"] {
        assert_eq!(pack[k], summary["pack"][k], "{k}: {pack} vs {}", summary["pack"]);
    }
    let (code, _, err) = quiver(&[&base[..], &["--sweep", "filter_scheduler.nope=0:1:1"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("nope") && !err.contains("panicked"), "{err}");
    let (code, _, err) = quiver(&[&base[..], &["--sweep", "filter_scheduler.ram_weight_multiplier=1:0:1"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("STOP >= START"), "{err}");
}
