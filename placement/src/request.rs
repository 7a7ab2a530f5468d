//! Query-string parsing shared by `GET /resource_providers` and
//! `GET /allocation_candidates`: resources, required traits (with `!` and
//! `in:`), member_of (with `in:` and `!`), in_tree, request groups and the
//! request-wide parameters. Messages are Placement's (`placement/util.py`,
//! `placement/lib.py`).

use std::collections::BTreeSet;

use crate::error::{Error, Result, codes};

/// A microversion, compared as (major, minor).
pub type Version = (u32, u32);

/// Whether `s` is a UUID in any form `oslo_utils.uuidutils.is_uuid_like`
/// accepts (hyphenated or not, braces, urn prefix).
pub fn is_uuid_like(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

/// `?resources=VCPU:2,MEMORY_MB:1024`.
pub fn parse_resources(qs: &str) -> Result<Vec<(String, i64)>> {
    if qs.trim().is_empty() {
        return Err(Error::bad_request(
            "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: empty string.",
        ));
    }
    let mut out: Vec<(String, i64)> = vec![];
    for rt in qs.split(',') {
        let parts: Vec<&str> = rt.split(':').collect();
        if parts.len() != 2 {
            return Err(Error::bad_request(format!(
                "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {rt}."
            )));
        }
        let (rc, amount) = (parts[0], parts[1]);
        let Ok(n) = amount.trim().parse::<i64>() else {
            return Err(Error::bad_request(format!(
                "Requested resource {rc} expected positive integer amount. Got: {amount}."
            )));
        };
        if n < 1 {
            return Err(Error::bad_request(format!("Requested resource {rc} requires amount >= 1. Got: {n}.")));
        }
        match out.iter_mut().find(|(r, _)| r == rc) {
            Some(e) => e.1 = n,
            None => out.push((rc.to_string(), n)),
        }
    }
    Ok(out)
}

/// One `required` value: returns (any-of groups, forbidden).
pub fn parse_traits(
    val: &str,
    allow_forbidden: bool,
    allow_any: bool,
) -> Result<(Vec<BTreeSet<String>>, BTreeSet<String>)> {
    if let Some(rest) = val.strip_prefix("in:") {
        if !allow_any {
            return Err(Error::bad_request(format!(
                "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since microversion 1.39. Got: {val}"
            )));
        }
        let any: BTreeSet<String> = rest.split(',').map(|s| s.trim().to_string()).collect();
        if any.iter().any(|t| t.is_empty()) {
            return Err(Error::bad_request(format!(
                "Invalid query string parameters: Expected 'required' parameter value of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: {val}"
            )));
        }
        if any.iter().any(|t| t.starts_with('!')) {
            return Err(Error::bad_request(format!(
                "Invalid query string parameters: The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' does not support forbidden traits. Got: {val}"
            )));
        }
        return Ok((vec![any], BTreeSet::new()));
    }
    let all: Vec<String> = val.split(',').map(|s| s.trim().to_string()).collect();
    let forbidden: BTreeSet<String> =
        all.iter().filter(|t| t.starts_with('!')).map(|t| t.trim_start_matches('!').to_string()).collect();
    if all.iter().any(|t| t.is_empty()) || forbidden.iter().any(|t| t.is_empty()) {
        let form = if allow_forbidden { "HW_CPU_X86_VMX,!CUSTOM_MAGIC" } else { "HW_CPU_X86_VMX,CUSTOM_MAGIC" };
        return Err(Error::bad_request(format!(
            "Invalid query string parameters: Expected 'required' parameter value of the form: {form}. Got an empty trait in: {val}"
        )));
    }
    if !forbidden.is_empty() && !allow_forbidden {
        return Err(Error::bad_request(format!(
            "Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {val}"
        )));
    }
    let required = all.iter().filter(|t| !t.starts_with('!')).map(|t| BTreeSet::from([t.clone()])).collect();
    Ok((required, forbidden))
}

/// All `required{suffix}` values of a request (before 1.39 only the last).
pub fn parse_traits_params(values: &[&str], version: Version) -> Result<(Vec<BTreeSet<String>>, BTreeSet<String>)> {
    let allow_forbidden = version >= (1, 22);
    let allow_any = version >= (1, 39);
    let values = if allow_any { values } else { &values[values.len().saturating_sub(1)..] };
    let mut required = vec![];
    let mut forbidden = BTreeSet::new();
    for v in values {
        let (r, f) = parse_traits(v, allow_forbidden, allow_any)?;
        required.extend(r);
        forbidden.extend(f);
    }
    Ok((required, forbidden))
}

/// One `member_of` value: (required any-of set, forbidden set).
pub fn parse_member_of(value: &str) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    if value.contains(',') && !(value.starts_with("in:") || value.starts_with("!in:")) {
        return Err(Error::bad_request(format!(
            "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' keyword using the valid microversion. Got: {value}"
        )));
    }
    let (mut required, mut forbidden) = (BTreeSet::new(), BTreeSet::new());
    if let Some(r) = value.strip_prefix("!in:") {
        forbidden = r.split(',').map(String::from).collect();
    } else if let Some(r) = value.strip_prefix('!') {
        forbidden.insert(r.to_string());
    } else if let Some(r) = value.strip_prefix("in:") {
        required = r.split(',').map(String::from).collect();
    } else {
        required.insert(value.to_string());
    }
    for a in required.iter().chain(forbidden.iter()) {
        if !is_uuid_like(a) {
            return Err(Error::bad_request(format!(
                "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {a}"
            )));
        }
    }
    Ok((required, forbidden))
}

