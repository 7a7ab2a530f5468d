//! Nova's records (flavors, images, servers, server groups, aggregates,
//! compute services, quotas) in memory, written through to the store before
//! a change is acknowledged ([`super::record_store`]: one table of JSON
//! documents keyed by kind and id, in SQLite or PostgreSQL).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use quiver_placement::store::Location;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use quiver_compute_agent::HostInfo;

/// A flavor (Nova's `Flavor` with its extra specs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u32,
    pub disk: u32,
    pub ephemeral: u32,
    pub swap: u32,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub created_at: String,
}

#[cfg(test)]
impl Flavor {
    /// A public flavor with no extra specs, for tests.
    pub(crate) fn for_test(name: &str, vcpus: u32, ram: u32, disk: u32) -> Flavor {
        Flavor {
            id: name.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
            ephemeral: 0,
            swap: 0,
            rxtx_factor: 1.0,
            is_public: true,
            description: None,
            extra_specs: Default::default(),
            created_at: String::new(),
        }
    }
}

/// A Glance image record; its data, once uploaded, is `DATA/images/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub protected: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_ram: u64,
    pub min_disk: u64,
    pub size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_value: Option<String>,
    pub owner: String,
    pub tags: Vec<String>,
    /// Additional properties (`hw_*`, `os_*`, anything a client sets).
    pub properties: BTreeMap<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// An instance fault (shown as `fault` on an ERROR server).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub details: String,
    pub created: String,
}

/// A server (Nova's `Instance`, with the flavor it was built with).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub flavor: Flavor,
    pub image_id: Option<String>,
    /// The zone asked for (`None`: any).
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub hints: BTreeMap<String, Value>,
    pub key_name: Option<String>,
    pub description: Option<String>,
    pub reservation_id: String,
    /// `building`, `active`, `stopped`, `resized`, `error` (Nova's vm_states).
    pub vm_state: String,
    /// `scheduling`, `spawning`, `powering-off`, `powering-on`, `rebooting`,
    /// `rebooting_hard`, `deleting`, `resize_prep`, `resize_migrating`,
    /// `resize_finish`, `resize_reverting`, or none.
    pub task_state: Option<String>,
    pub power_state: u8,
    pub host: Option<String>,
    pub node: Option<String>,
    pub fault: Option<Fault>,
    pub group: Option<String>,
    pub created: String,
    pub updated: String,
    pub launched_at: Option<String>,
    /// What was done to it, oldest first (`os-instance-actions`; the
    /// newest [`super::instance_actions::KEPT`]).
    #[serde(default)]
    pub actions: Vec<InstanceAction>,
    /// The host an unshelve asked for (2.91): the next build is scheduled
    /// there alone, then it is cleared.
    #[serde(default)]
    pub requested_host: Option<String>,
}

/// One API action on a server (Nova's `InstanceAction`) and its events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceAction {
    /// `create`, `delete`, `stop`, `start`, `reboot`, `migrate`, `resize`,
    /// `confirmResize`, `revertResize`.
    pub action: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub start_time: String,
    pub updated_at: String,
    /// `Error` once an event failed.
    pub message: Option<String>,
    pub events: Vec<ActionEvent>,
}

/// One step of an action (`conductor_migrate_server`,
/// `compute_finish_resize` ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionEvent {
    pub event: String,
    pub start_time: String,
    pub finish_time: String,
    /// `Success` or `Error`.
    pub result: String,
    pub host: Option<String>,
    pub details: Option<String>,
}

/// How long a server in BUILD counts as some conductor's work in progress
/// when the records are shared: another replica's in-flight builds are
/// not in this process's list, only in the records.
pub const BUILD_IN_PROGRESS_S: f64 = 300.0;

