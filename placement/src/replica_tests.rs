//! Several replicas on one PostgreSQL database: each sees the others'
//! writes before it answers, applies them to its live fleet in place, and
//! no two ever win the same generation or capacity.

use std::sync::Arc;

use crate::Placement;
use crate::error::codes;
use crate::model::Inventory;
use crate::ops::{AllocationWriteKind, ConsumerWrite};
use crate::store::test_cluster::TestCluster;
use crate::store::{Durability, Location};

fn open(at: &Location) -> Arc<Placement> {
    Arc::new(Placement::open_at(at, Durability::Process).expect("open a replica"))
}

fn rp(n: u32) -> String {
    format!("7d1c5c0e-2a4b-4a8e-9f00-{n:012}")
}

fn claim(consumer: &str, provider: &str, vcpu: i64) -> ConsumerWrite {
    ConsumerWrite {
        consumer: consumer.into(),
        project: Some("p".into()),
        user: Some("u".into()),
        generation_check: Some(None),
        consumer_type: Some("INSTANCE".into()),
        allocations: vec![(provider.into(), vec![("VCPU".into(), vcpu)])],
    }
}

fn used_vcpu(p: &Placement, provider: &str) -> i64 {
    p.read(|s| {
        let vcpu = s.classes.get("VCPU").expect("VCPU");
        s.get_provider(provider).ok().and_then(|p| p.inventory(vcpu)).map_or(-1, |r| r.used)
    })
}

fn fleet_free_vcpu(p: &Placement, provider: &str) -> Option<i64> {
    p.read_with_fleet(|s, fleet| {
        let id = s.get_provider(provider).ok()?.id as usize;
        let view = fleet.provider_view(id)?;
        view.inventories.iter().find(|i| i.0 == "VCPU").map(|i| i64::from(i.3))
    })
}

#[test]
fn replicas_on_one_postgresql_see_each_others_writes_and_never_win_the_same_capacity() {
    let cluster = TestCluster::start();
    let at = Location::Postgres(cluster.url("placement"));
    let a = open(&at);
    let b = open(&at);

    // A provider made on A is on B at its next request, in its fleet too.
    a.write(|s| s.create_provider(rp(1), "cn1".into(), None)).expect("create");
    let inv = Inventory { total: 4, ..Default::default() };
    a.write(|s| s.set_inventories(&rp(1), 0, &[("VCPU".into(), inv)], true)).expect("inventory");
    b.ensure_fresh().expect("fresh");
    assert_eq!(used_vcpu(&b, &rp(1)), 0);
    assert_eq!(fleet_free_vcpu(&b, &rp(1)), Some(4));

    // B claims 3; A's next write sees it and refuses an over-claim.
    b.write(|s| s.write_allocations(&[claim("c1", &rp(1), 3)], AllocationWriteKind::Put)).expect("claim on B");
    let err = a
        .write(|s| s.write_allocations(&[claim("c2", &rp(1), 2)], AllocationWriteKind::Put))
        .expect_err("over capacity on A");
    assert_eq!(err.status, 409, "{}", err.detail);
    assert_eq!(used_vcpu(&a, &rp(1)), 3, "A caught up inside its write");
    assert_eq!(fleet_free_vcpu(&a, &rp(1)), Some(1));
    // A generation B read is stale once A bumped it.
    let g = b.read(|s| s.get_provider(&rp(1)).map(|p| p.generation)).expect("provider");
    a.write(|s| s.set_provider_traits(&rp(1), g, &["HW_CPU_X86_AVX2".into()])).expect("traits on A");
    let err = b
        .write(|s| s.set_provider_traits(&rp(1), g, &["HW_CPU_X86_SSE42".into()]))
        .expect_err("B's generation is stale");
    assert_eq!((err.status, err.code), (409, codes::CONCURRENT_UPDATE));

    // Classes, traits and consumers travel too; a deleted provider goes.
    b.write(|s| s.create_class("CUSTOM_FPGA").map(|_| ())).expect("class");
    b.write(|s| Ok(s.ensure_trait("CUSTOM_GOLD"))).expect("trait");
    b.write(|s| s.create_provider(rp(2), "cn2".into(), Some(rp(1)))).expect("child");
    let g1 = b.read(|s| s.get_provider(&rp(1)).map(|p| p.generation)).expect("provider");
    b.write(|s| s.set_provider_traits(&rp(1), g1, &["CUSTOM_GOLD".into()])).expect("gold");
    a.ensure_fresh().expect("fresh");
    a.read_with_fleet(|s, fleet| {
        assert!(s.classes.get("CUSTOM_FPGA").is_some());
        let gold = s.traits.get("CUSTOM_GOLD").expect("trait on A");
        assert_eq!(fleet.traits.get("CUSTOM_GOLD"), Some(gold), "the fleet's trait index is Placement's id");
        let root = s.get_provider(&rp(1)).expect("root");
        assert_eq!(root.traits.iter().copied().collect::<Vec<_>>(), [gold]);
        let child = s.get_provider(&rp(2)).expect("child");
        assert!(root.children.contains(&child.id));
        assert_eq!(child.root, root.id);
        assert_eq!(fleet.provider_view(root.id as usize).expect("row").traits, [gold]);
        assert_eq!(s.consumers["c1"].generation, 1);
    });
    a.write(|s| s.delete_provider(&rp(2))).expect("delete on A");
    b.ensure_fresh().expect("fresh");
    b.read_with_fleet(|s, fleet| {
        assert!(s.get_provider(&rp(2)).is_err());
        assert!(s.get_provider(&rp(1)).expect("root").children.is_empty());
        assert_eq!(s.nested, 0);
        assert!(!fleet.is_provider(2));
    });
    // The provider ids the replicas assign never collide.
    b.write(|s| s.create_provider(rp(3), "cn3".into(), None)).expect("on B");
    a.write(|s| s.create_provider(rp(4), "cn4".into(), None)).expect("on A");
    let ids = |p: &Placement| {
        p.read(|s| (s.get_provider(&rp(3)).ok().map(|p| p.id), s.get_provider(&rp(4)).ok().map(|p| p.id)))
    };
    b.ensure_fresh().expect("fresh");
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a).0.expect("cn3"), ids(&a).1.expect("cn4"));

    // 32 clients over both replicas race for the last 10 units.
    let inv = Inventory { total: 10, ..Default::default() };
    a.write(|s| s.set_inventories(&rp(3), 0, &[("VCPU".into(), inv)], true)).expect("inventory");
    let winners: usize = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..32)
            .map(|i| {
                let p = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
                scope.spawn(move || {
                    let w = claim(&format!("racer-{i}"), &rp(3), 1);
                    // A provider-generation conflict is retried, as
                    // Placement retries an allocation write.
                    for _ in 0..20 {
                        match p.write(|s| s.write_allocations(std::slice::from_ref(&w), AllocationWriteKind::Put)) {
                            Ok(()) => return 1,
                            Err(e) if e.code == codes::CONCURRENT_UPDATE => {}
                            Err(e) => {
                                assert_eq!(e.status, 409, "a loser gets 409: {}", e.detail);
                                return 0;
                            }
                        }
                    }
                    panic!("no answer after 20 tries");
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().expect("racer")).sum()
    });
    assert_eq!(winners, 10, "exactly as many win as there are units");
    let generation = |p: &Placement| p.read(|s| s.get_provider(&rp(3)).map(|p| p.generation)).expect("provider");
    for p in [&a, &b] {
        p.ensure_fresh().expect("fresh");
        assert_eq!(used_vcpu(p, &rp(3)), 10);
        assert_eq!(fleet_free_vcpu(p, &rp(3)), Some(0));
    }
    assert_eq!(generation(&a), 11, "the inventory and each of the 10 claims bumped it");
    assert_eq!(generation(&a), generation(&b));
    // A reopened replica holds the same truth.
    let c = open(&at);
    assert_eq!(used_vcpu(&c, &rp(3)), 10);
    assert_eq!(used_vcpu(&c, &rp(1)), 3);
}

