//! Why a request lands where it does, or nowhere (`quiver explain`,
//! `POST /v1/explain`): how many hosts each of Nova's request filters,
//! Placement's query and each filter kept, and for named hosts the first
//! stage that rejected each one and why, in words. Nova only logs the
//! counts, at DEBUG; the per-host reasons are computed here lazily, for
//! the named hosts only (CONVENTIONS.md rule 9), never on the scheduling
//! path.

use serde::Serialize;

use super::placement_query::request_filters;
use super::{Decision, Groups, Scheduler, instance_uuid};
use crate::candidates::{PlacementQuery, PreparedQuery};
use crate::filters::{HostFilter, Kernel, RequestContext};
use crate::fleet::{Fleet, NO_AZ};
use crate::mask::Mask;
use crate::request::BootRequest;

/// How many hosts one stage of the pipeline kept. Stages are cumulative:
/// each sees only the hosts the ones before it kept.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stage {
    /// `request_filter` (Nova's scheduler request filters, which shape
    /// the Placement query), `placement` (allocation candidates: the
    /// flavor's resources and traits) or `filter` (enabled_filters).
    pub kind: &'static str,
    /// Nova's name: the request filter's function or the filter's class.
    pub name: String,
    /// Hosts left after it.
    pub kept: usize,
}

/// What became of one named host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HostVerdict {
    /// The host name asked about.
    pub host: String,
    /// `chosen`, `alternate`, `passed` (every filter, not picked),
    /// `rejected`, or `unknown` (no live compute host of that name).
    pub verdict: &'static str,
    /// The kind of stage that rejected it (see [`Stage::kind`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
    /// The name of the stage that rejected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Its weight, when it is among the five best weighed hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// The answer to "where would this request go, and why not there?".
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// Live compute hosts before any stage.
    pub hosts: usize,
    /// Hosts kept by each stage, in pipeline order (for the first instance
    /// of a multi-create; filters stop at the first that keeps none).
    pub stages: Vec<Stage>,
    /// The decision the pipeline makes for the request (nothing claimed).
    pub decision: Decision,
    /// The named hosts' verdicts, in the order asked.
    pub named: Vec<HostVerdict>,
}

/// Whether host `row` is among the candidates of `q` (and of `within`).
fn is_candidate(fleet: &Fleet, q: &PreparedQuery, row: usize, within: Option<&Mask>) -> bool {
    let (batch, r) = fleet.locate(row);
    let mut words = vec![0u64; batch.len().div_ceil(64)];
    q.candidates(fleet, batch, &mut words);
    (words[r / 64] >> (r % 64)) & 1 == 1 && within.is_none_or(|w| row < w.len() && w.get(row))
}

/// One filter prepared for the request: its name, the filter (for its
/// reasons) and its kernel (`None`: every host passes).
type PreparedFilter<'a> = (&'static str, &'a dyn HostFilter, Option<Kernel<'a>>);

/// What each named host is checked against, prepared once per request.
struct Checks<'a> {
    /// Nova's request filters, each with the query of it and the ones
    /// before it.
    request_filters: Vec<(&'static str, PreparedQuery)>,
    /// Placement's whole query, or why the request cannot be asked.
    placement: Result<(PlacementQuery, PreparedQuery), String>,
    /// The filters in order, or the one that refused the request.
    filters: Result<Vec<PreparedFilter<'a>>, (&'static str, String)>,
    /// What the filters see (for their reasons in words).
    ctx: Option<RequestContext<'a>>,
}

/// Why host `row` fails request filter `name`.
fn request_filter_reason(fleet: &Fleet, req: &BootRequest, name: &str, row: usize) -> String {
    match name {
        "map_az_to_placement_aggregate" => {
            let (batch, r) = fleet.locate(row);
            let asked = req.availability_zone.as_deref().unwrap_or("");
            match batch.az[r] {
                NO_AZ => format!("in no availability zone aggregate; the request asks for zone {asked}"),
                z => format!("in availability zone {}; the request asks for zone {asked}", fleet.azs.name(z)),
            }
        }
        "compute_status_filter" => "its compute service is disabled (trait COMPUTE_STATUS_DISABLED)".into(),
        "owner_nova" => "lacks trait OWNER_NOVA (its provider is not managed by Nova)".into(),
        other => format!("excluded by {other}"),
    }
}

