//! Query results as CSV, JSON rows, a text table or an Arrow IPC file
//! (shared by `quiver query` and `POST /v1/query`).

use anyhow::Result;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

/// Rows as a JSON array of objects.
///
/// # Errors
/// A column type arrow-json cannot write.
pub fn json_rows(batches: &[RecordBatch]) -> Result<serde_json::Value> {
    let mut w = arrow_json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    w.write_batches(&refs)?;
    w.finish()?;
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// CSV with a header row.
///
/// # Errors
/// A column type arrow-csv cannot write.
pub fn csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(Vec::new());
    if batches.is_empty() {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Ok(format!("{}\n", names.join(",")).into_bytes());
    }
    for b in batches {
        w.write(b)?;
    }
    Ok(w.into_inner())
}

/// A text table.
///
/// # Errors
/// A column type the pretty printer cannot show.
pub fn table(batches: &[RecordBatch]) -> Result<String> {
    Ok(arrow_cast::pretty::pretty_format_batches(batches)?.to_string())
}

/// An Arrow IPC file.
///
/// # Errors
/// An encoding failure.
pub fn arrow_file(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut w = arrow_ipc::writer::FileWriter::try_new(Vec::new(), schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    Ok(w.into_inner()?)
}
