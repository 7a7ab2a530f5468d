//! `NUMATopologyFilter`: the host's NUMA cells can hold the guest topology.

use super::{FilterError, HostFilter, Kernel, RequestContext};

/// Flavor extra specs and image properties that make Nova build a guest NUMA
/// topology (`nova.virt.hardware.numa_get_constraints`).
const NUMA_KEYS: [&str; 6] = [
    "hw:numa_nodes",
    "hw:cpu_policy",
    "hw:mem_page_size",
    "hw:numa_cpus.0",
    "hw:numa_mem.0",
    "hw:pci_numa_affinity_policy",
];
const NUMA_IMAGE_PROPS: [&str; 4] = ["hw_numa_nodes", "hw_cpu_policy", "hw_mem_page_size", "hw_numa_cpus.0"];

/// Passes every host when the request asks for no NUMA topology. Quiver does
/// not model host NUMA cells yet, so a request that asks for one is rejected
/// with a clear reason instead of being placed as if it had not asked.
#[derive(Debug, Clone, Copy)]
pub struct NUMATopologyFilter;

impl HostFilter for NUMATopologyFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let specs = &ctx.request.flavor.extra_specs;
        let props = ctx.request.image_properties();
        let asked = NUMA_KEYS
            .iter()
            .find(|k| specs.get(**k).is_some_and(|v| !(k.ends_with("cpu_policy") && v == "shared")))
            .or_else(|| NUMA_IMAGE_PROPS.iter().find(|k| props.contains_key(**k)));
        match asked {
            Some(k) => Err(FilterError::Unsupported(format!(
                "NUMATopologyFilter: NUMA topology requests ({k}) are not supported yet"
            ))),
            None => Ok(None),
        }
    }
}
