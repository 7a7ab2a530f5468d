//! Fleets on disk: Parquet and Arrow IPC files in a flat, self-describing
//! interchange schema (`quiver-fleet/v1`): one row per host with readable
//! columns (trait names, aggregate ids, inventories and usage), and the
//! aggregates and Nova options in the schema metadata. Reading a file back
//! gives the same fleet.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, UInt32Builder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::fleet::{BATCH_ROWS, Fleet, FleetBuilder};
use crate::host::{Aggregate, HostRecord, Inventory, ServiceRecord};

/// Format tag in the schema metadata.
pub const FORMAT: &str = "quiver-fleet/v1";

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
}

/// The interchange schema for a fleet's resource classes.
pub fn interchange_schema(fleet: &Fleet) -> SchemaRef {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("nodename", DataType::Utf8, true),
        Field::new("uuid", DataType::FixedSizeBinary(16), false),
        Field::new("cell", DataType::Utf8, false),
        Field::new("availability_zone", DataType::Utf8, true),
        Field::new("host_ip", DataType::Utf8, true),
        Field::new("aggregates", list(DataType::UInt32), false),
        Field::new("traits", list(DataType::Utf8), false),
    ];
    for rc in fleet.resource_classes.names() {
        for f in ["total", "reserved", "min_unit", "max_unit", "step_size"] {
            fields.push(Field::new(format!("{rc}.{f}"), DataType::Int32, true));
        }
        fields.push(Field::new(format!("{rc}.allocation_ratio"), DataType::Float64, true));
        fields.push(Field::new(format!("{rc}.used"), DataType::Int64, true));
    }
    for f in [
        "vcpus_used",
        "free_ram_mb",
        "free_disk_mb",
        "num_instances",
        "num_io_ops",
        "failed_builds",
        "hypervisor_version",
    ] {
        fields.push(Field::new(f, DataType::Int64, false));
    }
    fields.extend([
        Field::new("hypervisor_type", DataType::Utf8, false),
        Field::new("cpu_info", DataType::Utf8, false),
        Field::new("supported_instances", DataType::Utf8, false),
        Field::new("stats", DataType::Utf8, false),
        Field::new("metrics", DataType::Utf8, false),
        Field::new("service_disabled", DataType::Boolean, false),
        Field::new("service_forced_down", DataType::Boolean, false),
        Field::new("service_last_seen_up_age_s", DataType::Float64, false),
        Field::new("service_version", DataType::Int32, false),
        Field::new("instances", list(DataType::FixedSizeBinary(16)), false),
    ]);
    let aggs: Vec<serde_json::Value> = fleet
        .aggregates
        .iter()
        .map(|a| serde_json::json!({"id": a.id, "uuid": crate::request::format_uuid(a.uuid), "name": a.name, "metadata": a.metadata}))
        .collect();
    let conf: serde_json::Map<String, serde_json::Value> = fleet.nova_conf.iter().cloned().collect();
    let md = HashMap::from([
        ("quiver.format".to_string(), FORMAT.to_string()),
        ("quiver.aggregates".to_string(), serde_json::Value::Array(aggs).to_string()),
        ("quiver.nova_conf".to_string(), serde_json::Value::Object(conf).to_string()),
    ]);
    Arc::new(Schema::new_with_metadata(fields, md))
}

