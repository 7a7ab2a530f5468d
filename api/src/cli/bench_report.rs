//! `quiver bench report`: a run document as Markdown tables, one per kind
//! of workload, with the machine and the noise flags: what the README's
//! speed tables are made from.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use quiver_benches::run_document::{RunDocument, WorkloadResult};
use quiver_benches::workloads::Kind;

use super::bench_run::num;

/// Arguments of `quiver bench report`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  quiver bench run --tag engine --out engine.json && quiver bench report engine.json")]
pub struct ReportArgs {
    /// A run document from `quiver bench run`.
    #[arg(value_name = "RUN.json")]
    pub run: PathBuf,
}

type Column = (&'static str, fn(&WorkloadResult) -> String);

fn med(r: &WorkloadResult, fig: &str) -> String {
    r.figures.get(fig).map_or_else(|| "-".into(), |f| num(f.median))
}

/// `median [min-max]` of a figure.
fn range(r: &WorkloadResult, fig: &str) -> String {
    r.figures.get(fig).map_or_else(|| "-".into(), |f| format!("{} [{}-{}]", num(f.median), num(f.min), num(f.max)))
}

fn times(r: &WorkloadResult, fig: &str) -> String {
    r.figures.get(fig).map_or_else(|| "-".into(), |f| format!("{:.1}x", f.median))
}

fn spread(r: &WorkloadResult, fig: &str) -> String {
    r.figures.get(fig).map_or_else(|| "-".into(), |f| format!("{:.0}%", 100.0 * f.spread))
}

fn flag(r: &WorkloadResult) -> String {
    if r.noisy { "noisy".into() } else { String::new() }
}

fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Decision => vec![
            ("workload", |r| r.name.clone()),
            ("decision ms", |r| range(r, "decision_ms")),
            ("spread", |r| spread(r, "decision_ms")),
            ("vs row-by-row", |r| times(r, "speedup_vs_rowwise")),
            ("vs Nova", |r| times(r, "speedup_vs_nova")),
            ("floor ms (pool / 1 thread)", |r| format!("{} / {}", med(r, "floor_ms"), med(r, "floor_1thread_ms"))),
            ("x floor", |r| times(r, "decision_over_floor")),
            ("B/host read", |r| med(r, "decision_bytes_per_host")),
            ("claim ns", |r| med(r, "claim_ns")),
            ("", flag),
        ],
        Kind::Simulate => vec![
            ("workload", |r| r.name.clone()),
            ("events/s", |r| range(r, "events_per_s")),
            ("spread", |r| spread(r, "events_per_s")),
            ("full pipeline events/s", |r| med(r, "full_events_per_s")),
            ("speed-up", |r| times(r, "speedup_vs_full")),
            ("events", |r| med(r, "events")),
            ("", flag),
        ],
        Kind::Boots => vec![
            ("workload", |r| r.name.clone()),
            ("boots/s", |r| range(r, "boots_per_s")),
            ("boot ms p50", |r| med(r, "boot_ms")),
            ("bare claims/s", |r| med(r, "claims_per_s")),
            ("claims / boots", |r| times(r, "claims_over_boots")),
            ("", flag),
        ],
        Kind::Candidates => vec![
            ("workload", |r| r.name.clone()),
            ("GET /allocation_candidates ms", |r| range(r, "candidates_ms")),
            ("spread", |r| spread(r, "candidates_ms")),
            ("GET / ms", |r| med(r, "floor_ms")),
            ("x GET /", |r| times(r, "over_floor")),
            ("real Placement ms", |r| med(r, "placement_ms")),
            ("vs Placement", |r| times(r, "speedup_vs_placement")),
            ("candidates", |r| med(r, "allocation_requests")),
            ("", flag),
        ],
    }
}

/// The Markdown of a run document.
pub fn markdown(doc: &RunDocument) -> String {
    let m = &doc.machine;
    let mut out = format!(
        "Quiver {}{} on {} ({} CPUs, {} pool threads, {:.0} GiB), {}{}.\n",
        doc.quiver_version,
        doc.git_commit.as_deref().map_or_else(String::new, |c| format!(" ({c})")),
        m.cpu_model,
        m.cpus,
        m.pool_threads,
        m.memory_gib,
        doc.started,
        if doc.noisy { "; some figures are flagged noisy" } else { "" }
    );
    for kind in [Kind::Decision, Kind::Simulate, Kind::Boots, Kind::Candidates] {
        let rows: Vec<&WorkloadResult> =
            doc.results.iter().filter(|r| r.workload.kind == kind && r.error.is_none()).collect();
        if rows.is_empty() {
            continue;
        }
        // columns with nothing in any row are left out
        let has_value =
            |f: &fn(&WorkloadResult) -> String| rows.iter().any(|r| !matches!(f(r).as_str(), "-" | "- / -" | ""));
        let cols: Vec<Column> = columns(kind).into_iter().filter(|(_, f)| has_value(f)).collect();
        out.push('\n');
        out.push_str(&format!("| {} |\n", cols.iter().map(|c| c.0).collect::<Vec<_>>().join(" | ")));
        out.push_str(&format!(
            "|{}|\n",
            cols.iter().enumerate().map(|(i, _)| if i == 0 { "---" } else { "---:" }).collect::<Vec<_>>().join("|")
        ));
        for r in rows {
            out.push_str(&format!("| {} |\n", cols.iter().map(|c| c.1(r)).collect::<Vec<_>>().join(" | ")));
        }
    }
    let failed: Vec<&WorkloadResult> = doc.results.iter().filter(|r| r.error.is_some()).collect();
    for r in failed {
        out.push_str(&format!("\n{} failed: {}\n", r.name, r.error.as_deref().unwrap_or("")));
    }
    out
}

/// Runs `quiver bench report`.
///
/// # Errors
/// An unreadable or malformed run document.
pub fn run(a: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.run).with_context(|| format!("cannot read {}", a.run.display()))?;
    let doc: RunDocument = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a `quiver bench run` document", a.run.display()))?;
    print!("{}", markdown(&doc));
    Ok(())
}
