//! The faces of one image file: decoded within the image limits, then found as the
//! recognizer's [`FaceSource`] says.

use std::path::Path;

use fer::{FaceSource, Faces, Recognizer};
use fer_data::face_image::load_grey_image;

/// The faces of one image file, or why it cannot be read. The file is decoded within the
/// default image limits (a decompression bomb is refused before it is allocated).
pub fn faces_of(path: &Path, source: FaceSource, recognizer: &Recognizer) -> Result<Faces, String> {
    if path.is_dir() {
        return Err(format!("{}: cannot read this folder", path.display()));
    }
    let image = load_grey_image(path).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    recognizer
        .find_faces(&image, source)
        .map_err(|e| format!("{}: {:#}", path.display(), anyhow::Error::from(e)))
}
