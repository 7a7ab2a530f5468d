//! A hand-computed scenario and the policy checks.

use super::*;
use crate::host::{HostRecord, Inventory};
use crate::request::{BootRequest, Flavor};

fn host(name: &str, vcpus: i64, ram: i64) -> HostRecord {
    HostRecord {
        name: name.into(),
        inventories: vec![Inventory::simple("VCPU", vcpus, 1.0), Inventory::simple("MEMORY_MB", ram, 1.0)],
        free_ram_mb: ram,
        traits: vec!["OWNER_NOVA".into(), "COMPUTE_NODE".into()],
        hypervisor_type: "QEMU".into(),
        cpu_info: "{}".into(),
        ..Default::default()
    }
}

/// h0 and h1: 4 vCPU / 4 GiB, h2: 8 vCPU / 8 GiB; six 2 vCPU / 2 GiB
/// servers; RAMWeigher only (spread by free RAM, ties to the lower index).
fn scenario() -> (Fleet, Workload, Policy) {
    let mut b = crate::FleetBuilder::new();
    for (n, v, r) in [("h0", 4, 4096), ("h1", 4, 4096), ("h2", 8, 8192)] {
        b.push(host(n, v, r)).unwrap();
    }
    let fleet = b.finish().unwrap();
    let mut w = WorkloadBuilder::new();
    let flavor = Flavor { name: "small".into(), vcpus: 2, memory_mb: 2048, ..Default::default() };
    let c = w.class(BootRequest { flavor, ..Default::default() }).unwrap();
    for (arrival, departure) in
        [(0.0, Some(10.0)), (1.0, Some(10.0)), (2.0, Some(10.0)), (3.0, Some(10.0)), (4.0, None), (5.0, Some(6.0))]
    {
        w.push(SimRequest { arrival, departure, class: c, group: None });
    }
    let policy = Policy::parse("spread", "[filter_scheduler]\nweight_classes = [\"RAMWeigher\"]\n").unwrap();
    (fleet, w.finish(), policy)
}

#[test]
fn hand_computed_scenario() {
    let (fleet, workload, policy) = scenario();
    for fast in [true, false] {
        let opts = SimOptions { seed: 0, sample_interval: Some(1.0), compaction: true, fast, until: None };
        let run = run_policy(&fleet, &workload, &policy, &opts, &mut |_| {}).unwrap();
        let c = &run.counts;
        assert_eq!((c.arrivals, c.departures, c.accepted, c.rejected), (6, 5, 6, 0), "fast={fast}");
        // h2, h2, h0 (tie with h1 and h2: lower index), h1, h2, h0
        assert_eq!(c.peak_hosts_in_use, 3);
        assert_eq!(c.peak_used[0], 12, "peak VCPU");
        assert_eq!(c.fast_decisions, if fast { 6 } else { 0 });
        let vcpu: Vec<f64> = run.timeline.iter().map(|s| s.utilization[0]).collect();
        let want: Vec<f64> = [2, 4, 6, 8, 10, 12, 10, 10, 10, 10, 2].iter().map(|&u| u as f64 / 16.0).collect();
        assert_eq!(vcpu, want);
        let times: Vec<f64> = run.timeline.iter().map(|s| s.time).collect();
        assert_eq!(times, (0..=10).map(f64::from).collect::<Vec<_>>());
        let hosts: Vec<u64> = run.timeline.iter().map(|s| s.hosts_in_use).collect();
        assert_eq!(hosts, [1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 1]);
        assert!(run.timeline.iter().all(|s| s.fragmentation == 0.0 && s.stranded.iter().all(|&x| x == 0.0)));
        // h2 + h0 hold the peak of 12 vCPU and every request
        assert_eq!(run.compaction_hosts, Some(2));
    }
}

