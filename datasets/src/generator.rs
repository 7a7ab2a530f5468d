//! Seeded synthetic fleets shaped like the parity kit's `fleet-gen.py`:
//! host classes (general purpose, compute, memory, pinned, SSD, GPU, ARM)
//! with their aggregates and traits, three availability zones, tenant,
//! dense and batch aggregates, a few disabled and down services, and usage
//! filled to a spread of target utilisations.
//!
//! Hosts stream into the engine's builder one at a time, so a million-host
//! fleet never exists as a million host objects. The same `(hosts, seed)`
//! always gives the same fleet.

use std::collections::BTreeMap;

use quiver_engine::host::{Aggregate, HostRecord, Inventory, ServiceRecord};
use quiver_engine::{Fleet, FleetBuilder, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Options of the generator.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// Number of hosts.
    pub hosts: usize,
    /// Seed.
    pub seed: u64,
    /// Record one instance uuid per placed instance (needed for
    /// same_host / different_host hints against existing instances; costs
    /// ~20 bytes per instance).
    pub with_instances: bool,
}

struct Class {
    name: &'static str,
    share: f64,
    vcpus: &'static [i64],
    ram: &'static [i64],
    disk: &'static [i64],
    ratios: (f64, f64, f64),
    arch: &'static str,
    vendor: &'static str,
    model: &'static str,
    avx512: bool,
    traits: &'static [&'static str],
    metadata: &'static [(&'static str, &'static str)],
}

const CLASSES: [Class; 7] = [
    Class {
        name: "gp",
        share: 0.50,
        vcpus: &[48, 64, 96],
        ram: &[262144, 393216, 524288],
        disk: &[960, 1920, 3840],
        ratios: (4.0, 1.0, 1.0),
        arch: "x86_64",
        vendor: "Intel",
        model: "Cascadelake-Server",
        avx512: false,
        traits: &[],
        metadata: &[],
    },
    Class {
        name: "co",
        share: 0.12,
        vcpus: &[128, 192],
        ram: &[262144, 524288],
        disk: &[960, 1920],
        ratios: (2.0, 1.0, 1.0),
        arch: "x86_64",
        vendor: "AMD",
        model: "EPYC-Milan",
        avx512: false,
        traits: &[],
        metadata: &[("cpu", "amd"), ("cpu_weight_multiplier", "2.0")],
    },
    Class {
        name: "mo",
        share: 0.10,
        vcpus: &[64, 96],
        ram: &[1048576, 1572864],
        disk: &[1920],
        ratios: (2.0, 1.0, 1.0),
        arch: "x86_64",
        vendor: "Intel",
        model: "Icelake-Server",
        avx512: true,
        traits: &["HW_CPU_X86_AVX512F"],
        metadata: &[("mem", "high")],
    },
    Class {
        name: "pin",
        share: 0.08,
        vcpus: &[64, 112],
        ram: &[393216, 524288],
        disk: &[960],
        ratios: (1.0, 1.0, 1.0),
        arch: "x86_64",
        vendor: "Intel",
        model: "Icelake-Server",
        avx512: true,
        traits: &["HW_CPU_X86_AVX512F"],
        metadata: &[("pinned", "true"), ("max_instances_per_host", "30")],
    },
    Class {
        name: "ssd",
        share: 0.06,
        vcpus: &[64],
        ram: &[393216],
        disk: &[7680, 15360],
        ratios: (4.0, 1.0, 1.5),
        arch: "x86_64",
        vendor: "Intel",
        model: "Cascadelake-Server",
        avx512: false,
        traits: &["STORAGE_DISK_SSD"],
        metadata: &[("ssd", "true")],
    },
    Class {
        name: "gpu",
        share: 0.04,
        vcpus: &[64],
        ram: &[524288],
        disk: &[3840],
        ratios: (1.0, 1.0, 1.0),
        arch: "x86_64",
        vendor: "AMD",
        model: "EPYC-Milan",
        avx512: false,
        traits: &["CUSTOM_GPU_A100"],
        metadata: &[("gpu", "true"), ("max_io_ops_per_host", "4")],
    },
    Class {
        name: "arm",
        share: 0.10,
        vcpus: &[80, 128],
        ram: &[262144, 524288],
        disk: &[960, 1920],
        ratios: (4.0, 1.0, 1.0),
        arch: "aarch64",
        vendor: "ARM",
        model: "Neoverse-N1",
        avx512: false,
        traits: &[],
        metadata: &[("arch", "aarch64")],
    },
];

