//! `training-curves.png`: loss and accuracy per epoch (training, validation when there is some, and the test
//! result of the last epoch), drawn
//! with plotters on a bitmap. Text needs a TrueType font; the usual system fonts are looked up (DejaVu,
//! Liberation, FreeFont — Debian's `fonts-dejavu-core`), and without one the chart is drawn without labels.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the first system font found as plotters' `sans-serif`; whether one was found.
fn font() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for path in FONTS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process: leaking one file is intended.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One panel: `series` (label, colour, values per epoch) against epochs 1..=n, plus an optional test point.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(&str, RGBColor, &[f32])],
    test: Option<f32>,
    labels: bool,
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(1).max(1);
    let values = series.iter().flat_map(|s| s.2.iter().copied()).chain(test).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let x_hi = n as f32 + 0.5;
    let mut builder = ChartBuilder::on(area);
    builder.margin(15).x_label_area_size(if labels { 40 } else { 5 }).y_label_area_size(if labels { 60 } else { 5 });
    if labels {
        builder.caption(title, ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(0.5f32..x_hi, (lo - pad)..(hi + pad)).map_err(err)?;
    if labels {
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(n.min(10) + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(err)?;
    } else {
        chart.configure_mesh().disable_x_mesh().disable_y_mesh().draw().map_err(err)?;
    }
    for &(name, colour, ys) in series {
        let points: Vec<(f32, f32)> = ys.iter().enumerate().map(|(i, &y)| ((i + 1) as f32, y)).collect();
        let line = chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2))).map_err(err)?;
        if labels {
            line.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(err)?;
    }
    if let Some(t) = test {
        let red = RGBColor(200, 30, 30);
        let s = chart.draw_series(std::iter::once(TriangleMarker::new((n as f32, t), 8, red.filled()))).map_err(err)?;
        if labels {
            s.label("test (after training)").legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, red.filled()));
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(legend)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

type Series<'s> = (&'s str, RGBColor, &'s [f32]);

/// The training series, and the validation one when it has values.
fn series<'s>(train: Series<'s>, val: Series<'s>) -> Vec<Series<'s>> {
    if val.2.is_empty() { vec![train] } else { vec![train, val] }
}

/// Per-epoch values of one run: training loss and accuracy, and validation ones (empty without validation).
pub struct Curves<'a> {
    /// Training loss per epoch.
    pub loss: &'a [f32],
    /// Training accuracy per epoch.
    pub accuracy: &'a [f32],
    /// Validation loss per epoch.
    pub val_loss: &'a [f32],
    /// Validation accuracy per epoch.
    pub val_accuracy: &'a [f32],
}

/// Draws the loss and accuracy curves into `path` (PNG, 1200×500). Returns whether text could be drawn.
pub fn training_curves(path: &Path, c: &Curves<'_>, test: Option<(f32, f32)>, title: &str) -> Result<bool, String> {
    let labels = font();
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = if labels { root.titled(title, ("sans-serif", 26)).map_err(|e| e.to_string())? } else { root };
    let (left, right) = root.split_horizontally(600);
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let green = RGBColor(44, 160, 44);
    let losses = series(("training loss", blue, c.loss), ("validation loss", green, c.val_loss));
    panel(&left, "loss", &losses, test.map(|t| t.0), labels, SeriesLabelPosition::UpperRight)?;
    let accs = series(("training accuracy", orange, c.accuracy), ("validation accuracy", green, c.val_accuracy));
    panel(&right, "accuracy", &accs, test.map(|t| t.1), labels, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(labels)
}