/// The fleet as interchange batches (copies; for export, not the hot path).
///
/// # Errors
/// Only on an internal inconsistency.
pub fn to_batches(fleet: &Fleet) -> Result<Vec<RecordBatch>> {
    let schema = interchange_schema(fleet);
    let mut out = Vec::new();
    let mut records = fleet.host_records();
    loop {
        let recs: Vec<HostRecord> = records.by_ref().take(BATCH_ROWS).collect();
        if recs.is_empty() {
            break;
        }
        let s = |f: &dyn Fn(&HostRecord) -> Option<String>| -> ArrayRef {
            Arc::new(recs.iter().map(f).collect::<StringArray>())
        };
        let i64s =
            |f: &dyn Fn(&HostRecord) -> i64| -> ArrayRef { Arc::new(recs.iter().map(f).collect::<Int64Array>()) };
        let mut aggs = ListBuilder::new(UInt32Builder::new());
        let mut traits = ListBuilder::new(StringBuilder::new());
        let mut inst = ListBuilder::new(FixedSizeBinaryBuilder::new(16));
        for r in &recs {
            aggs.values().append_slice(&r.aggregates);
            aggs.append(true);
            for t in &r.traits {
                traits.values().append_value(t);
            }
            traits.append(true);
            for u in &r.instances {
                inst.values().append_value(u.to_be_bytes())?;
            }
            inst.append(true);
        }
        let mut cols: Vec<ArrayRef> = vec![
            s(&|r| Some(r.name.clone())),
            s(&|r| r.nodename.clone()),
            Arc::new(FixedSizeBinaryArray::try_from_iter(recs.iter().map(|r| r.uuid.to_be_bytes()))?),
            s(&|r| Some(r.cell.clone())),
            s(&|r| r.availability_zone.clone()),
            s(&|r| r.host_ip.map(|ip| ip.to_string())),
            Arc::new(aggs.finish()),
            Arc::new(traits.finish()),
        ];
        for rc in fleet.resource_classes.names() {
            let inv = |r: &HostRecord| r.inventory(rc).cloned();
            let mut ints: Vec<Int32Builder> = (0..5).map(|_| Int32Builder::new()).collect();
            let mut ratio = Float64Builder::new();
            let mut used = Int64Builder::new();
            for r in &recs {
                let i = inv(r);
                for (b, v) in ints.iter_mut().zip(
                    i.as_ref()
                        .map(|i| [i.total, i.reserved, i.min_unit, i.max_unit, i.step_size])
                        .map_or([None; 5], |a| a.map(Some)),
                ) {
                    b.append_option(v.map(|v| v as i32));
                }
                ratio.append_option(i.as_ref().map(|i| i.allocation_ratio));
                used.append_option(i.as_ref().map(|i| i.used));
            }
            for mut b in ints {
                cols.push(Arc::new(b.finish()));
            }
            cols.push(Arc::new(ratio.finish()));
            cols.push(Arc::new(used.finish()));
        }
        cols.extend([
            i64s(&|r| r.vcpus_used),
            i64s(&|r| r.free_ram_mb),
            i64s(&|r| r.free_disk_mb),
            i64s(&|r| r.num_instances),
            i64s(&|r| r.num_io_ops),
            i64s(&|r| r.failed_builds),
            i64s(&|r| r.hypervisor_version),
            s(&|r| Some(r.hypervisor_type.clone())),
            s(&|r| Some(r.cpu_info.clone())),
            s(&|r| Some(serde_json::to_string(&r.supported_instances).unwrap_or_default())),
            s(&|r| Some(serde_json::to_string(&r.stats).unwrap_or_default())),
            s(&|r| Some(serde_json::to_string(&r.metrics).unwrap_or_default())),
            Arc::new(recs.iter().map(|r| Some(r.service.disabled)).collect::<BooleanArray>()),
            Arc::new(recs.iter().map(|r| Some(r.service.forced_down)).collect::<BooleanArray>()),
            Arc::new(recs.iter().map(|r| r.service.last_seen_up_age_s).collect::<Float64Array>()),
            Arc::new(recs.iter().map(|r| r.service.version).collect::<Int32Array>()),
            Arc::new(inst.finish()),
        ]);
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
}

/// Builds a fleet from interchange batches.
///
/// # Errors
/// A file that is not `quiver-fleet/v1`, a missing or mistyped column (named
/// in the message), or a bad host.
pub fn from_batches<E: Into<EngineError>>(
    schema: &Schema,
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
) -> Result<Fleet> {
    let md = schema.metadata();
    if md.get("quiver.format").map(String::as_str) != Some(FORMAT) {
        return Err(EngineError::invalid(format!("not a {FORMAT} file (schema metadata quiver.format is missing)")));
    }
    let mut b = FleetBuilder::new();
    let aggs: Vec<serde_json::Value> = serde_json::from_str(md.get("quiver.aggregates").map_or("[]", String::as_str))
        .map_err(|e| EngineError::invalid(format!("quiver.aggregates metadata: {e}")))?;
    for a in aggs {
        b.add_aggregate(Aggregate {
            id: a["id"].as_u64().unwrap_or(0) as u32,
            uuid: a["uuid"].as_str().and_then(crate::request::parse_uuid).unwrap_or(0),
            name: a["name"].as_str().unwrap_or("").to_owned(),
            metadata: serde_json::from_value(a["metadata"].clone()).unwrap_or_default(),
        })?;
    }
    if let Some(c) = md.get("quiver.nova_conf")
        && let Ok(serde_json::Value::Object(m)) = serde_json::from_str(c)
    {
        b.nova_conf(m.into_iter().collect());
    }
    let rcs: Vec<String> =
        schema.fields().iter().filter_map(|f| f.name().strip_suffix(".total").map(String::from)).collect();
    for batch in batches {
        let batch = batch.map_err(Into::into)?;
        let batch = &batch;
        let col = |name: &str| -> Result<&ArrayRef> {
            batch.column_by_name(name).ok_or_else(|| EngineError::invalid(format!("column {name:?} is missing")))
        };
        fn typed<'a, T: 'static>(a: &'a ArrayRef, name: &str) -> Result<&'a T> {
            a.as_any()
                .downcast_ref::<T>()
                .ok_or_else(|| EngineError::invalid(format!("column {name:?} has type {}", a.data_type())))
        }
        let st = |name: &str| -> Result<&StringArray> { typed::<StringArray>(col(name)?, name) };
        let i64c = |name: &str| -> Result<&Int64Array> { typed::<Int64Array>(col(name)?, name) };
        let name = st("name")?;
        let nodename = st("nodename")?;
        let uuid = typed::<FixedSizeBinaryArray>(col("uuid")?, "uuid")?;
        let cell = st("cell")?;
        let az = st("availability_zone")?;
        let ip = st("host_ip")?;
        let aggs = typed::<ListArray>(col("aggregates")?, "aggregates")?;
        let traits = typed::<ListArray>(col("traits")?, "traits")?;
        let inst = typed::<ListArray>(col("instances")?, "instances")?;
        let json = |c: &StringArray, r: usize, what: &str| -> Result<serde_json::Value> {
            serde_json::from_str(c.value(r)).map_err(|e| EngineError::invalid(format!("row {r}: {what}: {e}")))
        };
        for r in 0..batch.num_rows() {
            let opt = |c: &StringArray| c.is_valid(r).then(|| c.value(r).to_owned());
            let mut inventories = Vec::new();
            for rc in &rcs {
                let i = |f: &str| -> Result<Option<i64>> {
                    let a = typed::<Int32Array>(col(&format!("{rc}.{f}"))?, f)?;
                    Ok(a.is_valid(r).then(|| a.value(r) as i64))
                };
                if let Some(total) = i("total")? {
                    let ratio = typed::<Float64Array>(col(&format!("{rc}.allocation_ratio"))?, "allocation_ratio")?;
                    let used = typed::<Int64Array>(col(&format!("{rc}.used"))?, "used")?;
                    inventories.push(Inventory {
                        resource_class: rc.clone(),
                        total,
                        reserved: i("reserved")?.unwrap_or(0),
                        min_unit: i("min_unit")?.unwrap_or(1),
                        max_unit: i("max_unit")?.unwrap_or(total),
                        step_size: i("step_size")?.unwrap_or(1),
                        allocation_ratio: ratio.value(r),
                        used: used.value(r),
                    });
                }
            }
            let list_u32 = aggs.value(r);
            let list_t = traits.value(r);
            let list_i = inst.value(r);
            let metrics: Vec<(String, f64)> =
                serde_json::from_value(json(st("metrics")?, r, "metrics")?).unwrap_or_default();
            b.push(HostRecord {
                name: name.value(r).to_owned(),
                nodename: opt(nodename),
                uuid: u128::from_be_bytes(uuid.value(r).try_into().unwrap_or([0; 16])),
                cell: cell.value(r).to_owned(),
                availability_zone: opt(az),
                host_ip: opt(ip).and_then(|s| s.parse().ok()),
                aggregates: typed::<UInt32Array>(&list_u32, "aggregates")?.values().to_vec(),
                traits: typed::<StringArray>(&list_t, "traits")?.iter().flatten().map(String::from).collect(),
                inventories,
                vcpus_used: i64c("vcpus_used")?.value(r),
                free_ram_mb: i64c("free_ram_mb")?.value(r),
                free_disk_mb: i64c("free_disk_mb")?.value(r),
                num_instances: i64c("num_instances")?.value(r),
                num_io_ops: i64c("num_io_ops")?.value(r),
                failed_builds: i64c("failed_builds")?.value(r),
                hypervisor_version: i64c("hypervisor_version")?.value(r),
                hypervisor_type: st("hypervisor_type")?.value(r).to_owned(),
                cpu_info: st("cpu_info")?.value(r).to_owned(),
                supported_instances: serde_json::from_value(json(
                    st("supported_instances")?,
                    r,
                    "supported_instances",
                )?)
                .unwrap_or_default(),
                stats: serde_json::from_value(json(st("stats")?, r, "stats")?).unwrap_or_default(),
                metrics,
                service: ServiceRecord {
                    disabled: typed::<BooleanArray>(col("service_disabled")?, "service_disabled")?.value(r),
                    forced_down: typed::<BooleanArray>(col("service_forced_down")?, "service_forced_down")?.value(r),
                    last_seen_up_age_s: typed::<Float64Array>(
                        col("service_last_seen_up_age_s")?,
                        "service_last_seen_up_age_s",
                    )?
                    .value(r),
                    version: typed::<Int32Array>(col("service_version")?, "service_version")?.value(r),
                },
                instances: typed::<FixedSizeBinaryArray>(&list_i, "instances")?
                    .iter()
                    .flatten()
                    .map(|v| u128::from_be_bytes(v.try_into().unwrap_or([0; 16])))
                    .collect(),
            })?;
        }
    }
    b.finish()
}

/// Writes the fleet as Parquet (snappy).
///
/// # Errors
/// An I/O or encoding failure.
pub fn write_parquet(fleet: &Fleet, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, interchange_schema(fleet), Some(props))?;
    for b in to_batches(fleet)? {
        w.write(&b)?;
    }
    w.close()?;
    Ok(())
}

/// Reads a Parquet fleet.
///
/// # Errors
/// An unreadable or foreign file.
pub fn read_parquet(path: &Path) -> Result<Fleet> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
    let schema = builder.schema().clone();
    from_batches(&schema, builder.build()?)
}

