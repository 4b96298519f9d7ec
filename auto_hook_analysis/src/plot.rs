//! Figures with `plotters`: heatmaps (patching grids, attention patterns, logit lens)
//! and line plots, written as PNG or SVG (chosen by the file's extension), labelled
//! with tokens and layer / head numbers.

use crate::error::{Error, Result};
use crate::labels::Labelled;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &str = "sans-serif";

/// Registers the embedded DejaVu Sans as the figures' font (once).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../fonts/DejaVuSans.ttf");
        // The embedded file is a valid TrueType font; a failure would only lose text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
}

/// A 2-D grid of values with row and column labels, as a heatmap.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Figure title.
    pub title: String,
    /// `values[row][col]`.
    pub values: Vec<Vec<f32>>,
    /// One label per row (top to bottom).
    pub rows: Vec<String>,
    /// One label per column (left to right).
    pub cols: Vec<String>,
    /// What the rows are (`"layer"`).
    pub row_name: String,
    /// What the columns are (`"position"`).
    pub col_name: String,
}

impl Heatmap {
    /// A heatmap of a 2-D [`Labelled`] grid: rows are its first axis, columns its second.
    ///
    /// ```
    /// use auto_hook_analysis::{Axis, Heatmap, Labelled};
    /// use candle_core::{Device, Tensor};
    /// let grid = Labelled::new(Tensor::new(&[[0.1f32, -0.5], [0.9, 0.0]], &Device::Cpu)?,
    ///     vec![Axis::indices("layer", 2), Axis::new("pos", vec!["The".into(), " cat".into()])])?;
    /// let dir = std::env::temp_dir().join("auto_hook_heatmap_doc");
    /// std::fs::create_dir_all(&dir).unwrap();
    /// Heatmap::from_labelled(&grid, "patching")?.write(dir.join("grid.svg"))?;
    /// Heatmap::from_labelled(&grid, "patching")?.write(dir.join("grid.png"))?;
    /// assert!(std::fs::read_to_string(dir.join("grid.svg")).unwrap().contains("cat"));
    /// # Ok::<(), auto_hook_analysis::Error>(())
    /// ```
    pub fn from_labelled(grid: &Labelled, title: &str) -> Result<Self> {
        let axes = grid.axes();
        if grid.tensor().rank() != 2 || axes.len() != 2 {
            return Err(Error::Input(format!(
                "a heatmap needs a 2-D grid with both axes labelled; got shape {:?} with {} labelled axes",
                grid.tensor().dims(),
                axes.len()
            )));
        }
        Ok(Self {
            title: title.to_owned(),
            values: grid.to_rows()?,
            rows: axes[0].labels.clone(),
            cols: axes[1].labels.clone(),
            row_name: axes[0].name.clone(),
            col_name: axes[1].name.clone(),
        })
    }

    /// Writes the figure to `path`: `.png` or `.svg`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let (rows, cols) = (self.rows.len(), self.cols.len());
        if rows == 0
            || cols == 0
            || self.values.len() != rows
            || self.values.iter().any(|r| r.len() != cols)
        {
            return Err(Error::Input(format!(
                "heatmap `{}`: {rows} row and {cols} column labels for {} rows of values",
                self.title,
                self.values.len()
            )));
        }
        let width = (160 + 28 * cols as u32).clamp(480, 2400);
        let height = (140 + 22 * rows as u32).clamp(320, 2000);
        write_figure(path.as_ref(), (width, height), self)
    }

    fn draw_on<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        let (rows, cols) = (self.rows.len(), self.cols.len());
        let (lo, hi) = value_range(self.values.iter().flatten().copied());
        let colour = Colours::new(lo, hi);
        root.fill(&WHITE).map_err(plot_err)?;
        let (main, bar) = root.split_horizontally(root.dim_in_pixel().0 as i32 - 110);
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, (FONT, 20))
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5f64..cols as f64 - 0.5, -0.5f64..rows as f64 - 0.5)
            .map_err(plot_err)?;
        let col_label = |v: &f64| label_at(&self.cols, *v);
        let row_label = |v: &f64| label_at(&self.rows, rows as f64 - 1.0 - *v);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols + 1)
            .y_labels(rows + 1)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .x_label_style(FontDesc::from((FONT, 12)).transform(FontTransform::Rotate90))
            .y_label_style((FONT, 12))
            .x_desc(&self.col_name)
            .y_desc(&self.row_name)
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        let cells = self.values.iter().enumerate().flat_map(|(r, row)| {
            let y = (rows - 1 - r) as f64;
            row.iter().enumerate().map(move |(c, &v)| {
                let x = c as f64;
                Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    colour.of(v).filled(),
                )
            })
        });
        chart.draw_series(cells).map_err(plot_err)?;
        draw_colour_bar(&bar, &colour)
    }
}

