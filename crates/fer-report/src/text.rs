//! Text for PNG figures: a bitmap backend wrapper that sets each glyph at its pen position
//! plus its left side bearing. plotters 0.3.7's `ab_glyph` path leaves the bearing out, which
//! spaces letters unevenly ("T raining"); everything but text goes to the wrapped backend.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`): the one font
/// of every figure, PNG and SVG alike.
pub(crate) const FONT_FILE: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The embedded font, parsed once.
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_FILE).ok())
        .as_ref()
}

/// One line of text, rasterized.
struct Line {
    /// `(x, y, coverage)` relative to the top-left of the line box.
    pixels: Vec<(i32, i32, f32)>,
    width: i32,
    height: i32,
}

/// Glyph coverage of `text` at `size` (plotters' size: ascent to descent in pixels).
fn rasterize(text: &str, size: f64) -> Option<Line> {
    let font = font()?;
    let scale = PxScale::from(size as f32);
    let scaled = font.as_scaled(scale);
    let mut caret = 0.0f32;
    let mut previous = None;
    let mut pixels = Vec::new();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(caret, scaled.ascent()));
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|x, y, coverage| {
                pixels.push((
                    bounds.min.x as i32 + x as i32,
                    bounds.min.y as i32 + y as i32,
                    coverage,
                ));
            });
        }
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    let height = (scaled.ascent() - scaled.descent()).ceil() as i32;
    Some(Line {
        pixels,
        width: caret.ceil() as i32,
        height,
    })
}

/// A backend that draws text itself and delegates everything else.
pub(crate) struct CrispText<B>(pub B);

impl<B: DrawingBackend> DrawingBackend for CrispText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        let Some(Line {
            pixels,
            width,
            height,
        }) = rasterize(text, style.size())
        else {
            // No usable embedded font: let plotters draw it its way.
            return self.0.draw_text(text, style, pos);
        };
        if color.alpha == 0.0 {
            return Ok(());
        }
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let (w, h) = self.get_size();
        for (x, y, coverage) in pixels {
            if coverage <= 0.0 {
                continue;
            }
            let (x, y) = transform.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && x < w as i32 && y < h as i32 {
                self.0
                    .draw_pixel((x, y), color.mix(coverage.min(1.0) as f64))?;
            }
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        match rasterize(text, style.size()) {
            Some(line) => Ok((line.width.max(0) as u32, line.height.max(0) as u32)),
            None => self.0.estimate_text_size(text, style),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_keep_their_side_bearings() {
        // "ii": the second i is drawn one advance to the right of the first, no closer.
        let first = rasterize("i", 20.0).unwrap();
        let second = rasterize("ii", 20.0).unwrap();
        let (one, two, w1) = (&first.pixels, &second.pixels, first.width);
        assert!(second.width > w1 && second.height >= 20);
        let left = |px: &[(i32, i32, f32)]| px.iter().map(|p| p.0).min().unwrap();
        let right = |px: &[(i32, i32, f32)]| px.iter().map(|p| p.0).max().unwrap();
        // The first stroke starts after the left side bearing, not at 0.
        assert!(left(one) > 0);
        let gap = left(&two[one.len()..]) - right(&two[..one.len()]);
        let first_gap_to_edge = left(one) + (w1 - 1 - right(one));
        assert!(
            (gap - first_gap_to_edge).abs() <= 1,
            "gap {gap} vs {first_gap_to_edge}"
        );
    }
}
