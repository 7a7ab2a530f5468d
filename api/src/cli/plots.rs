//! Plots of simulation timelines (plotters; PNG and SVG from one drawing
//! routine): per policy, utilization of each resource class in use, hosts
//! in use, cumulative rejections and fragmentation over simulated time.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use quiver_engine::sim::{PolicyRun, Sample};

/// DejaVu Sans (Bitstream Vera license): text in PNGs must not depend on
/// the fonts a machine happens to have.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Makes the bundled font plotters' `sans-serif` (once per process).
pub(super) fn register_font() {
    static FONT_ONCE: std::sync::Once = std::sync::Once::new();
    FONT_ONCE.call_once(|| {
        // Fails only on a corrupt font file, which include_bytes! rules out.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Line colors per policy (colorblind-safe, Okabe-Ito).
pub(super) const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

struct Panel {
    title: String,
    y_desc: &'static str,
    percent: bool,
    value: Box<dyn Fn(&Sample) -> f64>,
}

fn panels(runs: &[PolicyRun]) -> Vec<Panel> {
    let mut out = Vec::new();
    let classes = runs.first().map(|r| r.resource_classes.clone()).unwrap_or_default();
    for rc in quiver_engine::sim::classes_in_use(runs) {
        out.push(Panel {
            title: format!("{} utilization", classes[rc]),
            y_desc: "% of capacity",
            percent: true,
            value: Box::new(move |s| s.utilization[rc] * 100.0),
        });
    }
    out.push(Panel {
        title: "Hosts in use".into(),
        y_desc: "hosts",
        percent: false,
        value: Box::new(|s| s.hosts_in_use as f64),
    });
    out.push(Panel {
        title: "Rejected requests (cumulative)".into(),
        y_desc: "requests",
        percent: false,
        value: Box::new(|s| s.rejected as f64),
    });
    out.push(Panel {
        title: "Fragmentation (most common shape)".into(),
        y_desc: "% of pooled fit",
        percent: true,
        value: Box::new(|s| s.fragmentation * 100.0),
    });
    out
}

/// Seconds to a readable unit for the x axis.
fn time_unit(span: f64) -> (f64, &'static str) {
    if span > 3.0 * 86_400.0 {
        (86_400.0, "simulated time (days)")
    } else if span > 3.0 * 3600.0 {
        (3600.0, "simulated time (hours)")
    } else {
        (1.0, "simulated time (s)")
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[PolicyRun]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {x}");
    root.fill(&WHITE).map_err(e)?;
    let panels = panels(runs);
    let cols = 2;
    let rows = panels.len().div_ceil(cols);
    let t_end = runs.iter().flat_map(|r| r.timeline.last()).map(|s| s.time).fold(0.0, f64::max);
    let t_start = runs.iter().flat_map(|r| r.timeline.first()).map(|s| s.time).fold(t_end, f64::min);
    let (unit, x_desc) = time_unit(t_end - t_start);
    let (x0, x1) = (t_start / unit, (t_end / unit).max(t_start / unit + 1e-9));
    let areas = root.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(&panels) {
        let y_max = runs.iter().flat_map(|r| r.timeline.iter().map(|s| (p.value)(s))).fold(0.0, f64::max);
        let y_top = if p.percent { y_max.max(1.0) * 1.05 } else { (y_max * 1.05).max(1.0) };
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y_top)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(p.y_desc)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(e)?;
        for (i, r) in runs.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    r.timeline.iter().map(|s| (s.time / unit, (p.value)(s))),
                    color.stroke_width(2),
                ))
                .map_err(e)?
                .label(r.policy.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Writes the simulation figure as PNG and SVG.
///
/// # Errors
/// A file that cannot be written.
pub fn simulation(runs: &[PolicyRun], png: &Path, svg: &Path) -> Result<()> {
    register_font();
    let rows = panels(runs).len().div_ceil(2) as u32;
    let size = (1400, 360 * rows);
    draw(BitMapBackend::new(png, size).into_drawing_area(), runs)?;
    draw(SVGBackend::new(svg, size).into_drawing_area(), runs)?;
    Ok(())
}
