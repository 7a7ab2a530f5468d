//! The pipeline's unit tests.

use super::*;
use crate::host::{HostRecord, Inventory};
use crate::request::Flavor;

fn fleet(n: usize, vcpus: i64) -> Fleet {
    let mut b = crate::FleetBuilder::new();
    for i in 0..n {
        b.push(HostRecord {
            name: format!("h{i}"),
            inventories: vec![Inventory::simple("VCPU", vcpus, 1.0), Inventory::simple("MEMORY_MB", 8192, 1.0)],
            free_ram_mb: 8192 - i as i64, // a strict order: h0 is the best for RAMWeigher
            traits: vec!["OWNER_NOVA".into()],
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            ..Default::default()
        })
        .unwrap();
    }
    b.finish().unwrap()
}

fn req(n: u32, vcpus: u32) -> BootRequest {
    BootRequest {
        flavor: Flavor { vcpus, memory_mb: 1024, ..Default::default() },
        num_instances: n,
        ..Default::default()
    }
}

#[test]
fn select_decides_within_the_given_hosts_and_leaves_the_fleet_as_it_was() {
    let mut f = fleet(3, 4);
    let before = (f.usage().used.clone(), f.usage().free_ram_mb.clone(), f.instances.len());
    let mut s = Scheduler::new(SchedulerConfig::default(), 0).unwrap();
    let d = s.select(&mut f, &mut Groups::default(), &req(2, 1), 0, None);
    assert_eq!(d.chosen, vec!["h0", "h1"], "the second instance saw the first one's consumption");
    let within = Mask::from_fn(3, |h| h == 2);
    let d = s.select(&mut f, &mut Groups::default(), &req(1, 1), 1, Some(&within));
    assert_eq!(d.chosen, vec!["h2"]);
    assert_eq!((f.usage().used.clone(), f.usage().free_ram_mb.clone(), f.instances.len()), before);
    // Numbered groups: only with Placement's hosts.
    let mut numbered = req(1, 1);
    numbered.flavor.extra_specs.insert("resources1:VGPU".into(), "1".into());
    assert_eq!(s.select(&mut f, &mut Groups::default(), &numbered, 2, None).status, "unsupported");
    let d = s.select(&mut f, &mut Groups::default(), &numbered, 3, Some(&within));
    assert_eq!(d.chosen, vec!["h2"]);
}

#[test]
fn failed_multi_create_rolls_back_every_claim() {
    let mut f = fleet(3, 4);
    let before = (f.usage().used.clone(), f.usage().avail.clone(), f.usage().free_ram_mb.clone(), f.instances.len());
    let mut s = Scheduler::new(SchedulerConfig::default(), 0).unwrap();
    // 3 hosts x 4 vCPU = 12; ask for 4 x 4 vCPU: the fourth cannot fit.
    let d = s.schedule(&mut f, &mut Groups::default(), &req(4, 4), 0);
    assert_eq!(d.status, "no_valid_host");
    assert_eq!(d.instances.len(), 4);
    assert_eq!(d.instances[3].chosen, None);
    assert_eq!(
        (f.usage().used.clone(), f.usage().avail.clone(), f.usage().free_ram_mb.clone(), f.instances.len()),
        before
    );
    // Three fit, one per host, best first.
    let d = s.schedule(&mut f, &mut Groups::default(), &req(3, 4), 1);
    assert_eq!(d.status, "ok");
    assert_eq!(d.chosen, vec!["h0", "h1", "h2"]);
    assert!((0..3).all(|h| f.usage().avail[0][h] == 0));
    assert_eq!(f.instances.len(), 3);
}

#[test]
fn cached_block_extremes_never_change_a_decision() {
    // 10,000 hosts = 3 weighing blocks; some hosts disabled or down so
    // the extreme hosts of a block are sometimes filtered out.
    let mut b = crate::FleetBuilder::new();
    let mut x: u64 = 12345;
    let mut rnd = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for i in 0..10_000 {
        let mut vcpu = Inventory::simple("VCPU", 8 + rnd(56) as i64, 4.0);
        vcpu.used = rnd(8) as i64;
        b.push(HostRecord {
            name: format!("h{i}"),
            inventories: vec![
                vcpu,
                Inventory::simple("MEMORY_MB", 65536, 1.0),
                Inventory::simple("DISK_GB", 1000, 1.0),
            ],
            traits: vec!["OWNER_NOVA".into()],
            free_ram_mb: rnd(65536) as i64,
            free_disk_mb: rnd(1_000_000) as i64,
            num_io_ops: rnd(4) as i64,
            failed_builds: (rnd(50) == 0) as i64,
            hypervisor_version: [6_002_000, 8_002_002, 9_001_000][rnd(3) as usize],
            service: crate::host::ServiceRecord { disabled: rnd(10) == 0, ..Default::default() },
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            ..Default::default()
        })
        .unwrap();
    }
    let fleet = b.finish().unwrap();
    // All weighers; then RAMWeigher alone, where the chosen host holds the
    // fleet's largest free RAM, so a stale cached maximum would change
    // every reported weight.
    let ram_only = SchedulerConfig { weight_classes: vec!["RAMWeigher".into()], ..Default::default() };
    for conf in [SchedulerConfig::default(), ram_only] {
        let mut warm_fleet = fleet.clone();
        let mut cold_fleet = fleet.clone();
        let mut warm = Scheduler::new(conf.clone(), 0).unwrap();
        for i in 0..60 {
            let r = req(1 + (i % 3) as u32, 1 + (i % 4) as u32);
            let d1 = warm.schedule(&mut warm_fleet, &mut Groups::default(), &r, i);
            let d2 = Scheduler::new(conf.clone(), 0).unwrap().schedule(&mut cold_fleet, &mut Groups::default(), &r, i);
            assert_eq!(d1, d2, "request {i}");
            assert_eq!(d1.status, "ok");
        }
    }
}

