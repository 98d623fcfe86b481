//! PNG plots: validation loss (left) and accuracy (right) against rounds.

use super::Record;
use crate::error::Error;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Register the bundled font once, before any text is drawn.
fn register() {
    REGISTER.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub(super) const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(31, 31, 120),
];

/// A sweep variant's curve: its label and `(x, left, right)` points (round, loss, accuracy by
/// default).
pub type Curve = (String, Vec<(f64, f64, f64)>);

/// A named line: `(round, value)` points.
type Line = (String, Vec<(f64, f64)>);

/// One run's plot: mean over nodes, mean model, FO and ZO means.
pub fn plot(path: &Path, title: &str, records: &[Record]) -> Result<(), Error> {
    type Get = fn(&Record) -> Option<f64>;
    let pick = |specs: [(&str, Get); 4]| -> Vec<Line> {
        specs
            .iter()
            .map(|(name, f)| {
                (
                    name.to_string(),
                    records.iter().filter_map(|r| f(r).map(|v| (r.round as f64, v))).collect(),
                )
            })
            .collect()
    };
    if records.iter().any(|r| r.objective.is_some()) {
        // an objective run: its value, and the best node's, instead of loss and accuracy
        let mean = pick([
            ("mean over nodes", |r| r.objective),
            ("mean point", |r| Some(r.mean_model_val_loss)),
            ("FO nodes", |r| r.fo_val_loss),
            ("ZO nodes", |r| r.zo_val_loss),
        ]);
        let best = vec![(
            "best node".to_string(),
            records.iter().filter_map(|r| r.best_objective.map(|v| (r.round as f64, v))).collect(),
        )];
        return draw_to(path, title, &mean, &best, ["round", "objective", "best node's objective"]);
    }
    let loss = pick([
        ("mean over nodes", |r| Some(r.mean_val_loss)),
        ("mean model", |r| Some(r.mean_model_val_loss)),
        ("FO nodes", |r| r.fo_val_loss),
        ("ZO nodes", |r| r.zo_val_loss),
    ]);
    let acc = pick([
        ("mean over nodes", |r| Some(r.mean_val_acc)),
        ("mean model", |r| Some(r.mean_model_val_acc)),
        ("FO nodes", |r| r.fo_val_acc),
        ("ZO nodes", |r| r.zo_val_acc),
    ]);
    draw_to(path, title, &loss, &acc, ["round", "validation loss", "validation accuracy"])
}

/// A sweep's plot: one line per variant, `(x, left, right)` points (means over seeds), with the
/// axis labels `[x, left, right]`.
pub fn plot_comparison(
    path: &Path,
    title: &str,
    series: &[Curve],
    labels: [&str; 3],
) -> Result<(), Error> {
    let loss: Vec<Line> =
        series.iter().map(|(l, p)| (l.clone(), p.iter().map(|x| (x.0, x.1)).collect())).collect();
    let acc: Vec<Line> =
        series.iter().map(|(l, p)| (l.clone(), p.iter().map(|x| (x.0, x.2)).collect())).collect();
    draw_to(path, title, &loss, &acc, labels)
}

fn draw_to(
    path: &Path,
    title: &str,
    loss: &[Line],
    acc: &[Line],
    labels: [&str; 3],
) -> Result<(), Error> {
    render(path, |tmp| draw(tmp, title, loss, acc, labels))
}

/// Draw a PNG with `draw` to a temporary file, then rename: never a half-written plot.
pub(super) fn render(
    path: &Path,
    draw: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), Error> {
    register();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    draw(&tmp).map_err(|e| Error::Plot { path: path.into(), problem: e })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The legend box every hdo plot draws.
pub(super) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw(
    file: &Path,
    title: &str,
    loss: &[Line],
    acc: &[Line],
    labels: [&str; 3],
) -> Result<(), String> {
    let root = BitMapBackend::new(file, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 2));
    for (area, (lines, label)) in panels.iter().zip([(loss, labels[1]), (acc, labels[2])]) {
        let finite = || {
            lines.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let max_x = finite().map(|p| p.0).fold(f64::MIN_POSITIVE, f64::max);
        let min_x = finite().map(|p| p.0).fold(0.0f64, f64::min);
        let (mut lo, mut hi) =
            finite().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(min_x..max_x, (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(labels[0])
            .y_desc(label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, points)) in lines.iter().enumerate() {
            let pts: Vec<(f64, f64)> =
                points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            if pts.is_empty() {
                continue;
            }
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        legend(&mut chart)?;
    }
    root.present().map_err(|e| e.to_string())
}