/// Unix seconds of a timestamp as the records write it.
pub fn parse_iso(t: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(t).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

impl Server {
    /// Whether a conductor may still be building this server (it is in
    /// BUILD or REBUILD and was written in the last [`BUILD_IN_PROGRESS_S`]).
    pub fn building_recently(&self, now: f64) -> bool {
        let building =
            self.vm_state == "building" || self.task_state.as_deref().is_some_and(|t| t.starts_with("rebuild"));
        building && parse_iso(&self.updated).is_some_and(|t| now - t < BUILD_IN_PROGRESS_S)
    }

    /// The API's `status` from vm_state and task_state (Nova's
    /// `common.status_from_state`).
    pub fn status(&self) -> &'static str {
        match (self.vm_state.as_str(), self.task_state.as_deref()) {
            (_, Some("deleting")) => "ACTIVE",
            ("resized", Some("resize_reverting")) => "REVERT_RESIZE",
            ("resized", _) => "VERIFY_RESIZE",
            ("active" | "stopped", Some(t)) if t.starts_with("resize_") => "RESIZE",
            ("active", Some("migrating")) => "MIGRATING",
            (_, Some("rebuilding" | "rebuild_spawning")) => "REBUILD",
            ("shelved", _) => "SHELVED",
            ("shelved_offloaded", _) => "SHELVED_OFFLOADED",
            ("building", _) => "BUILD",
            ("active", Some("rebooting")) => "REBOOT",
            ("active", Some("rebooting_hard")) => "HARD_REBOOT",
            ("active", _) => "ACTIVE",
            ("stopped", _) => "SHUTOFF",
            ("error", _) => "ERROR",
            ("deleted", _) => "DELETED",
            _ => "UNKNOWN",
        }
    }
}

/// A server group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policy: String,
    pub rules: BTreeMap<String, Value>,
    pub members: Vec<String>,
    pub project_id: String,
    pub user_id: String,
}

/// A host aggregate; its uuid is also a Placement aggregate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub hosts: Vec<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Aggregate {
    pub fn availability_zone(&self) -> Option<&str> {
        self.metadata.get("availability_zone").map(String::as_str)
    }
}

/// A nova-compute service and its compute node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    pub id: i64,
    pub uuid: String,
    pub host: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Unix seconds of the last heartbeat (kept in memory between writes).
    pub last_seen: f64,
    pub compute_node_id: i64,
    pub compute_node_uuid: String,
    pub hypervisor: HostInfo,
    /// The agent's HTTP API; `None` for one in this process.
    pub agent_url: Option<String>,
}

#[cfg(test)]
impl Service {
    /// An enabled fake-hypervisor service of `host` on provider `rp`, for tests.
    pub(crate) fn for_test(host: &str, rp: &str, last_seen: f64) -> Service {
        Service {
            id: 1,
            uuid: format!("svc-{host}"),
            host: host.into(),
            disabled: false,
            disabled_reason: None,
            forced_down: false,
            created_at: String::new(),
            updated_at: String::new(),
            last_seen,
            compute_node_id: 1,
            compute_node_uuid: rp.into(),
            hypervisor: HostInfo {
                nodename: host.into(),
                vcpus: 16,
                memory_mb: 32768,
                local_gb: 500,
                hypervisor_type: "fake".into(),
                hypervisor_version: 1,
                cpu_info: "{}".into(),
                cpu_features: vec![],
            },
            agent_url: None,
        }
    }
}

/// A move of a server (Nova's `Migration`). Its uuid is also the Placement
/// consumer that holds the source host's allocations until the move is
/// confirmed or reverted (Nova's migration-based allocations).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Migration {
    pub id: i64,
    pub uuid: String,
    pub instance_uuid: String,
    /// `migration` (cold), `resize`, `live-migration` or `evacuation`.
    pub migration_type: String,
    /// `pre-migrating`, `migrating`, `finished`, `confirmed`, `reverted`,
    /// `error`; a live migration's `accepted`, `preparing`, `running`,
    /// `completed`, `cancelled`, `failed`.
    pub status: String,
    pub source_compute: String,
    pub source_node: String,
    pub dest_compute: Option<String>,
    pub dest_node: Option<String>,
    pub old_flavor: Flavor,
    pub new_flavor: Flavor,
    /// The server's vm_state before the move: a stopped server stays
    /// stopped where it lands.
    pub old_vm_state: String,
    pub project_id: String,
    pub user_id: String,
    pub created_at: String,
    pub updated_at: String,
    /// A live migration's memory copy: bytes in all, copied, left.
    #[serde(default)]
    pub memory_total: Option<u64>,
    #[serde(default)]
    pub memory_processed: Option<u64>,
    #[serde(default)]
    pub memory_remaining: Option<u64>,
    /// Asked for through the API (any replica), seen by the conductor
    /// running the move: `abort` or `force_complete`.
    #[serde(default)]
    pub requested: Option<String>,
}

