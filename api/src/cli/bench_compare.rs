//! `quiver bench compare`: run documents side by side. The last run is
//! judged against the one before it, figure by figure, with a verdict that
//! accounts for both runs' spread; a headline slower than its workload's
//! threshold is a regression and the exit status is 1. `--plot` draws each
//! workload's headline across every run given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use plotters::prelude::*;
use quiver_benches::compare::{Change, Verdict, compare};
use quiver_benches::run_document::RunDocument;
use quiver_benches::stats::Role;

use super::bench_run::num;

/// Arguments of `quiver bench compare`.
#[derive(Debug, Args)]
#[command(after_help = "Verdicts, per figure (its median in the old and the new run):
  within noise  the runs' middle 80% (p10..p90) overlap, or the ratio of the medians
                lies within 1 + the wider of the two spreads, either way (the spread
                counts as at least 5%, and as 20% for a figure measured fewer than 3 times)
  faster        better beyond the noise (lower for times, higher for rates)
  slower        worse beyond the noise
A headline that is slower by more than its workload's threshold (benches/workloads.toml,
`threshold`, default 25%) is a REGRESSION: the exit status is 1 (2 for bad input).

Examples:
  quiver bench compare before.json after.json
  quiver bench compare bench-runs/*.json --plot bench-plots")]
pub struct CompareArgs {
    /// Run documents from `quiver bench run`, oldest first: the last is
    /// judged against the one before it.
    #[arg(required = true, num_args = 2.., value_name = "RUN.json")]
    pub runs: Vec<PathBuf>,
    /// Show every figure, not only headlines, baselines and ratios.
    #[arg(long)]
    pub all: bool,
    /// Write the changes as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw each workload's headline (median, with its min..max) across
    /// every run given into this directory (PNG and SVG per workload).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

/// The last run regressed: `quiver` exits with status 1.
#[derive(Debug, thiserror::Error)]
#[error("{0} regression(s) beyond their workload's threshold")]
pub struct Regressions(pub usize);

fn read(p: &Path) -> Result<RunDocument> {
    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a `quiver bench run` document", p.display()))
}

/// Runs `quiver bench compare`.
///
/// # Errors
/// An unreadable run document or plot directory, or [`Regressions`].
pub fn run(a: CompareArgs) -> Result<()> {
    let docs = a.runs.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
    let (old, new) = (&docs[docs.len() - 2], &docs[docs.len() - 1]);
    let changes = compare(old, new);
    println!(
        "old: {} ({}, {}){}\nnew: {} ({}, {}){}",
        a.runs[a.runs.len() - 2].display(),
        old.started,
        old.git_commit.as_deref().unwrap_or("?"),
        if old.noisy { " NOISY" } else { "" },
        a.runs[a.runs.len() - 1].display(),
        new.started,
        new.git_commit.as_deref().unwrap_or("?"),
        if new.noisy { " NOISY" } else { "" },
    );
    if old.machine.cpu_model != new.machine.cpu_model || old.machine.cpus != new.machine.cpus {
        println!(
            "! different machines ({} x{} and {} x{}): compare ratios, not absolute figures",
            old.machine.cpu_model, old.machine.cpus, new.machine.cpu_model, new.machine.cpus
        );
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(["workload", "figure", "old", "new", "unit", "change", "verdict"]);
    for c in changes.iter().filter(|c| a.all || c.role != Role::Detail) {
        t.add_row([
            c.workload.clone(),
            c.figure.clone(),
            c.old.map_or_else(|| "-".into(), num),
            c.new.map_or_else(|| "-".into(), num),
            c.unit.clone(),
            if matches!(c.verdict, Verdict::New | Verdict::Gone) {
                String::new()
            } else {
                format!("{:+.1}%", 100.0 * c.change)
            },
            verdict_text(c),
        ]);
    }
    println!("{t}");
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&changes)?)
            .with_context(|| format!("--json: cannot write {}", p.display()))?;
    }
    if let Some(dir) = &a.plot {
        let labels: Vec<String> = a
            .runs
            .iter()
            .map(|p| p.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned()))
            .collect();
        let written = plot_history(dir, &docs, &labels)?;
        println!("plots: {} workload(s) in {}", written, dir.display());
    }
    let regressions = changes.iter().filter(|c| c.regression).count();
    if regressions > 0 {
        return Err(Regressions(regressions).into());
    }
    Ok(())
}

fn verdict_text(c: &Change) -> String {
    if c.regression { format!("REGRESSION (threshold {:.0}%)", 100.0 * c.threshold) } else { c.verdict.to_string() }
}

/// A file name from a workload name (`Decision/10kHosts_default` ->
/// `Decision_10kHosts_default`).
fn file_name(workload: &str) -> String {
    workload.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// One plot per workload that has a headline: its median per run, with a
/// bar from min to max. Returns how many were written.
fn plot_history(dir: &Path, docs: &[RunDocument], labels: &[String]) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("--plot: cannot create {}", dir.display()))?;
    super::plots::register_font();
    let mut names: Vec<&str> = Vec::new();
    for d in docs {
        for r in &d.results {
            if !names.contains(&r.name.as_str()) {
                names.push(&r.name);
            }
        }
    }
    let mut written = 0;
    for name in names {
        // (run index, figure name, median, min, max, unit)
        let points: Vec<(usize, String, f64, f64, f64, String)> = docs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let r = d.results.iter().find(|r| r.name == name)?;
                let (fig, f) = r.headline()?;
                Some((i, fig.to_owned(), f.median, f.min, f.max, f.unit.clone()))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let base = dir.join(file_name(name));
        let png = base.with_extension("png");
        let svg = base.with_extension("svg");
        draw(BitMapBackend::new(&png, (900, 500)).into_drawing_area(), name, &points, labels)?;
        draw(SVGBackend::new(&svg, (900, 500)).into_drawing_area(), name, &points, labels)?;
        written += 1;
    }
    if written == 0 {
        bail!("--plot: no run has a workload with a headline figure");
    }
    Ok(written)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    points: &[(usize, String, f64, f64, f64, String)],
    labels: &[String],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plot {name}: {e}");
    root.fill(&WHITE).map_err(e)?;
    let top = points.iter().map(|p| p.4).fold(0.0f64, f64::max).max(1e-12) * 1.15;
    let n = labels.len();
    let (fig, unit) = (&points[0].1, &points[0].5);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: {fig}"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0..top)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(unit.as_str())
        .x_desc("run")
        .draw()
        .map_err(e)?;
    let color = super::plots::COLORS[0];
    chart.draw_series(LineSeries::new(points.iter().map(|p| (p.0 as f64, p.2)), color.stroke_width(2))).map_err(e)?;
    chart.draw_series(points.iter().map(|p| Circle::new((p.0 as f64, p.2), 4, color.filled()))).map_err(e)?;
    chart
        .draw_series(points.iter().map(|p| PathElement::new(vec![(p.0 as f64, p.3), (p.0 as f64, p.4)], color)))
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
