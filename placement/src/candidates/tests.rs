//! Property test: random sequences of Placement writes (providers and trees
//! created and deleted, inventories, traits, aggregates, allocations,
//! reshapes) through [`Placement::write`]; after every step the live
//! provider table equals one built from scratch, and the columnar search
//! answers random requests exactly as the oracle (the old search) does.

use proptest::prelude::*;

use crate::model::{Inventory, State};
use crate::ops::{AllocationWriteKind, ConsumerWrite};
use crate::request::parse_candidates_query;
use crate::service::Placement;
use crate::store::Durability;

const CLASSES: [&str; 4] = ["VCPU", "MEMORY_MB", "DISK_GB", "CUSTOM_X"];
const TRAITS: [&str; 5] = ["CUSTOM_A", "CUSTOM_B", "CUSTOM_C", "HW_CPU_X86_AVX2", "MISC_SHARES_VIA_AGGREGATE"];

fn rp_uuid(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

fn agg_uuid(i: usize) -> String {
    format!("aaaaaaaa-0000-0000-0000-{i:012}")
}

#[derive(Clone, Debug)]
enum Op {
    Create { parent: Option<u8>, classes: Vec<(u8, i64, i64, u8)> },
    Delete(u8),
    Inventory { rp: u8, classes: Vec<(u8, i64, i64, u8)> },
    Traits { rp: u8, bits: u8 },
    Aggregates { rp: u8, bits: u8 },
    Allocate { consumer: u8, lines: Vec<(u8, u8, i64)> },
    Free(u8),
    Reshape { rp: u8, child: u8, class: u8, total: i64 },
}

/// (class, total, reserved, shape bits: ratio, step, max_unit)
fn inventory() -> impl Strategy<Value = (u8, i64, i64, u8)> {
    (0u8..4, 2i64..16, 0i64..2, any::<u8>())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::option::weighted(0.5, any::<u8>()), proptest::collection::vec(inventory(), 0..5))
            .prop_map(|(parent, classes)| Op::Create { parent, classes }),
        1 => any::<u8>().prop_map(Op::Delete),
        3 => (any::<u8>(), proptest::collection::vec(inventory(), 0..4))
            .prop_map(|(rp, classes)| Op::Inventory { rp, classes }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(rp, bits)| Op::Traits { rp, bits }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(rp, bits)| Op::Aggregates { rp, bits }),
        3 => (0u8..6, proptest::collection::vec((any::<u8>(), 0u8..4, 1i64..5), 1..3))
            .prop_map(|(consumer, lines)| Op::Allocate { consumer, lines }),
        1 => (0u8..6).prop_map(Op::Free),
        1 => (any::<u8>(), any::<u8>(), 0u8..4, 1i64..10)
            .prop_map(|(rp, child, class, total)| Op::Reshape { rp, child, class, total }),
    ]
}

/// A random query string over the fleet's names (and a few unknown ones).
#[derive(Clone, Debug)]
struct Query {
    parts: Vec<(String, String)>,
    nested_aware: bool,
}

fn group(suffix: &'static str) -> impl Strategy<Value = Vec<(String, String)>> {
    (
        proptest::collection::vec((0usize..4, 1i64..3), 0..3),
        proptest::option::weighted(0.3, (0usize..5, any::<bool>(), any::<bool>())),
        proptest::option::weighted(0.2, (0usize..5, 0usize..5, any::<bool>())),
        proptest::option::weighted(0.1, 0usize..12),
    )
        .prop_map(move |(res, req, member, tree)| {
            let mut out = vec![];
            let mut seen = vec![];
            let res: Vec<String> = res
                .into_iter()
                .filter(|(c, _)| {
                    let fresh = !seen.contains(c);
                    seen.push(*c);
                    fresh
                })
                .map(|(c, n)| format!("{}:{n}", CLASSES[c]))
                .collect();
            if !res.is_empty() {
                out.push((format!("resources{suffix}"), res.join(",")));
            }
            if let Some((t, forbid, any)) = req {
                let v = if any {
                    format!("in:{},{}", TRAITS[t], TRAITS[(t + 1) % 4])
                } else if forbid {
                    format!("!{}", TRAITS[t])
                } else {
                    TRAITS[t].to_string()
                };
                out.push((format!("required{suffix}"), v));
            }
            if let Some((a, b, forbid)) = member {
                let v = if forbid {
                    format!("!in:{},{}", agg_uuid(a), agg_uuid(b))
                } else {
                    format!("in:{},{}", agg_uuid(a), agg_uuid(b))
                };
                out.push((format!("member_of{suffix}"), v));
            }
            if let Some(t) = tree {
                out.push((format!("in_tree{suffix}"), rp_uuid(t)));
            }
            out
        })
}