/// Writes the fleet as an Arrow IPC file.
///
/// # Errors
/// An I/O or encoding failure.
pub fn write_ipc(fleet: &Fleet, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    write_ipc_to(fleet, file)?;
    Ok(())
}

/// Writes the fleet as an Arrow IPC file into `out` and gives it back.
fn write_ipc_to<W: std::io::Write>(fleet: &Fleet, out: W) -> Result<W> {
    let mut w = arrow_ipc::writer::FileWriter::try_new(out, &interchange_schema(fleet))?;
    for b in to_batches(fleet)? {
        w.write(&b)?;
    }
    w.finish()?;
    Ok(w.into_inner()?)
}

/// Reads an Arrow IPC fleet file from `input`.
fn read_ipc_from<R: std::io::Read + std::io::Seek>(input: R) -> Result<Fleet> {
    let r = arrow_ipc::reader::FileReader::try_new(input, None)?;
    let schema = r.schema();
    from_batches(&schema, r)
}

/// Reads an Arrow IPC fleet from memory (a `GET /v1/fleet` answer).
///
/// # Errors
/// Bytes that are not an Arrow IPC fleet file.
pub fn read_ipc_bytes(bytes: Vec<u8>) -> Result<Fleet> {
    read_ipc_from(std::io::Cursor::new(bytes))
}

/// Writes the fleet as Arrow IPC file bytes.
///
/// # Errors
/// An encoding failure.
pub fn ipc_bytes(fleet: &Fleet) -> Result<Vec<u8>> {
    write_ipc_to(fleet, Vec::new())
}

/// Reads an Arrow IPC fleet.
///
/// # Errors
/// An unreadable or foreign file.
pub fn read_ipc(path: &Path) -> Result<Fleet> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    read_ipc_from(file)
}
