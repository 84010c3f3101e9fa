//! The figures, drawn with plotters to PNG (bitmap, encoded by `image`) or SVG: class
//! distribution per split, a grid of sample faces, training curves, the confusion matrix and
//! per-class precision/recall/F1.
//!
//! Text is set in DejaVu Sans, embedded in the crate (no system font is looked up), so a
//! figure looks the same on every machine.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use fer_data::{Emotion, IMAGE_SIDE, View};
use fer_model::EpochRecord;
use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::evaluation::{CLASSES, EvalReport};
use crate::summary::SplitCounts;

/// The family name the figures ask plotters for; SVG files name it as it is, so that a
/// viewer uses DejaVu Sans where installed and its own sans-serif otherwise.
const FAMILY: &str = "DejaVu Sans, sans-serif";

/// Dark grey for text and axes.
pub const INK: RGBColor = RGBColor(33, 37, 41);
/// The first series colour (Training, precision, train loss).
pub const BLUE: RGBColor = RGBColor(31, 119, 180);
/// The second series colour (PublicTest, recall, validation).
pub const ORANGE: RGBColor = RGBColor(230, 120, 20);
/// The third series colour (PrivateTest, F1, macro-F1).
pub const GREEN: RGBColor = RGBColor(44, 150, 44);
const LIGHT: RGBColor = RGBColor(225, 228, 232);

/// The two file formats of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format a path's extension asks for (`.png` or `.svg`, any case).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(Error::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters backend.
pub trait Plot {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// Draws the whole figure on `root` (which has [`Plot::size`]).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;

    /// The figure as PNG bytes.
    fn png(&self) -> Result<Vec<u8>> {
        register_font()?;
        let (w, h) = self.size();
        let mut rgb = vec![255u8; w as usize * h as usize * 3];
        {
            let backend = crate::text::CrispText(BitMapBackend::with_buffer(&mut rgb, (w, h)));
            let root = backend.into_drawing_area();
            self.draw(&root).map_err(|e| Error::Draw(e.to_string()))?;
            root.present().map_err(|e| Error::Draw(e.to_string()))?;
        }
        encode_png(&rgb, w, h, image::ExtendedColorType::Rgb8)
    }

    /// The figure as an SVG document.
    fn svg(&self) -> Result<String> {
        register_font()?;
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, self.size()).into_drawing_area();
            self.draw(&root).map_err(|e| Error::Draw(e.to_string()))?;
            root.present().map_err(|e| Error::Draw(e.to_string()))?;
        }
        Ok(text)
    }

    /// The figure in `format`, as file bytes.
    fn render(&self, format: Format) -> Result<Vec<u8>> {
        match format {
            Format::Png => self.png(),
            Format::Svg => self.svg().map(String::into_bytes),
        }
    }

    /// Writes the figure to `path`, as PNG or SVG after its extension.
    fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.render(Format::from_path(path)?)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }
}

/// Makes the embedded font known to plotters (once per process).
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, crate::text::FONT_FILE).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Draw("the embedded font does not load".into()))
    }
}

fn encode_png(pixels: &[u8], w: u32, h: u32, color: image::ExtendedColorType) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(Cursor::new(&mut out))
        .write_image(pixels, w, h, color)
        .map_err(|e| Error::Draw(format!("PNG encoding: {e}")))?;
    Ok(out)
}

/// Text sizes below are given as for a chart of about 800 pixels; the figures are wider
/// (1,000 to 1,200 pixels, shown scaled down in reports), so their text is set larger.
const TEXT_SCALE: f64 = 1.2;

/// The text style of nominal `size` in ink colour.
fn text(size: f64) -> TextStyle<'static> {
    (FAMILY, size * TEXT_SCALE).into_font().color(&INK)
}

/// `28709` -> `28,709`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A title line across the top of `root`; returns the area below it.
fn with_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> std::result::Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    root.titled(title, text(20.0))
}

/// A row of coloured squares with names, drawn from `(x, y)` (pixels of `area`) to the right.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (mut x, y): (i32, i32),
    items: &[(&str, RGBColor)],
) -> DrawResult<DB> {
    let style = text(14.0).pos(Pos::new(HPos::Left, VPos::Center));
    for (name, colour) in items {
        area.draw(&Rectangle::new(
            [(x, y - 6), (x + 12, y + 6)],
            colour.filled(),
        ))?;
        area.draw(&Text::new(name.to_string(), (x + 17, y), style.clone()))?;
        let (w, _) = area.estimate_text_size(name, &style)?;
        x += 17 + w as i32 + 22;
    }
    Ok(())
}