/// Why host `row` is not among Placement's candidates for `q`: every
/// resource short (by how much), unit, trait and aggregate it fails.
fn placement_reason(fleet: &Fleet, q: &PlacementQuery, row: usize, within: Option<&Mask>) -> String {
    let mut why = Vec::new();
    for rc in &q.unknown_resources {
        why.push(format!("{rc}: no host has inventory of it"));
    }
    for &(rc, amount) in &q.resources {
        let name = fleet.resource_classes.name(rc as u32);
        let Some(p) = fleet.inventory(rc, row) else {
            why.push(format!("{name}: asks {amount}, the host has no {name} inventory"));
            continue;
        };
        let (min, max, step) = (p.min_unit as i64, p.max_unit as i64, p.step_size.max(1) as i64);
        if amount > max {
            why.push(format!("{name}: asks {amount}, above its max_unit {max}"));
        } else if amount < min {
            why.push(format!("{name}: asks {amount}, below its min_unit {min}"));
        } else if amount % step != 0 {
            why.push(format!("{name}: asks {amount}, not a multiple of its step_size {step}"));
        }
        let used = fleet.usage().used[rc][row];
        let free = p.capacity() - used;
        if amount > free {
            why.push(format!(
                "{name}: asks {amount}, {free} free of {cap} (total {total}, reserved {reserved}, allocation_ratio \
                 {ratio}, used {used}): short by {short}",
                cap = p.capacity(),
                total = p.total,
                reserved = p.reserved,
                ratio = p.allocation_ratio,
                short = amount - free,
            ));
        }
    }
    let (batch, r) = fleet.locate(row);
    let words = &fleet.traitsets[batch.traitset[r] as usize];
    let has = |t: &str| {
        fleet.traits.get(t).is_some_and(|b| words.get(b as usize / 64).is_some_and(|w| (w >> (b % 64)) & 1 == 1))
    };
    for t in q.required.iter().filter(|t| !has(t)) {
        why.push(format!("lacks required trait {t}"));
    }
    for t in q.forbidden.iter().filter(|t| has(t)) {
        why.push(format!("has forbidden trait {t}"));
    }
    let aggs = &fleet.aggsets[batch.aggset[r] as usize];
    for any in q.member_of.iter().filter(|any| !any.iter().any(|a| aggs.contains(a))) {
        let names: Vec<&str> = any.iter().map(|&a| fleet.aggregates[a as usize].name.as_str()).collect();
        why.push(format!("in none of the aggregates {}", names.join(", ")));
    }
    if within.is_some_and(|w| row >= w.len() || !w.get(row)) {
        why.push("no provider in its tree can hold the numbered request groups (resourcesN:)".into());
    }
    if why.is_empty() {
        why.push("not a candidate".into());
    }
    why.join("; ")
}

