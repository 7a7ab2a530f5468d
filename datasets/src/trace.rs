//! Workload traces from CSV or Parquet files: one row per server request.
//!
//! Columns (by header name; only `arrival` is required):
//!
//! | column | meaning |
//! |---|---|
//! | `arrival` | seconds from the trace's origin |
//! | `departure` or `lifetime` | when the server leaves (absolute) or how long it lives; empty: it stays |
//! | `flavor` | a flavor name (Nova's classic `m1.tiny` ... `m1.xlarge`), or a label when the resources are explicit |
//! | `vcpus`, `memory_mb`, `disk_gb` | explicit resources (override the flavor's) |
//! | `resources` | more Placement amounts, `RC=N;RC=N` (`CUSTOM_GPU_MILLI=500`) |
//! | `project` | project id |
//! | `availability_zone` | requested AZ |
//! | `server_group`, `server_group_policy` | a group name (created on first use) and its policy (default `anti-affinity`) |
//! | `required_traits` | `TRAIT;TRAIT` |
//!
//! A bad value is reported with its row number (the first data row is row
//! 1) and column.

use std::collections::HashMap;
use std::path::Path;

use quiver_engine::request::{BootRequest, Flavor};
use quiver_engine::sim::{SimRequest, Workload, WorkloadBuilder};
use quiver_engine::{EngineError, Result};

/// Nova's classic default flavors: `(name, vcpus, memory_mb, root_gb)`.
pub const CLASSIC_FLAVORS: [(&str, u32, u32, u32); 5] = [
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
];

/// The flavor named `name` among [`CLASSIC_FLAVORS`].
pub fn classic_flavor(name: &str) -> Option<Flavor> {
    CLASSIC_FLAVORS.iter().find(|f| f.0 == name).map(|&(n, vcpus, memory_mb, root_gb)| Flavor {
        name: n.into(),
        flavorid: Some(n.into()),
        vcpus,
        memory_mb,
        root_gb,
        ..Default::default()
    })
}

/// Reads a trace; the format follows the extension (`.csv` or `.parquet`).
///
/// # Errors
/// An unreadable file, an unknown extension, or a bad row (row number and
/// column named).
pub fn read_trace(path: &Path) -> Result<Workload> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let what = path.display().to_string();
    let err = |e: String| EngineError::invalid(format!("trace {what}: {e}"));
    let mut rows = TraceRows::default();
    match ext.as_str() {
        "csv" => {
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            return csv_rows(file, &what);
        }
        "parquet" => {
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| err(e.to_string()))?;
            let mut n = 0usize;
            let mut header_done = false;
            for batch in reader {
                let batch = batch.map_err(|e| err(e.to_string()))?;
                if !header_done {
                    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
                    rows.header(&names).map_err(err)?;
                    header_done = true;
                }
                let opts = arrow_cast::display::FormatOptions::default().with_null("");
                let fmts: Vec<_> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &opts))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| err(e.to_string()))?;
                for i in 0..batch.num_rows() {
                    n += 1;
                    let fields: Vec<String> = fmts.iter().map(|f| f.value(i).to_string()).collect();
                    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                    rows.row(n, &refs).map_err(err)?;
                }
            }
        }
        other => return Err(err(format!("unknown trace format {other:?} (use .csv or .parquet)"))),
    }
    Ok(rows.builder.finish())
}

/// Reads a CSV trace from text (`what` names it in errors): the columns
/// of [`read_trace`]'s CSV files.
///
/// # Errors
/// A bad header or row (row number and column named).
pub fn parse_trace_csv(text: &str, what: &str) -> Result<Workload> {
    csv_rows(text.as_bytes(), what)
}

fn csv_rows(input: impl std::io::Read, what: &str) -> Result<Workload> {
    let err = |e: String| EngineError::invalid(format!("trace {what}: {e}"));
    let mut rows = TraceRows::default();
    let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let header: Vec<String> = r.headers().map_err(|e| err(e.to_string()))?.iter().map(str::to_owned).collect();
    rows.header(&header).map_err(err)?;
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| err(format!("row {}: {e}", i + 1)))?;
        let fields: Vec<&str> = rec.iter().collect();
        rows.row(i + 1, &fields).map_err(err)?;
    }
    Ok(rows.builder.finish())
}

/// Parses rows of strings by column name.
#[derive(Default)]
struct TraceRows {
    cols: HashMap<String, usize>,
    builder: WorkloadBuilder,
}

impl TraceRows {
    fn header(&mut self, names: &[String]) -> std::result::Result<(), String> {
        self.cols = names.iter().enumerate().map(|(i, n)| (n.trim().to_owned(), i)).collect();
        if !self.cols.contains_key("arrival") {
            return Err(format!("no `arrival` column (columns: {})", names.join(", ")));
        }
        if !self.cols.contains_key("flavor") && !self.cols.contains_key("vcpus") {
            return Err("neither a `flavor` nor a `vcpus` column: every request needs resources".into());
        }
        Ok(())
    }