/// Images per class of each split: one horizontal bar chart per split, side by side (the
/// seed notebook's three bar charts in one figure).
pub struct DistributionChart<'a> {
    splits: &'a [SplitCounts],
}

impl<'a> DistributionChart<'a> {
    /// Fails when there is no split to show.
    pub fn new(splits: &'a [SplitCounts]) -> Result<Self> {
        if splits.is_empty() {
            return Err(Error::Empty("the data has no split".into()));
        }
        Ok(DistributionChart { splits })
    }
}

impl Plot for DistributionChart<'_> {
    fn size(&self) -> (u32, u32) {
        (400 * self.splits.len() as u32 + 20, 400)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = with_title(root, "Images per class and split")?;
        let body = body.margin(0, 0, 10, 10);
        let colours = [BLUE, ORANGE, GREEN];
        for (k, (panel, split)) in body
            .split_evenly((1, self.splits.len()))
            .iter()
            .zip(self.splits)
            .enumerate()
        {
            let colour = colours[k % colours.len()];
            let max = split.per_class.iter().copied().max().unwrap_or(0).max(1) as f64;
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{} ({} images)", split.name, thousands(split.total())),
                    text(16.0),
                )
                .margin(8)
                .margin_right(18)
                .x_label_area_size(52)
                .y_label_area_size(78)
                .build_cartesian_2d(0.0..max * 1.2, 0.0..CLASSES as f64)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_labels(6)
                .x_label_formatter(&|v| thousands(v.round().max(0.0) as usize))
                .x_desc("images")
                .axis_desc_style(text(14.0))
                .label_style(text(13.0))
                .light_line_style(WHITE)
                .bold_line_style(LIGHT)
                .draw()?;
            // Class 0 at the top.
            let band = |i: usize| (CLASSES - 1 - i) as f64;
            chart.draw_series(split.per_class.iter().enumerate().map(|(i, &count)| {
                Rectangle::new(
                    [(0.0, band(i) + 0.18), (count as f64, band(i) + 0.82)],
                    colour.filled(),
                )
            }))?;
            chart.draw_series(split.per_class.iter().enumerate().map(|(i, &count)| {
                EmptyElement::at((count as f64, band(i) + 0.5))
                    + Text::new(
                        thousands(count),
                        (4, 0),
                        text(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
                    )
            }))?;
            let base = panel.get_base_pixel();
            let style = text(13.0).pos(Pos::new(HPos::Right, VPos::Center));
            for (i, emotion) in Emotion::ALL.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(0.0, band(i) + 0.5));
                panel.draw(&Text::new(
                    emotion.name(),
                    (x - base.0 - 6, y - base.1),
                    style.clone(),
                ))?;
            }
        }
        Ok(())
    }
}

/// One face of a [`SampleGrid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Face {
    /// 48 x 48 grey pixels, row by row.
    pub pixels: Vec<u8>,
    pub label: Emotion,
    /// Source row in the CSV.
    pub row: u32,
}

/// A grid of faces with their labels (the seed shows the first 10 training images).
pub struct SampleGrid {
    faces: Vec<Face>,
    columns: usize,
}

/// Pixels per image pixel in the sample grid.
const FACE_SCALE: u32 = 3;
const FACE_CELL: u32 = IMAGE_SIDE as u32 * FACE_SCALE;
const FACE_PAD: u32 = 12;
const FACE_LABEL: u32 = 24;
const FACE_TITLE: u32 = 40;

impl SampleGrid {
    /// The first `count` faces of `view`, `columns` to a row.
    pub fn first(view: &View<'_>, count: usize, columns: usize) -> Result<Self> {
        let faces = view
            .iter()
            .take(count)
            .map(|s| Face {
                pixels: s.pixels.to_vec(),
                label: s.label,
                row: s.row,
            })
            .collect();
        Self::new(faces, columns)
    }

    /// Fails on no face, no column, or a face that is not 48 x 48.
    pub fn new(faces: Vec<Face>, columns: usize) -> Result<Self> {
        if faces.is_empty() || columns == 0 {
            return Err(Error::Empty("no face to show".into()));
        }
        if let Some(bad) = faces
            .iter()
            .find(|f| f.pixels.len() != IMAGE_SIDE * IMAGE_SIDE)
        {
            return Err(Error::Empty(format!(
                "row {}: {} pixels, expected {}",
                bad.row,
                bad.pixels.len(),
                IMAGE_SIDE * IMAGE_SIDE
            )));
        }
        let columns = columns.min(faces.len());
        Ok(SampleGrid { faces, columns })
    }

    /// The faces shown.
    pub fn faces(&self) -> &[Face] {
        &self.faces
    }

