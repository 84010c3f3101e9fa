//! Which files `fer predict` reads: the files it is given, and the image files in the folders
//! it is given.

use std::path::{Path, PathBuf};

use fer_data::face_image::is_image_path;

/// The files to read: the given files as they are, folders searched recursively for images
/// (sorted, so output order is stable). Paths that do not exist are kept: reading them fails
/// per file with a clear message.
pub fn collect_inputs(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files);
            if files.len() == before {
                tracing::warn!("{}: no image files in this folder", input.display());
            }
        } else {
            files.push(input.clone());
        }
    }
    files
}

/// Adds the image files under `dir` to `out`, in sorted order; an unreadable folder is added
/// itself, to be reported when read.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        out.push(dir.to_path_buf());
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, out);
        } else if is_image_path(&path) {
            out.push(path);
        }
    }
}