/// Per-project quota limits that differ from the defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QuotaSet {
    pub project: String,
    pub limits: BTreeMap<String, i64>,
}

/// All records, and the SQLite file they are written to.
pub struct Records {
    store: super::record_store::DocStore,
    pub flavors: BTreeMap<String, Flavor>,
    pub images: BTreeMap<String, Image>,
    /// Servers by id; change them through [`Records::put_server`] and
    /// [`Records::drop_server`], which keep the quota tally in step.
    pub servers: HashMap<String, Server>,
    /// Per project: instances, cores, ram of its servers (the quota check
    /// reads this instead of scanning every server).
    project_usage: HashMap<String, [i64; 3]>,
    pub groups: BTreeMap<String, ServerGroup>,
    pub aggregates: BTreeMap<i64, Aggregate>,
    pub services: BTreeMap<String, Service>,
    pub quotas: BTreeMap<String, QuotaSet>,
    /// Moves, by id.
    pub migrations: BTreeMap<i64, Migration>,
    /// What changed since the live fleet last applied the records: every
    /// write goes through [`Records::save`], [`Records::save_all`] or
    /// [`Records::remove`] (and heartbeats through
    /// [`Records::heartbeat`]), which mark it here.
    changes: std::cell::RefCell<RecordChanges>,
    /// The largest service id handed out (so a registration is O(1), not a
    /// scan of every service).
    last_service_id: std::cell::Cell<i64>,
    /// Where this copy stands in the shared store's change feed.
    feed: FeedPosition,
}

/// Seconds between reads of other replicas' heartbeats.
const HEARTBEAT_READ_INTERVAL_S: f64 = 1.0;

/// How far back each read of the heartbeats looks past the newest one it
/// saw (replicas' clocks and commits are not in step).
const HEARTBEAT_OVERLAP_S: f64 = 5.0;

/// A copy's place in the change feed of [`super::record_store`].
#[derive(Debug, Default)]
struct FeedPosition {
    /// The newest change applied.
    applied: std::cell::Cell<i64>,
    /// Caught up under the lock (so a write's own change can be taken as
    /// applied).
    current: std::cell::Cell<bool>,
    /// When other replicas' heartbeats were last read, and the newest seen.
    heartbeats_read: std::cell::Cell<f64>,
    newest_heartbeat: std::cell::Cell<f64>,
}

/// Records written since the last [`Records::take_changes`], by key.
#[derive(Debug, Default)]
pub struct RecordChanges {
    /// Compute services (by host).
    pub services: std::collections::HashSet<String>,
    /// Servers (by id).
    pub servers: std::collections::HashSet<String>,
    /// Aggregates (by id).
    pub aggregates: std::collections::HashSet<i64>,
}

/// A record kind and its table key.
pub trait Record: Serialize {
    const KIND: &'static str;
    fn key(&self) -> String;
}

macro_rules! record {
    ($t:ty, $kind:literal, |$s:ident| $key:expr) => {
        impl Record for $t {
            const KIND: &'static str = $kind;
            fn key(&$s) -> String {
                $key
            }
        }
    };
}
record!(Flavor, "flavor", |self| self.id.clone());
record!(Image, "image", |self| self.id.clone());
record!(Server, "server", |self| self.id.clone());
record!(ServerGroup, "server_group", |self| self.id.clone());
record!(Aggregate, "aggregate", |self| self.id.to_string());
record!(Service, "service", |self| self.host.clone());
record!(QuotaSet, "quota", |self| self.project.clone());
record!(Migration, "migration", |self| self.id.to_string());