    fn rows(&self) -> usize {
        self.faces.len().div_ceil(self.columns)
    }

    /// Top-left corner of face `k`'s image.
    fn origin(&self, k: usize) -> (u32, u32) {
        let (r, c) = ((k / self.columns) as u32, (k % self.columns) as u32);
        (
            FACE_PAD + c * (FACE_CELL + FACE_PAD),
            FACE_TITLE + r * (FACE_CELL + FACE_LABEL + FACE_PAD),
        )
    }
}

impl Plot for SampleGrid {
    fn size(&self) -> (u32, u32) {
        let (c, r) = (self.columns as u32, self.rows() as u32);
        (
            FACE_PAD + c * (FACE_CELL + FACE_PAD),
            FACE_TITLE + r * (FACE_CELL + FACE_LABEL + FACE_PAD),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let title = text(18.0).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(
            format!("The first {} faces and their labels", self.faces.len()),
            (FACE_PAD as i32, FACE_TITLE as i32 / 2),
            title,
        ))?;
        let label = text(15.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (k, face) in self.faces.iter().enumerate() {
            let (x0, y0) = self.origin(k);
            let s = FACE_SCALE as i32;
            for (i, &v) in face.pixels.iter().enumerate() {
                let (x, y) = (
                    x0 as i32 + (i % IMAGE_SIDE) as i32 * s,
                    y0 as i32 + (i / IMAGE_SIDE) as i32 * s,
                );
                root.draw(&Rectangle::new(
                    [(x, y), (x + s, y + s)],
                    RGBColor(v, v, v).filled(),
                ))?;
            }
            root.draw(&Text::new(
                face.label.name(),
                ((x0 + FACE_CELL / 2) as i32, (y0 + FACE_CELL + 5) as i32),
                label.clone(),
            ))?;
        }
        Ok(())
    }

    /// Each face as an embedded PNG rather than 2,304 rectangles.
    fn svg(&self) -> Result<String> {
        let (w, h) = self.size();
        let mut svg = format!(
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             xmlns=\"http://www.w3.org/2000/svg\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n"
        );
        svg.push_str(&format!(
            "<text x=\"{FACE_PAD}\" y=\"{}\" font-family=\"DejaVu Sans, sans-serif\" \
             font-size=\"18\" dominant-baseline=\"middle\" fill=\"#212529\">The first {} faces \
             and their labels</text>\n",
            FACE_TITLE / 2,
            self.faces.len()
        ));
        for (k, face) in self.faces.iter().enumerate() {
            let (x, y) = self.origin(k);
            let png = encode_png(
                &face.pixels,
                IMAGE_SIDE as u32,
                IMAGE_SIDE as u32,
                image::ExtendedColorType::L8,
            )?;
            let data = base64::engine::general_purpose::STANDARD.encode(png);
            svg.push_str(&format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{FACE_CELL}\" height=\"{FACE_CELL}\" \
                 style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n\
                 <text x=\"{}\" y=\"{}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"15\" \
                 text-anchor=\"middle\" dominant-baseline=\"hanging\" fill=\"#212529\">{}</text>\n",
                x + FACE_CELL / 2,
                y + FACE_CELL + 5,
                crate::escape::escape(face.label.name())
            ));
        }
        svg.push_str("</svg>\n");
        Ok(svg)
    }
}

/// Loss and PublicTest accuracy/macro-F1 per epoch of a training run.
///
/// The seed's losses are sums over batches, of 28,709 training and 3,589 PublicTest images,
/// so the two losses are drawn on panels of their own, each with its own scale.
pub struct CurvesChart<'a> {
    history: &'a [EpochRecord],
}

impl<'a> CurvesChart<'a> {
    /// Fails on an empty history.
    pub fn new(history: &'a [EpochRecord]) -> Result<Self> {
        if history.is_empty() {
            return Err(Error::Empty("the history has no epoch".into()));
        }
        Ok(CurvesChart { history })
    }
}

/// The largest finite value, or 1 when there is none.
fn finite_max(values: impl Iterator<Item = f64>) -> f64 {
    values
        .filter(|v| v.is_finite())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        .filter(|m| *m > 0.0)
        .unwrap_or(1.0)
}