impl Scheduler {
    /// Explains request `index` against `fleet`: the stage counts, the
    /// decision (made as [`Scheduler::select`] makes it: nothing claimed,
    /// the fleet and `groups` left as they were), and for each name in
    /// `hosts` the first stage that rejected it and why.
    ///
    /// `within`: as for [`Scheduler::select`] (Placement's candidates for
    /// numbered request groups).
    pub fn explain(
        &mut self,
        fleet: &mut Fleet,
        groups: &Groups,
        req: &BootRequest,
        index: usize,
        hosts: &[String],
        within: Option<&Mask>,
    ) -> Explanation {
        let traced = std::mem::replace(&mut self.trace, true);
        let decision = self.select(fleet, &mut groups.clone(), req, index, within);
        self.trace = traced;
        let fleet: &Fleet = fleet;
        // Request filters: cumulative queries, prepared once.
        let mut acc = PlacementQuery::default();
        let request_filters: Vec<(&'static str, PreparedQuery)> = request_filters(fleet, req)
            .into_iter()
            .map(|(name, q)| {
                acc.merge(&q);
                (name, acc.prepare(fleet))
            })
            .collect();
        let mut stages: Vec<Stage> = request_filters
            .iter()
            .map(|(name, q)| Stage {
                kind: "request_filter",
                name: (*name).to_owned(),
                kept: self.candidate_masks(fleet, q).iter().map(Mask::count).sum(),
            })
            .collect();
        if let Some(kept) = decision.placement_candidates {
            stages.push(Stage { kind: "placement", name: "allocation_candidates".into(), kept });
        }
        if let Some(first) = decision.instances.first() {
            for (name, kept) in first.filter_trace.iter().flatten() {
                stages.push(Stage { kind: "filter", name: name.clone(), kept: *kept });
            }
        }
        // The filters as instance 0 meets them, prepared once.
        let n = req.num_instances.max(1) as usize;
        let uuids: Vec<u128> = (0..n).map(|k| instance_uuid(req, index, k)).collect();
        let group = groups.clone().join(fleet, req, &uuids);
        let (ctx, filters) = match &group {
            Ok(g) => {
                let ctx = RequestContext {
                    fleet,
                    conf: &self.conf,
                    request: req,
                    group: g.as_ref(),
                    instance_uuid: uuids[0],
                    index: 0,
                };
                let filters = self
                    .filters
                    .iter()
                    .map(|(name, f)| {
                        f.prepare(&ctx).map(|k| (*name, f.as_ref(), k)).map_err(|e| (*name, e.to_string()))
                    })
                    .collect();
                (Some(ctx), filters)
            }
            Err(e) => (None, Err(("ServerGroup", e.clone()))),
        };
        let checks = Checks {
            request_filters,
            placement: self
                .placement_query_for(fleet, req, within.is_some())
                .map(|q| {
                    let prepared = q.prepare(fleet);
                    (q, prepared)
                })
                .map_err(|e| e.to_string()),
            filters,
            ctx,
        };
        let named = hosts.iter().map(|h| verdict(fleet, req, &checks, &decision, within, h)).collect();
        Explanation { hosts: fleet.live_len(), stages, decision, named }
    }
}

/// What became of host `host`: the first check it fails, else its place
/// in the decision.
fn verdict(
    fleet: &Fleet,
    req: &BootRequest,
    checks: &Checks<'_>,
    decision: &Decision,
    within: Option<&Mask>,
    host: &str,
) -> HostVerdict {
    let mut v = HostVerdict {
        host: host.to_owned(),
        verdict: "rejected",
        stage: None,
        rejected_by: None,
        reason: String::new(),
        weight: None,
    };
    let Some(row) = fleet.index_of(host) else {
        v.verdict = "unknown";
        v.reason = "no live compute host of that name".into();
        return v;
    };
    let mut reject = |stage: &'static str, by: &str, reason: String| {
        v.stage = Some(stage);
        v.rejected_by = Some(by.to_owned());
        v.reason = reason;
        v.clone()
    };
    for (name, q) in &checks.request_filters {
        if !is_candidate(fleet, q, row, None) {
            return reject("request_filter", name, request_filter_reason(fleet, req, name, row));
        }
    }
    match &checks.placement {
        Err(e) => return reject("placement", "allocation_candidates", e.clone()),
        Ok((query, prepared)) if !is_candidate(fleet, prepared, row, within) => {
            return reject("placement", "allocation_candidates", placement_reason(fleet, query, row, within));
        }
        Ok(_) => {}
    }
    let filters = match &checks.filters {
        Ok(f) => f,
        Err((name, e)) => return reject("filter", name, e.clone()),
    };
    let (batch, r) = fleet.locate(row);
    for (name, f, kernel) in filters {
        let Some(kernel) = kernel else { continue };
        let mut words = vec![0u64; batch.len().div_ceil(64)];
        words[r / 64] = 1 << (r % 64);
        kernel(batch, &mut words);
        if words[r / 64] == 0 {
            let why = checks.ctx.as_ref().and_then(|ctx| f.reason(ctx, row));
            return reject("filter", name, why.unwrap_or_else(|| format!("{name} does not pass it")));
        }
    }
    let first = decision.instances.first();
    v.weight = first.and_then(|i| i.top5.as_ref()).and_then(|t| t.iter().find(|(h, _)| h == host)).map(|p| p.1);
    let weighed = match v.weight {
        Some(w) => format!("weighed {w:.4}"),
        None => "not among the five best weighed hosts".into(),
    };
    (v.verdict, v.reason) = if decision.chosen.iter().any(|c| c == host) {
        ("chosen", format!("passed every filter; {weighed}; chosen"))
    } else if first.is_some_and(|i| i.alternates.iter().any(|a| a == host)) {
        ("alternate", format!("passed every filter; {weighed}; an alternate"))
    } else {
        ("passed", format!("passed every filter; {weighed}"))
    };
    v
}

#[cfg(test)]
mod tests {
    //! Hand-computed fleets: each rejection reason, named and counted.

    use std::collections::BTreeMap;

