//! The fleet's SQL tables as DataFusion table providers over one snapshot.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::fleet::{Fleet, HostBatch};

/// The tables a fleet offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// One row per host.
    Hosts,
    /// One row per host and resource class.
    Inventories,
    /// Usage per host and resource class.
    Usage,
    /// One row per host and trait.
    Traits,
    /// One row per aggregate.
    Aggregates,
    /// One row per aggregate membership.
    AggregateHosts,
}

impl TableKind {
    /// Every table.
    pub const ALL: [TableKind; 6] = [
        TableKind::Hosts,
        TableKind::Inventories,
        TableKind::Usage,
        TableKind::Traits,
        TableKind::Aggregates,
        TableKind::AggregateHosts,
    ];

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Hosts => "hosts",
            TableKind::Inventories => "inventories",
            TableKind::Usage => "usage",
            TableKind::Traits => "traits",
            TableKind::Aggregates => "aggregates",
            TableKind::AggregateHosts => "aggregate_hosts",
        }
    }
}

/// A computed column of `hosts`.
#[derive(Clone, Copy, Debug)]
enum Derived {
    /// Per resource class: total, reserved, ratio, capacity, used, free.
    Rc(usize, u8),
    /// `HostState` counters: vcpus_used, free_ram_mb, free_disk_mb,
    /// num_instances, num_io_ops.
    State(u8),
}

const RC_PARTS: [&str; 6] = ["total", "reserved", "allocation_ratio", "capacity", "used", "free"];
const STATE: [&str; 5] = ["vcpus_used", "free_ram_mb", "free_disk_mb", "num_instances", "num_io_ops"];

/// One table over a fleet snapshot.
pub struct FleetTable {
    fleet: Arc<Fleet>,
    kind: TableKind,
    schema: SchemaRef,
    /// For `hosts`: how many leading columns are the static batch's.
    static_cols: usize,
    derived: Vec<Derived>,
}

impl std::fmt::Debug for FleetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FleetTable({})", self.kind.name())
    }
}

fn rc_column_prefix(rc: &str) -> String {
    rc.to_ascii_lowercase()
}

fn host_rc_long_schema(extra: &[(&str, DataType)]) -> SchemaRef {
    let mut fields =
        vec![Field::new("host", DataType::Utf8, false), Field::new("resource_class", DataType::Utf8, false)];
    fields.extend(extra.iter().map(|(n, t)| Field::new(*n, t.clone(), false)));
    Arc::new(Schema::new(fields))
}

