//! The libvirt driver, through the `virt` crate: domain XML from flavor and
//! image, then define, start, state, destroy and undefine.
//!
//! `test:///default` (the default URI) is libvirt's built-in test
//! hypervisor: no daemon, state kept while a connection is open in this
//! process. `test:///abs/path/node.xml` describes a host of any size
//! ([`test_node_xml`] writes one), so several agents in one process can each
//! have their own host. `qemu:///system` runs real guests.

use std::sync::Mutex;

use virt::connect::Connect;
use virt::domain::Domain;

use crate::driver::{ComputeDriver, DriverError, GuestInfo, GuestSpec, HostInfo, PowerState};

/// libvirt's default URI for Quiver: the in-process test hypervisor.
pub const DEFAULT_URI: &str = "test:///default";

/// Host disk reported when the hypervisor reports none (the test driver
/// has no storage view); `local_gb` in Nova terms.
pub const DEFAULT_TEST_DISK_GB: u64 = 1000;

/// A libvirt connection and what the agent was told about its disk.
pub struct LibvirtDriver {
    uri: String,
    /// Guarded so a close on drop never races a call; calls are short.
    conn: Mutex<Connect>,
    local_gb: u64,
}

fn hv(e: virt::error::Error) -> DriverError {
    DriverError::Hypervisor(e.to_string())
}

/// A node description for the test driver: `cpus` CPUs and `memory_mb` MiB.
pub fn test_node_xml(cpus: u32, memory_mb: u64) -> String {
    format!(
        "<node>\n  <cpu>\n    <mhz>2400</mhz>\n    <model>x86_64</model>\n    <active>{cpus}</active>\n    \
         <nodes>1</nodes>\n    <sockets>1</sockets>\n    <cores>{cpus}</cores>\n    <threads>1</threads>\n  </cpu>\n  \
         <memory>{}</memory>\n</node>\n",
        memory_mb * 1024
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

impl LibvirtDriver {
    /// Opens `uri` and keeps the connection for the driver's life.
    ///
    /// # Errors
    /// libvirt cannot open the URI (a missing node file, no daemon).
    pub fn open(uri: &str, local_gb: u64) -> Result<Self, DriverError> {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|e| DriverError::Hypervisor(format!("cannot open {uri}: {e}")))?;
        Ok(Self { uri: uri.to_owned(), conn: Mutex::new(conn), local_gb })
    }

    /// The URI this driver is connected to.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn with<R>(&self, f: impl FnOnce(&Connect) -> Result<R, DriverError>) -> Result<R, DriverError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    fn domain_type(conn: &Connect) -> &'static str {
        match conn.get_type().unwrap_or_default().to_ascii_uppercase().as_str() {
            "TEST" => "test",
            "QEMU" if std::path::Path::new("/dev/kvm").exists() => "kvm",
            _ => "qemu",
        }
    }

    /// The domain XML for `spec` (Nova's `LibvirtConfigGuest`, reduced to
    /// what a guest needs to start: name, uuid, memory, vCPUs, a disk when
    /// the image is local, and the instance's flavor in the metadata).
    pub fn domain_xml(domain_type: &str, spec: &GuestSpec) -> String {
        let disk = match &spec.image_path {
            Some(path) => format!(
                "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
                 <source file='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
                escape(path)
            ),
            None => String::new(),
        };
        format!(
            "<domain type='{domain_type}'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  <title>{title}</title>\n  \
             <metadata>\n    <quiver:instance xmlns:quiver='{METADATA_NS}'>\n      \
             <quiver:flavor name='{flavor}' vcpus='{vcpus}' memory_mb='{mem}' root_gb='{root}'/>\n      \
             <quiver:image id='{image}'/>\n    </quiver:instance>\n  </metadata>\n  \
             <memory unit='MiB'>{mem}</memory>\n  <currentMemory unit='MiB'>{mem}</currentMemory>\n  \
             <vcpu placement='static'>{vcpus}</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n    \
             <boot dev='hd'/>\n  </os>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  \
             <on_crash>destroy</on_crash>\n  <devices>\n{disk}  </devices>\n</domain>\n",
            name = domain_name(&spec.uuid),
            uuid = escape(&spec.uuid),
            title = escape(&spec.display_name),
            flavor = escape(&spec.flavor_name),
            vcpus = spec.vcpus,
            mem = spec.memory_mb,
            root = spec.root_gb,
            image = escape(spec.image_id.as_deref().unwrap_or("")),
        )
    }

    fn lookup(conn: &Connect, uuid: &str) -> Result<Domain, DriverError> {
        Domain::lookup_by_uuid_string(conn, uuid).map_err(|_| DriverError::NotFound(uuid.to_owned()))
    }
}

