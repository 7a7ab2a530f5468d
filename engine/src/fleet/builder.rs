//! [`FleetBuilder`]: a fleet from host records. It appends each host with
//! the same row encoder the live updates use ([`super::live`]), so a fleet
//! built from scratch and one kept current in place agree.

use super::Fleet;
use crate::error::Result;
use crate::host::{Aggregate, HostRecord};

/// Accumulates hosts and builds a [`Fleet`].
#[derive(Debug)]
pub struct FleetBuilder {
    fleet: Fleet,
}

impl Default for FleetBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FleetBuilder {
    /// An empty builder. `VCPU`, `MEMORY_MB` and `DISK_GB` always get
    /// columns, in that order.
    pub fn new() -> Self {
        FleetBuilder { fleet: Fleet::empty() }
    }

    /// Nova option overrides carried by the fleet.
    pub fn nova_conf(&mut self, conf: Vec<(String, serde_json::Value)>) {
        self.fleet.nova_conf = conf;
    }

    /// Declares an aggregate.
    ///
    /// # Errors
    /// A duplicate aggregate id.
    pub fn add_aggregate(&mut self, agg: Aggregate) -> Result<()> {
        self.fleet.add_aggregate(agg)
    }

    /// Number of hosts added so far.
    pub fn len(&self) -> usize {
        self.fleet.len()
    }

    /// True when no host was added.
    pub fn is_empty(&self) -> bool {
        self.fleet.is_empty()
    }

    /// Adds one host.
    ///
    /// # Errors
    /// A duplicate name, an unknown aggregate id, a bad trait or resource
    /// class name, or a value out of range; the message names the host.
    pub fn push(&mut self, h: HostRecord) -> Result<()> {
        self.fleet.append(h).map(|_| ())
    }

    /// Builds the fleet.
    ///
    /// # Errors
    /// None today; kept for builders that check across hosts.
    pub fn finish(self) -> Result<Fleet> {
        let mut f = self.fleet;
        if f.is_empty() {
            f.min_service_version = 74;
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Inventory;

    #[test]
    fn builder_round_trips_a_host() {
        let mut b = FleetBuilder::new();
        b.add_aggregate(Aggregate { id: 7, name: "az-1".into(), ..Default::default() }).unwrap();
        let mut h = HostRecord {
            name: "h1".into(),
            cell: "cell1".into(),
            aggregates: vec![7],
            inventories: vec![Inventory::simple("VCPU", 16, 4.0), Inventory::simple("MEMORY_MB", 4096, 1.0)],
            traits: vec!["HW_CPU_X86_AVX2".into(), "CUSTOM_X".into()],
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            free_ram_mb: 4096,
            host_ip: Some("10.0.0.1".parse().unwrap()),
            metrics: vec![("cpu.percent".into(), 35.0)],
            instances: vec![42],
            ..Default::default()
        };
        h.inventories[0].used = 3;
        b.push(h.clone()).unwrap();
        let f = b.finish().unwrap();
        assert_eq!(f.len(), 1);
        let back = f.host_record(0);
        assert_eq!(back.name, "h1");
        assert_eq!(back.inventories, h.inventories);
        assert_eq!(back.traits, h.traits);
        assert_eq!(back.aggregates, vec![7]);
        assert_eq!(back.host_ip, h.host_ip);
        assert_eq!(back.metrics, h.metrics);
        assert_eq!(back.instances, vec![42]);
        assert_eq!(f.usage().avail[0][0], 16);
        assert_eq!(f.usage().avail[2][0], -1);
    }

    #[test]
    fn builder_rejects_bad_input_with_the_host_name() {
        let mut b = FleetBuilder::new();
        let h = HostRecord { name: "h1".into(), aggregates: vec![3], ..Default::default() };
        let err = b.push(h).unwrap_err().to_string();
        assert!(err.contains("h1") && err.contains("aggregate id 3"), "{err}");
        let h = HostRecord { name: "h2".into(), traits: vec!["BOGUS".into()], ..Default::default() };
        assert!(b.push(h).unwrap_err().to_string().contains("BOGUS"));
        assert!(b.is_empty(), "a refused host leaves nothing behind");
    }
}