#[test]
fn a_write_built_on_a_stale_view_is_refused_by_the_store_and_the_follower_applies_changes_unasked() {
    let cluster = TestCluster::start();
    let url = cluster.url("placement");
    let at = Location::Postgres(url.clone());
    let a = open(&at);
    a.write(|s| s.create_provider(rp(1), "cn1".into(), None)).expect("create");
    // Someone changes the row behind every replica's back (no change row):
    // the generation check in the database refuses A's write.
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    raw.execute("UPDATE resource_providers SET generation = generation + 5", &[]).expect("tamper");
    let inv = Inventory { total: 4, ..Default::default() };
    let err = a
        .write(|s| s.set_inventories(&rp(1), 0, &[("VCPU".into(), inv.clone())], true))
        .expect_err("the store holds a newer generation");
    assert_eq!((err.status, err.code), (409, codes::CONCURRENT_UPDATE), "{}", err.detail);
    assert_eq!(a.read(|s| s.get_provider(&rp(1)).map(|p| p.generation)).expect("provider"), 5, "reloaded");
    let stored: i64 = raw.query_one("SELECT count(*) FROM inventories", &[]).expect("count").get(0);
    assert_eq!(stored, 0, "nothing of the refused write is kept");

    // With the follower running, B's writes reach A without A asking.
    a.follow_changes().expect("follow");
    let b = open(&at);
    b.write(|s| s.set_inventories(&rp(1), 5, &[("VCPU".into(), inv)], true)).expect("inventory on B");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fleet_free_vcpu(&a, &rp(1)) != Some(4) {
        assert!(std::time::Instant::now() < deadline, "the follower did not apply B's write");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = a.feed_stats().status();
    assert_eq!(status.applied, status.latest);
    assert!(status.applied_total >= 1 && status.lag_p50_ms.is_some(), "{status:?}");
    // It reports its place in the feed for `quiver db status`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = crate::store::status(&at).expect("status");
        if let Some(r) = st.replicas.first() {
            assert_eq!(st.latest_change, Some(r.applied + r.behind));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no replica reported");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn old_changes_are_pruned_and_a_replica_that_missed_them_reloads_in_full() {
    let cluster = TestCluster::start();
    let url = cluster.url("placement");
    let at = Location::Postgres(url.clone());
    let (a, b) = (open(&at), open(&at));
    b.set_feed_retention(5, 3);
    for n in 0..20 {
        b.write(|s| s.create_provider(rp(n), format!("cn{n}"), None)).expect("create on B");
    }
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let kept: i64 = raw.query_one("SELECT count(*) FROM changes", &[]).expect("count").get(0);
    assert!(kept <= 5 + 3, "old change rows are pruned ({kept} kept)");
    let pruned: String =
        raw.query_one("SELECT value FROM meta WHERE key = 'pruned_through'", &[]).expect("meta").get(0);
    assert!(pruned.parse::<i64>().expect("a sequence") >= 12, "{pruned}");
    // A missed changes that are gone: it reads everything again.
    assert_eq!(a.read(|s| s.live_providers().count()), 0);
    a.ensure_fresh().expect("fresh");
    assert_eq!(a.read(|s| s.live_providers().count()), 20);
    assert_eq!(a.feed_stats().status().applied, b.feed_stats().status().applied);
    assert!(a.read_with_fleet(|s, fleet| s.live_providers().all(|p| fleet.is_provider(p.id as usize))));
}