/// The libvirt domain name of an instance (Nova uses `instance-%08x` of a
/// database id; Quiver's instances have only uuids).
pub fn domain_name(uuid: &str) -> String {
    format!("instance-{uuid}")
}

fn info_of(dom: &Domain) -> Result<GuestInfo, DriverError> {
    let info = dom.get_info().map_err(hv)?;
    let state = match info.state {
        1 | 2 => PowerState::Running,
        3 => PowerState::Paused,
        4 | 5 => PowerState::Shutdown,
        6 => PowerState::Crashed,
        7 => PowerState::Suspended,
        _ => PowerState::NoState,
    };
    Ok(GuestInfo {
        uuid: dom.get_uuid_string().map_err(hv)?,
        name: dom.get_name().map_err(hv)?,
        state,
        vcpus: info.nr_virt_cpu,
        memory_mb: info.memory / 1024,
        image_id: image_of(dom),
    })
}

/// The namespace of Quiver's element in a domain's metadata.
const METADATA_NS: &str = "https://quiver.invalid/xmlns/instance/1";

/// The image id recorded in the domain's metadata (none for a domain
/// Quiver did not define, or one defined without an image).
fn image_of(dom: &Domain) -> Option<String> {
    // 2: VIR_DOMAIN_METADATA_ELEMENT; 0: the current definition.
    let xml = dom.get_metadata(2, Some(METADATA_NS), 0).ok()?;
    let doc = roxmltree::Document::parse(&xml).ok()?;
    let image = doc.descendants().find(|n| n.tag_name().name() == "image")?.attribute("id")?;
    (!image.is_empty()).then(|| image.to_owned())
}

/// CPU arch, model, vendor and feature names from the capabilities XML.
fn host_cpu(caps: &str) -> (String, String, String, Vec<String>) {
    let Ok(doc) = roxmltree::Document::parse(caps) else {
        return Default::default();
    };
    let Some(cpu) =
        doc.descendants().find(|n| n.has_tag_name("cpu") && n.parent().is_some_and(|p| p.has_tag_name("host")))
    else {
        return Default::default();
    };
    let text =
        |tag: &str| cpu.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap_or("").trim().to_owned();
    let features =
        cpu.children().filter(|n| n.has_tag_name("feature")).filter_map(|n| n.attribute("name")).map(str::to_owned);
    (text("arch"), text("model"), text("vendor"), features.collect())
}

impl ComputeDriver for LibvirtDriver {
    fn host_info(&self) -> Result<HostInfo, DriverError> {
        self.with(|conn| {
            let node = conn.get_node_info().map_err(hv)?;
            let caps = conn.get_capabilities().map_err(hv)?;
            let (arch, model, vendor, features) = host_cpu(&caps);
            let hv_type = match conn.get_type().map_err(hv)?.to_ascii_uppercase().as_str() {
                "TEST" => "test".to_owned(),
                other => other.to_owned(),
            };
            let cpu_info = serde_json::json!({
                "arch": if arch.is_empty() { "x86_64" } else { arch.as_str() },
                "model": if model.is_empty() { node.model.as_str() } else { model.as_str() },
                "vendor": vendor,
                "topology": {"cells": node.nodes, "sockets": node.sockets, "cores": node.cores, "threads": node.threads},
                "features": features,
            });
            Ok(HostInfo {
                nodename: conn.get_hostname().map_err(hv)?,
                vcpus: node.cpus,
                memory_mb: node.memory / 1024,
                local_gb: self.local_gb,
                hypervisor_type: hv_type,
                hypervisor_version: conn.get_hyp_version().map(i64::from).unwrap_or(0),
                cpu_info: cpu_info.to_string(),
                cpu_features: features,
            })
        })
    }