    fn row(&mut self, n: usize, fields: &[&str]) -> std::result::Result<(), String> {
        let get = |c: &str| self.cols.get(c).and_then(|&i| fields.get(i)).map(|s| s.trim()).filter(|s| !s.is_empty());
        let bad = |c: &str, v: &str, want: &str| format!("row {n}: column {c}: {v:?} is not {want}");
        let num = |c: &str| -> std::result::Result<Option<f64>, String> {
            get(c)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x >= 0.0)
                        .ok_or_else(|| bad(c, v, "a number >= 0"))
                })
                .transpose()
        };
        let int = |c: &str| -> std::result::Result<Option<u32>, String> {
            get(c).map(|v| v.parse::<u32>().map_err(|_| bad(c, v, "a non-negative integer"))).transpose()
        };
        let arrival = num("arrival")?.ok_or_else(|| format!("row {n}: column arrival is empty"))?;
        let departure = match (num("departure")?, num("lifetime")?) {
            (Some(d), _) => Some(d),
            (None, Some(l)) => Some(arrival + l),
            (None, None) => None,
        };
        let mut flavor = match get("flavor") {
            Some(name) => classic_flavor(name).unwrap_or(Flavor { name: name.into(), ..Default::default() }),
            None => Flavor::default(),
        };
        let known = get("flavor").is_some_and(|f| classic_flavor(f).is_some());
        match int("vcpus")? {
            Some(v) => flavor.vcpus = v,
            None if !known => {
                return Err(match get("flavor") {
                    Some(f) => format!(
                        "row {n}: column flavor: {f:?} is not a known flavor (m1.tiny .. m1.xlarge) and the row has no vcpus"
                    ),
                    None => format!("row {n}: column vcpus is empty"),
                });
            }
            None => {}
        }
        if let Some(m) = int("memory_mb")? {
            flavor.memory_mb = m;
        }
        if let Some(d) = int("disk_gb")? {
            flavor.root_gb = d;
        }
        if flavor.name.is_empty() {
            flavor.name = format!("{}c-{}m-{}g", flavor.vcpus, flavor.memory_mb, flavor.root_gb);
        }
        if let Some(res) = get("resources") {
            for part in res.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (rc, amount) = part.split_once('=').ok_or_else(|| bad("resources", part, "RC=N"))?;
                let amount: u32 =
                    amount.trim().parse().map_err(|_| bad("resources", part, "RC=N with N an integer"))?;
                let rc = rc.trim();
                if rc.is_empty() || !rc.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                    return Err(bad("resources", rc, "a resource class name"));
                }
                flavor.extra_specs.insert(format!("resources:{rc}"), amount.to_string());
            }
        }
        if let Some(traits) = get("required_traits") {
            for t in traits.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                flavor.extra_specs.insert(format!("trait:{t}"), "required".into());
            }
        }
        let req = BootRequest {
            flavor,
            project_id: get("project").map(str::to_owned),
            availability_zone: get("availability_zone").map(str::to_owned),
            ..Default::default()
        };
        let class = self.builder.class(req).map_err(|e| format!("row {n}: {e}"))?;
        let group = match get("server_group") {
            Some(g) => {
                let policy = get("server_group_policy").unwrap_or("anti-affinity");
                if !["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"].contains(&policy) {
                    return Err(bad("server_group_policy", policy, "a server group policy"));
                }
                Some(self.builder.group(g, policy).map_err(|e| format!("row {n}: {e}"))?)
            }
            None => None,
        };
        self.builder.push(SimRequest { arrival, departure, class, group });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_rows_and_interns_shapes() {
        let (_d, p) = write(
            "t.csv",
            "arrival,lifetime,flavor,vcpus,memory_mb,resources,server_group,required_traits\n\
             5,10,m1.small,,,,,\n\
             1,,gpu,4,8192,CUSTOM_GPU_MILLI=500,g1,CUSTOM_GPU_T4\n\
             2,3,m1.small,,,,g1,\n",
        );
        let w = read_trace(&p).unwrap();
        assert_eq!(w.requests.len(), 3);
        assert_eq!(w.requests[0].arrival, 1.0, "sorted by arrival");
        assert_eq!(w.requests[0].departure, None);
        assert_eq!(w.requests[2].departure, Some(15.0));
        assert_eq!(w.classes.len(), 2, "two m1.small rows share a shape");
        let gpu = &w.classes[w.requests[0].class as usize].flavor;
        assert_eq!(gpu.extra_specs.get("resources:CUSTOM_GPU_MILLI").map(String::as_str), Some("500"));
        assert_eq!(gpu.extra_specs.get("trait:CUSTOM_GPU_T4").map(String::as_str), Some("required"));
        assert_eq!(w.groups.len(), 1);
    }

    #[test]
    fn malformed_row_is_reported_with_its_number() {
        let (_d, p) = write("t.csv", "arrival,lifetime,flavor\n0,10,m1.small\n1,10,m1.tiny\n2,ten,m1.small\n");
        let e = read_trace(&p).unwrap_err().to_string();
        assert!(e.contains("row 3") && e.contains("lifetime") && e.contains("\"ten\""), "{e}");
        let (_d, p) = write("t.csv", "arrival,flavor\n0,m1.small\n1,m9.huge\n");
        let e = read_trace(&p).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("m9.huge"), "{e}");
        let (_d, p) = write("t.csv", "arrival,flavor\n0,m1.small,extra\n");
        assert!(read_trace(&p).unwrap_err().to_string().contains("row 1"));
    }
}
