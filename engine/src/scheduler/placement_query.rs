//! The placement query Nova would send for a request: the flavor's
//! resource request (one translation, [`crate::resource_request`]) and
//! Nova's request filters (zone to `member_of`, `!COMPUTE_STATUS_DISABLED`,
//! `OWNER_NOVA`).

use super::Scheduler;
use crate::candidates::PlacementQuery;
use crate::filters::FilterError;
use crate::fleet::Fleet;
use crate::request::BootRequest;

impl Scheduler {
    /// The placement query Nova would send for `req` (its pre-filters
    /// included: AZ to `member_of`, `!COMPUTE_STATUS_DISABLED`, `OWNER_NOVA`
    /// once every compute is new enough).
    ///
    /// # Errors
    /// A request Quiver's placement emulation does not model.
    pub fn placement_query(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
    ) -> std::result::Result<PlacementQuery, FilterError> {
        self.placement_query_for(fleet, req, false)
    }

    /// [`Scheduler::placement_query`]; `numbered_ok`: the caller restricts
    /// the hosts to Placement's candidates for the numbered groups, so the
    /// fleet checks the unnumbered group on the root only.
    pub(super) fn placement_query_for(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
        numbered_ok: bool,
    ) -> std::result::Result<PlacementQuery, FilterError> {
        let rr = crate::resource_request::from_flavor(&req.flavor, req.is_bfv)?;
        if !rr.numbered.is_empty() && !numbered_ok {
            return Err(FilterError::Unsupported(
                "numbered request groups (resourcesN:) need Placement's allocation candidates for provider trees: \
                 schedule them through quiver serve"
                    .into(),
            ));
        }
        let mut q = PlacementQuery::default();
        q.required.extend(rr.unnumbered.required.iter().map(|t| t.to_string()));
        q.forbidden.extend(rr.unnumbered.forbidden.iter().map(|t| t.to_string()));
        for &(rc, a) in &rr.unnumbered.resources {
            match fleet.rc_index(rc) {
                Some(i) => q.resources.push((i, a)),
                None => q.unknown_resources.push(rc.to_owned()),
            }
        }
        for (_, f) in request_filters(fleet, req) {
            q.merge(&f);
        }
        Ok(q)
    }
}

/// Nova's request filters as Quiver applies them, in Nova's order, each
/// with what it adds to the placement query: the zone asked for to
/// `member_of` its aggregates (`map_az_to_placement_aggregate`), disabled
/// computes out (`compute_status_filter`), and `OWNER_NOVA` once every
/// compute reports it (service version 73+). `quiver explain` counts the
/// hosts each one keeps.
pub(crate) fn request_filters(fleet: &Fleet, req: &BootRequest) -> Vec<(&'static str, PlacementQuery)> {
    let mut out = Vec::new();
    if let Some(az) = req.availability_zone.as_deref().filter(|a| !a.is_empty()) {
        let aggs: Vec<u32> = fleet
            .aggregates
            .iter()
            .enumerate()
            .filter(|(_, a)| a.metadata.get("availability_zone").is_some_and(|v| v == az))
            .map(|(i, _)| i as u32)
            .collect();
        if !aggs.is_empty() {
            out.push(("map_az_to_placement_aggregate", PlacementQuery { member_of: vec![aggs], ..Default::default() }));
        }
    }
    out.push((
        "compute_status_filter",
        PlacementQuery { forbidden: vec!["COMPUTE_STATUS_DISABLED".into()], ..Default::default() },
    ));
    if fleet.min_service_version >= 73 {
        out.push(("owner_nova", PlacementQuery { required: vec!["OWNER_NOVA".into()], ..Default::default() }));
    }
    out
}
