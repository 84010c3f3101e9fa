//! Boxes and labels drawn on a photo (imageproc, with an embedded font).

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;

use crate::error::{Error, Result};
use crate::{FaceBox, Point};

/// DejaVu Sans Mono Bold (Bitstream Vera licence, see `fonts/LICENSE-DejaVu`).
pub static LABEL_FONT: &[u8] = include_bytes!("../fonts/DejaVuSansMono-Bold.ttf");

/// Distinct, saturated colours that read well on photos, e.g. one per emotion class.
pub const PALETTE: [Rgb<u8>; 8] = [
    Rgb([230, 25, 75]),  // red
    Rgb([60, 180, 75]),  // green
    Rgb([255, 225, 25]), // yellow
    Rgb([0, 130, 200]),  // blue
    Rgb([245, 130, 48]), // orange
    Rgb([145, 30, 180]), // purple
    Rgb([70, 240, 240]), // cyan
    Rgb([240, 50, 230]), // magenta
];

/// The colour of [`Annotation::new`]: bright green.
pub const DEFAULT_COLOR: Rgb<u8> = Rgb([0, 255, 0]);

/// One face to draw: its box and a label such as `happy 0.93`.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The face's box, in the pixel coordinates of the image drawn on.
    pub face: FaceBox,
    /// Text before the score, e.g. an emotion name; may be empty.
    pub label: String,
    /// Shown after the label with two decimals, e.g. a probability.
    pub score: f32,
    /// Box and label background colour.
    pub color: Rgb<u8>,
    /// Points marked on the face (e.g. its landmarks), in the image's pixel coordinates.
    pub points: Vec<Point>,
}

impl Annotation {
    /// An annotation in [`DEFAULT_COLOR`].
    pub fn new(face: FaceBox, label: impl Into<String>, score: f32) -> Self {
        Self {
            face,
            label: label.into(),
            score,
            color: DEFAULT_COLOR,
            points: Vec::new(),
        }
    }

    /// The same annotation with `points` marked as dots in its colour.
    pub fn with_points(mut self, points: impl IntoIterator<Item = Point>) -> Self {
        self.points = points.into_iter().collect();
        self
    }

    /// The same annotation in `color`.
    pub fn with_color(mut self, color: Rgb<u8>) -> Self {
        self.color = color;
        self
    }

    /// The text drawn: `"{label} {score:.2}"`, or just the score when the label is empty.
    pub fn text(&self) -> String {
        if self.label.is_empty() {
            format!("{:.2}", self.score)
        } else {
            format!("{} {:.2}", self.label, self.score)
        }
    }

    /// Thickness of the box outline in pixels: it grows with the box (2 to 16).
    pub fn thickness(&self) -> u32 {
        (self.face.width.max(self.face.height) as f32 / 40.0)
            .round()
            .clamp(2.0, 16.0) as u32
    }

    /// Label text height in pixels: a fifth of the box width, 12 to 72.
    pub fn font_size(&self) -> f32 {
        (self.face.width as f32 * 0.2).clamp(12.0, 72.0)
    }
}

/// The embedded label font, parsed (cheap: tables are read lazily).
pub fn label_font() -> Result<FontRef<'static>> {
    FontRef::try_from_slice(LABEL_FONT).map_err(|e| Error::Font(e.to_string()))
}

/// A copy of `image` with each annotation's box outlined (the outline starts on the box edge
/// and grows outwards, so it never covers the face) and its [`text`](Annotation::text) on a
/// filled label above the box, or inside its top edge when there is no room above. Labels are
/// shifted to stay inside the image; parts of boxes outside it are clipped. Never panics.
pub fn annotate(image: &RgbImage, annotations: &[Annotation]) -> RgbImage {
    let mut out = image.clone();
    if out.width() == 0 || out.height() == 0 {
        return out;
    }
    // The font is embedded and checked by the tests; were it ever unreadable, boxes are
    // still drawn.
    let font = label_font().ok();
    for a in annotations {
        draw_box(&mut out, a);
        draw_points(&mut out, a);
    }
    if let Some(font) = &font {
        for a in annotations {
            draw_label(&mut out, a, font);
        }
    }
    out
}

fn draw_box(out: &mut RgbImage, a: &Annotation) {
    let f = &a.face;
    for i in 0..a.thickness() {
        let rect = Rect::at(f.x as i32 - i as i32, f.y as i32 - i as i32)
            .of_size(f.width.max(1) + 2 * i, f.height.max(1) + 2 * i);
        draw_hollow_rect_mut(out, rect, a.color);
    }
}

/// Each point as a dot of the box's colour with a contrasting rim, its radius the outline's
/// thickness (at least 2 px); the image clips dots outside it, and non-finite points are
/// skipped.
fn draw_points(out: &mut RgbImage, a: &Annotation) {
    let radius = a.thickness().max(2) as i32;
    for p in &a.points {
        if !(p.x.is_finite() && p.y.is_finite()) {
            continue;
        }
        let centre = (p.x.round() as i32, p.y.round() as i32);
        draw_filled_circle_mut(out, centre, radius + 1, text_color(a.color));
        draw_filled_circle_mut(out, centre, radius, a.color);
    }
}