#[test]
fn stranded_capacity_and_fragmentation() {
    // h0: RAM gone, 3 vCPU left (stranded); h1: 1 vCPU + 3 GiB left.
    let mut b = crate::FleetBuilder::new();
    let mut h0 = host("h0", 4, 4096);
    h0.inventories[0].used = 1;
    h0.inventories[1].used = 4096;
    let mut h1 = host("h1", 4, 4096);
    h1.inventories[0].used = 3;
    h1.inventories[1].used = 1024;
    b.push(h0).unwrap();
    b.push(h1).unwrap();
    let fleet = b.finish().unwrap();
    let cap = metrics::Capacity::of(&fleet);
    // one shape: 2 vCPU / 1 GiB
    let demands = metrics::Demands::new(&[(vec![(0, 2), (1, 1024)], 1)]);
    let (stranded, frag) = metrics::stranded_and_fragmentation(&fleet, &cap, &demands);
    // no host fits 2 vCPU / 1 GiB: all free capacity is stranded
    assert_eq!(stranded[0], 4.0 / 8.0);
    assert_eq!(stranded[1], 3072.0 / 8192.0);
    // pooled, 4 vCPU and 3 GiB would hold two; host by host none
    assert_eq!(frag, 1.0);
}

#[test]
fn unknown_filter_or_option_fails_when_read() {
    let e = Policy::parse("p", "[filter_scheduler]\nenabled_filters = [\"ComputeFilter\", \"NoSuchFilter\"]\n")
        .unwrap_err();
    assert!(e.to_string().contains("NoSuchFilter"), "{e}");
    let e = Policy::parse("p", "[filter_scheduler]\nram_weight_multipler = -1.0\n").unwrap_err();
    assert!(e.to_string().contains("ram_weight_multipler"), "{e}");
    let e = Policy::parse("p", "[filter_schedular]\nhost_subset_size = 2\n").unwrap_err();
    assert!(e.to_string().contains("filter_schedular"), "{e}");
    let e = Policy::parse("p", "[DEFAULT]\ncpu_allocation_ratio = -2\n").unwrap_err();
    assert!(e.to_string().contains("cpu_allocation_ratio"), "{e}");
}

/// Rejections are decided on the fast path and named as the full pipeline
/// names them: a flavor larger than any host at `placement`, and one only
/// a host whose service is down could take at the filter that removes it
/// (a disabled host would go at placement: Nova's compute_status_filter
/// forbids its trait in the query).
#[test]
fn rejections_are_named_alike_on_both_paths() {
    let mut b = crate::FleetBuilder::new();
    b.push(host("h0", 4, 4096)).unwrap();
    let mut off = host("h1", 16, 16384);
    off.service.forced_down = true;
    b.push(off).unwrap();
    let fleet = b.finish().unwrap();
    let mut w = WorkloadBuilder::new();
    let mut class = |vcpus, memory_mb| {
        let flavor = Flavor { name: format!("{vcpus}"), vcpus, memory_mb, ..Default::default() };
        w.class(BootRequest { flavor, ..Default::default() }).unwrap()
    };
    let (small, mid, huge) = (class(2, 1024), class(8, 8192), class(64, 1024));
    for (i, c) in [small, mid, huge, small, mid, huge, small].into_iter().enumerate() {
        w.push(SimRequest { arrival: i as f64, departure: None, class: c, group: None });
    }
    let workload = w.finish();
    let policy = Policy::default_named("p");
    let mut seen = Vec::new();
    for fast in [true, false] {
        let opts = SimOptions { seed: 0, sample_interval: None, compaction: false, fast, until: None };
        let c = run_policy(&fleet, &workload, &policy, &opts, &mut |_| {}).unwrap().counts;
        // small x3: 2 fit on h0 (4 VCPU), the third only on h1, which is down.
        assert_eq!((c.accepted, c.rejected), (2, 5), "fast={fast}");
        assert_eq!(
            c.rejected_by_stage,
            [("filters".to_string(), 3), ("placement".to_string(), 2)].into(),
            "fast={fast}"
        );
        assert_eq!(c.rejected_by_filter, [("ComputeFilter".to_string(), 3)].into(), "fast={fast}");
        assert_eq!(c.fast_decisions, if fast { 2 } else { 0 });
        seen.push(Counts { fast_decisions: 0, ..c });
    }
    assert_eq!(seen[0], seen[1]);
}