fn query() -> impl Strategy<Value = Query> {
    (
        group(""),
        proptest::option::weighted(0.5, group("1")),
        proptest::option::weighted(0.3, group("2")),
        proptest::option::of(prop_oneof![Just("none"), Just("isolate")]),
        proptest::option::of(1usize..4),
        proptest::option::weighted(0.2, (0usize..4, any::<bool>())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(g0, g1, g2, policy, limit, root, subtree, nested_aware)| {
            let mut parts = g0;
            let numbered = g1.is_some() as usize + g2.is_some() as usize;
            parts.extend(g1.into_iter().flatten());
            parts.extend(g2.into_iter().flatten());
            if let Some(p) = policy {
                parts.push(("group_policy".into(), p.into()));
            } else if numbered > 1 {
                parts.push(("group_policy".into(), "none".into()));
            }
            if let Some(l) = limit {
                parts.push(("limit".into(), l.to_string()));
            }
            if let Some((t, forbid)) = root {
                parts.push(("root_required".into(), format!("{}{}", if forbid { "!" } else { "" }, TRAITS[t])));
            }
            if subtree && numbered == 2 {
                parts.push(("same_subtree".into(), "1,2".into()));
            }
            Query { parts, nested_aware }
        })
}

fn inventories(classes: &[(u8, i64, i64, u8)]) -> Vec<(String, Inventory)> {
    let mut out: Vec<(String, Inventory)> = vec![];
    for &(c, total, reserved, shape) in classes {
        let name = CLASSES[c as usize].to_string();
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let inv = Inventory {
            total,
            reserved: reserved.min(total - 1),
            allocation_ratio: [1.0, 1.5, 0.5, 4.0, 1.0, 1.0][(shape % 6) as usize],
            step_size: if shape & 16 != 0 { 2 } else { 1 },
            max_unit: if shape & 32 != 0 { 2 } else { total.max(2) },
            ..Default::default()
        };
        out.push((name, inv));
    }
    out
}

/// Applies one write; refusals (conflicts, capacity, bad ids) are part of
/// the test: they must leave state and table consistent.
fn apply(p: &Placement, op: &Op, created: &mut usize) {
    let live = |s: &State| -> Vec<String> { s.live_providers().map(|p| p.uuid.clone()).collect() };
    let pick = |uuids: &[String], i: u8| -> Option<String> {
        (!uuids.is_empty()).then(|| uuids[i as usize % uuids.len()].clone())
    };
    let uuids = p.read(live);
    let _ = match op {
        Op::Create { parent, classes } => {
            let parent = parent.and_then(|i| pick(&uuids, i));
            let n = *created;
            *created += 1;
            let made = p.write(|s| s.create_provider(rp_uuid(n), format!("rp{n}"), parent).map(|_| ()));
            if made.is_ok() && !classes.is_empty() {
                p.write(|s| s.set_inventories(&rp_uuid(n), 0, &inventories(classes), false).map(|_| ()))
            } else {
                made
            }
        }
        Op::Delete(i) => match pick(&uuids, *i) {
            Some(u) => p.write(|s| s.delete_provider(&u)),
            None => Ok(()),
        },
        Op::Inventory { rp, classes } => match pick(&uuids, *rp) {
            Some(u) => p.write(|s| {
                let generation = s.get_provider(&u)?.generation;
                s.set_inventories(&u, generation, &inventories(classes), false).map(|_| ())
            }),
            None => Ok(()),
        },
        Op::Traits { rp, bits } => match pick(&uuids, *rp) {
            Some(u) => p.write(|s| {
                let generation = s.get_provider(&u)?.generation;
                // MISC_SHARES_VIA_AGGREGATE on one write in eight.
                let bits = if *bits & 0xe0 == 0xe0 { *bits } else { *bits & 0x0f };
                let names: Vec<String> = TRAITS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, t)| t.to_string())
                    .collect();
                s.set_provider_traits(&u, generation, &names).map(|_| ())
            }),
            None => Ok(()),
        },
        Op::Aggregates { rp, bits } => match pick(&uuids, *rp) {
            Some(u) => p.write(|s| {
                let aggs: Vec<String> = (0..4).filter(|i| bits & (1 << i) != 0).map(agg_uuid).collect();
                s.set_provider_aggregates(&u, &aggs, None).map(|_| ())
            }),
            None => Ok(()),
        },
        Op::Allocate { consumer, lines } => {
            let mut allocations: Vec<(String, Vec<(String, i64)>)> = vec![];
            for &(rp, c, n) in lines {
                let Some(u) = pick(&uuids, rp) else { continue };
                match allocations.iter_mut().find(|(x, _)| *x == u) {
                    Some((_, l)) if !l.iter().any(|(k, _)| k == CLASSES[c as usize]) => {
                        l.push((CLASSES[c as usize].into(), n))
                    }
                    Some(_) => {}
                    None => allocations.push((u, vec![(CLASSES[c as usize].into(), n)])),
                }
            }
            let w = ConsumerWrite {
                consumer: format!("c{consumer}"),
                project: Some("p".into()),
                user: Some("u".into()),
                generation_check: None,
                consumer_type: None,
                allocations,
            };
            p.write(|s| s.write_allocations(&[w], AllocationWriteKind::Put))
        }
        Op::Free(c) => p.write(|s| s.delete_allocations(&format!("c{c}"))),
        Op::Reshape { rp, child, class, total } => match (pick(&uuids, *rp), pick(&uuids, *child)) {
            (Some(a), Some(b)) if a != b => p.write(|s| {
                let (ga, gb) = (s.get_provider(&a)?.generation, s.get_provider(&b)?.generation);
                let inv = Inventory { total: *total, ..Default::default() };
                let invs = vec![(a.clone(), ga, vec![]), (b.clone(), gb, vec![(CLASSES[*class as usize].into(), inv)])];
                s.reshape(&invs, &[], false)
            }),
            _ => Ok(()),
        },
    };
}

