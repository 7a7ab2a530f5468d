//! `quiver simulate --sweep`: the grid of Nova option values replayed in
//! parallel, a table of every point, the best per metric, and a heat map.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_engine::Fleet;
use quiver_engine::sim::sweep::{METRICS, Sweep, SweepAxis, grid, sweep};
use quiver_engine::sim::{Policy, SimOptions, Workload};

use super::simulate::SimulateArgs;

/// Runs the sweep of `a.sweeps` over `base`.
///
/// # Errors
/// A bad axis or option (named), a replay error, outputs not written.
pub fn run(a: &SimulateArgs, fleet: &Fleet, workload: &Workload, base: &Policy, opts: &SimOptions) -> Result<()> {
    let axes: Vec<SweepAxis> = a.sweeps.iter().map(|s| SweepAxis::parse(s)).collect::<Result<_, _>>()?;
    let total = grid(base, &axes)?.len();
    eprintln!("sweep: {total} points over {} axes, replayed in parallel", axes.len());
    let bar = ProgressBar::new(total as u64);
    bar.set_style(ProgressStyle::with_template("[{bar:30}] {pos}/{len} points {elapsed} eta {eta}  {msg}")?);
    let s = sweep(fleet, workload, base, &axes, opts, &|p| {
        bar.inc(1);
        bar.set_message(format!("{}: {} rejected", p.policy, p.rejected));
    })?;
    bar.finish_and_clear();
    print!("{}", render(&s));
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("sweep.json"), serde_json::to_string_pretty(&s)? + "\n")?;
        super::plot_sweep::heat_map(&s, &out.join("sweep.png"), &out.join("sweep.svg"))?;
        eprintln!("wrote {0}/sweep.json, {0}/sweep.png, {0}/sweep.svg", out.display());
    }
    Ok(())
}

/// Every point, then the best per metric.
pub fn render(s: &Sweep) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(["policy", "rejected", "peak hosts in use", "fragmentation", "events/s"]);
    for p in &s.points {
        t.add_row([
            p.policy.clone(),
            p.rejected.to_string(),
            p.peak_hosts_in_use.to_string(),
            format!("{:.1}%", p.fragmentation_mean * 100.0),
            format!("{:.0}", p.events_per_second),
        ]);
    }
    let mut out = format!("{t}\n");
    for m in METRICS {
        if let Some(&i) = s.best.get(m) {
            let p = &s.points[i];
            let v = if m == "fragmentation_mean" {
                format!("{:.1}%", p.fragmentation_mean * 100.0)
            } else {
                format!("{}", p.metric(m))
            };
            out.push_str(&format!("best {}: {} ({v})\n", m.replace('_', " "), p.policy));
        }
    }
    out.push_str(&format!("{} points in {:.2} s\n", s.points.len(), s.seconds));
    out
}