/// Server groups (anti-affinity with and without max_server_per_host,
/// affinity) and same_host / different_host hints go through the fast
/// path, which decides exactly as the full pipeline: same counters and
/// timeline, with most placements decided fast.
#[test]
fn groups_and_hints_decide_alike_on_both_paths() {
    let mut b = crate::FleetBuilder::new();
    for i in 0..40 {
        let (v, r) = [(8, 16384), (16, 32768), (32, 65536)][i % 3];
        b.push(host(&format!("h{i:02}"), v, r)).unwrap();
    }
    let fleet = b.finish().unwrap();
    let mut w = WorkloadBuilder::new();
    let flavors: Vec<u32> = [(2, 2048), (4, 4096), (8, 8192)]
        .iter()
        .map(|&(v, r)| {
            let flavor = Flavor { name: format!("f{v}"), vcpus: v, memory_mb: r, ..Default::default() };
            w.class(BootRequest { flavor, ..Default::default() }).unwrap()
        })
        .collect();
    let mut anti: Vec<u32> = (0..8).map(|g| w.group(&format!("anti-{g}"), "anti-affinity").unwrap()).collect();
    let two = w.group("anti-two", "anti-affinity").unwrap();
    anti.push(two);
    let aff: Vec<u32> = (0..3).map(|g| w.group(&format!("aff-{g}"), "affinity").unwrap()).collect();
    for i in 0..600usize {
        let arrival = i as f64;
        let departure = (i % 5 != 0).then_some(arrival + 50.0 + (i * 37 % 200) as f64);
        let mut class = flavors[i % 3];
        // A hint on an earlier request's instance.
        if i % 11 == 5 && i > 20 {
            let key = if i % 2 == 0 { "different_host" } else { "same_host" };
            // Two instances: a same_host set of (likely) two hosts.
            let target: Vec<serde_json::Value> = [i - 7, i - 8]
                .iter()
                .map(|&j| crate::request::format_uuid(crate::request::default_instance_uuid(j, 0)).into())
                .collect();
            let mut req = w_class_request(i % 3);
            req.scheduler_hints.insert(key.into(), serde_json::Value::Array(target));
            class = w.class(req).unwrap();
        }
        let group = match i % 6 {
            0 | 3 => Some(anti[i % anti.len()]),
            1 => Some(aff[i % aff.len()]),
            _ => None,
        };
        w.push(SimRequest { arrival, departure, class, group });
    }
    let mut workload = w.finish();
    workload.groups[two as usize].rules.insert("max_server_per_host".into(), 2.into());
    let filters = "enabled_filters = [\"ComputeFilter\", \"ServerGroupAntiAffinityFilter\", \"ServerGroupAffinityFilter\", \
                   \"SameHostFilter\", \"DifferentHostFilter\"]\n";
    for (name, text) in [
        ("default", format!("[filter_scheduler]\n{filters}")),
        ("subset", format!("[filter_scheduler]\n{filters}host_subset_size = 2\n")),
    ] {
        let policy = Policy::parse(name, &text).unwrap();
        let run = |fast| {
            let opts = SimOptions { seed: 3, sample_interval: Some(25.0), compaction: false, fast, until: None };
            run_policy(&fleet, &workload, &policy, &opts, &mut |_| {}).unwrap()
        };
        let (f, s) = (run(true), run(false));
        assert!(f.counts.rejected > 0, "{name}: nothing contended: {:?}", f.counts);
        assert!(f.counts.fast_decisions * 10 > f.counts.accepted * 9, "{name}: {:?}", f.counts);
        assert_eq!(Counts { fast_decisions: 0, ..f.counts.clone() }, s.counts, "{name}");
        assert_eq!(f.timeline, s.timeline, "{name}");
    }
}

/// The `i`th of the three flavors as a request.
fn w_class_request(i: usize) -> BootRequest {
    let (v, r) = [(2, 2048), (4, 4096), (8, 8192)][i];
    BootRequest {
        flavor: Flavor { name: format!("f{v}"), vcpus: v, memory_mb: r, ..Default::default() },
        ..Default::default()
    }
}