/// The label of the cell whose centre is `v` (an integer), or nothing between cells.
fn label_at(labels: &[String], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

/// Smallest and largest finite value (0..1 when there is none).
fn value_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        (lo, hi) = (lo.min(v), hi.max(v));
    }
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Blue–white–red around zero for signed values, white–red for values of one sign.
#[derive(Clone, Copy)]
struct Colours {
    lo: f32,
    hi: f32,
    signed: bool,
}

impl Colours {
    fn new(lo: f32, hi: f32) -> Self {
        let signed = lo < 0.0 && hi > 0.0;
        let m = lo.abs().max(hi.abs());
        if signed {
            Self {
                lo: -m,
                hi: m,
                signed,
            }
        } else {
            Self { lo, hi, signed }
        }
    }

    fn of(&self, v: f32) -> RGBColor {
        if !v.is_finite() {
            return RGBColor(128, 128, 128);
        }
        let t = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        let mix = |a: (u8, u8, u8), b: (u8, u8, u8), t: f32| {
            let m = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * t).round() as u8;
            RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
        };
        let (blue, white, red) = ((33, 102, 172), (247, 247, 247), (178, 24, 43));
        match (self.signed, t < 0.5) {
            (true, true) => mix(blue, white, t * 2.0),
            (true, false) => mix(white, red, t * 2.0 - 1.0),
            (false, _) if self.lo < 0.0 => mix(blue, white, t),
            (false, _) => mix(white, red, t),
        }
    }
}

fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    colour: &Colours,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(80)
        .margin_right(10)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1.0, colour.lo as f64..colour.hi as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_style((FONT, 11))
        .draw()
        .map_err(plot_err)?;
    let steps = 100;
    let span = (colour.hi - colour.lo) as f64;
    let strips = (0..steps).map(|i| {
        let a = colour.lo as f64 + span * i as f64 / steps as f64;
        let b = a + span / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            colour.of(((a + b) / 2.0) as f32).filled(),
        )
    });
    chart.draw_series(strips).map_err(plot_err)?;
    Ok(())
}

/// Lines over a labelled x axis (layers, positions), one per named series.
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// Figure title.
    pub title: String,
    /// One label per x position.
    pub x: Vec<String>,
    /// What the x axis is (`"layer"`).
    pub x_name: String,
    /// What the y axis is (`"logit difference"`).
    pub y_name: String,
    /// `(name, values)`, each with one value per x position.
    pub series: Vec<(String, Vec<f32>)>,
}

impl LinePlot {
    /// Writes the figure to `path`: `.png` or `.svg`.
    ///
    /// ```
    /// use auto_hook_analysis::LinePlot;
    /// let plot = LinePlot { title: "rank of ' Paris'".into(), x: vec!["0".into(), "1".into(), "2".into()],
    ///     x_name: "layer".into(), y_name: "rank".into(), series: vec![("Paris".into(), vec![40.0, 3.0, 0.0])] };
    /// let path = std::env::temp_dir().join("auto_hook_line_doc.svg");
    /// plot.write(&path)?;
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("Paris"));
    /// # Ok::<(), auto_hook_analysis::Error>(())
    /// ```
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let n = self.x.len();
        if n == 0 || self.series.iter().any(|(_, v)| v.len() != n) {
            return Err(Error::Input(format!(
                "line plot `{}`: every series needs one value per x label ({n})",
                self.title
            )));
        }
        write_figure(path.as_ref(), (800, 480), self)
    }

    fn draw_on<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(plot_err)?;
        let (lo, hi) = value_range(self.series.iter().flat_map(|(_, v)| v.iter().copied()));
        let pad = (hi - lo) as f64 * 0.05;
        let n = self.x.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, 20))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, lo as f64 - pad..hi as f64 + pad)
            .map_err(plot_err)?;
        let x_label = |v: &f64| label_at(&self.x, *v);
        chart
            .configure_mesh()
            .x_labels((n + 1).min(40))
            .x_label_formatter(&x_label)
            .label_style((FONT, 12))
            .x_desc(&self.x_name)
            .y_desc(&self.y_name)
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        for (i, (name, values)) in self.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let points = values
                .iter()
                .enumerate()
                .map(|(x, &y)| (x as f64, y as f64));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

/// A figure that draws itself on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()>;
}

impl Figure for Heatmap {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        self.draw_on(root)
    }
}

impl Figure for LinePlot {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        self.draw_on(root)
    }
}

/// Draws on a PNG or SVG backend chosen by `path`'s extension, then writes the file.
fn write_figure(path: &Path, size: (u32, u32), figure: &impl Figure) -> Result<()> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "png" => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            figure.draw(root.clone())?;
            root.present().map_err(plot_err)
        }
        "svg" => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            figure.draw(root.clone())?;
            root.present().map_err(plot_err)
        }
        _ => Err(Error::Plot(format!(
            "{}: a figure is written as .png or .svg",
            path.display()
        ))),
    }
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}