impl Plot for CurvesChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 400)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = with_title(root, "Training curves")?;
        let panels = body.margin(0, 0, 6, 6).split_evenly((1, 3));
        let first = self.history.iter().map(|r| r.epoch).min().unwrap_or(1);
        let last = self.history.iter().map(|r| r.epoch).max().unwrap_or(1);
        let x_range = first.saturating_sub(1)..last + 1;
        let epoch_label = move |v: &usize| {
            if *v < first || *v > last {
                String::new()
            } else {
                v.to_string()
            }
        };
        type Series<'s> = (&'s str, RGBColor, Box<dyn Fn(&EpochRecord) -> f64 + 's>);
        let panel_specs: [(&str, &str, Vec<Series>); 3] = [
            (
                "Training loss",
                "sum of batch losses",
                vec![("train", BLUE, Box::new(|r: &EpochRecord| r.train_loss))],
            ),
            (
                "Validation loss (PublicTest)",
                "sum of batch losses",
                vec![("validation", ORANGE, Box::new(|r: &EpochRecord| r.val_loss))],
            ),
            (
                "Accuracy (Training sample, PublicTest) and PublicTest macro-F1",
                "",
                vec![
                    (
                        "training accuracy",
                        BLUE,
                        Box::new(|r: &EpochRecord| r.train_accuracy.unwrap_or(f64::NAN)),
                    ),
                    (
                        "validation accuracy",
                        ORANGE,
                        Box::new(|r: &EpochRecord| r.val_accuracy),
                    ),
                    (
                        "macro-F1",
                        GREEN,
                        Box::new(|r: &EpochRecord| r.val_macro_f1),
                    ),
                ],
            ),
        ];
        for (k, (panel, (title, y_desc, series))) in panels.iter().zip(panel_specs).enumerate() {
            let shares = k == 2;
            let y_max = if shares {
                1.0
            } else {
                finite_max(self.history.iter().map(|r| series[0].2(r))) * 1.1
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(title, text(16.0))
                .margin(8)
                .margin_right(16)
                .x_label_area_size(52)
                .y_label_area_size(if shares { 52 } else { 72 })
                .build_cartesian_2d(x_range.clone(), 0.0..y_max)?;
            let mut mesh = chart.configure_mesh();
            mesh.x_desc("epoch")
                .x_labels(12)
                .x_label_formatter(&epoch_label)
                .axis_desc_style(text(14.0))
                .label_style(text(13.0))
                .light_line_style(WHITE)
                .bold_line_style(LIGHT);
            let percent = |v: &f64| format!("{:.0}%", v * 100.0);
            let decimals = if y_max >= 20.0 { 0 } else { 2 };
            let loss = move |v: &f64| format!("{v:.decimals$}");
            if shares {
                mesh.y_label_formatter(&percent).y_labels(6);
            } else {
                mesh.y_desc(y_desc).y_label_formatter(&loss);
            }
            mesh.draw()?;
            for (name, colour, value) in &series {
                let points: Vec<(usize, f64)> = self
                    .history
                    .iter()
                    .map(|r| (r.epoch, value(r)))
                    .filter(|(_, v)| v.is_finite())
                    .collect();
                if points.is_empty() {
                    continue; // e.g. no training accuracy in an older history
                }
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                    .label(*name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                    });
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
            }
            if shares {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .label_font(text(13.0))
                    .background_style(WHITE.mix(0.9))
                    .border_style(LIGHT)
                    .draw()?;
            }
        }
        Ok(())
    }
}

/// The confusion matrix as a heat map: counts and row-normalized shares (each true class's
/// recall on the diagonal), coloured by share.
pub struct ConfusionChart<'a> {
    eval: &'a EvalReport,
}

impl<'a> ConfusionChart<'a> {
    pub fn new(eval: &'a EvalReport) -> Self {
        ConfusionChart { eval }
    }
}