impl FleetTable {
    /// The table `kind` of `fleet`.
    pub fn new(fleet: Arc<Fleet>, kind: TableKind) -> Self {
        let mut static_cols = 0;
        let mut derived = Vec::new();
        let schema = match kind {
            TableKind::Hosts => {
                let base = fleet.schema();
                let mut fields: Vec<Field> = base
                    .fields()
                    .iter()
                    .map(|f| match f.name().strip_suffix(".inventory") {
                        Some(rc) => f.as_ref().clone().with_name(format!("{}_profile", rc_column_prefix(rc))),
                        None => f.as_ref().clone(),
                    })
                    .collect();
                static_cols = fields.len();
                for (rc, name) in fleet.resource_classes.names().iter().enumerate() {
                    for (part, what) in RC_PARTS.iter().enumerate() {
                        let t = if *what == "allocation_ratio" { DataType::Float64 } else { DataType::Int64 };
                        fields.push(Field::new(format!("{}_{what}", rc_column_prefix(name)), t, true));
                        derived.push(Derived::Rc(rc, part as u8));
                    }
                }
                for (i, name) in STATE.iter().enumerate() {
                    fields.push(Field::new(*name, DataType::Int32, false));
                    derived.push(Derived::State(i as u8));
                }
                Arc::new(Schema::new(fields))
            }
            TableKind::Inventories => host_rc_long_schema(&[
                ("total", DataType::Int64),
                ("reserved", DataType::Int64),
                ("min_unit", DataType::Int64),
                ("max_unit", DataType::Int64),
                ("step_size", DataType::Int64),
                ("allocation_ratio", DataType::Float64),
                ("capacity", DataType::Int64),
                ("used", DataType::Int64),
                ("free", DataType::Int64),
            ]),
            TableKind::Usage => host_rc_long_schema(&[("used", DataType::Int64)]),
            TableKind::Traits => Arc::new(Schema::new(vec![
                Field::new("host", DataType::Utf8, false),
                Field::new("trait", DataType::Utf8, false),
            ])),
            TableKind::Aggregates => Arc::new(Schema::new(vec![
                Field::new("id", DataType::UInt32, false),
                Field::new("uuid", DataType::Utf8, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("availability_zone", DataType::Utf8, true),
                Field::new("metadata", DataType::Utf8, false),
            ])),
            TableKind::AggregateHosts => Arc::new(Schema::new(vec![
                Field::new("aggregate_id", DataType::UInt32, false),
                Field::new("aggregate", DataType::Utf8, false),
                Field::new("host", DataType::Utf8, false),
            ])),
        };
        Self { fleet, kind, schema, static_cols, derived }
    }

    fn derived_column(&self, b: &HostBatch, d: Derived) -> ArrayRef {
        let f = &self.fleet;
        let hosts = b.range();
        match d {
            Derived::Rc(rc, part) => {
                let used = &f.usage().used[rc];
                if part == 2 {
                    return Arc::new(Float64Array::from_iter(
                        hosts.map(|h| f.inventory(rc, h).map(|p| p.allocation_ratio)),
                    ));
                }
                Arc::new(Int64Array::from_iter(hosts.map(|h| {
                    f.inventory(rc, h).map(|p| {
                        let cap = p.capacity();
                        match part {
                            0 => p.total as i64,
                            1 => p.reserved as i64,
                            3 => cap,
                            4 => used[h],
                            _ => cap - used[h],
                        }
                    })
                })))
            }
            Derived::State(i) => {
                let u = f.usage();
                let col = match i {
                    0 => &u.vcpus_used,
                    1 => &u.free_ram_mb,
                    2 => &u.free_disk_mb,
                    3 => &u.num_instances,
                    _ => &u.num_io_ops,
                };
                Arc::new(Int32Array::from(col[hosts].to_vec()))
            }
        }
    }

    /// `hosts`, one partition per fleet batch, only the projected columns:
    /// static ones shared with the fleet, derived ones computed.
    fn hosts(&self, projection: &[usize]) -> DfResult<Vec<Vec<RecordBatch>>> {
        let schema = Arc::new(self.schema.project(projection)?);
        self.fleet
            .batches
            .iter()
            .map(|b| {
                let cols = projection
                    .iter()
                    .map(|&i| {
                        if i < self.static_cols {
                            crate::fleet::schema::column(&self.fleet, b, i)
                                .map_err(|e| DataFusionError::External(Box::new(e)))
                        } else {
                            Ok(self.derived_column(b, self.derived[i - self.static_cols]))
                        }
                    })
                    .collect::<DfResult<Vec<ArrayRef>>>()?;
                let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(b.len()));
                let batch = RecordBatch::try_new_with_options(schema.clone(), cols, &opts)?;
                if b.live.count() == b.len() {
                    return Ok(vec![batch]);
                }
                // Deleted hosts are not rows of the table.
                let live = arrow_array::BooleanArray::from_iter((0..b.len()).map(|r| Some(b.live.get(r))));
                Ok(vec![datafusion::arrow::compute::filter_record_batch(&batch, &live)?])
            })
            .collect()
    }

