//! GET /allocation_candidates (1.10+), serialized straight into the
//! response buffer: at 20,000 providers the body is megabytes and building
//! a JSON tree first would cost more than the search.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::http::{ApiError, Req, Resp};
use super::schemas;
use quiver_placement::candidates::{AllocationRequest, Candidates};
use quiver_placement::model::State;
use quiver_placement::request::{self, RequestGroup};

pub fn list(req: &mut Req) -> Result<Resp, ApiError> {
    req.require_version((1, 10))?;
    req.check_accept()?;
    req.authorize("placement:allocation_candidates:list")?;
    let started = std::time::Instant::now();
    req.validate_query(&schemas::candidates_query(req.version))?;
    let (groups, wide) = request::parse_candidates_query(&req.query, req.version)?;
    let version = req.version;
    let body = req.api.placement.read_with_fleet(|s, fleet| -> Result<String, ApiError> {
        let c = s.allocation_candidates(fleet, &groups, &wide, version >= (1, 29))?;
        Ok(render(s, &c, &groups, version))
    })?;
    req.api.metrics.candidates_requests.fetch_add(1, Relaxed);
    req.api.metrics.candidates_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    Ok(Resp::raw_json(200, body.into_bytes()).cache_now(req))
}

/// `"text"`; the names written here (UUIDs, resource classes, traits,
/// request-group suffixes checked by the query schema) need no escaping.
fn push_str(out: &mut String, text: &str) {
    out.push('"');
    out.push_str(text);
    out.push('"');
}

fn push_int(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `"VCPU": 2, "MEMORY_MB": 1024` for the lines of `a` on provider `rp`.
fn write_amounts(out: &mut String, s: &State, a: &AllocationRequest, rp: u32) {
    for (i, r) in a.resources.iter().filter(|r| r.rp == rp).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(out, s.class_name(r.class));
        out.push_str(": ");
        push_int(out, r.amount);
    }
}

fn render(s: &State, c: &Candidates, groups: &[RequestGroup], v: (u32, u32)) -> String {
    let mut out = String::with_capacity(256 * (c.requests.len() + c.summaries.len()) + 64);
    out.push_str("{\"allocation_requests\": [");
    for (i, a) in c.requests.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Group the lines by provider, first-seen order.
        let mut rps: Vec<u32> = vec![];
        for r in &a.resources {
            if !rps.contains(&r.rp) {
                rps.push(r.rp);
            }
        }
        if v >= (1, 12) {
            out.push_str("{\"allocations\": {");
            for (j, rp) in rps.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                push_str(&mut out, s.uuid_of(*rp));
                out.push_str(": {\"resources\": {");
                write_amounts(&mut out, s, a, *rp);
                out.push_str("}}");
            }
            out.push('}');
            if v >= (1, 34) {
                out.push_str(", \"mappings\": {");
                for (j, (suffix, rps)) in a.mappings.iter().enumerate() {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{}: [", serde_json::to_string(suffix).unwrap_or_default());
                    for (k, rp) in rps.iter().enumerate() {
                        if k > 0 {
                            out.push_str(", ");
                        }
                        push_str(&mut out, s.uuid_of(*rp));
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push('}');
        } else {
            out.push_str("{\"allocations\": [");
            for (j, rp) in rps.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{{\"resource_provider\": {{\"uuid\": \"{}\"}}, \"resources\": {{", s.uuid_of(*rp));
                write_amounts(&mut out, s, a, *rp);
                out.push_str("}}");
            }
            out.push_str("]}");
        }
    }
    out.push_str("], \"provider_summaries\": {");
    let requested: BTreeSet<&str> = groups.iter().flat_map(|g| g.resources.iter().map(|(rc, _)| rc.as_str())).collect();
    for (i, sum) in c.summaries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(&mut out, s.uuid_of(sum.rp));
        out.push_str(": {\"resources\": {");
        let mut first = true;
        for &(class, cap, used, _) in &sum.resources {
            let name = s.class_name(class);
            if v < (1, 27) && !requested.contains(name) {
                continue;
            }
            if !first {
                out.push_str(", ");
            }
            first = false;
            push_str(&mut out, name);
            out.push_str(": {\"capacity\": ");
            push_int(&mut out, cap);
            out.push_str(", \"used\": ");
            push_int(&mut out, used);
            out.push('}');
        }
        out.push('}');
        if v >= (1, 17) {
            out.push_str(", \"traits\": [");
            for (k, t) in sum.traits.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                push_str(&mut out, s.traits.name(*t));
            }
            out.push(']');
        }
        if v >= (1, 29) {
            match sum.parent {
                Some(p) => {
                    out.push_str(", \"parent_provider_uuid\": ");
                    push_str(&mut out, s.uuid_of(p));
                }
                None => out.push_str(", \"parent_provider_uuid\": null"),
            }
            out.push_str(", \"root_provider_uuid\": ");
            push_str(&mut out, s.uuid_of(sum.root));
        }
        out.push('}');
    }
    out.push_str("}}");
    out
}
