//! The schema of the host columns, defined once, and the Arrow record batch
//! of one [`HostBatch`] built from it (for SQL and export; the kernels read
//! the batch's columns directly).

use std::sync::Arc;

use arrow_array::types::UInt32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::Fleet;
use super::batch::{HostBatch, NO_AZ};
use crate::error::Result;
use crate::vocab::Interner;

/// The schema of the static host columns: identity, Nova-side attributes,
/// and one `{RC}.inventory` profile code per resource class.
pub fn static_schema(rcs: &Interner) -> SchemaRef {
    let dict = || DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("nodename", DataType::Utf8, true),
        Field::new("uuid", DataType::FixedSizeBinary(16), false),
        Field::new("cell", dict(), false),
        Field::new("availability_zone", dict(), true),
        Field::new("host_ip", DataType::FixedSizeBinary(16), true),
        Field::new("aggset", DataType::UInt32, false),
        Field::new("traitset", DataType::UInt32, false),
        Field::new("cpu_info", dict(), false),
        Field::new("supported_instances", DataType::UInt32, false),
        Field::new("stats", DataType::UInt32, false),
        Field::new("hypervisor_type", dict(), false),
        Field::new("hypervisor_version", DataType::Int64, false),
        Field::new("failed_builds", DataType::Int32, false),
        Field::new("service_disabled", DataType::Boolean, false),
        Field::new("service_forced_down", DataType::Boolean, false),
        Field::new("service_last_seen_up_age_s", DataType::Float64, false),
        Field::new("service_version", DataType::Int32, false),
    ];
    for rc in rcs.names() {
        fields.push(Field::new(format!("{rc}.inventory"), DataType::UInt32, false));
    }
    Arc::new(Schema::new(fields))
}

/// Column `i` of [`static_schema`] for one batch (a copy of its values).
pub fn column(fleet: &Fleet, b: &HostBatch, i: usize) -> Result<ArrayRef> {
    let dict = |keys: UInt32Array, names: &Interner| -> Result<ArrayRef> {
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(names.names().iter()));
        Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, values)?))
    };
    let n = b.len();
    Ok(match i {
        0 => Arc::new(StringArray::from_iter_values((0..n).map(|r| b.names.get(r).unwrap_or("")))),
        1 => Arc::new(StringArray::from_iter((0..n).map(|r| b.nodenames.get(r)))),
        2 => Arc::new(FixedSizeBinaryArray::try_from_iter(b.uuids.iter().map(|u| u.to_be_bytes()))?),
        3 => dict(UInt32Array::from(b.cell.clone()), &fleet.cells)?,
        4 => dict(UInt32Array::from_iter(b.az.iter().map(|&a| (a != NO_AZ).then_some(a))), &fleet.azs)?,
        5 => Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            b.host_ip.iter().map(|o| o.as_ref().map(|x| x.as_slice())),
            16,
        )?),
        6 => Arc::new(UInt32Array::from(b.aggset.clone())),
        7 => Arc::new(UInt32Array::from(b.traitset.clone())),
        8 => dict(UInt32Array::from(b.cpu_info.clone()), &fleet.cpu_infos)?,
        9 => Arc::new(UInt32Array::from(b.supported.clone())),
        10 => Arc::new(UInt32Array::from(b.stats.clone())),
        11 => dict(UInt32Array::from(b.hypervisor_type.clone()), &fleet.hypervisor_types)?,
        12 => Arc::new(Int64Array::from(b.hypervisor_version.clone())),
        13 => Arc::new(Int32Array::from(b.failed_builds.clone())),
        14 => Arc::new(BooleanArray::from_iter((0..n).map(|r| Some(b.service_disabled.get(r))))),
        15 => Arc::new(BooleanArray::from_iter((0..n).map(|r| Some(b.service_forced_down.get(r))))),
        16 => Arc::new(Float64Array::from_iter_values(b.service_age_s.iter().map(|a| a + fleet.service_clock))),
        17 => Arc::new(Int32Array::from(b.service_version.clone())),
        _ => Arc::new(UInt32Array::from(b.rc[i - 18].code.clone())),
    })
}

/// The whole batch as an Arrow record batch of [`static_schema`].
pub fn to_record(fleet: &Fleet, b: &HostBatch) -> Result<RecordBatch> {
    let schema = fleet.schema();
    let cols = (0..schema.fields().len()).map(|i| column(fleet, b, i)).collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, cols)?)
}
