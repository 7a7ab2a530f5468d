//! The hypervisor interface: what the agent asks of a host, whatever runs it
//! (Nova's `nova.virt.driver.ComputeDriver`, reduced to what a boot needs).

use serde::{Deserialize, Serialize};

/// What a driver reports about its host; the agent turns it into Placement
/// inventory (with reserved amounts and allocation ratios from config) and
/// traits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Hypervisor node name (`hypervisor_hostname`).
    pub nodename: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub local_gb: u64,
    /// `QEMU`, `test`, `fake` ...
    pub hypervisor_type: String,
    /// `major*1_000_000 + minor*1_000 + micro`, as Nova stores it.
    pub hypervisor_version: i64,
    /// Nova's `cpu_info` JSON text (arch, model, vendor, topology, features).
    pub cpu_info: String,
    /// CPU feature flags as the hypervisor names them (`avx2`, `sse4.2` ...).
    pub cpu_features: Vec<String>,
}

/// Everything needed to define and start one guest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuestSpec {
    /// Instance uuid; also the libvirt domain uuid.
    pub uuid: String,
    /// Display name of the server (goes into the domain's metadata).
    pub display_name: String,
    pub flavor_name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub root_gb: u64,
    /// Glance image id, if any.
    #[serde(default)]
    pub image_id: Option<String>,
    /// A local file holding the image's data, when the registry has it.
    #[serde(default)]
    pub image_path: Option<String>,
}

/// Nova's power states (`nova.compute.power_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    NoState,
    Running,
    Paused,
    Shutdown,
    Crashed,
    Suspended,
}

impl PowerState {
    /// The integer Nova's API shows as `OS-EXT-STS:power_state`.
    pub fn code(self) -> u8 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
        }
    }
}

/// One guest as the hypervisor sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuestInfo {
    pub uuid: String,
    /// The hypervisor's own name for it (libvirt domain name).
    pub name: String,
    pub state: PowerState,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// The image it was built from (a rebuild changes it).
    #[serde(default)]
    pub image_id: Option<String>,
}

/// A driver failure. `NotFound` lets deletes be idempotent; every other
/// error on a build makes the conductor reschedule.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("guest {0} not found on this host")]
    NotFound(String),
    #[error("guest {0} already exists on this host")]
    Exists(String),
    #[error("hypervisor error: {0}")]
    Hypervisor(String),
}

/// A hypervisor backend. Calls block (libvirt's API is synchronous); the
/// agent runs them off the async runtime.
pub trait ComputeDriver: Send + Sync {
    /// The host's size and CPU as the hypervisor reports them.
    fn host_info(&self) -> Result<HostInfo, DriverError>;
    /// Defines and starts a guest.
    fn spawn(&self, spec: &GuestSpec) -> Result<GuestInfo, DriverError>;
    /// Powers a guest off (hard, as Nova's `power_off` with no timeout).
    fn power_off(&self, uuid: &str) -> Result<GuestInfo, DriverError>;
    /// Powers a stopped guest on.
    fn power_on(&self, uuid: &str) -> Result<GuestInfo, DriverError>;
    /// Reboots a running guest (`hard`: destroy and start again).
    fn reboot(&self, uuid: &str, hard: bool) -> Result<GuestInfo, DriverError>;
    /// Stops and undefines a guest.
    fn destroy(&self, uuid: &str) -> Result<(), DriverError>;
    /// Every guest the hypervisor holds, running or not.
    fn list_guests(&self) -> Result<Vec<GuestInfo>, DriverError>;
}

/// Maps hypervisor CPU flags to os-traits names (`avx2` -> `HW_CPU_X86_AVX2`),
/// as Nova's libvirt driver does through `CPU_TRAITS_MAPPING`.
pub fn cpu_traits(features: &[String]) -> Vec<String> {
    const MAP: &[(&str, &str)] = &[
        ("3dnow", "HW_CPU_X86_3DNOW"),
        ("abm", "HW_CPU_X86_ABM"),
        ("aes", "HW_CPU_X86_AESNI"),
        ("avx", "HW_CPU_X86_AVX"),
        ("avx2", "HW_CPU_X86_AVX2"),
        ("avx512bw", "HW_CPU_X86_AVX512BW"),
        ("avx512cd", "HW_CPU_X86_AVX512CD"),
        ("avx512dq", "HW_CPU_X86_AVX512DQ"),
        ("avx512er", "HW_CPU_X86_AVX512ER"),
        ("avx512f", "HW_CPU_X86_AVX512F"),
        ("avx512pf", "HW_CPU_X86_AVX512PF"),
        ("avx512vl", "HW_CPU_X86_AVX512VL"),
        ("avx512vnni", "HW_CPU_X86_AVX512VNNI"),
        ("bmi1", "HW_CPU_X86_BMI"),
        ("bmi2", "HW_CPU_X86_BMI2"),
        ("pclmuldq", "HW_CPU_X86_CLMUL"),
        ("pclmulqdq", "HW_CPU_X86_CLMUL"),
        ("f16c", "HW_CPU_X86_F16C"),
        ("fma", "HW_CPU_X86_FMA3"),
        ("fma4", "HW_CPU_X86_FMA4"),
        ("mmx", "HW_CPU_X86_MMX"),
        ("mpx", "HW_CPU_X86_MPX"),
        ("sha-ni", "HW_CPU_X86_SHA"),
        ("sse", "HW_CPU_X86_SSE"),
        ("sse2", "HW_CPU_X86_SSE2"),
        ("sse3", "HW_CPU_X86_SSE3"),
        ("sse4.1", "HW_CPU_X86_SSE41"),
        ("sse4.2", "HW_CPU_X86_SSE42"),
        ("sse4a", "HW_CPU_X86_SSE4A"),
        ("ssse3", "HW_CPU_X86_SSSE3"),
        ("svm", "HW_CPU_X86_SVM"),
        ("tbm", "HW_CPU_X86_TBM"),
        ("vmx", "HW_CPU_X86_VMX"),
        ("xop", "HW_CPU_X86_XOP"),
    ];
    let mut out: Vec<String> =
        features.iter().filter_map(|f| MAP.iter().find(|(k, _)| k == f).map(|(_, t)| (*t).to_owned())).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_flags_map_to_os_traits() {
        let t = cpu_traits(&["avx2".into(), "sse4.2".into(), "bogus".into(), "pclmulqdq".into()]);
        assert_eq!(t, vec!["HW_CPU_X86_AVX2", "HW_CPU_X86_CLMUL", "HW_CPU_X86_SSE42"]);
    }
}
