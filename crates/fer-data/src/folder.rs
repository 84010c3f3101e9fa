//! Image folders: export splits as PNG files in `<out>/<Split>/<label>/<row>.png` and read
//! such a folder back (the layout the seed evaluates from with torchvision's `ImageFolder`).

use std::path::{Path, PathBuf};

use image::GrayImage;
use rayon::prelude::*;

use crate::{Dataset, Emotion, Error, IMAGE_PIXELS, IMAGE_SIDE, Result, Split};

/// Where image `index` of `dataset` goes under `out`.
pub fn image_path(out: &Path, dataset: &Dataset, index: usize) -> PathBuf {
    out.join(dataset.splits()[index].name())
        .join(dataset.labels()[index].label().to_string())
        .join(format!("{}.png", dataset.rows()[index]))
}

/// Writes the images of `splits` (all splits when empty) as 48x48 grey PNGs under `out`,
/// in parallel. Returns the number of files written.
pub fn export_images(dataset: &Dataset, out: &Path, splits: &[Split]) -> Result<usize> {
    let wanted = |s: Split| splits.is_empty() || splits.contains(&s);
    let selected: Vec<usize> = (0..dataset.len())
        .filter(|&i| wanted(dataset.splits()[i]))
        .collect();
    for split in Split::ALL.into_iter().filter(|&s| wanted(s)) {
        for emotion in Emotion::ALL {
            let dir = out.join(split.name()).join(emotion.label().to_string());
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
    }
    selected.par_iter().try_for_each(|&i| {
        let path = image_path(out, dataset, i);
        let image = GrayImage::from_raw(
            IMAGE_SIDE as u32,
            IMAGE_SIDE as u32,
            dataset.image(i).to_vec(),
        )
        .ok_or_else(|| Error::Inconsistent("image buffer is not 48x48".into()))?;
        image.save(&path).map_err(|e| Error::Image {
            path: path.clone(),
            message: e.to_string(),
        })
    })?;
    Ok(selected.len())
}

/// Reads a folder laid out as `<root>/<Split>/<label>/<row>.<ext>` back into a [`Dataset`].
///
/// Split folders may use the `Usage` names or the aliases `train`, `val`, `test`; label
/// folders a label (`3`) or an emotion name (`happy`). The row number is the run of digits at
/// the end of the file name (`123.png`, `Training_123.jpg`). Images must be 48x48; colour
/// images are converted to grey. Rows come back ordered by row number. Hidden entries are
/// ignored; anything else that does not fit the layout is an error naming it.
pub fn load_image_folder(root: &Path) -> Result<Dataset> {
    let mut files: Vec<(PathBuf, Split, Emotion, u32)> = Vec::new();
    for split_dir in visible_entries(root)? {
        let split = parse_dir_name::<Split>(&split_dir)?;
        for label_dir in visible_entries(&split_dir)? {
            let emotion = parse_dir_name::<Emotion>(&label_dir)?;
            for file in visible_entries(&label_dir)? {
                let row = row_number(&file)?;
                files.push((file, split, emotion, row));
            }
        }
    }
    if files.is_empty() {
        return Err(Error::Image {
            path: root.to_path_buf(),
            message: "no images found (expected <Split>/<label>/<row>.png)".into(),
        });
    }
    files.sort_by_key(|(_, split, _, row)| (*row, *split));
    let mut pixels = vec![0u8; files.len() * IMAGE_PIXELS];
    pixels
        .par_chunks_mut(IMAGE_PIXELS)
        .zip(files.par_iter())
        .try_for_each(|(out, (path, ..))| read_face(path, out))?;
    Dataset::from_parts(
        pixels,
        files.iter().map(|f| f.2).collect(),
        files.iter().map(|f| f.1).collect(),
        files.iter().map(|f| f.3).collect(),
    )
}

fn read_face(path: &Path, out: &mut [u8]) -> Result<()> {
    let image_error = |message: String| Error::Image {
        path: path.to_path_buf(),
        message,
    };
    let image = crate::face_image::load_grey_image(path)?;
    if image.dimensions() != (IMAGE_SIDE as u32, IMAGE_SIDE as u32) {
        let (w, h) = image.dimensions();
        return Err(image_error(format!(
            "expected a 48x48 image, found {w}x{h}"
        )));
    }
    out.copy_from_slice(image.as_raw());
    Ok(())
}

fn visible_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

fn parse_dir_name<T>(dir: &Path) -> Result<T>
where
    T: std::str::FromStr<Err = crate::ParseNameError>,
{
    if !dir.is_dir() {
        return Err(Error::Image {
            path: dir.to_path_buf(),
            message: "expected a folder here".into(),
        });
    }
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    name.parse::<T>().map_err(|e| Error::Image {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })
}

fn row_number(file: &Path) -> Result<u32> {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let digits: String = stem
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse::<u32>().map_err(|_| Error::Image {
        path: file.to_path_buf(),
        message: "file name must end in the image's row number (e.g. 123.png)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticConfig, generate};

    #[test]
    fn export_then_load_gives_back_the_same_dataset() {
        let data = generate(&SyntheticConfig::small(3));
        let dir = tempfile::tempdir().unwrap();
        let written = export_images(&data, dir.path(), &[]).unwrap();
        assert_eq!(written, data.len());
        assert!(image_path(dir.path(), &data, 0).is_file());
        let back = load_image_folder(dir.path()).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn exports_only_the_requested_split() {
        let data = generate(&SyntheticConfig::small(4));
        let dir = tempfile::tempdir().unwrap();
        let written = export_images(&data, dir.path(), &[Split::PrivateTest]).unwrap();
        assert_eq!(written, data.view(Split::PrivateTest).len());
        assert!(!dir.path().join("Training").exists());
        let back = load_image_folder(dir.path()).unwrap();
        assert_eq!(back, data.view(Split::PrivateTest).to_dataset());
    }

    #[test]
    fn bad_folders_name_the_offending_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no images found"), "{err}");

        let label_dir = dir.path().join("Training").join("3");
        std::fs::create_dir_all(&label_dir).unwrap();
        GrayImage::new(40, IMAGE_SIDE as u32)
            .save(label_dir.join("7.png"))
            .unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("7.png") && err.contains("expected a 48x48 image, found 40x48"),
            "{err}"
        );

        std::fs::write(label_dir.join("7.png"), b"not a png").unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("7.png") && err.contains("not an image"),
            "{err}"
        );

        std::fs::remove_file(label_dir.join("7.png")).unwrap();
        GrayImage::new(IMAGE_SIDE as u32, IMAGE_SIDE as u32)
            .save(label_dir.join("face.png"))
            .unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("face.png") && err.contains("row number"),
            "{err}"
        );

        std::fs::create_dir_all(dir.path().join("Holdout")).unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("Holdout") && err.contains("unknown split"),
            "{err}"
        );
    }
}
