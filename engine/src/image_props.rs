//! Image properties as Nova's `ImageMeta.from_dict` hands them to filters:
//! legacy names mapped to current ones, unknown names dropped, enums
//! canonicalized.

use std::collections::BTreeMap;

/// `ImageMetaProps` field names (nova 34).
const FIELDS: &str = include_str!("vocab/image_meta_props.txt");

/// `ImageMetaProps._legacy_property_map` entries that matter to scheduling.
const LEGACY: [(&str, &str); 6] = [
    ("architecture", "hw_architecture"),
    ("hypervisor_type", "img_hv_type"),
    ("vm_mode", "hw_vm_mode"),
    ("hypervisor_version_requires", "img_hv_requested_version"),
    ("owner_id", "img_owner_id"),
    ("vmware_ostype", "os_distro"),
];

/// `fields.Architecture.canonicalize`.
pub fn canonical_arch(a: &str) -> String {
    let l = a.to_ascii_lowercase();
    match l.as_str() {
        "i386" | "i486" | "i586" | "x86_32" | "x86_32p" => "i686".into(),
        "amd64" => "x86_64".into(),
        _ => l,
    }
}

/// `fields.HVType.canonicalize`.
pub fn canonical_hv_type(h: &str) -> String {
    let l = h.to_ascii_lowercase();
    if l == "xapi" { "xen".into() } else { l }
}

/// `fields.VMMode.canonicalize`.
pub fn canonical_vm_mode(m: &str) -> String {
    let l = m.to_ascii_lowercase();
    match l.as_str() {
        "pv" => "xen".into(),
        "hv" => "hvm".into(),
        "baremetal" => "hvm".into(),
        _ => l,
    }
}

/// The properties a filter sees: only `ImageMetaProps` fields, legacy names
/// renamed, enum values canonical.
pub fn canonical_image_properties(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in props {
        let key = LEGACY.iter().find(|(old, _)| old == k).map_or(k.as_str(), |(_, new)| new);
        if !FIELDS.lines().any(|f| f == key) {
            continue;
        }
        let val = match key {
            "hw_architecture" => canonical_arch(v),
            "img_hv_type" => canonical_hv_type(v),
            "hw_vm_mode" => canonical_vm_mode(v),
            _ => v.clone(),
        };
        out.entry(key.to_owned()).or_insert(val);
    }
    out
}

/// Python's `str()` of a hypervisor version integer, as
/// `oslo_utils.versionutils.convert_version_to_str` gives it, as components.
pub fn version_components(mut v: i64) -> Vec<i64> {
    let mut out = Vec::new();
    while v != 0 {
        out.insert(0, v % 1000);
        v /= 1000;
    }
    out
}

/// A parsed `img_hv_requested_version` predicate (`">= 8.0, < 10.0"`).
#[derive(Clone, Debug, PartialEq)]
pub struct VersionPredicate(Vec<(String, Vec<i64>)>);

impl VersionPredicate {
    /// Parses the predicate; `None` when it is malformed (Nova raises).
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            let (op, ver) = ["<=", ">=", "!=", "==", "<", ">"]
                .iter()
                .find_map(|op| p.strip_prefix(op).map(|rest| (op.to_string(), rest.trim())))?;
            let comps: Option<Vec<i64>> = ver.split('.').map(|c| c.parse().ok()).collect();
            out.push((op, comps?));
        }
        Some(Self(out))
    }

    /// `packaging.version` comparison: trailing zero components do not count.
    pub fn satisfied_by(&self, version: &[i64]) -> bool {
        fn norm(v: &[i64]) -> Vec<i64> {
            let mut v = v.to_vec();
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        }
        let have = norm(version);
        self.0.iter().all(|(op, want)| {
            let o = have.cmp(&norm(want));
            match op.as_str() {
                "<" => o.is_lt(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                ">=" => o.is_ge(),
                "==" => o.is_eq(),
                _ => o.is_ne(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_predicates_follow_packaging() {
        let p = VersionPredicate::parse(">= 8.0").unwrap();
        assert!(p.satisfied_by(&version_components(8_000_000)));
        assert!(p.satisfied_by(&version_components(9_001_000)));
        assert!(!p.satisfied_by(&version_components(7_002_000)));
        let p = VersionPredicate::parse(">= 7.0, < 10.0").unwrap();
        assert!(p.satisfied_by(&version_components(9_001_000)));
        assert!(!p.satisfied_by(&version_components(10_000_000)));
        assert!(VersionPredicate::parse("about 8").is_none());
        assert_eq!(version_components(9_001_000), vec![9, 1, 0]);
    }

    #[test]
    fn legacy_and_unknown_properties() {
        let mut p = BTreeMap::new();
        p.insert("architecture".to_string(), "AMD64".to_string());
        p.insert("os_distro".to_string(), "ubuntu".to_string());
        p.insert("not_a_field".to_string(), "x".to_string());
        let c = canonical_image_properties(&p);
        assert_eq!(c.get("hw_architecture").map(String::as_str), Some("x86_64"));
        assert!(c.contains_key("os_distro"));
        assert!(!c.contains_key("not_a_field"));
    }
}
