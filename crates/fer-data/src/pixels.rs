//! Parsing and formatting of the `pixels` field: 2304 space-separated integers in 0..=255.

use crate::IMAGE_PIXELS;

/// Why a `pixels` field is not a valid 48x48 image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    #[error("expected {IMAGE_PIXELS} values, found {0}")]
    Count(usize),
    #[error("value {position}: '{found}' is not an integer in 0..255")]
    Value { position: usize, found: String },
}

/// Parses a FER2013 `pixels` field into `out` (exactly [`IMAGE_PIXELS`] bytes).
///
/// Values are separated by any run of ASCII whitespace; leading and trailing whitespace is
/// ignored. On error `out` holds garbage. Never panics, whatever the input.
pub fn parse_pixels(field: &str, out: &mut [u8]) -> Result<(), PixelError> {
    debug_assert_eq!(out.len(), IMAGE_PIXELS);
    let mut count = 0usize;
    for token in field.split_ascii_whitespace() {
        let value = parse_u8(token).ok_or_else(|| PixelError::Value {
            position: count + 1,
            found: token.chars().take(16).collect(),
        })?;
        if let Some(slot) = out.get_mut(count) {
            *slot = value;
        }
        count += 1;
    }
    if count == IMAGE_PIXELS {
        Ok(())
    } else {
        Err(PixelError::Count(count))
    }
}

/// A decimal integer in 0..=255 (leading zeros allowed, no sign).
fn parse_u8(token: &str) -> Option<u8> {
    let bytes = token.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > 255 {
            return None;
        }
    }
    u8::try_from(value).ok()
}

/// Formats an image as a FER2013 `pixels` field.
pub fn format_pixels(image: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(image.len() * 4);
    for (i, value) in image.iter().enumerate() {
        let separator = if i == 0 { "" } else { " " };
        let _ = write!(out, "{separator}{value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(values: impl IntoIterator<Item = u32>) -> String {
        values
            .into_iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn parses_a_full_field_and_formats_it_back() {
        let values: Vec<u32> = (0..IMAGE_PIXELS as u32).map(|i| i % 256).collect();
        let text = field(values.iter().copied());
        let mut out = vec![0u8; IMAGE_PIXELS];
        parse_pixels(&text, &mut out).unwrap();
        assert!(out.iter().zip(&values).all(|(a, b)| u32::from(*a) == *b));
        assert_eq!(format_pixels(&out), text);
        // Tolerates surrounding and repeated whitespace, and leading zeros.
        let padded = format!(
            "  {}  ",
            text.replacen(' ', "  ", 3).replacen("1 ", "001 ", 1)
        );
        parse_pixels(&padded, &mut out).unwrap();
    }

    #[test]
    fn reports_counts_and_bad_values() {
        let mut out = vec![0u8; IMAGE_PIXELS];
        let short = field(std::iter::repeat_n(7, IMAGE_PIXELS - 1));
        assert_eq!(parse_pixels(&short, &mut out), Err(PixelError::Count(2303)));
        let long = field(std::iter::repeat_n(7, IMAGE_PIXELS + 5));
        assert_eq!(parse_pixels(&long, &mut out), Err(PixelError::Count(2309)));
        assert_eq!(parse_pixels("", &mut out), Err(PixelError::Count(0)));
        let mut bad = field(std::iter::repeat_n(7, IMAGE_PIXELS));
        bad.replace_range(4..5, "256");
        assert_eq!(
            parse_pixels(&bad, &mut out),
            Err(PixelError::Value {
                position: 3,
                found: "256".into()
            })
        );
        for token in ["-1", "1.5", "x", "0x1", "+3", "1000"] {
            let text = format!(
                "{token} {}",
                field(std::iter::repeat_n(1, IMAGE_PIXELS - 1))
            );
            assert!(
                matches!(
                    parse_pixels(&text, &mut out),
                    Err(PixelError::Value { position: 1, .. })
                ),
                "{token}"
            );
        }
    }
}