    /// The long tables, built whole.
    fn long(&self) -> DfResult<RecordBatch> {
        let f = &self.fleet;
        let cols: Vec<ArrayRef> = match self.kind {
            TableKind::Inventories | TableKind::Usage => {
                let mut host = Vec::new();
                let mut rcs = Vec::new();
                let mut nums: [Vec<i64>; 8] = Default::default();
                let mut ratio = Vec::new();
                let names = f.resource_classes.names();
                for h in 0..f.len() {
                    for (rc, rc_name) in names.iter().enumerate() {
                        let Some(p) = f.inventory(rc, h) else { continue };
                        let used = f.usage().used[rc][h];
                        let cap = p.capacity();
                        host.push(f.name(h));
                        rcs.push(rc_name.as_str());
                        for (v, x) in nums.iter_mut().zip([
                            p.total as i64,
                            p.reserved as i64,
                            p.min_unit as i64,
                            p.max_unit as i64,
                            p.step_size as i64,
                            cap,
                            used,
                            cap - used,
                        ]) {
                            v.push(x);
                        }
                        ratio.push(p.allocation_ratio);
                    }
                }
                let [total, reserved, min_unit, max_unit, step, cap, used, free] = nums;
                let mut c: Vec<ArrayRef> = vec![Arc::new(StringArray::from(host)), Arc::new(StringArray::from(rcs))];
                if self.kind == TableKind::Usage {
                    c.push(Arc::new(Int64Array::from(used)));
                } else {
                    for v in [total, reserved, min_unit, max_unit, step] {
                        c.push(Arc::new(Int64Array::from(v)));
                    }
                    c.push(Arc::new(Float64Array::from(ratio)));
                    for v in [cap, used, free] {
                        c.push(Arc::new(Int64Array::from(v)));
                    }
                }
                c
            }
            TableKind::Traits => {
                let mut host = Vec::new();
                let mut name = Vec::new();
                let traits = f.traits.names();
                for b in &f.batches {
                    for h in b.range() {
                        let set = &f.traitsets[b.traitset[h - b.start] as usize];
                        for (w, &word) in set.iter().enumerate() {
                            let mut bits = word;
                            while bits != 0 {
                                let t = w * 64 + bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                host.push(f.name(h));
                                name.push(traits[t].as_str());
                            }
                        }
                    }
                }
                vec![Arc::new(StringArray::from(host)), Arc::new(StringArray::from(name))]
            }
            TableKind::Aggregates => {
                let a = &f.aggregates;
                vec![
                    Arc::new(UInt32Array::from_iter_values(a.iter().map(|x| x.id))),
                    Arc::new(StringArray::from_iter_values(a.iter().map(|x| crate::request::format_uuid(x.uuid)))),
                    Arc::new(StringArray::from_iter_values(a.iter().map(|x| x.name.clone()))),
                    Arc::new(StringArray::from(
                        a.iter().map(|x| x.metadata.get("availability_zone").cloned()).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        a.iter().map(|x| serde_json::to_string(&x.metadata).unwrap_or_default()),
                    )),
                ]
            }
            TableKind::AggregateHosts => {
                let (mut ids, mut names, mut hosts) = (Vec::new(), Vec::new(), Vec::new());
                for b in &f.batches {
                    for h in b.range() {
                        for &ai in &f.aggsets[b.aggset[h - b.start] as usize] {
                            let a = &f.aggregates[ai as usize];
                            ids.push(a.id);
                            names.push(a.name.as_str());
                            hosts.push(f.name(h));
                        }
                    }
                }
                vec![
                    Arc::new(UInt32Array::from(ids)),
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(hosts)),
                ]
            }
            TableKind::Hosts => return Err(DataFusionError::Internal("hosts is not a long table".into())),
        };
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

#[async_trait]
impl TableProvider for FleetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        if self.kind == TableKind::Hosts {
            let parts = self.hosts(projection)?;
            let schema = Arc::new(self.schema.project(projection)?);
            return Ok(MemorySourceConfig::try_new_exec(&parts, schema, None)?);
        }
        let batch = self.long()?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), Some(projection.clone()))?)
    }
}