const X86_TRAITS: [&str; 10] = [
    "HW_ARCH_X86_64",
    "HW_CPU_X86_SSE42",
    "HW_CPU_X86_AVX",
    "HW_CPU_X86_AVX2",
    "HW_CPU_X86_AESNI",
    "HW_CPU_X86_VMX",
    "COMPUTE_NET_VIF_MODEL_VIRTIO",
    "COMPUTE_IMAGE_TYPE_QCOW2",
    "COMPUTE_IMAGE_TYPE_RAW",
    "COMPUTE_VOLUME_MULTI_ATTACH",
];
const ARM_TRAITS: [&str; 4] =
    ["HW_ARCH_AARCH64", "COMPUTE_NET_VIF_MODEL_VIRTIO", "COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW"];
const FILL_FLAVORS: [(i64, i64, i64); 8] = [
    (1, 512, 1),
    (1, 2048, 20),
    (2, 4096, 40),
    (4, 8192, 80),
    (8, 16384, 160),
    (16, 32768, 80),
    (8, 65536, 80),
    (4, 16384, 40),
];
const FILL_WEIGHTS: [u32; 8] = [5, 25, 25, 20, 8, 5, 7, 5];
const HV_VERSIONS: [(i64, u32); 4] = [(6002000, 10), (7002000, 25), (8002002, 45), (9001000, 20)];

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for &(v, w) in items {
        if x < w {
            return v;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn cpu_info(c: &Class, vcpus: i64) -> String {
    let mut features: Vec<&str> = if c.arch == "x86_64" {
        let mut f = vec![
            "sse", "sse2", "ssse3", "sse4.1", "sse4.2", "popcnt", "aes", "avx", "f16c", "rdrand", "fma", "avx2",
            "bmi1", "bmi2", "vmx",
        ];
        if c.avx512 {
            f.extend(["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]);
        }
        f
    } else {
        vec![
            "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
            "asimdrdm", "lrcpc", "dcpop", "asimddp",
        ]
    };
    features.sort_unstable();
    let bits = if c.arch != "x86_64" {
        48
    } else if c.avx512 {
        52
    } else {
        46
    };
    serde_json::json!({
        "arch": c.arch, "model": c.model, "vendor": c.vendor,
        "topology": {"cells": 2, "sockets": 2, "cores": (vcpus / 4).max(1), "threads": 2},
        "features": features, "maxphysaddr": {"mode": "passthrough", "bits": bits}
    })
    .to_string()
}

/// Generates a fleet.
///
/// # Errors
/// Only on an internal inconsistency (the generator's names are valid).
pub fn generate(spec: &FleetSpec, mut progress: impl FnMut(usize)) -> Result<Fleet> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut b = FleetBuilder::new();
    let mut next_id = 1u32;
    let mut add = |b: &mut FleetBuilder, name: &str, md: &[(&str, &str)]| -> Result<u32> {
        let id = next_id;
        next_id += 1;
        b.add_aggregate(Aggregate {
            id,
            uuid: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("agg:{id}:{}", spec.seed).as_bytes())
                .as_u128(),
            name: name.into(),
            metadata: md.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })?;
        Ok(id)
    };
    let azs = ["az-1", "az-2", "az-3"];
    let mut az_agg = Vec::new();
    for az in azs {
        az_agg.push(add(&mut b, az, &[("availability_zone", az)])?);
    }
    let mut class_agg = Vec::new();
    for c in &CLASSES {
        class_agg.push(if c.metadata.is_empty() {
            None
        } else {
            Some(add(&mut b, &format!("agg-{}", c.name), c.metadata)?)
        });
    }
    let tenant_a = add(&mut b, "agg-tenant-a", &[("filter_tenant_id", "project-01,project-02")])?;
    let tenant_b =
        add(&mut b, "agg-tenant-b", &[("filter_tenant_id", "project-03"), ("filter_tenant_id2", "project-04")])?;
    let dense = add(&mut b, "agg-dense", &[("max_instances_per_host", "80"), ("max_io_ops_per_host", "16")])?;
    let batch = add(&mut b, "agg-batch", &[("ram_weight_multiplier", "-1.0"), ("batch", "true")])?;
    let n_cells = spec.hosts.div_ceil(10_000).clamp(1, 8);
    let shares: Vec<(usize, u32)> = CLASSES.iter().enumerate().map(|(i, c)| (i, (c.share * 100.0) as u32)).collect();
    let cpu_infos: Vec<Vec<String>> =
        CLASSES.iter().map(|c| c.vcpus.iter().map(|&v| cpu_info(c, v)).collect()).collect();
    for i in 0..spec.hosts {
        let ci = if i < CLASSES.len() { i } else { weighted(&mut rng, &shares) };
        let c = &CLASSES[ci];
        let az = if rng.random::<f64>() < 0.3 { rng.random_range(0..3) } else { i % 3 };
        let vi = rng.random_range(0..c.vcpus.len());
        let vcpus = c.vcpus[vi];
        let ram = c.ram[rng.random_range(0..c.ram.len())];
        let disk = c.disk[rng.random_range(0..c.disk.len())];
        let (cpu_r, ram_r, disk_r) = c.ratios;
        let mut aggs = vec![az_agg[az]];
        if let Some(a) = class_agg[ci] {
            aggs.push(a);
        }
        if c.name == "gp" {
            let r: f64 = rng.random();
            if r < 0.04 {
                aggs.push(tenant_a);
            } else if r < 0.06 {
                aggs.push(tenant_b);
            } else if r < 0.14 {
                aggs.push(dense);
            } else if r < 0.22 {
                aggs.push(batch);
            }
        }
        let r: f64 = rng.random();
        let service = ServiceRecord {
            disabled: r < 0.02,
            last_seen_up_age_s: if (0.02..0.03).contains(&r) { 3600.0 } else { 10.0 },
            ..Default::default()
        };
        let r: f64 = rng.random();
        let target = if r < 0.15 {
            0.0
        } else if r < 0.75 {
            rng.random_range(0.2..0.8)
        } else if r < 0.95 {
            rng.random_range(0.8..0.98)
        } else {
            rng.random_range(0.98..1.05)
        };
        let mem_reserved = if ram >= 262144 { 4096 } else { 512 };
        let cap_mem = (ram - mem_reserved) as f64 * ram_r;
        let cap_cpu = vcpus as f64 * cpu_r;
        let cap_disk = disk as f64 * disk_r;
        let max_inst = if aggs.contains(&dense) { 80 } else { 55 };
        let fill: Vec<((i64, i64, i64), u32)> = FILL_FLAVORS.iter().copied().zip(FILL_WEIGHTS).collect();
        let (mut vu, mut mu, mut du, mut n_inst) = (0i64, 0i64, 0i64, 0i64);
        let mut instances = Vec::new();
        let mut guard = 0;
        while (mu as f64) < target * cap_mem && n_inst < max_inst && guard < 200 {
            guard += 1;
            let (fv, fm, fd) = weighted(&mut rng, &fill);
            if (vu + fv) as f64 > cap_cpu * target.max(1.0)
                || (du + fd) as f64 > cap_disk
                || (mu + fm) as f64 > cap_mem * target.max(1.0)
            {
                if target <= 1.0 {
                    break;
                }
                continue;
            }
            vu += fv;
            mu += fm;
            du += fd;
            n_inst += 1;
            if spec.with_instances {
                instances.push(rng.random::<u128>());
            }
        }
        let io_ops = if rng.random::<f64>() < 0.05 {
            rng.random_range(8..=12)
        } else {
            [0, 0, 0, 0, 1, 1, 2, 3][rng.random_range(0..8)]
        };
        let failed = if rng.random::<f64>() < 0.02 { rng.random_range(1..=5) } else { 0 };
        let mut traits: Vec<String> = if c.arch == "x86_64" { X86_TRAITS.to_vec() } else { ARM_TRAITS.to_vec() }
            .into_iter()
            .map(String::from)
            .collect();
        traits.extend(c.traits.iter().map(|t| t.to_string()));
        traits.push("OWNER_NOVA".into());
        if service.disabled {
            traits.push("COMPUTE_STATUS_DISABLED".into());
        }
        let supported: Vec<[String; 3]> = if c.arch == "x86_64" {
            [("i686", "qemu"), ("i686", "kvm"), ("x86_64", "qemu"), ("x86_64", "kvm")]
                .iter()
                .map(|(a, h)| [a.to_string(), h.to_string(), "hvm".to_string()])
                .collect()
        } else {
            [("aarch64", "qemu"), ("aarch64", "kvm")]
                .iter()
                .map(|(a, h)| [a.to_string(), h.to_string(), "hvm".to_string()])
                .collect()
        };
        let metrics = if rng.random::<f64>() >= 0.05 {
            let pct = (target * rng.random_range(0.3..1.1)).min(0.99);
            vec![
                ("cpu.percent".to_string(), (pct * 100.0).trunc()),
                ("cpu.frequency".to_string(), [2100.0, 2400.0, 2600.0, 2800.0, 3000.0][rng.random_range(0..5)]),
            ]
        } else {
            Vec::new()
        };
        let mut inv_vcpu = Inventory::simple("VCPU", vcpus, cpu_r);
        inv_vcpu.used = vu;
        let mut inv_mem = Inventory::simple("MEMORY_MB", ram, ram_r);
        inv_mem.reserved = mem_reserved;
        inv_mem.used = mu;
        let mut inv_disk = Inventory::simple("DISK_GB", disk, disk_r);
        inv_disk.used = du;
        let mut stats = BTreeMap::new();
        stats.insert("num_instances".to_string(), n_inst.to_string());
        stats.insert("io_workload".to_string(), io_ops.to_string());
        stats.insert("failed_builds".to_string(), failed.to_string());
        b.push(HostRecord {
            name: format!("cmp-{}-{i:07}", c.name),
            nodename: None,
            uuid: rng.random::<u128>(),
            cell: format!("cell{}", i * n_cells / spec.hosts.max(1) + 1),
            availability_zone: Some(azs[az].to_string()),
            aggregates: aggs,
            host_ip: Some(std::net::Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8).into()),
            inventories: vec![inv_vcpu, inv_mem, inv_disk],
            traits,
            vcpus_used: vu,
            free_ram_mb: ram - (mem_reserved + mu),
            free_disk_mb: (disk - du) * 1024,
            num_instances: n_inst,
            num_io_ops: io_ops,
            failed_builds: failed,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: weighted(&mut rng, &HV_VERSIONS),
            cpu_info: cpu_infos[ci][vi].clone(),
            supported_instances: supported,
            stats,
            service,
            metrics,
            instances,
        })?;
        if i % 65_536 == 65_535 {
            progress(i + 1);
        }
    }
    progress(spec.hosts);
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_fleet_and_every_class_present() {
        let spec = FleetSpec { hosts: 300, seed: 5, with_instances: true };
        let a = generate(&spec, |_| {}).unwrap();
        let b = generate(&spec, |_| {}).unwrap();
        assert_eq!(a.len(), 300);
        for i in [0, 7, 150, 299] {
            assert_eq!(a.host_record(i), b.host_record(i));
        }
        for c in CLASSES {
            assert!((0..300).any(|i| a.name(i).starts_with(&format!("cmp-{}-", c.name))), "{}", c.name);
        }
        let other = generate(&FleetSpec { seed: 6, ..spec }, |_| {}).unwrap();
        assert_ne!(a.host_record(10), other.host_record(10));
    }
}