/// A store failure: the change was not made.
#[derive(Debug, thiserror::Error)]
#[error("compute store: {0}")]
pub struct StoreError(pub String);

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl Records {
    /// Opens (creating if needed) `dir/compute.sqlite` and loads every record.
    ///
    /// # Errors
    /// The file cannot be opened or holds a record that does not parse.
    pub fn open(dir: &Path) -> Result<Records, StoreError> {
        Records::open_at(&Location::Dir(dir.to_owned()))
    }

    /// Opens the records at `at` (a data directory, or the PostgreSQL
    /// database Placement uses) and loads every one.
    ///
    /// # Errors
    /// The store cannot be opened or holds a record that does not parse.
    pub fn open_at(at: &Location) -> Result<Records, StoreError> {
        let store = super::record_store::DocStore::open(at)?;
        let mut r = Records {
            store,
            flavors: BTreeMap::new(),
            images: BTreeMap::new(),
            servers: HashMap::new(),
            project_usage: HashMap::new(),
            groups: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            services: BTreeMap::new(),
            quotas: BTreeMap::new(),
            migrations: BTreeMap::new(),
            changes: Default::default(),
            last_service_id: std::cell::Cell::new(0),
            feed: Default::default(),
        };
        r.load()?;
        Ok(r)
    }

    /// (Re)loads every record from the store.
    fn load(&mut self) -> Result<(), StoreError> {
        let (rows, seq) = self.store.load_all()?;
        self.flavors.clear();
        self.images.clear();
        self.servers.clear();
        self.project_usage.clear();
        self.groups.clear();
        self.aggregates.clear();
        self.services.clear();
        self.quotas.clear();
        self.migrations.clear();
        for (kind, body) in rows {
            self.insert_doc(&kind, &body)?;
        }
        self.last_service_id.set(self.services.values().map(|s| s.id).max().unwrap_or(0));
        self.feed.applied.set(seq);
        Ok(())
    }

    /// Puts one stored document into memory; returns its key.
    fn insert_doc(&mut self, kind: &str, body: &str) -> Result<String, StoreError> {
        fn parse<T: serde::de::DeserializeOwned>(kind: &str, body: &str) -> Result<T, StoreError> {
            serde_json::from_str(body).map_err(|e| StoreError(format!("record of kind {kind}: {e}")))
        }
        fn keyed<T: Record + serde::de::DeserializeOwned>(
            map: &mut BTreeMap<String, T>,
            kind: &str,
            body: &str,
        ) -> Result<String, StoreError> {
            let v: T = parse(kind, body)?;
            let k = v.key();
            map.insert(k.clone(), v);
            Ok(k)
        }
        Ok(match kind {
            "flavor" => keyed(&mut self.flavors, kind, body)?,
            "image" => keyed(&mut self.images, kind, body)?,
            "server_group" => keyed(&mut self.groups, kind, body)?,
            "quota" => keyed(&mut self.quotas, kind, body)?,
            "server" => {
                let v: Server = parse(kind, body)?;
                let k = v.key();
                self.put_server(v);
                k
            }
            "aggregate" => {
                let v: Aggregate = parse(kind, body)?;
                let k = v.key();
                self.aggregates.insert(v.id, v);
                k
            }
            "migration" => {
                let v: Migration = parse(kind, body)?;
                let k = v.key();
                self.migrations.insert(v.id, v);
                k
            }
            "service" => {
                let mut v: Service = parse(kind, body)?;
                // A heartbeat this copy already saw is newer than the one
                // the writer had in memory.
                if let Some(old) = self.services.get(&v.host) {
                    v.last_seen = v.last_seen.max(old.last_seen);
                }
                self.last_service_id.set(self.last_service_id.get().max(v.id));
                let k = v.key();
                self.services.insert(k.clone(), v);
                k
            }
            _ => String::new(),
        })
    }

    /// Drops one document from memory (another replica deleted it).
    fn forget_doc(&mut self, kind: &str, key: &str) {
        match kind {
            "flavor" => drop(self.flavors.remove(key)),
            "image" => drop(self.images.remove(key)),
            "server" => drop(self.drop_server(key)),
            "server_group" => drop(self.groups.remove(key)),
            "aggregate" => {
                if let Ok(id) = key.parse() {
                    self.aggregates.remove(&id);
                }
            }
            "service" => drop(self.services.remove(key)),
            "quota" => drop(self.quotas.remove(key)),
            "migration" => {
                if let Ok(id) = key.parse() {
                    self.migrations.remove(&id);
                }
            }
            _ => {}
        }
    }

    /// The store (tests tune its feed retention).
    #[cfg(test)]
    pub(crate) fn store_for_test(&self) -> &super::record_store::DocStore {
        &self.store
    }

    /// Whether other replicas write these records too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Applies what other replicas wrote since this copy last looked
    /// (PostgreSQL; nothing on SQLite). With `write`, takes the records'
    /// lock first: until [`Records::release`], no other replica writes, so
    /// what this one reads and then writes stays true. A read needs no
    /// lock: writers commit in sequence order under it, so the feed never
    /// shows a change before an older one.
    ///
    /// # Errors
    /// The database is unreachable: the copy may be behind.
    pub fn acquire(&mut self, write: bool) -> Result<(), StoreError> {
        if !self.store.is_shared() {
            return Ok(());
        }
        if write {
            self.store.lock()?;
        }
        match self.store.changes_since(self.feed.applied.get())? {
            super::record_store::Feed::Current => {}
            super::record_store::Feed::Changed { docs, latest } => {
                let found = self.store.get_many(&docs)?;
                let mut present = std::collections::HashSet::new();
                for (kind, id, body) in &found {
                    self.insert_doc(kind, body)?;
                    self.mark(kind, id);
                    present.insert((kind.as_str(), id.as_str()));
                }
                for (kind, id) in docs.iter().filter(|(k, i)| !present.contains(&(k.as_str(), i.as_str()))) {
                    self.forget_doc(kind, id);
                    self.mark(kind, id);
                }
                self.feed.applied.set(latest);
            }
            super::record_store::Feed::Reload => {
                let before: Vec<(&'static str, String)> = self.keys();
                self.load()?;
                for (kind, key) in before.into_iter().chain(self.keys()) {
                    self.mark(kind, &key);
                }
            }
        }
        self.read_heartbeats()?;
        self.feed.current.set(write);
        Ok(())
    }

    /// Gives the records' lock back.
    pub fn release(&self) {
        self.feed.current.set(false);
        self.store.unlock();
    }

    /// Every key the live fleet follows (servers, services, aggregates).
    fn keys(&self) -> Vec<(&'static str, String)> {
        let servers = self.servers.keys().map(|k| ("server", k.clone()));
        let services = self.services.keys().map(|k| ("service", k.clone()));
        servers.chain(services).chain(self.aggregates.keys().map(|k| ("aggregate", k.to_string()))).collect()
    }

    /// Heartbeats other replicas took, at most once a second.
    fn read_heartbeats(&mut self) -> Result<(), StoreError> {
        let now = unix_now();
        if now - self.feed.heartbeats_read.get() < HEARTBEAT_READ_INTERVAL_S {
            return Ok(());
        }
        let since = self.feed.newest_heartbeat.get() - HEARTBEAT_OVERLAP_S;
        for (host, at) in self.store.heartbeats_since(since)? {
            self.feed.newest_heartbeat.set(self.feed.newest_heartbeat.get().max(at));
            if let Some(s) = self.services.get_mut(&host).filter(|s| s.last_seen < at) {
                s.last_seen = at;
                self.mark("service", &host);
            }
        }
        self.feed.heartbeats_read.set(now);
        Ok(())
    }

    /// After a write with change `seq`: under the lock and caught up, this
    /// copy already holds everything up to it.
    fn wrote(&self, seq: Option<i64>) {
        if let Some(seq) = seq
            && self.feed.current.get()
            && self.store.holds_lock()
        {
            self.feed.applied.set(self.feed.applied.get().max(seq));
        }
    }

    fn mark(&self, kind: &str, key: &str) {
        let mut c = self.changes.borrow_mut();
        match kind {
            "server" => {
                c.servers.insert(key.to_owned());
            }
            "service" => {
                c.services.insert(key.to_owned());
            }
            "aggregate" => {
                if let Ok(id) = key.parse() {
                    c.aggregates.insert(id);
                }
            }
            _ => {}
        }
    }

    fn tally(&mut self, s: &Server, sign: i64) {
        let u = self.project_usage.entry(s.project_id.clone()).or_default();
        for (slot, v) in u.iter_mut().zip([1, s.flavor.vcpus as i64, s.flavor.ram as i64]) {
            *slot += sign * v;
        }
    }

    /// Puts (inserts or replaces) a server in memory, with its quota tally.
    pub fn put_server(&mut self, s: Server) {
        if let Some(old) = self.servers.remove(&s.id) {
            self.tally(&old, -1);
        }
        self.tally(&s, 1);
        self.servers.insert(s.id.clone(), s);
    }

    /// Drops a server from memory, with its quota tally.
    pub fn drop_server(&mut self, id: &str) -> Option<Server> {
        let s = self.servers.remove(id)?;
        self.tally(&s, -1);
        Some(s)
    }

    /// `[instances, cores, ram]` of `project`'s servers.
    pub fn project_usage(&self, project: &str) -> [i64; 3] {
        self.project_usage.get(project).copied().unwrap_or_default()
    }

    /// The changes marked since the last call (the live fleet applies them).
    pub fn take_changes(&self) -> RecordChanges {
        std::mem::take(&mut *self.changes.borrow_mut())
    }

    /// Records a heartbeat of `host`'s service: in memory (on SQLite the
    /// next registration or service write persists `last_seen`) and, on
    /// PostgreSQL, in the heartbeats every replica reads.
    pub fn heartbeat(&mut self, host: &str, at: f64) -> bool {
        let Some(s) = self.services.get_mut(host) else { return false };
        s.last_seen = at;
        self.mark("service", host);
        if let Err(e) = self.store.put_heartbeat(host, at) {
            tracing::warn!(host, error = %e, "cannot record the heartbeat");
        }
        true
    }

    /// Writes one record (insert or replace), committed on return.
    ///
    /// # Errors
    /// The store refused the write.
    pub fn save<R: Record>(&mut self, rec: &R) -> Result<(), StoreError> {
        let body = serde_json::to_string(rec).map_err(se)?;
        let seq = self.store.put(R::KIND, &rec.key(), &body)?;
        self.wrote(seq);
        self.mark(R::KIND, &rec.key());
        Ok(())
    }

    /// Writes several records in one transaction.
    ///
    /// # Errors
    /// The store refused the write; none of them is written.
    pub fn save_all<R: Record>(&mut self, recs: &[&R]) -> Result<(), StoreError> {
        let docs: Vec<(&str, String, String)> = recs
            .iter()
            .map(|rec| Ok((R::KIND, rec.key(), serde_json::to_string(rec).map_err(se)?)))
            .collect::<Result<_, StoreError>>()?;
        let seq = self.store.put_all(&docs)?;
        self.wrote(seq);
        for rec in recs {
            self.mark(R::KIND, &rec.key());
        }
        Ok(())
    }

    /// Deletes one record.
    ///
    /// # Errors
    /// The store refused the write.
    pub fn remove(&mut self, kind: &str, key: &str) -> Result<(), StoreError> {
        let seq = self.store.delete(kind, key)?;
        self.wrote(seq);
        self.mark(kind, key);
        Ok(())
    }

    /// The next integer id for aggregates or services.
    pub fn next_id(&self, kind: &str) -> i64 {
        match kind {
            "aggregate" => self.aggregates.keys().max().copied().unwrap_or(0) + 1,
            "migration" => self.migrations.keys().max().copied().unwrap_or(0) + 1,
            _ => {
                let id = self.last_service_id.get() + 1;
                self.last_service_id.set(id);
                id
            }
        }
    }
}

/// Now, as Nova prints timestamps in responses (`2026-11-22T10:00:00Z`).
pub fn now_iso() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(secs: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Unix seconds now, with fractions.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
