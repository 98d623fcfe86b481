//! The paths of the nodes of a two-dimensional objective (`trajectories.png`), as the LSGD
//! paper's Figure 7 draws them.

use super::Record;
use super::plot::{PALETTE, legend, render};
use crate::error::Error;
use plotters::prelude::*;
use std::path::Path;

/// Each node's `(x, y)` at every evaluation: one line per node, a circle where it starts and a
/// cross where it ends. Nothing is drawn when the records carry no two-dimensional points.
pub fn plot_trajectories(path: &Path, title: &str, records: &[Record]) -> Result<(), Error> {
    let nodes = records.iter().map(|r| r.nodes.len()).max().unwrap_or(0);
    let paths: Vec<Vec<(f64, f64)>> = (0..nodes)
        .map(|i| {
            records
                .iter()
                .filter_map(|r| r.nodes.get(i))
                .filter(|e| e.point.len() == 2 && e.point.iter().all(|v| v.is_finite()))
                .map(|e| (e.point[0], e.point[1]))
                .collect()
        })
        .collect();
    if paths.iter().all(Vec::is_empty) {
        return Ok(());
    }
    render(path, |tmp| draw(tmp, title, &paths))
}

fn draw(file: &Path, title: &str, paths: &[Vec<(f64, f64)>]) -> Result<(), String> {
    let all = || paths.iter().flatten();
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((x1 - x0).max(y1 - y0) * 0.05).max(1e-3);
    let root = BitMapBackend::new(file, (720, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, points) in paths.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("node {i}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        let (first, last) = (points[0], points[points.len() - 1]);
        chart.draw_series([Circle::new(first, 5, c.filled())]).map_err(|e| e.to_string())?;
        chart.draw_series([Cross::new(last, 7, c.stroke_width(3))]).map_err(|e| e.to_string())?;
    }
    legend(&mut chart)?;
    root.present().map_err(|e| e.to_string())
}
