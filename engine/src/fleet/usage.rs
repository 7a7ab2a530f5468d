//! The columns that claims change, over the global host index, and the
//! O(1) claim, release and consumption that update them in place.

use super::Fleet;
use crate::error::{EngineError, Result};

/// Columns that claims change, indexed by global host index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Placement usage per resource class.
    pub used: Vec<Vec<i64>>,
    /// Derived per resource class: the largest amount one more allocation
    /// may take, `min(floor((total - reserved) * ratio) - used, max_unit)`,
    /// saturated to `i32`, `-1` without inventory (and on a deleted host).
    /// Kept in step with `used` so the capacity kernel reads 4 bytes per
    /// class and host.
    pub avail: Vec<Vec<i32>>,
    /// `HostState.vcpus_used`.
    pub vcpus_used: Vec<i32>,
    /// `HostState.free_ram_mb`.
    pub free_ram_mb: Vec<i32>,
    /// `HostState.free_disk_mb`.
    pub free_disk_mb: Vec<i32>,
    /// `HostState.num_instances`.
    pub num_instances: Vec<i32>,
    /// `HostState.num_io_ops`.
    pub num_io_ops: Vec<i32>,
}

impl Usage {
    /// Appends a host with no usage.
    pub(crate) fn push_slot(&mut self) {
        for v in &mut self.used {
            v.push(0);
        }
        for v in &mut self.avail {
            v.push(-1);
        }
        for v in [&mut self.vcpus_used, &mut self.free_ram_mb, &mut self.free_disk_mb] {
            v.push(0);
        }
        self.num_instances.push(0);
        self.num_io_ops.push(0);
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.used.iter().map(|v| v.capacity() * 8).sum::<usize>()
            + self.avail.iter().map(|v| v.capacity() * 4).sum::<usize>()
            + 5 * 4 * self.vcpus_used.capacity()
    }
}

/// `min(floor((total - reserved) * ratio) - used, max_unit)`, saturated to
/// `i32`; `-1` when the host has no inventory (`total == 0`).
///
/// # Nova compatibility
/// Placement admits an allocation when `used + amount <= (total - reserved)
/// * ratio` in floating point and `amount <= max_unit`. With integer `used`
/// and `amount` that is exactly `amount <= avail`.
#[inline]
pub fn avail_of(total: i32, reserved: i32, ratio: f64, max_unit: i32, used: i64) -> i32 {
    if total <= 0 {
        return -1;
    }
    let limit = ((total as f64 - reserved as f64) * ratio).floor();
    let free = limit - used as f64;
    let a = free.min(max_unit as f64);
    a.clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

impl Fleet {
    /// The usage columns.
    #[inline]
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Replaces every usage column (a snapshot taken with `usage().clone()`).
    ///
    /// # Errors
    /// A snapshot of a different fleet size.
    pub fn set_usage(&mut self, usage: Usage) -> Result<()> {
        if usage.vcpus_used.len() != self.len() || usage.used.len() != self.usage.used.len() {
            return Err(EngineError::invalid("usage snapshot does not match the fleet"));
        }
        self.usage = usage;
        let e = super::next_epoch();
        self.block_epochs.fill(e);
        Ok(())
    }

    /// Nova's `HostState` fields of a host that consumption changes:
    /// `[free_ram_mb, free_disk_mb, vcpus_used, num_instances, num_io_ops]`.
    pub fn hoststate(&self, host: usize) -> [i32; 5] {
        let u = &self.usage;
        [u.free_ram_mb[host], u.free_disk_mb[host], u.vcpus_used[host], u.num_instances[host], u.num_io_ops[host]]
    }

    /// Restores what [`Fleet::hoststate`] returned.
    pub fn set_hoststate(&mut self, host: usize, v: [i32; 5]) {
        let u = &mut self.usage;
        [u.free_ram_mb[host], u.free_disk_mb[host], u.vcpus_used[host], u.num_instances[host], u.num_io_ops[host]] = v;
        self.touch(host);
    }

    /// `HostState.consume_from_request`: RAM and disk down, vCPUs, instances
    /// and I/O operations up.
    pub fn consume(&mut self, host: usize, memory_mb: i32, disk_mb: i32, vcpus: i32) {
        let u = &mut self.usage;
        u.free_ram_mb[host] -= memory_mb;
        u.free_disk_mb[host] -= disk_mb;
        u.vcpus_used[host] += vcpus;
        u.num_instances[host] += 1;
        u.num_io_ops[host] += 1;
        self.touch(host);
    }

    /// Undoes [`Fleet::consume`] when an instance leaves the host (a
    /// simulated departure): RAM and disk back, vCPUs and instances down.
    pub fn unconsume(&mut self, host: usize, memory_mb: i32, disk_mb: i32, vcpus: i32) {
        let u = &mut self.usage;
        u.free_ram_mb[host] += memory_mb;
        u.free_disk_mb[host] += disk_mb;
        u.vcpus_used[host] -= vcpus;
        u.num_instances[host] -= 1;
        self.touch(host);
    }

    /// Marks one build on the host finished (Nova counts an instance in
    /// `num_io_ops` only while it builds; a simulated boot is instant).
    pub fn finish_build(&mut self, host: usize) {
        let u = &mut self.usage;
        u.num_io_ops[host] = (u.num_io_ops[host] - 1).max(0);
        self.touch(host);
    }

    /// Recomputes the derived `avail` of one host and class from `used`.
    #[inline]
    pub fn refresh_avail(&mut self, rc: usize, host: usize) {
        let used = self.usage.used[rc][host];
        self.usage.avail[rc][host] = match self.inventory(rc, host) {
            Some(p) if self.providers.live.get(host) => {
                avail_of(p.total, p.reserved, p.allocation_ratio, p.max_unit, used)
            }
            _ => -1,
        };
    }

    /// Claims `resources` (`(class column, amount)`) on `host` if they fit
    /// now: O(1), no batch is touched. Returns false, changing nothing, when
    /// they do not fit (Placement's capacity rule).
    #[inline]
    pub fn claim(&mut self, host: usize, resources: &[(usize, i32)]) -> bool {
        if !resources.iter().all(|&(rc, a)| a <= self.usage.avail[rc][host]) {
            return false;
        }
        for &(rc, a) in resources {
            self.usage.used[rc][host] += a as i64;
            self.refresh_avail(rc, host);
        }
        self.touch(host);
        true
    }

    /// Releases what [`Fleet::claim`] took.
    #[inline]
    pub fn release(&mut self, host: usize, resources: &[(usize, i32)]) {
        for &(rc, a) in resources {
            self.usage.used[rc][host] -= a as i64;
            self.refresh_avail(rc, host);
        }
        self.touch(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avail_matches_placement_rule() {
        // (48 - 0) * 4.0 = 192 usable, 10 used -> 182 more
        assert_eq!(avail_of(48, 0, 4.0, 48, 10), 48);
        assert_eq!(avail_of(48, 0, 4.0, 1000, 10), 182);
        // (1000 - 100) * 1.5 = 1350
        assert_eq!(avail_of(1000, 100, 1.5, 5000, 1350), 0);
        assert_eq!(avail_of(1000, 100, 1.5, 5000, 1351), -1);
        assert_eq!(avail_of(0, 0, 1.0, 0, 0), -1);
    }
}
