//! `train-head --plot`: loss/accuracy curves and the confusion matrix as PNG files.

use std::path::Path;

use plotters::prelude::*;

use super::{EpochRecord, Metrics};
use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in, so registration cannot fail on the user's machine.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Gpu(format!("drawing a plot: {e}"))
}

fn save_png(path: &Path, buf: Vec<u8>, w: u32, h: u32) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer sized w*h*3");
    crate::fsutil::write_atomic(path, |f| {
        img.write_to(&mut std::io::BufWriter::new(f), image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
}

type Getter = fn(&EpochRecord) -> Option<f64>;
/// One chart: its area, title, y maximum, and the train / validation series.
type Panel<'a, 'b> = (
    &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    &'static str,
    f64,
    Getter,
    Getter,
);

/// `curves.png`: train/validation loss (left) and accuracy (right) per epoch.
pub fn curves(path: &Path, history: &[EpochRecord]) -> Result<()> {
    register_font();
    let (w, h) = (1000u32, 420u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(w / 2);
        let n = history.len().max(1) as f64;
        let max_loss = history
            .iter()
            .flat_map(|r| [r.train_loss, r.val_loss.unwrap_or(0.0)])
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        let panels: [Panel; 2] = [
            (
                &left,
                "loss",
                max_loss,
                |r| Some(r.train_loss),
                |r| r.val_loss,
            ),
            (
                &right,
                "accuracy",
                1.0,
                |r| Some(r.train_accuracy),
                |r| r.val_accuracy,
            ),
        ];
        for (area, name, ymax, train, val) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(1f64..n.max(2.0), 0f64..ymax)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(plot_err)?;
            for (label, get, color) in [("train", train, BLUE), ("validation", val, RED)] {
                let pts: Vec<(f64, f64)> = history
                    .iter()
                    .filter_map(|r| get(r).map(|v| (r.epoch as f64, v)))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    save_png(path, buf, w, h)
}

/// `confusion.png`: the confusion matrix, rows = true class, columns = predicted, shaded by
/// the share of the true class.
pub fn confusion(path: &Path, m: &Metrics) -> Result<()> {
    register_font();
    let k = m.classes.len().max(1);
    let cell = (480 / k as u32).clamp(16, 80);
    let label_w = 160u32;
    let (w, h) = (label_w + cell * k as u32 + 20, 70 + cell * k as u32 + 20);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let title = format!("confusion matrix (accuracy {:.1}%)", 100.0 * m.accuracy);
        root.draw(&Text::new(title, (10, 10), ("sans-serif", 18)))
            .map_err(plot_err)?;
        let font = ("sans-serif", (cell as f64 * 0.35).clamp(9.0, 16.0));
        root.draw(&Text::new("true \\ predicted", (8, 44), font))
            .map_err(plot_err)?;
        let max_chars = (cell as usize / 7).max(2);
        for (p, name) in m.classes.iter().enumerate() {
            let short: String = name.chars().take(max_chars).collect();
            root.draw(&Text::new(
                short,
                (label_w as i32 + p as i32 * cell as i32 + 2, 44),
                font,
            ))
            .map_err(plot_err)?;
        }
        for (t, row) in m.matrix.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = 64 + t as i32 * cell as i32;
            let name: String = m.classes[t].chars().take(20).collect();
            root.draw(&Text::new(name, (8, y + cell as i32 / 3), font))
                .map_err(plot_err)?;
            for (p, &v) in row.iter().enumerate() {
                let x = label_w as i32 + p as i32 * cell as i32;
                let share = v as f64 / total;
                let shade = RGBColor(
                    255 - (share * 200.0) as u8,
                    255 - (share * 120.0) as u8,
                    255,
                );
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 1, y + cell as i32 - 1)],
                    shade.filled(),
                ))
                .map_err(plot_err)?;
                root.draw(&Text::new(
                    v.to_string(),
                    (x + 4, y + cell as i32 / 3),
                    font,
                ))
                .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    save_png(path, buf, w, h)
}