    fn spawn(&self, spec: &GuestSpec) -> Result<GuestInfo, DriverError> {
        self.with(|conn| {
            if Domain::lookup_by_uuid_string(conn, &spec.uuid).is_ok() {
                return Err(DriverError::Exists(spec.uuid.clone()));
            }
            let xml = Self::domain_xml(Self::domain_type(conn), spec);
            let dom = Domain::define_xml(conn, &xml).map_err(hv)?;
            if let Err(e) = dom.create() {
                let _ = dom.undefine();
                return Err(hv(e));
            }
            info_of(&dom)
        })
    }

    fn power_off(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
        self.with(|conn| {
            let dom = Self::lookup(conn, uuid)?;
            if dom.is_active().map_err(hv)? {
                dom.destroy().map_err(hv)?;
            }
            info_of(&dom)
        })
    }

    fn power_on(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
        self.with(|conn| {
            let dom = Self::lookup(conn, uuid)?;
            if !dom.is_active().map_err(hv)? {
                dom.create().map_err(hv)?;
            }
            info_of(&dom)
        })
    }

    fn reboot(&self, uuid: &str, hard: bool) -> Result<GuestInfo, DriverError> {
        self.with(|conn| {
            let dom = Self::lookup(conn, uuid)?;
            if hard || !dom.is_active().map_err(hv)? {
                if dom.is_active().map_err(hv)? {
                    dom.destroy().map_err(hv)?;
                }
                dom.create().map_err(hv)?;
            } else {
                dom.reboot(0).map_err(hv)?;
            }
            info_of(&dom)
        })
    }

    fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
        self.with(|conn| {
            let dom = Self::lookup(conn, uuid)?;
            if dom.is_active().map_err(hv)? {
                dom.destroy().map_err(hv)?;
            }
            dom.undefine().map_err(hv)
        })
    }

    fn list_guests(&self) -> Result<Vec<GuestInfo>, DriverError> {
        self.with(|conn| conn.list_all_domains(0).map_err(hv)?.iter().map(info_of).collect())
    }
}

impl Drop for LibvirtDriver {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str, vcpus: u32, memory_mb: u64) -> GuestSpec {
        GuestSpec {
            uuid: uuid.into(),
            display_name: "web <1>".into(),
            flavor_name: "m1.small".into(),
            vcpus,
            memory_mb,
            root_gb: 1,
            image_id: None,
            image_path: None,
        }
    }

    #[test]
    fn a_guest_lives_and_dies_on_a_custom_test_host() {
        let dir = std::env::temp_dir().join(format!("quiver-libvirt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("node.xml");
        std::fs::write(&node, test_node_xml(24, 48 * 1024)).unwrap();
        let d = LibvirtDriver::open(&format!("test://{}", node.display()), 500).unwrap();
        let host = d.host_info().unwrap();
        assert_eq!((host.vcpus, host.memory_mb, host.local_gb), (24, 48 * 1024, 500));
        assert_eq!(host.hypervisor_type, "test");
        let u = "6f1b7c1e-1d0e-4d8e-9c6a-0a3c9b1e2f11";
        let g = d.spawn(&spec(u, 2, 1024)).unwrap();
        assert_eq!((g.vcpus, g.memory_mb, g.state), (2, 1024, PowerState::Running));
        assert!(matches!(d.spawn(&spec(u, 2, 1024)), Err(DriverError::Exists(_))));
        assert_eq!(d.power_off(u).unwrap().state, PowerState::Shutdown);
        assert_eq!(d.power_on(u).unwrap().state, PowerState::Running);
        assert_eq!(d.reboot(u, false).unwrap().state, PowerState::Running);
        assert!(d.list_guests().unwrap().iter().any(|g| g.uuid == u && g.name == domain_name(u)));
        d.destroy(u).unwrap();
        assert!(matches!(d.destroy(u), Err(DriverError::NotFound(_))));
        assert!(d.list_guests().unwrap().iter().all(|g| g.uuid != u));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