    use super::*;
    use crate::config::SchedulerConfig;
    use crate::host::{Aggregate, HostRecord, Inventory, ServiceRecord};
    use crate::request::{Flavor, ServerGroup};

    /// Five hosts, 8 VCPU and 8192 MB each:
    /// - a1, a2: zone `az1` (aggregate 1, which also has `ssd=true`)
    /// - b1: zone `az2` (aggregate 2), 6 VCPU used
    /// - b2: zone `az2`, service disabled
    /// - gpu: zone `az2`, the only host with trait `CUSTOM_GPU`
    fn fleet() -> Fleet {
        let mut b = crate::FleetBuilder::new();
        b.add_aggregate(Aggregate {
            id: 1,
            uuid: 1,
            name: "rack-1".into(),
            metadata: BTreeMap::from([("availability_zone".into(), "az1".into()), ("ssd".into(), "true".into())]),
        })
        .unwrap();
        b.add_aggregate(Aggregate {
            id: 2,
            uuid: 2,
            name: "rack-2".into(),
            metadata: BTreeMap::from([("availability_zone".into(), "az2".into())]),
        })
        .unwrap();
        for (name, agg, used, disabled, gpu) in [
            ("a1", 1, 0, false, false),
            ("a2", 1, 0, false, false),
            ("b1", 2, 6, false, false),
            ("b2", 2, 0, true, false),
            ("gpu", 2, 0, false, true),
        ] {
            let mut traits = vec!["OWNER_NOVA".to_string()];
            if disabled {
                traits.push("COMPUTE_STATUS_DISABLED".into());
            }
            if gpu {
                traits.push("CUSTOM_GPU".into());
            }
            let mut vcpu = Inventory::simple("VCPU", 8, 1.0);
            vcpu.used = used;
            b.push(HostRecord {
                name: name.into(),
                availability_zone: Some(if agg == 1 { "az1" } else { "az2" }.into()),
                aggregates: vec![agg],
                inventories: vec![vcpu, Inventory::simple("MEMORY_MB", 8192, 1.0)],
                vcpus_used: used,
                free_ram_mb: 8192,
                traits,
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                service: ServiceRecord { disabled, ..Default::default() },
                ..Default::default()
            })
            .unwrap();
        }
        b.finish().unwrap()
    }

    fn req(vcpus: u32) -> BootRequest {
        BootRequest { flavor: Flavor { vcpus, memory_mb: 1024, ..Default::default() }, ..Default::default() }
    }

    fn explain(s: &mut Scheduler, f: &mut Fleet, g: &Groups, r: &BootRequest, hosts: &[&str]) -> Explanation {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        s.explain(f, g, r, 0, &hosts, None)
    }

    fn kept(e: &Explanation) -> Vec<(String, usize)> {
        e.stages.iter().map(|s| (s.name.clone(), s.kept)).collect()
    }

    fn scheduler(filters: &[&str]) -> Scheduler {
        let conf = SchedulerConfig {
            enabled_filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            ..Default::default()
        };
        Scheduler::new(conf, 0).unwrap()
    }

    #[test]
    fn zone_disabled_host_and_short_vcpu_are_each_named_and_counted() {
        let mut f = fleet();
        let mut s = scheduler(&["ComputeFilter"]);
        let mut r = req(4);
        r.availability_zone = Some("az2".into());
        let e = explain(&mut s, &mut f, &Groups::default(), &r, &["a1", "b2", "b1", "gpu", "nope"]);
        // 5 live; az2 keeps b1, b2, gpu; not disabled keeps b1, gpu;
        // 4 VCPU fits gpu only (b1 has 2 free); ComputeFilter keeps it.
        assert_eq!(e.hosts, 5);
        let want: Vec<(String, usize)> = [
            ("map_az_to_placement_aggregate", 3),
            ("compute_status_filter", 2),
            ("owner_nova", 2),
            ("allocation_candidates", 1),
            ("ComputeFilter", 1),
        ]
        .iter()
        .map(|(n, k)| ((*n).to_owned(), *k))
        .collect();
        // OWNER_NOVA is asked for only once every compute is new enough.
        let want: Vec<_> = if f.min_service_version >= 73 {
            want
        } else {
            want.into_iter().filter(|(n, _)| n != "owner_nova").collect()
        };
        assert_eq!(kept(&e), want);
        assert_eq!(e.decision.chosen, vec!["gpu"]);
        let v: BTreeMap<&str, &HostVerdict> = e.named.iter().map(|v| (v.host.as_str(), v)).collect();
        assert_eq!(v["a1"].rejected_by.as_deref(), Some("map_az_to_placement_aggregate"));
        assert_eq!(v["a1"].reason, "in availability zone az1; the request asks for zone az2");
        assert_eq!(v["b2"].rejected_by.as_deref(), Some("compute_status_filter"));
        assert_eq!(v["b1"].stage, Some("placement"));
        assert_eq!(
            v["b1"].reason,
            "VCPU: asks 4, 2 free of 8 (total 8, reserved 0, allocation_ratio 1, used 6): short by 2"
        );
        assert_eq!(v["gpu"].verdict, "chosen");
        assert_eq!(v["nope"].verdict, "unknown");
    }

