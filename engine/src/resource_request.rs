//! One translation from a flavor to the resources of Placement's unnumbered
//! request group, as Nova's `ResourceRequest.from_request_spec` builds it:
//! the flavor's VCPU, MEMORY_MB and DISK_GB, then `resources:RC=N` extra
//! specs overriding or adding a class (N = 0 drops it). The scheduler's
//! candidate query and the conductor's claim both use it, so a claim
//! allocates exactly what the candidates were checked for.

use crate::filters::FilterError;
use crate::request::Flavor;

/// The unnumbered group's `(resource class, amount)` for one instance of
/// `flavor`, amounts > 0 only, in Nova's order (base classes first, then
/// extra-spec classes in key order). `is_bfv`: a volume-backed instance
/// asks no root disk.
///
/// # Errors
/// A `resources:RC=N` value that is not a non-negative integer, or a
/// numbered group (`resourcesN:`), which is not modelled yet.
pub fn unnumbered_resources(flavor: &Flavor, is_bfv: bool) -> Result<Vec<(&str, i64)>, FilterError> {
    let f = flavor;
    let disk =
        f.ephemeral_gb as i64 + (f.swap as u64).div_ceil(1024) as i64 + if is_bfv { 0 } else { f.root_gb as i64 };
    let mut amounts: Vec<(&str, i64)> =
        vec![("VCPU", f.vcpus as i64), ("MEMORY_MB", f.memory_mb as i64), ("DISK_GB", disk)];
    for (key, value) in &f.extra_specs {
        if let Some(rc) = key.strip_prefix("resources:") {
            let n: i64 = value.trim().parse().ok().filter(|&n| n >= 0).ok_or_else(|| {
                FilterError::NovaError(format!("flavor extra spec {key}={value}: not a non-negative integer"))
            })?;
            match amounts.iter_mut().find(|(r, _)| *r == rc) {
                Some(slot) => slot.1 = n,
                None => amounts.push((rc, n)),
            }
        } else if let Some(rest) = key.strip_prefix("resources") {
            return Err(FilterError::Unsupported(format!(
                "flavor extra spec resources{rest}={value}: numbered request groups are not emulated"
            )));
        }
    }
    amounts.retain(|&(_, a)| a > 0);
    Ok(amounts)
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
        let got = unnumbered_resources(&plain, false).unwrap();
        assert_eq!(got, vec![("VCPU", 2), ("MEMORY_MB", 2048), ("DISK_GB", 21)]);
        let gpu = flavor(&[("resources:CUSTOM_GPU", "1"), ("resources:VCPU", "0")]);
        let got = unnumbered_resources(&gpu, true);
        assert_eq!(got.unwrap(), vec![("MEMORY_MB", 2048), ("DISK_GB", 1), ("CUSTOM_GPU", 1)]);
    }

    #[test]
    fn bad_amounts_and_numbered_groups_are_refused() {
        assert!(unnumbered_resources(&flavor(&[("resources:VCPU", "-1")]), false).is_err());
        let e = unnumbered_resources(&flavor(&[("resources1:VGPU", "1")]), false).unwrap_err();
        assert!(e.to_string().contains("numbered request groups"), "{e}");
    }
}
