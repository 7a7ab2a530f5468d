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