/// All `member_of{suffix}` values of a request.
pub fn parse_member_of_params(
    values: &[&str],
    suffix: &str,
    version: Version,
) -> Result<(Vec<BTreeSet<String>>, BTreeSet<String>)> {
    if version < (1, 24) && values.len() > 1 {
        return Err(Error::bad_request(format!("Multiple member_of{suffix} parameters are not supported")));
    }
    let mut required = vec![];
    let mut forbidden = BTreeSet::new();
    for v in values {
        let (r, f) = parse_member_of(v)?;
        if !r.is_empty() {
            required.push(r);
        }
        if !f.is_empty() {
            if version < (1, 32) {
                return Err(Error::bad_request(format!(
                    "Forbidden member_of{suffix} parameters are not supported in the specified microversion"
                )));
            }
            forbidden.extend(f);
        }
    }
    Ok((required, forbidden))
}

pub fn parse_in_tree(value: &str) -> Result<String> {
    let v = value.trim();
    if !is_uuid_like(v) {
        return Err(Error::bad_request(format!(
            "Invalid query string parameters: Expected 'in_tree' parameter to be a format of uuid. Got: {value}"
        )));
    }
    Ok(v.to_string())
}

/// One request group of `GET /allocation_candidates`.
#[derive(Clone, Debug, Default)]
pub struct RequestGroup {
    pub suffix: String,
    pub use_same_provider: bool,
    pub resources: Vec<(String, i64)>,
    pub required_traits: Vec<BTreeSet<String>>,
    pub forbidden_traits: BTreeSet<String>,
    pub member_of: Vec<BTreeSet<String>>,
    pub forbidden_aggs: BTreeSet<String>,
    pub in_tree: Option<String>,
}

/// The request-wide parameters.
#[derive(Clone, Debug, Default)]
pub struct RequestWide {
    pub limit: Option<usize>,
    pub group_policy: Option<String>,
    pub root_required: BTreeSet<String>,
    pub root_forbidden: BTreeSet<String>,
    pub same_subtrees: Vec<BTreeSet<String>>,
}

fn all<'a>(q: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    q.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

fn group_key(key: &str, verbose_suffix: bool) -> Option<(&'static str, &str)> {
    for prefix in ["resources", "required", "member_of", "in_tree"] {
        if let Some(suffix) = key.strip_prefix(prefix) {
            let ok = if suffix.is_empty() {
                true
            } else if verbose_suffix {
                suffix.len() <= 64 && suffix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            } else {
                let b = suffix.as_bytes();
                (b'1'..=b'9').contains(&b[0]) && b.iter().all(u8::is_ascii_digit)
            };
            return ok.then_some((prefix, suffix));
        }
    }
    None
}

