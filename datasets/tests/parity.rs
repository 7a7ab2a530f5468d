//! Decision parity with OpenStack Nova 34's own filter scheduler on the
//! parity kit's shipped example (see `fixtures/nova-parity/SOURCE.md`):
//! every request must get the same status, failed stage, candidate count,
//! per-filter trace, passed count, chosen host, top-5 order, and weights
//! within 1e-9 relative (what `compare-decisions.py` checks, plus traces).

use std::path::PathBuf;

use quiver_datasets::nova_json;
use quiver_engine::config::{SchedulerConfig, profile_filters};
use quiver_engine::{Groups, Scheduler};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/nova-parity").join(name)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12_f64.max(1e-9 * a.abs().max(b.abs()))
}

/// Differences between one expected and one actual decision line.
fn diff(e: &Value, a: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in ["status", "failed_stage", "placement_candidates"] {
        if e.get(k) != a.get(k) {
            out.push(format!("{k}: expected {:?} got {:?}", e.get(k), a.get(k)));
        }
    }
    let empty = Vec::new();
    let ei = e["instances"].as_array().unwrap_or(&empty);
    let ai = a["instances"].as_array().unwrap_or(&empty);
    if ei.len() != ai.len() {
        out.push(format!("instances: expected {} got {}", ei.len(), ai.len()));
    }
    for (k, (x, y)) in ei.iter().zip(ai).enumerate() {
        for f in ["passed", "chosen", "filter_trace"] {
            if x.get(f) != y.get(f) {
                out.push(format!("inst {k} {f}: expected {:?} got {:?}", x.get(f), y.get(f)));
            }
        }
        let xt = x["top5"].as_array().unwrap_or(&empty);
        let yt = y["top5"].as_array().unwrap_or(&empty);
        let names = |t: &Vec<Value>| t.iter().map(|p| p[0].clone()).collect::<Vec<_>>();
        if names(xt) != names(yt) {
            out.push(format!("inst {k} top5 order: expected {:?} got {:?}", names(xt), names(yt)));
        }
        for (p, q) in xt.iter().zip(yt) {
            let (w1, w2) = (p[1].as_f64().unwrap_or(f64::NAN), q[1].as_f64().unwrap_or(f64::NAN));
            if !close(w1, w2) {
                out.push(format!("inst {k} weight of {}: expected {w1} got {w2}", p[0]));
            }
        }
    }
    out
}

fn replay(profile: &str) {
    let mut fleet = nova_json::read_fleet(&fixture("fleet-200-s1.json")).expect("fleet loads");
    let stream = nova_json::read_requests(&fixture("requests-300-s1.json")).expect("requests load");
    let conf = SchedulerConfig { enabled_filters: profile_filters(profile).expect("profile"), ..Default::default() };
    let mut sched = Scheduler::new(conf, 0).expect("scheduler");
    sched.trace = true;
    let mut groups = Groups::new(&stream.server_groups).expect("groups");
    let expected: Vec<Value> = std::fs::read_to_string(fixture(&format!("decisions-{profile}.jsonl")))
        .expect("decisions")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|v| v.get("header").is_none())
        .collect();
    assert_eq!(expected.len(), stream.requests.len());
    let mut bad = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for (i, (req, e)) in stream.requests.iter().zip(&expected).enumerate() {
        let d = serde_json::to_value(sched.schedule(&mut fleet, &mut groups, req, i)).expect("serialize");
        *statuses.entry(d["status"].as_str().unwrap_or("?").to_owned()).or_insert(0) += 1;
        let problems = diff(e, &d);
        if !problems.is_empty() {
            bad.push(format!("req {i}: {}", problems.join("; ")));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 300 decisions differ from Nova:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
    // The example exercises both outcomes, so a scheduler that always
    // answers the same way could not pass.
    assert!(statuses.get("ok").copied().unwrap_or(0) > 200 && statuses.contains_key("no_valid_host"), "{statuses:?}");
}

#[test]
fn parity_default_profile_matches_nova_decisions() {
    replay("default");
}

#[test]
fn parity_extended_profile_matches_nova_decisions() {
    replay("extended");
}
