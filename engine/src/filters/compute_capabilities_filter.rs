//! `ComputeCapabilitiesFilter`: flavor extra specs `capabilities:<path>`
//! (and unscoped keys naming a host attribute or stat) must match the host.

use std::collections::HashMap;

use serde_json::Value;

use super::{FilterError, HostFilter, Kernel, RequestContext, lut_kernel, per_host_kernel};
use crate::extra_specs_ops;
use crate::host_attrs::{self, Attr};
use crate::pyvalue;

/// One requirement: attribute path and operator expression.
struct Spec {
    scope: Vec<String>,
    req: String,
}

/// Walks the rest of a scope path from a top-level value, decoding JSON
/// strings at each level as Nova's `_get_capabilities` does. `None` when the
/// path does not resolve (the host fails).
fn walk(mut cap: Value, rest: &[String]) -> Option<Value> {
    for item in rest {
        if let Value::String(s) = &cap {
            cap = serde_json::from_str(s).ok()?;
        }
        cap = match cap {
            Value::Object(mut o) => o.remove(item)?,
            _ => return None,
        };
        if cap.is_null() {
            return None;
        }
    }
    Some(cap)
}

/// Resolves the top-level name: a `HostState` attribute, else a `stats` key.
fn top(name: &str) -> (Attr, bool) {
    match host_attrs::lookup(name) {
        Some(a) => (a, false),
        None => (Attr::Stats, true),
    }
}

fn passes(value: Option<Value>, req: &str) -> bool {
    value.is_some_and(|v| !v.is_null() && extra_specs_ops::matches(&pyvalue::str(&v), req))
}

/// Passes hosts whose capabilities satisfy every applicable extra spec.
/// Specs on dictionary-coded attributes (`cpu_info`, `stats`,
/// `supported_instances`, `hypervisor_type`) are evaluated once per distinct
/// value; per-host attributes once per distinct value seen.
#[derive(Debug, Clone, Copy)]
pub struct ComputeCapabilitiesFilter;

impl HostFilter for ComputeCapabilitiesFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let fleet = ctx.fleet;
        let mut especs = ctx.request.flavor.extra_specs.clone();
        if let Some(bits) = especs.remove("hw:maxphysaddr_bits") {
            especs.insert("capabilities:cpu_info:maxphysaddr:bits".into(), format!(">= {bits}"));
        }
        let mut specs = Vec::new();
        for (key, req) in &especs {
            let mut scope: Vec<String> = key.split(':').map(String::from).collect();
            if scope.len() == 1 {
                // Unscoped: only when the host has such an attribute or stat.
                let is_attr = host_attrs::lookup(key).is_some();
                let in_stats = fleet.stats.iter().any(|s| s.contains_key(key.as_str()));
                if !is_attr && !in_stats {
                    continue;
                }
            } else if scope[0] != "capabilities" {
                continue;
            } else {
                scope.remove(0);
            }
            if scope.is_empty() {
                continue;
            }
            specs.push(Spec { scope, req: req.clone() });
        }
        if specs.is_empty() {
            return Ok(None);
        }
        // Group by the code column the spec depends on.
        let mut coded: Vec<Spec> = Vec::new();
        let mut per_host: Vec<Spec> = Vec::new();
        for s in specs {
            match top(&s.scope[0]).0 {
                Attr::PerHost(_) => per_host.push(s),
                _ => coded.push(s),
            }
        }
        let mut kernels: Vec<Kernel<'a>> = Vec::new();
        for s in coded {
            let (attr, via_stats) = top(&s.scope[0]);
            let n = host_attrs::code_count(fleet, attr);
            let lut: Vec<bool> = (0..n as u32)
                .map(|code| {
                    let v = host_attrs::coded(fleet, attr, code);
                    let rest = if via_stats { &s.scope[..] } else { &s.scope[1..] };
                    passes(walk(v, rest), &s.req)
                })
                .collect();
            let col = host_attrs::code_column(attr).expect("coded attribute");
            match lut_kernel(col, lut) {
                Some(k) => kernels.push(k),
                None => continue,
            }
        }
        if !per_host.is_empty() {
            let memo: std::sync::Mutex<HashMap<(usize, String), bool>> = Default::default();
            kernels.push(per_host_kernel(move |i| {
                per_host.iter().enumerate().all(|(si, s)| {
                    let Attr::PerHost(name) = top(&s.scope[0]).0 else { return false };
                    let v = host_attrs::per_host(fleet, i, name);
                    let key = (si, v.to_string());
                    if let Some(&b) = memo.lock().expect("memo lock").get(&key) {
                        return b;
                    }
                    let b = passes(walk(v, &s.scope[1..]), &s.req);
                    memo.lock().expect("memo lock").insert(key, b);
                    b
                })
            }));
        }
        Ok(match kernels.len() {
            0 => None,
            _ => Some(Box::new(move |batch, mask| {
                for k in &kernels {
                    k(batch, mask);
                }
            })),
        })
    }
}
