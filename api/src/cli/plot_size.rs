//! The plot of `quiver plan size`: rejections against hosts added, with
//! the answer marked (PNG and SVG from one drawing routine).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use quiver_engine::plan::Size;

use super::plots::{COLORS, register_font};

/// Writes the rejection curve of `s` as PNG and SVG.
///
/// # Errors
/// A file that cannot be written.
pub fn size_curve(s: &Size, png: &Path, svg: &Path) -> Result<()> {
    register_font();
    draw(BitMapBackend::new(png, (1000, 560)).into_drawing_area(), s)?;
    draw(SVGBackend::new(svg, (1000, 560)).into_drawing_area(), s)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &Size) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {x}");
    root.fill(&WHITE).map_err(e)?;
    let x_max = s.curve.iter().map(|p| p.added).max().unwrap_or(0).max(1) as f64;
    let y_max = s.curve.iter().map(|p| p.rejected).max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Rejections by hosts added: {}", s.shape), ("sans-serif", 15))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max * 1.03, 0.0..y_max * 1.08)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("hosts added")
        .y_desc("requests rejected")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(e)?;
    let color = COLORS[0];
    let points: Vec<(f64, f64)> = s.curve.iter().map(|p| (p.added as f64, p.rejected as f64)).collect();
    chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2))).map_err(e)?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(e)?;
    if let Some(k) = s.added {
        let mark = COLORS[1];
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(k as f64, 0.0), (k as f64, y_max)],
                mark.stroke_width(2),
            )))
            .map_err(e)?
            .label(format!("{k} hosts: no rejection"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], mark.stroke_width(3)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}
