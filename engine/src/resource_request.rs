//! One translation from a flavor to Placement's request groups, as Nova's
//! `ResourceRequest.from_request_spec` builds it: the unnumbered group (the
//! flavor's VCPU, MEMORY_MB and DISK_GB, `resources:RC=N` overriding or
//! adding a class, N = 0 dropping it, `trait:T=required|forbidden`), the
//! numbered groups (`resourcesN:RC=N`, `traitN:T=required|forbidden`) and
//! `group_policy`. The scheduler's candidate query and the conductor's
//! claim both use it, so a claim allocates exactly what the candidates
//! were checked for.

use std::collections::BTreeMap;

use crate::filters::FilterError;
use crate::request::Flavor;

/// One request group: resources and traits that one provider (numbered
/// groups) or one provider tree (the unnumbered group) must satisfy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestGroup<'a> {
    /// `(resource class, amount)`, amounts > 0.
    pub resources: Vec<(&'a str, i64)>,
    /// Required traits.
    pub required: Vec<&'a str>,
    /// Forbidden traits.
    pub forbidden: Vec<&'a str>,
}

/// A flavor's Placement request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRequest<'a> {
    /// The unnumbered group.
    pub unnumbered: RequestGroup<'a>,
    /// Numbered groups by suffix (`1`, `_GPU`, ...); only groups that ask
    /// for resources.
    pub numbered: BTreeMap<&'a str, RequestGroup<'a>>,
    /// `group_policy` (`none` or `isolate`).
    pub group_policy: Option<&'a str>,
}

/// A suffix Placement accepts: digits, or `_` and letters, digits, `_`, `-`
/// (microversion 1.33).
fn valid_suffix(s: &str) -> bool {
    !s.is_empty()
        && (s.bytes().all(|b| b.is_ascii_digit())
            || (s.starts_with('_')
                && s.len() > 1
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')))
}

/// The Placement request for one instance of `flavor`. `is_bfv`: a
/// volume-backed instance asks no root disk.
///
/// # Errors
/// An amount that is not a non-negative integer, a malformed group suffix,
/// a trait value other than `required` / `forbidden` in a numbered group,
/// or a `group_policy` other than `none` / `isolate`.
pub fn from_flavor(flavor: &Flavor, is_bfv: bool) -> Result<ResourceRequest<'_>, FilterError> {
    let f = flavor;
    let disk =
        f.ephemeral_gb as i64 + (f.swap as u64).div_ceil(1024) as i64 + if is_bfv { 0 } else { f.root_gb as i64 };
    let mut rr = ResourceRequest::default();
    rr.unnumbered.resources = vec![("VCPU", f.vcpus as i64), ("MEMORY_MB", f.memory_mb as i64), ("DISK_GB", disk)];
    let amount = |key: &str, value: &str| -> Result<i64, FilterError> {
        value.trim().parse().ok().filter(|&n: &i64| n >= 0).ok_or_else(|| {
            FilterError::NovaError(format!("flavor extra spec {key}={value}: not a non-negative integer"))
        })
    };
    for (key, value) in &f.extra_specs {
        if key == "group_policy" {
            if !matches!(value.as_str(), "none" | "isolate") {
                return Err(FilterError::NovaError(format!(
                    "flavor extra spec group_policy={value}: expected none or isolate"
                )));
            }
            rr.group_policy = Some(value);
        } else if let Some((head, rc)) = key.split_once(':') {
            let (kind, suffix) = if let Some(s) = head.strip_prefix("resources") {
                ("resources", s)
            } else if let Some(s) = head.strip_prefix("trait") {
                ("trait", s)
            } else {
                continue;
            };
            if !suffix.is_empty() && !valid_suffix(suffix) {
                return Err(FilterError::NovaError(format!(
                    "flavor extra spec {key}: malformed group suffix {suffix:?}"
                )));
            }
            let group = if suffix.is_empty() { &mut rr.unnumbered } else { rr.numbered.entry(suffix).or_default() };
            if kind == "resources" {
                let n = amount(key, value)?;
                match group.resources.iter_mut().find(|(r, _)| *r == rc) {
                    Some(slot) => slot.1 = n,
                    None => group.resources.push((rc, n)),
                }
            } else {
                match value.as_str() {
                    "required" => group.required.push(rc),
                    "forbidden" => group.forbidden.push(rc),
                    _ if suffix.is_empty() => {}
                    other => {
                        return Err(FilterError::NovaError(format!(
                            "flavor extra spec {key}={other}: expected required or forbidden"
                        )));
                    }
                }
            }
        }
    }
    rr.unnumbered.resources.retain(|&(_, a)| a > 0);
    for g in rr.numbered.values_mut() {
        g.resources.retain(|&(_, a)| a > 0);
    }
    rr.numbered.retain(|_, g| !g.resources.is_empty());
    Ok(rr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(specs: &[(&str, &str)]) -> Flavor {
        Flavor {
            vcpus: 2,
            memory_mb: 2048,
            root_gb: 20,
            swap: 512,
            extra_specs: specs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn base_classes_then_overrides_and_additions() {
        let plain = flavor(&[]);
        let got = from_flavor(&plain, false).unwrap();
        assert_eq!(got.unnumbered.resources, vec![("VCPU", 2), ("MEMORY_MB", 2048), ("DISK_GB", 21)]);
        assert!(got.numbered.is_empty());
        let gpu = flavor(&[("resources:CUSTOM_GPU", "1"), ("resources:VCPU", "0"), ("trait:CUSTOM_FAST", "required")]);
        let got = from_flavor(&gpu, true).unwrap();
        assert_eq!(got.unnumbered.resources, vec![("MEMORY_MB", 2048), ("DISK_GB", 1), ("CUSTOM_GPU", 1)]);
        assert_eq!(got.unnumbered.required, vec!["CUSTOM_FAST"]);
    }

    #[test]
    fn numbered_groups_and_group_policy() {
        let f = flavor(&[
            ("resources1:VGPU", "1"),
            ("trait1:CUSTOM_VGPU_NVIDIA", "required"),
            ("resources_NIC:NET_BW_EGR_KILOBIT_PER_SEC", "1000"),
            ("trait_NIC:CUSTOM_SLOW", "forbidden"),
            ("resources2:VGPU", "0"),
            ("group_policy", "isolate"),
        ]);
        let got = from_flavor(&f, false).unwrap();
        assert_eq!(got.numbered.keys().copied().collect::<Vec<_>>(), vec!["1", "_NIC"], "a zero-only group is dropped");
        assert_eq!(got.numbered["1"].resources, vec![("VGPU", 1)]);
        assert_eq!(got.numbered["1"].required, vec!["CUSTOM_VGPU_NVIDIA"]);
        assert_eq!(got.numbered["_NIC"].forbidden, vec!["CUSTOM_SLOW"]);
        assert_eq!(got.group_policy, Some("isolate"));
        assert_eq!(got.unnumbered.resources.len(), 3);
    }

    #[test]
    fn bad_amounts_suffixes_and_policies_are_refused() {
        for specs in [
            [("resources:VCPU", "-1")],
            [("resources1:VGPU", "x")],
            [("resources-1:VGPU", "1")],
            [("trait1:CUSTOM_X", "maybe")],
            [("group_policy", "sometimes")],
        ] {
            let f = flavor(&specs);
            assert!(from_flavor(&f, false).is_err(), "{specs:?}");
        }
    }
}