#[test]
fn host_subset_size_is_random_but_seeded() {
    let pick = |seed| {
        let mut f = fleet(50, 64);
        let conf = SchedulerConfig { host_subset_size: 10, ..Default::default() };
        let mut s = Scheduler::new(conf, seed).unwrap();
        (0..8).map(|i| s.schedule(&mut f, &mut Groups::default(), &req(1, 1), i).chosen[0].clone()).collect::<Vec<_>>()
    };
    let a = pick(7);
    assert_eq!(a, pick(7));
    assert_ne!(a, pick(8));
    assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1, "{a:?}");
}

#[test]
fn shuffle_best_same_weighed_hosts_spreads_over_the_tie_group() {
    // 40 identical hosts: every one ties for best.
    let mut b = crate::FleetBuilder::new();
    for i in 0..40 {
        b.push(HostRecord {
            name: format!("t{i}"),
            inventories: vec![Inventory::simple("VCPU", 64, 1.0), Inventory::simple("MEMORY_MB", 65536, 1.0)],
            traits: vec!["OWNER_NOVA".into()],
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            ..Default::default()
        })
        .unwrap();
    }
    let fleet = b.finish().unwrap();
    let run = |shuffle: bool, seed: u64| {
        let mut f = fleet.clone();
        let conf = SchedulerConfig { shuffle_best_same_weighed_hosts: shuffle, ..Default::default() };
        let mut s = Scheduler::new(conf, seed).unwrap();
        // Restore usage after each request so every one sees the same 40-way tie.
        let pristine = f.usage().clone();
        (0..20)
            .map(|i| {
                let d = s.schedule(&mut f, &mut Groups::default(), &req(1, 1), i);
                f.set_usage(pristine.clone()).unwrap();
                d.chosen[0].clone()
            })
            .collect::<Vec<_>>()
    };
    assert!(run(false, 1).iter().all(|h| h == "t0"), "without shuffling the first host wins every tie");
    let shuffled = run(true, 1);
    assert_eq!(shuffled, run(true, 1));
    let distinct: std::collections::HashSet<_> = shuffled.iter().collect();
    assert!(distinct.len() > 5, "{shuffled:?}");
    // Hosts beyond the first top-k window are reachable too.
    assert!(shuffled.iter().any(|h| h[1..].parse::<usize>().unwrap() >= TOP_K), "{shuffled:?}");
}

#[test]
fn numa_requests_are_rejected_not_ignored() {
    let mut f = fleet(2, 4);
    let mut conf = SchedulerConfig::default();
    conf.enabled_filters.push("NUMATopologyFilter".into());
    let mut s = Scheduler::new(conf, 0).unwrap();
    let mut r = req(1, 1);
    r.flavor.extra_specs.insert("hw:numa_nodes".into(), "2".into());
    let d = s.schedule(&mut f, &mut Groups::default(), &r, 0);
    assert_eq!(d.status, "unsupported");
    assert!(d.error.unwrap().contains("not supported yet"));
    assert!(f.instances.is_empty());
}

#[test]
fn a_rebuild_runs_only_the_image_filters_on_the_servers_own_host() {
    let mut f = fleet(2, 1);
    let mut s = Scheduler::new(SchedulerConfig::default(), 0).unwrap();
    assert!(s.filter_names().contains(&"ImagePropertiesFilter"));
    // Fill h0: a boot cannot go there any more, a rebuild stays there.
    assert_eq!(s.schedule(&mut f, &mut Groups::default(), &req(1, 1), 0).chosen, vec!["h0"]);
    let mut rebuild = req(1, 1);
    assert_eq!(s.check_rebuild(&f, &rebuild, 0), Ok(None), "no image properties: every host passes");
    rebuild.image = Some(crate::request::Image {
        properties: [("hw_architecture".to_owned(), "aarch64".to_owned())].into(),
        ..Default::default()
    });
    // The hosts advertise no supported_instances: Nova's filter rejects an
    // image that asks for an architecture.
    assert_eq!(s.check_rebuild(&f, &rebuild, 0), Ok(Some("ImagePropertiesFilter")));
    let d = s.select(&mut f, &mut Groups::default(), &rebuild, 1, None);
    assert_eq!(d.status, "no_valid_host", "a boot with the same image fails too");
}