fn draw_label(out: &mut RgbImage, a: &Annotation, font: &FontRef<'_>) {
    let text = a.text();
    let scale = PxScale::from(a.font_size());
    let (tw, th) = text_size(scale, font, &text);
    let pad = (a.font_size() / 6.0).round().max(2.0) as u32;
    let (bw, bh) = (tw + 2 * pad, th + pad);
    let t = a.thickness();
    let f = &a.face;

    let above = f.y as i64 - t as i64 - bh as i64;
    let y = if above >= 0 { above } else { f.y as i64 };
    let x = (f.x as i64 - t as i64)
        .min(out.width() as i64 - bw as i64)
        .max(0);
    draw_filled_rect_mut(out, Rect::at(x as i32, y as i32).of_size(bw, bh), a.color);
    draw_text_mut(
        out,
        text_color(a.color),
        (x + pad as i64) as i32,
        y as i32,
        scale,
        font,
        &text,
    );
}

/// Black on light colours, white on dark ones (Rec. 601 luma).
fn text_color(background: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = background.0.map(f32::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 140.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, width: u32, height: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width,
            height,
            score: 10.0,
        }
    }

    #[test]
    fn the_embedded_font_parses() {
        label_font().unwrap();
    }

    #[test]
    fn box_edges_take_the_colour_and_the_inside_is_untouched() {
        let grey = Rgb([128, 128, 128]);
        let image = RgbImage::from_pixel(200, 150, grey);
        let red = PALETTE[0];
        let a = Annotation::new(face(60, 60, 80, 60), "happy", 0.93).with_color(red);
        let out = annotate(&image, std::slice::from_ref(&a));
        assert_eq!(out.dimensions(), image.dimensions());
        // Every pixel of the four edges, and the outline's outer ring.
        let t = a.thickness();
        assert_eq!(t, 2);
        for x in 60..140 {
            assert_eq!(*out.get_pixel(x, 60), red, "top edge x={x}");
            assert_eq!(*out.get_pixel(x, 119), red, "bottom edge x={x}");
            assert_eq!(*out.get_pixel(x, 120), red, "bottom outline x={x}");
        }
        for y in 60..120 {
            assert_eq!(*out.get_pixel(60, y), red, "left edge y={y}");
            assert_eq!(*out.get_pixel(139, y), red, "right edge y={y}");
            assert_eq!(*out.get_pixel(59, y), red, "left outline y={y}");
        }
        // The face inside the box is not painted over.
        for y in 61..119 {
            for x in 61..139 {
                assert_eq!(*out.get_pixel(x, y), grey, "inside ({x}, {y})");
            }
        }
        // A label above the box: red background with (white) text pixels in it.
        let label: Vec<_> = (0..58)
            .flat_map(|y| (58..200).map(move |x| (x, y)))
            .map(|(x, y)| *out.get_pixel(x, y))
            .collect();
        assert!(label.iter().filter(|p| **p == red).count() > 200);
        assert!(label.iter().any(|p| p.0[0] > 240 && p.0[1] > 200));
        // Far from box and label, nothing changed.
        assert_eq!(*out.get_pixel(5, 140), grey);
        assert_eq!(*out.get_pixel(195, 140), grey);
    }

    #[test]
    fn boxes_at_borders_and_degenerate_boxes_do_not_panic() {
        let image = RgbImage::new(64, 48);
        let annotations = [
            Annotation::new(face(0, 0, 64, 48), "neutral", 0.5),
            Annotation::new(
                face(60, 44, 4, 4),
                "a very long label that is wider than the image",
                1.0,
            ),
            Annotation::new(face(63, 47, 0, 0), "", 0.0),
            Annotation::new(face(500, 500, 10, 10), "outside", 0.1),
        ];
        let out = annotate(&image, &annotations);
        assert_eq!(out.dimensions(), (64, 48));
        assert_eq!(*out.get_pixel(63, 20), DEFAULT_COLOR);
        assert_eq!(
            annotate(&RgbImage::new(0, 0), &annotations).dimensions(),
            (0, 0)
        );
    }

    #[test]
    fn points_are_dots_in_the_box_colour_and_odd_points_do_not_panic() {
        let grey = Rgb([128, 128, 128]);
        let image = RgbImage::from_pixel(200, 150, grey);
        let red = PALETTE[0];
        let marked = Annotation::new(face(40, 30, 80, 80), "x", 0.5)
            .with_color(red)
            .with_points([
                Point { x: 60.0, y: 60.0 },
                Point { x: 100.0, y: 61.0 },
                Point { x: -5.0, y: 1e9 },
                Point {
                    x: f32::NAN,
                    y: 3.0,
                },
                Point { x: 199.6, y: 149.7 },
            ]);
        let out = annotate(&image, &[marked]);
        assert_eq!(*out.get_pixel(60, 60), red);
        assert_eq!(*out.get_pixel(100, 61), red);
        assert_eq!(
            *out.get_pixel(80, 90),
            grey,
            "between the dots the face is untouched"
        );
        assert_eq!(
            *out.get_pixel(199, 149),
            red,
            "a dot at the corner is clipped, not lost"
        );
    }

    #[test]
    fn label_text_and_sizes() {
        let a = Annotation::new(face(0, 0, 100, 120), "face", 12.345);
        assert_eq!(a.text(), "face 12.35");
        assert_eq!(Annotation::new(face(0, 0, 1, 1), "", 0.5).text(), "0.50");
        assert_eq!(a.thickness(), 3);
        assert_eq!(a.font_size(), 20.0);
        assert_eq!(text_color(Rgb([255, 225, 25])), Rgb([0, 0, 0]));
        assert_eq!(text_color(Rgb([0, 0, 128])), Rgb([255, 255, 255]));
    }
}
