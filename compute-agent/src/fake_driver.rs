//! A hypervisor in memory (Nova's `nova.virt.fake`): guests are map entries,
//! so one process can run thousands of simulated hosts for scale tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::driver::{ComputeDriver, DriverError, GuestInfo, GuestSpec, HostInfo, PowerState};

/// A fake host of a given size; `spawn_delay` imitates a guest's boot time.
pub struct FakeDriver {
    info: HostInfo,
    guests: Mutex<BTreeMap<String, GuestInfo>>,
    spawn_delay: Duration,
}

impl FakeDriver {
    pub fn new(nodename: &str, vcpus: u32, memory_mb: u64, local_gb: u64, spawn_delay: Duration) -> Self {
        let features = ["sse", "sse2", "sse4.1", "sse4.2", "avx", "avx2", "aes"].map(str::to_owned).to_vec();
        let cpu_info = serde_json::json!({
            "arch": "x86_64", "model": "fake", "vendor": "Quiver",
            "topology": {"cells": 1, "sockets": 1, "cores": vcpus, "threads": 1},
            "features": features,
        });
        Self {
            info: HostInfo {
                nodename: nodename.to_owned(),
                vcpus,
                memory_mb,
                local_gb,
                hypervisor_type: "fake".into(),
                hypervisor_version: 1_000_000,
                cpu_info: cpu_info.to_string(),
                cpu_features: features,
            },
            guests: Mutex::default(),
            spawn_delay,
        }
    }

    fn guests(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GuestInfo>> {
        self.guests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, uuid: &str, state: PowerState) -> Result<GuestInfo, DriverError> {
        let mut g = self.guests();
        let guest = g.get_mut(uuid).ok_or_else(|| DriverError::NotFound(uuid.to_owned()))?;
        guest.state = state;
        Ok(guest.clone())
    }
}

impl ComputeDriver for FakeDriver {
    fn host_info(&self) -> Result<HostInfo, DriverError> {
        Ok(self.info.clone())
    }

    fn spawn(&self, spec: &GuestSpec) -> Result<GuestInfo, DriverError> {
        if self.guests().contains_key(&spec.uuid) {
            return Err(DriverError::Exists(spec.uuid.clone()));
        }
        if !self.spawn_delay.is_zero() {
            std::thread::sleep(self.spawn_delay);
        }
        let guest = GuestInfo {
            uuid: spec.uuid.clone(),
            name: crate::libvirt_driver::domain_name(&spec.uuid),
            state: PowerState::Running,
            vcpus: spec.vcpus,
            memory_mb: spec.memory_mb,
            image_id: spec.image_id.clone(),
        };
        self.guests().insert(spec.uuid.clone(), guest.clone());
        Ok(guest)
    }

    fn power_off(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
        self.set_state(uuid, PowerState::Shutdown)
    }

    fn power_on(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
        self.set_state(uuid, PowerState::Running)
    }

    fn reboot(&self, uuid: &str, _hard: bool) -> Result<GuestInfo, DriverError> {
        self.set_state(uuid, PowerState::Running)
    }

    fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
        self.guests().remove(uuid).map(|_| ()).ok_or_else(|| DriverError::NotFound(uuid.to_owned()))
    }

    fn list_guests(&self) -> Result<Vec<GuestInfo>, DriverError> {
        Ok(self.guests().values().cloned().collect())
    }
}