/// Parses the groups and request-wide parameters of a (schema-validated)
/// `GET /allocation_candidates` query, in the order Placement checks them.
pub fn parse_candidates_query(q: &[(String, String)], version: Version) -> Result<(Vec<RequestGroup>, RequestWide)> {
    // Request-wide first (RequestWideParams.from_request).
    let mut wide = RequestWide::default();
    if let Some(l) = all(q, "limit").first() {
        wide.limit = l.parse::<usize>().ok();
    }
    wide.group_policy = all(q, "group_policy").first().map(|s| s.to_string());
    let root_required = all(q, "root_required");
    if !root_required.is_empty() {
        if root_required.len() > 1 {
            return Err(Error::bad_query(
                codes::ILLEGAL_DUPLICATE_QUERYPARAM,
                "Query parameter 'root_required' may be specified only once.",
            ));
        }
        let (req, forb) = parse_traits(root_required[0], true, false)?;
        let req: BTreeSet<String> = req.into_iter().flatten().collect();
        let conflicts: Vec<&String> = forb.intersection(&req).collect();
        if !conflicts.is_empty() {
            return Err(Error::bad_query(
                codes::QUERYPARAM_BAD_VALUE,
                format!(
                    "Conflicting required and forbidden traits found in root_required: {}",
                    conflicts.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        wide.root_required = req;
        wide.root_forbidden = forb;
    }
    for v in all(q, "same_subtree") {
        let suffixes: BTreeSet<String> = v.split(',').map(|s| s.trim().to_string()).collect();
        if suffixes.contains("") {
            return Err(Error::bad_query(
                codes::QUERYPARAM_BAD_VALUE,
                "Empty string (unsuffixed group) can not be specified in `same_subtree` ",
            ));
        }
        wide.same_subtrees.push(suffixes);
    }

    // Groups (RequestGroup.dict_from_request).
    let verbose = version >= (1, 33);
    let mut groups: Vec<RequestGroup> = vec![];
    for (key, val) in q {
        let Some((prefix, suffix)) = group_key(key, verbose) else { continue };
        let gi = match groups.iter().position(|g| g.suffix == suffix) {
            Some(i) => i,
            None => {
                groups.push(RequestGroup {
                    suffix: suffix.to_string(),
                    use_same_provider: !suffix.is_empty(),
                    ..Default::default()
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        match prefix {
            "resources" => g.resources = parse_resources(val)?,
            "required" => {
                (g.required_traits, g.forbidden_traits) = parse_traits_params(&all(q, key), version)?;
            }
            "member_of" => {
                (g.member_of, g.forbidden_aggs) = parse_member_of_params(&all(q, key), suffix, version)?;
            }
            _ => g.in_tree = Some(parse_in_tree(val)?),
        }
    }
    if version >= (1, 36) {
        let resourceless: Vec<&str> =
            groups.iter().filter(|g| g.resources.is_empty()).map(|g| g.suffix.as_str()).collect();
        if resourceless.len() == groups.len() {
            return Err(Error::bad_query(
                codes::QUERYPARAM_MISSING_VALUE,
                "There must be at least one resources or resources[$S] parameter.",
            ));
        }
        let subtree: BTreeSet<&str> = wide.same_subtrees.iter().flatten().map(String::as_str).collect();
        let bad: Vec<&str> = resourceless.iter().copied().filter(|s| !subtree.contains(s)).collect();
        if !bad.is_empty() {
            return Err(Error::bad_query(
                codes::QUERYPARAM_BAD_VALUE,
                format!(
                    "Resourceless suffixed group request should be specified in `same_subtree` query param: bad group(s) - {}.",
                    py_list(&bad)
                ),
            ));
        }
        let bad: Vec<&str> = wide
            .same_subtrees
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| !groups.iter().any(|g| g.suffix == *s))
            .collect();
        if !bad.is_empty() {
            let all_suffixes: Vec<&str> = groups.iter().map(|g| g.suffix.as_str()).collect();
            return Err(Error::bad_query(
                codes::QUERYPARAM_BAD_VALUE,
                format!(
                    "Real suffixes should be specified in `same_subtree`: {} not found in {}.",
                    py_list(&bad),
                    py_list(&all_suffixes)
                ),
            ));
        }
    } else {
        let orphans: Vec<String> = groups
            .iter()
            .filter(|g| !g.required_traits.is_empty() && g.resources.is_empty())
            .map(|g| format!("required{}", g.suffix))
            .collect();
        if !orphans.is_empty() {
            return Err(Error::bad_request(format!(
                "All traits parameters must be associated with resources.  Found the following orphaned traits keys: {}",
                orphans.join(", ")
            )));
        }
        let orphans: Vec<String> = groups
            .iter()
            .filter(|g| g.resources.is_empty() && (!g.member_of.is_empty() || !g.forbidden_aggs.is_empty()))
            .map(|g| format!("member_of{}", g.suffix))
            .collect();
        if !orphans.is_empty() {
            return Err(Error::bad_request(format!(
                "All member_of parameters must be associated with resources. Found the following orphaned member_of keys: {}",
                orphans.join(", ")
            )));
        }
        if !groups.iter().all(|g| !g.resources.is_empty()) {
            return Err(Error::bad_request("All request groups must specify resources."));
        }
        if groups.is_empty() {
            return Err(Error::bad_request("At least one request group (`resources` or `resources{$S}`) is required."));
        }
    }
    if version >= (1, 22) {
        let mut conflicting = vec![];
        for g in &groups {
            for any in &g.required_traits {
                if any.iter().all(|t| g.forbidden_traits.contains(t)) {
                    conflicting.push(format!(
                        "required{}: ({})",
                        g.suffix,
                        any.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        if !conflicting.is_empty() {
            conflicting.sort();
            return Err(Error::bad_request(format!(
                "Conflicting required and forbidden traits found in the following traits keys: {}",
                conflicting.join(", ")
            )));
        }
    }
    if wide.group_policy.is_none() && groups.iter().filter(|g| g.use_same_provider).count() > 1 {
        return Err(Error::bad_request(
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
        ));
    }
    Ok((groups, wide))
}

/// A list of strings as Python's `str(list)` writes it.
pub fn py_list(items: &[&str]) -> String {
    format!("[{}]", items.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "))
}