    #[test]
    fn a_required_trait_only_one_host_has_and_aggregate_metadata_that_does_not_match() {
        let mut f = fleet();
        let mut s = scheduler(&["ComputeFilter", "AggregateInstanceExtraSpecsFilter"]);
        let mut r = req(1);
        r.flavor.extra_specs.insert("trait:CUSTOM_GPU".into(), "required".into());
        let e = explain(&mut s, &mut f, &Groups::default(), &r, &["a1", "gpu"]);
        assert_eq!(e.decision.chosen, vec!["gpu"]);
        assert_eq!(e.named[0].reason, "lacks required trait CUSTOM_GPU");
        assert_eq!(e.named[1].verdict, "chosen");

        // ssd=true is metadata of rack-1 only: a1 and a2 pass, b1 and gpu
        // do not (b2 is disabled before the filters).
        let mut r = req(1);
        r.flavor.extra_specs.insert("aggregate_instance_extra_specs:ssd".into(), "true".into());
        let e = explain(&mut s, &mut f, &Groups::default(), &r, &["b1", "a2"]);
        assert_eq!(e.stages.last().map(|s| (s.name.as_str(), s.kept)), Some(("AggregateInstanceExtraSpecsFilter", 2)));
        assert_eq!(e.named[0].rejected_by.as_deref(), Some("AggregateInstanceExtraSpecsFilter"));
        assert_eq!(e.named[0].reason, "no aggregate of the host has metadata ssd (the flavor asks ssd=true)");
        assert!(matches!(e.named[1].verdict, "chosen" | "alternate" | "passed"), "{:?}", e.named[1]);
    }

    #[test]
    fn anti_affinity_names_the_member_already_on_the_host() {
        let mut f = fleet();
        let member = 0xabcu128;
        let row = f.index_of("a1").unwrap();
        f.instances.insert(member, row as u32);
        let group = ServerGroup {
            uuid: crate::request::format_uuid(7),
            policy: "anti-affinity".into(),
            members: vec![crate::request::format_uuid(member)],
            name: None,
            rules: BTreeMap::new(),
            project_id: None,
            user_id: None,
        };
        let groups = Groups::new(std::slice::from_ref(&group)).unwrap();
        let mut s = scheduler(&["ComputeFilter", "ServerGroupAntiAffinityFilter"]);
        let mut r = req(1);
        r.scheduler_hints.insert("group".into(), serde_json::json!(group.uuid));
        let e = explain(&mut s, &mut f, &groups, &r, &["a1"]);
        assert_eq!(e.named[0].rejected_by.as_deref(), Some("ServerGroupAntiAffinityFilter"));
        assert_eq!(
            e.named[0].reason,
            format!("already runs 1 member of anti-affinity group {} (max_server_per_host 1)", group.uuid)
        );
        // Nothing claimed, no member added: the groups are as they were.
        assert_eq!(groups.groups[&7].members, vec![member]);
    }

    #[test]
    fn a_request_that_fits_nowhere_says_where_it_stopped() {
        let mut f = fleet();
        let mut s = scheduler(&["ComputeFilter"]);
        let e = explain(&mut s, &mut f, &Groups::default(), &req(16), &["a1"]);
        assert_eq!(e.decision.status, "no_valid_host");
        assert_eq!(e.decision.failed_stage.as_deref(), Some("placement"));
        assert_eq!(e.stages.last().map(|s| (s.kind, s.kept)), Some(("placement", 0)));
        assert_eq!(
            e.named[0].reason,
            "VCPU: asks 16, above its max_unit 8; \
             VCPU: asks 16, 8 free of 8 (total 8, reserved 0, allocation_ratio 1, used 0): short by 8"
        );
    }
}