fn same_table(s: &State, fleet: &quiver_engine::Fleet) -> std::result::Result<(), TestCaseError> {
    let rebuilt = crate::fleet::build(s);
    prop_assert_eq!(fleet.len(), rebuilt.len());
    for id in 0..rebuilt.len() {
        prop_assert_eq!(fleet.provider_view(id), rebuilt.provider_view(id), "row {}", id);
    }
    let p = &fleet.providers;
    prop_assert_eq!(p.traitsets.live_counts(), rebuilt.providers.traitsets.live_counts());
    prop_assert_eq!(p.aggsets.live_counts(), rebuilt.providers.aggsets.live_counts());
    prop_assert_eq!(p.live.words(), rebuilt.providers.live.words());
    Ok(())
}

fn same_answer(s: &State, fleet: &quiver_engine::Fleet, q: &Query) -> std::result::Result<(), TestCaseError> {
    let Ok((groups, wide)) = parse_candidates_query(&q.parts, (1, 39)) else { return Ok(()) };
    let new = s.allocation_candidates(fleet, &groups, &wide, q.nested_aware);
    let old = s.allocation_candidates_oracle(&groups, &wide, q.nested_aware);
    match (new, old) {
        (Ok(n), Ok(o)) => {
            let reqs = |c: &super::Candidates| -> Vec<String> {
                c.requests.iter().map(|a| format!("{:?} {:?} {:?}", a.anchor, a.resources, a.mappings)).collect()
            };
            let sums =
                |c: &super::Candidates| -> Vec<String> { c.summaries.iter().map(|x| format!("{x:?}")).collect() };
            prop_assert_eq!(reqs(&n), reqs(&o), "requests for {:?}", q);
            prop_assert_eq!(sums(&n), sums(&o), "summaries for {:?}", q);
        }
        (Err(n), Err(o)) => prop_assert_eq!((n.status, n.detail), (o.status, o.detail), "error for {:?}", q),
        (n, o) => prop_assert!(
            false,
            "{:?}: columnar {:?}, oracle {:?}",
            q,
            n.map(|c| c.requests.len()),
            o.map(|c| c.requests.len())
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn live_table_and_columnar_candidates_match_a_rebuild_and_the_oracle(
        ops in proptest::collection::vec(op(), 8..56),
        queries in proptest::collection::vec(query(), 4),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Placement::open(dir.path(), Durability::Process).expect("open");
        p.write(|s| {
            s.ensure_class("CUSTOM_X")?;
            for t in TRAITS {
                s.ensure_trait(t);
            }
            Ok(())
        }).expect("names");
        let mut created = 0;
        for (step, op) in ops.iter().enumerate() {
            apply(&p, op, &mut created);
            p.read_with_fleet(same_table)?;
            let q = &queries[step % queries.len()];
            p.read_with_fleet(|s, f| same_answer(s, f, q))?;
        }
        for q in &queries {
            p.read_with_fleet(|s, f| same_answer(s, f, q))?;
        }
        // A reload from SQLite builds the same table.
        drop(p);
        let p = Placement::open(dir.path(), Durability::Process).expect("reopen");
        p.read_with_fleet(same_table)?;
    }
}

/// More rows than one scan chunk (4,096): the flat scan that stops at
/// `limit` must agree with the oracle across chunk boundaries.
#[test]
fn flat_scan_agrees_with_the_oracle_past_a_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Placement::open(dir.path(), Durability::Process).expect("open");
    p.write(|s| {
        s.ensure_trait("CUSTOM_A");
        for i in 0..9000 {
            let u = rp_uuid(i);
            s.create_provider(u.clone(), format!("rp{i}"), None)?;
            let inv = Inventory {
                total: 1 + (i % 7) as i64,
                step_size: if i % 11 == 0 { 2 } else { 1 },
                ..Default::default()
            };
            s.set_inventories(&u, 0, &[("VCPU".into(), inv)], false)?;
            if i % 3 == 0 {
                s.set_provider_traits(&u, 1, &["CUSTOM_A".into()])?;
            }
        }
        Ok(())
    })
    .expect("fleet");
    p.write(|s| s.delete_provider(&rp_uuid(4100))).expect("delete");
    for q in [
        "resources=VCPU:4",
        "resources=VCPU:4&limit=1500",
        "resources=VCPU:2&required=CUSTOM_A&limit=2000",
        "resources=VCPU:6&required=!CUSTOM_A",
        "resources=VCPU:1&limit=1",
    ] {
        let parts: Vec<(String, String)> = q
            .split('&')
            .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).expect("k=v"))
            .collect();
        let query = Query { parts, nested_aware: true };
        p.read_with_fleet(|s, f| same_answer(s, f, &query)).expect("same answer");
        let n = p.read_with_fleet(|s, f| {
            let (g, w) = parse_candidates_query(&query.parts, (1, 39)).expect("parse");
            s.allocation_candidates(f, &g, &w, true).expect("ok").requests.len()
        });
        assert!(n > 0, "{q} finds candidates");
    }
}
