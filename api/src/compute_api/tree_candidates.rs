//! A request with numbered groups (`resources1:VGPU=1`) needs providers
//! below the compute node (a PGPU, a NUMA node): as in Nova, Placement's
//! allocation candidates decide which compute nodes can satisfy the whole
//! tree request, the scheduler's filters and weighers then run on those
//! hosts only, and the claim writes the chosen host's allocation request as
//! Placement returned it (every provider of the tree it names).

use std::collections::{BTreeSet, HashMap};

use quiver_engine::Mask;
use quiver_engine::resource_request::{RequestGroup, ResourceRequest};
use quiver_placement::State;
use quiver_placement::request::{RequestGroup as PlacementGroup, RequestWide};

use quiver_engine::Fleet;

use super::live_fleet::LiveFleet;

/// Nova's `[scheduler] max_placement_results` default: how many allocation
/// candidates the scheduler asks Placement for.
pub const MAX_PLACEMENT_RESULTS: usize = 1000;

/// What a claim writes: per provider uuid, `(resource class, amount)`.
pub type Allocations = Vec<(String, Vec<(String, i64)>)>;

/// Placement's answer as host rows of the live fleet.
#[derive(Debug)]
pub struct TreeCandidates {
    /// Hosts (fleet rows) with at least one allocation request.
    pub within: Mask,
    /// The first allocation request per host row.
    pub allocations: HashMap<usize, Allocations>,
}

fn placement_group(suffix: &str, g: &RequestGroup<'_>) -> PlacementGroup {
    PlacementGroup {
        suffix: suffix.to_owned(),
        use_same_provider: !suffix.is_empty(),
        resources: g.resources.iter().map(|&(rc, n)| (rc.to_owned(), n)).collect(),
        required_traits: g.required.iter().map(|t| BTreeSet::from([t.to_string()])).collect(),
        forbidden_traits: g.forbidden.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

/// Asks Placement's allocation candidates for `rr` (at most
/// [`MAX_PLACEMENT_RESULTS`]) over the live fleet and keeps the roots that
/// are compute nodes (a provider's row is its id).
///
/// # Errors
/// Placement refuses the request (an unknown class, a missing
/// `group_policy` with several numbered groups): its error detail.
pub fn tree_candidates(state: &State, fleet: &Fleet, rr: &ResourceRequest<'_>) -> Result<TreeCandidates, String> {
    let mut groups = vec![placement_group("", &rr.unnumbered)];
    groups.extend(rr.numbered.iter().map(|(suffix, g)| placement_group(suffix, g)));
    let wide = RequestWide {
        limit: Some(MAX_PLACEMENT_RESULTS),
        group_policy: rr.group_policy.map(str::to_owned),
        ..Default::default()
    };
    if rr.numbered.len() > 1 && wide.group_policy.is_none() {
        return Err(
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter."
                .into(),
        );
    }
    let found = state.allocation_candidates(fleet, &groups, &wide, true).map_err(|e| e.detail)?;
    let mut within = Mask::zeros(fleet.len());
    let mut allocations = HashMap::new();
    for a in found.requests {
        let Some(row) = LiveFleet::row_of_provider(fleet, a.anchor) else { continue };
        within.set(row, true);
        allocations.entry(row).or_insert_with(|| {
            let mut by_rp: Allocations = Vec::new();
            for r in &a.resources {
                let uuid = state.uuid_of(r.rp);
                let line = (state.class_name(r.class).to_owned(), r.amount);
                match by_rp.iter_mut().find(|(u, _)| u == uuid) {
                    Some((_, v)) => v.push(line),
                    None => by_rp.push((uuid.to_owned(), vec![line])),
                }
            }
            by_rp
        });
    }
    Ok(TreeCandidates { within, allocations })
}
