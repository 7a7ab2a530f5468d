//! The heat map of `quiver simulate --sweep`: one panel per metric, the
//! first axis across and the second up (a single row for one axis), each
//! cell the metric at that point (the best over any further axes), darker
//! for better, the best cell outlined (PNG and SVG from one routine).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use quiver_engine::sim::sweep::{METRICS, Sweep, short};

use super::plots::register_font;

/// Writes the heat map of `s` as PNG and SVG.
///
/// # Errors
/// A file that cannot be written; a sweep without points.
pub fn heat_map(s: &Sweep, png: &Path, svg: &Path) -> Result<()> {
    register_font();
    let size = (520 * METRICS.len() as u32, 520);
    draw(BitMapBackend::new(png, size).into_drawing_area(), s)?;
    draw(SVGBackend::new(svg, size).into_drawing_area(), s)?;
    Ok(())
}

/// The metric per (x, y) cell: the best (least) over the other axes.
fn cells(s: &Sweep, metric: &str) -> Vec<Vec<Option<f64>>> {
    let nx = s.axes.first().map_or(1, |a| a.values.len());
    let ny = s.axes.get(1).map_or(1, |a| a.values.len());
    let mut out = vec![vec![None::<f64>; ny]; nx];
    for p in &s.points {
        let (ix, iy) = cell_of(s, &p.values);
        let v = p.metric(metric);
        let c = &mut out[ix][iy];
        *c = Some(c.map_or(v, |x| x.min(v)));
    }
    out
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &Sweep) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {x}");
    root.fill(&WHITE).map_err(e)?;
    let x_axis = s.axes.first().ok_or_else(|| anyhow!("plot: a sweep without axes"))?;
    let y_axis = s.axes.get(1);
    let nx = x_axis.values.len();
    let ny = y_axis.map_or(1, |a| a.values.len());
    // Cell i spans i - 0.5 .. i + 0.5, so integer ticks sit in the middle.
    let label = |vals: &[f64], x: f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        vals.get(i as usize).map_or(String::new(), |v| format!("{v}"))
    };
    for (area, metric) in root.split_evenly((1, METRICS.len())).iter().zip(METRICS) {
        let grid = cells(s, metric);
        let all: Vec<f64> = grid.iter().flatten().flatten().copied().collect();
        let (lo, hi) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let mut chart = ChartBuilder::on(area)
            .caption(metric.replace('_', " "), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(if y_axis.is_some() { 60 } else { 10 })
            .build_cartesian_2d(-0.5f64..nx as f64 - 0.5, -0.5f64..ny as f64 - 0.5)
            .map_err(e)?;
        let xs = x_axis.values.clone();
        let ys = y_axis.map(|a| a.values.clone()).unwrap_or_default();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(short(&x_axis.option))
            .y_desc(y_axis.map_or("", |a| short(&a.option)))
            .x_labels(nx.min(12))
            .y_labels(ny.min(12))
            .x_label_formatter(&|x| label(&xs, *x))
            .y_label_formatter(&|y| label(&ys, *y))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        let best = s.best.get(metric).map(|&i| cell_of(s, &s.points[i].values));
        for (ix, col) in grid.iter().enumerate() {
            for (iy, v) in col.iter().enumerate() {
                let Some(v) = v else { continue };
                // Darker is better: the colormap's low end for the least.
                let t = if hi > lo { (hi - v) / (hi - lo) } else { 1.0 };
                let color = ViridisRGB::get_color(1.0 - t as f32);
                let (x, y) = (ix as f64 - 0.5, iy as f64 - 0.5);
                chart
                    .draw_series(std::iter::once(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())))
                    .map_err(e)?;
                let text_color = if t > 0.5 { WHITE } else { BLACK };
                let shown =
                    if metric == "fragmentation_mean" { format!("{:.2}%", v * 100.0) } else { format!("{v:.0}") };
                chart
                    .draw_series(std::iter::once(Text::new(
                        shown,
                        (x + 0.5, y + 0.5),
                        ("sans-serif", 12).into_font().color(&text_color).pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        )),
                    )))
                    .map_err(e)?;
                if best == Some((ix, iy)) {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x + 0.03, y + 0.03), (x + 0.97, y + 0.97)],
                            RED.stroke_width(3),
                        )))
                        .map_err(e)?;
                }
            }
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The (x, y) cell of a point with axis values `values`.
fn cell_of(s: &Sweep, values: &[f64]) -> (usize, usize) {
    let at = |k: usize| {
        s.axes.get(k).and_then(|a| values.get(k).and_then(|v| a.values.iter().position(|x| x == v))).unwrap_or(0)
    };
    (at(0), at(1))
}