/// Matplotlib's "Blues" as 9 stops, white to dark blue.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// The colour of a share in 0..1 on the Blues scale.
pub fn blues(share: f64) -> RGBColor {
    let t = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    } * (BLUES.len() - 1) as f64;
    let i = (t.floor() as usize).min(BLUES.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

const CELL: i32 = 84;
const GRID_LEFT: i32 = 120;
const GRID_TOP: i32 = 70;

impl Plot for ConfusionChart<'_> {
    fn size(&self) -> (u32, u32) {
        let side = CELL * CLASSES as i32;
        (
            (GRID_LEFT + side + 30) as u32,
            (GRID_TOP + side + 80) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let e = self.eval;
        let (w, _) = self.size();
        root.draw(&Text::new(
            format!(
                "Confusion matrix, {}: {} images, accuracy {:.2}%",
                e.split,
                thousands(e.n),
                100.0 * e.accuracy
            ),
            (w as i32 / 2, 22),
            text(18.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            "cell: count and share of the true class (row)",
            (w as i32 / 2, 46),
            text(13.0)
                .color(&RGBColor(90, 95, 100))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let shares = e.row_shares();
        let side = CELL * CLASSES as i32;
        for (t, (row, counts)) in shares.iter().zip(&e.confusion).enumerate() {
            for (p, (&share, &count)) in row.iter().zip(counts).enumerate() {
                let (x, y) = (GRID_LEFT + p as i32 * CELL, GRID_TOP + t as i32 * CELL);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    blues(share).filled(),
                ))?;
                let ink = if share > 0.5 { WHITE } else { INK };
                let centre = Pos::new(HPos::Center, VPos::Center);
                root.draw(&Text::new(
                    thousands(count),
                    (x + CELL / 2, y + CELL / 2 - 10),
                    text(16.0).color(&ink).pos(centre),
                ))?;
                root.draw(&Text::new(
                    format!("{:.1}%", 100.0 * share),
                    (x + CELL / 2, y + CELL / 2 + 12),
                    text(12.0).color(&ink).pos(centre),
                ))?;
            }
        }
        root.draw(&Rectangle::new(
            [(GRID_LEFT, GRID_TOP), (GRID_LEFT + side, GRID_TOP + side)],
            INK.stroke_width(1),
        ))?;
        let row_label = text(14.0).pos(Pos::new(HPos::Right, VPos::Center));
        let col_label = text(14.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (k, emotion) in Emotion::ALL.iter().enumerate() {
            let mid = k as i32 * CELL + CELL / 2;
            root.draw(&Text::new(
                emotion.name(),
                (GRID_LEFT - 8, GRID_TOP + mid),
                row_label.clone(),
            ))?;
            root.draw(&Text::new(
                emotion.name(),
                (GRID_LEFT + mid, GRID_TOP + side + 8),
                col_label.clone(),
            ))?;
        }
        root.draw(&Text::new(
            "predicted class",
            (GRID_LEFT + side / 2, GRID_TOP + side + 40),
            text(15.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        root.draw(&Text::new(
            "true class",
            (18, GRID_TOP + side / 2),
            text(15.0)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        Ok(())
    }
}

/// Precision, recall and F1 per class as grouped bars, with each class's support.
pub struct PerClassChart<'a> {
    eval: &'a EvalReport,
}

impl<'a> PerClassChart<'a> {
    pub fn new(eval: &'a EvalReport) -> Self {
        PerClassChart { eval }
    }
}

impl Plot for PerClassChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let e = self.eval;
        let body = with_title(
            root,
            &format!(
                "Per-class precision, recall and F1 ({}, macro-F1 {:.3})",
                e.split, e.macro_f1
            ),
        )?;
        let (legend_area, plot_area) = body.split_vertically(28);
        legend(
            &legend_area,
            (90, 12),
            &[("precision", BLUE), ("recall", ORANGE), ("F1", GREEN)],
        )?;
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(8)
            .margin_right(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..CLASSES as f64, 0.0..1.0)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(text(13.0))
            .light_line_style(WHITE)
            .bold_line_style(LIGHT)
            .draw()?;
        let colours = [BLUE, ORANGE, GREEN];
        for (k, class) in e.per_class.iter().enumerate().take(CLASSES) {
            let values = [class.precision, class.recall, class.f1];
            for (j, (&v, colour)) in values.iter().zip(colours).enumerate() {
                let v = if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let x0 = k as f64 + 0.12 + j as f64 * 0.26;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + 0.24, v)],
                    colour.filled(),
                )))?;
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x0 + 0.12, v))
                        + Text::new(
                            format!("{v:.2}"),
                            (0, -3),
                            text(11.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
                        ),
                ))?;
            }
        }
        let base = plot_area.get_base_pixel();
        let name = text(14.0).pos(Pos::new(HPos::Center, VPos::Top));
        let support = text(12.0)
            .color(&RGBColor(90, 95, 100))
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (k, class) in e.per_class.iter().enumerate().take(CLASSES) {
            let (x, y) = chart.backend_coord(&(k as f64 + 0.5, 0.0));
            let (x, y) = (x - base.0, y - base.1);
            plot_area.draw(&Text::new(class.class.clone(), (x, y + 8), name.clone()))?;
            plot_area.draw(&Text::new(
                format!("n = {}", thousands(class.support)),
                (x, y + 27),
                support.clone(),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(28709), "28,709");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn blues_runs_from_white_to_dark_blue() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert_eq!(blues(f64::NAN), blues(0.0));
        assert_eq!(blues(2.0), blues(1.0));
        let mid = blues(0.5);
        assert_eq!(mid, RGBColor(107, 174, 214));
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.svg")).unwrap(), Format::Svg);
        let error = Format::from_path(Path::new("plot.jpg")).unwrap_err();
        assert!(error.to_string().contains("plot.jpg"), "{error}");
    }
}
