//! Image folders: export splits as PNG files in `<out>/<Split>/<label>/<row>.png` and read
//! such a folder back (the layout the seed evaluates from with torchvision's `ImageFolder`),
//! or any folder of labelled faces from another dataset (`<label>/<image>`, any size).

use std::path::{Path, PathBuf};

use image::GrayImage;
use rayon::prelude::*;

use crate::face_image::{face_pixels, is_image_path, load_grey_image};
use crate::{Dataset, Emotion, Error, IMAGE_PIXELS, IMAGE_SIDE, ParseNameError, Result, Split};

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

/// How [`load_image_folder_with`] treats images it cannot decode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Leave out images that cannot be decoded (listed in [`LoadedFolder::skipped`])
    /// instead of stopping at the first.
    pub skip_unreadable: bool,
}

/// How the folder was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLayout {
    /// `<root>/<Split>/<label>/<image>`: the layout [`export_images`] writes.
    Splits,
    /// `<root>/<label>/<image>`: one set of faces, read as the test split
    /// ([`Split::PrivateTest`], the one an evaluation reads unless told otherwise).
    Labels,
}

/// A folder read back: the dataset and what was done to fit it.
#[derive(Debug)]
pub struct LoadedFolder {
    pub dataset: Dataset,
    pub layout: FolderLayout,
    /// Images of another size than 48x48, brought to 48x48: by default their centred square
    /// resized ([`face_pixels`], as `fer predict --no-detect` takes a face), else as the crop
    /// of [`load_image_folder_with_crop`] says.
    pub resized: usize,
    /// Whether the row numbers are the numbers that end the file names; otherwise (some name
    /// has none, or two share one) images are numbered from 0 in path order.
    pub rows_from_names: bool,
    /// Files that are not images by their extension (a README, a labels file), not read.
    pub ignored: Vec<PathBuf>,
    /// Images that could not be decoded, left out (with [`FolderOptions::skip_unreadable`]).
    pub skipped: Vec<Error>,
    /// Images in which the crop of [`load_image_folder_with_crop`] found no face, left out.
    pub faceless: Vec<PathBuf>,
}

/// Reads a folder of labelled faces into a [`Dataset`], stopping at the first image it cannot
/// decode: [`load_image_folder_with`] with the default options.
pub fn load_image_folder(root: &Path) -> Result<Dataset> {
    Ok(load_image_folder_with(root, &FolderOptions::default())?.dataset)
}

/// Reads a folder laid out as `<root>/<Split>/<label>/<image>` (the layout [`export_images`]
/// writes) or `<root>/<label>/<image>` (one set of faces, read as PrivateTest).
///
/// Split folders may use the `Usage` names or the aliases `train`, `val`, `test`; label
/// folders a label (`3`, FER2013's numbering) or an emotion name (`happy`, `happiness`; see
/// [`Emotion`]'s parser). Images may be of any size and colour: they are made grey, and those
/// not 48x48 are taken as their centred square resized to 48x48. The row number is the run of
/// digits at the end of the file name (`123.png`, `Training_123.jpg`) when every name has one
/// and no two share one; otherwise images are numbered in path order. Rows come back ordered
/// by row number. Hidden entries and files that are not images by their extension are passed
/// over; anything else that does not fit the layout is an error naming it.
pub fn load_image_folder_with(root: &Path, options: &FolderOptions) -> Result<LoadedFolder> {
    load_image_folder_with_crop(root, options, |image| Ok(Some(face_pixels(image))))
}

/// [`load_image_folder_with`], each face taken from its grey image by `crop` (48x48 pixels,
/// e.g. the largest face a detector finds, for photos that are not face crops) instead of the
/// centred square. `crop` returns `Ok(None)` where it finds no face (the image is left out and
/// listed in [`LoadedFolder::faceless`]) and `Err(message)` where it fails (as an image that
/// cannot be decoded).
pub fn load_image_folder_with_crop<F>(
    root: &Path,
    options: &FolderOptions,
    crop: F,
) -> Result<LoadedFolder>
where
    F: Fn(&GrayImage) -> std::result::Result<Option<Vec<u8>>, String> + Sync,
{
    let mut ignored = Vec::new();
    let top = folders_in(root, &mut ignored)?;
    let layout = folder_layout(root, &top)?;
    // (path, split, emotion), in split, label and path order.
    let mut files: Vec<(PathBuf, Split, Emotion)> = Vec::new();
    match layout {
        FolderLayout::Labels => {
            for label_dir in &top {
                add_label_folder(label_dir, Split::PrivateTest, &mut files, &mut ignored)?;
            }
        }
        FolderLayout::Splits => {
            for split_dir in &top {
                let split = parse_dir_name::<Split>(split_dir)?;
                for label_dir in folders_in(split_dir, &mut ignored)? {
                    add_label_folder(&label_dir, split, &mut files, &mut ignored)?;
                }
            }
        }
    }
    if files.is_empty() {
        return Err(no_images(root));
    }
    files.sort_by(|a, b| (a.1, a.2, &a.0).cmp(&(b.1, b.2, &b.0)));
    let numbers: Option<Vec<u32>> = files.iter().map(|(path, ..)| row_number(path)).collect();
    let unique = |rows: &Vec<u32>| {
        let mut sorted = rows.clone();
        sorted.sort_unstable();
        sorted.windows(2).all(|w| w[0] != w[1])
    };
    let (rows, rows_from_names) = match numbers {
        Some(rows) if unique(&rows) => (rows, true),
        _ => ((0..files.len() as u32).collect(), false),
    };
    let mut pixels = vec![0u8; files.len() * IMAGE_PIXELS];
    let read: Vec<Result<FaceRead>> = pixels
        .par_chunks_mut(IMAGE_PIXELS)
        .zip(files.par_iter())
        .map(|(out, (path, ..))| read_face(path, out, &crop))
        .collect();
    let mut skipped = Vec::new();
    let mut faceless = Vec::new();
    let mut kept = Vec::with_capacity(files.len());
    let mut resized = 0;
    for (i, result) in read.into_iter().enumerate() {
        match result {
            Ok(FaceRead::Face {
                resized: was_resized,
            }) => {
                resized += usize::from(was_resized);
                kept.push(i);
            }
            Ok(FaceRead::NoFace) => faceless.push(files[i].0.clone()),
            Err(e) if options.skip_unreadable => skipped.push(e),
            Err(e) => return Err(e),
        }
    }
    if kept.is_empty() {
        return Err(Error::Image {
            path: root.to_path_buf(),
            message: format!(
                "none of its {} images gave a face ({} unreadable, {} without a face found)",
                files.len(),
                skipped.len(),
                faceless.len()
            ),
        });
    }
    let mut order = kept;
    order.sort_by_key(|&i| (rows[i], files[i].1));
    let mut kept_pixels = Vec::with_capacity(order.len() * IMAGE_PIXELS);
    for &i in &order {
        kept_pixels.extend_from_slice(&pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
    }
    let dataset = Dataset::from_parts(
        kept_pixels,
        order.iter().map(|&i| files[i].2).collect(),
        order.iter().map(|&i| files[i].1).collect(),
        order.iter().map(|&i| rows[i]).collect(),
    )?;
    Ok(LoadedFolder {
        dataset,
        layout,
        resized,
        rows_from_names,
        ignored,
        skipped,
        faceless,
    })
}

/// The two layouts a folder may have, as errors name them.
const LAYOUTS: &str = "<Split>/<label>/<image> or <label>/<image>";

/// The error for a folder that holds no image in either layout.
fn no_images(root: &Path) -> Error {
    Error::Image {
        path: root.to_path_buf(),
        message: format!("no images found (expected {LAYOUTS})"),
    }
}

/// The images of label folder `dir` into `files` (its other files into `ignored`).
fn add_label_folder(
    dir: &Path,
    split: Split,
    files: &mut Vec<(PathBuf, Split, Emotion)>,
    ignored: &mut Vec<PathBuf>,
) -> Result<()> {
    let emotion = parse_dir_name::<Emotion>(dir)?;
    for file in visible_entries(dir)? {
        if file.is_dir() {
            return Err(Error::Image {
                path: file,
                message: "a folder inside a label folder (expected image files)".into(),
            });
        }
        if is_image_path(&file) {
            files.push((file, split, emotion));
        } else {
            ignored.push(file);
        }
    }
    Ok(())
}

/// The folders in `dir`; its other visible entries that are not images go to `ignored`, and
/// an image there is an error (images belong in label folders).
fn folders_in(dir: &Path, ignored: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in visible_entries(dir)? {
        if entry.is_dir() {
            folders.push(entry);
        } else if is_image_path(&entry) {
            return Err(Error::Image {
                path: entry,
                message: format!("an image outside a label folder (expected {LAYOUTS})"),
            });
        } else {
            ignored.push(entry);
        }
    }
    Ok(folders)
}

/// Splits when every folder under the root names a split, labels when every one names an
/// emotion; otherwise an error naming the first folder that fits neither.
fn folder_layout(root: &Path, top: &[PathBuf]) -> Result<FolderLayout> {
    if top.is_empty() {
        return Err(no_images(root));
    }
    let names: Vec<String> = top
        .iter()
        .map(|dir| {
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let split_errors: Vec<Option<ParseNameError>> =
        names.iter().map(|n| n.parse::<Split>().err()).collect();
    let label_errors: Vec<Option<ParseNameError>> =
        names.iter().map(|n| n.parse::<Emotion>().err()).collect();
    if split_errors.iter().all(Option::is_none) {
        return Ok(FolderLayout::Splits);
    }
    if label_errors.iter().all(Option::is_none) {
        return Ok(FolderLayout::Labels);
    }
    // Report against the layout some folder follows: splits if any names one.
    let errors = if split_errors.iter().any(Option::is_none) {
        split_errors
    } else {
        label_errors
    };
    for (dir, error) in top.iter().zip(errors) {
        if let Some(error) = error {
            return Err(Error::Image {
                path: dir.clone(),
                message: error.to_string(),
            });
        }
    }
    Ok(FolderLayout::Labels)
}

/// What became of one image.
enum FaceRead {
    /// Its face is in the output; whether the image was of another size than 48x48.
    Face { resized: bool },
    /// The crop found no face.
    NoFace,
}

/// One face into `out` (48x48 grey), taken from the image at `path` by `crop`.
fn read_face<F>(path: &Path, out: &mut [u8], crop: &F) -> Result<FaceRead>
where
    F: Fn(&GrayImage) -> std::result::Result<Option<Vec<u8>>, String>,
{
    let image = load_grey_image(path)?;
    let resized = image.dimensions() != (IMAGE_SIDE as u32, IMAGE_SIDE as u32);
    let face = crop(&image).map_err(|message| Error::Image {
        path: path.to_path_buf(),
        message,
    })?;
    match face {
        None => Ok(FaceRead::NoFace),
        Some(face) if face.len() == IMAGE_PIXELS => {
            out.copy_from_slice(&face);
            Ok(FaceRead::Face { resized })
        }
        Some(face) => Err(Error::Image {
            path: path.to_path_buf(),
            message: format!(
                "the crop gave {} bytes, not one 48x48 face ({IMAGE_PIXELS})",
                face.len()
            ),
        }),
    }
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

/// The number that ends a file's name (`123` of `Training_123.png`), if any.
fn row_number(file: &Path) -> Option<u32> {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let digits: String = stem
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse::<u32>().ok()
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
        std::fs::write(label_dir.join("7.png"), b"not a png").unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("7.png") && err.contains("not an image"),
            "{err}"
        );
        std::fs::remove_file(label_dir.join("7.png")).unwrap();

        std::fs::create_dir_all(label_dir.join("more")).unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("more") && err.contains("a folder inside a label folder"),
            "{err}"
        );
        std::fs::remove_dir(label_dir.join("more")).unwrap();

        let stray = dir.path().join("Training").join("face.png");
        GrayImage::new(48, 48).save(&stray).unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("face.png") && err.contains("an image outside a label folder"),
            "{err}"
        );
        std::fs::remove_file(&stray).unwrap();

        std::fs::create_dir_all(dir.path().join("Holdout")).unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("Holdout") && err.contains("unknown split"),
            "{err}"
        );
    }

    /// A small picture whose pixels differ from place to place (so that a crop or resize
    /// shows), in colour.
    fn colour_picture(width: u32, height: u32) -> image::RgbImage {
        image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn a_folder_of_labelled_faces_of_any_size_is_read_as_the_test_split() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["happiness", "anger", "Sad"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        let wide = colour_picture(100, 80);
        wide.save(root.join("happiness").join("img_a.png")).unwrap();
        let small = GrayImage::from_fn(48, 48, |x, y| image::Luma([(x * 5 + y) as u8]));
        small.save(root.join("anger").join("b.png")).unwrap();
        small.save(root.join("Sad").join("c.png")).unwrap();
        std::fs::write(root.join("README.txt"), "labels by folder").unwrap();
        std::fs::write(root.join("Sad").join("notes.csv"), "x").unwrap();

        let loaded = load_image_folder_with(root, &FolderOptions::default()).unwrap();
        assert_eq!(loaded.layout, FolderLayout::Labels);
        assert_eq!(loaded.resized, 1);
        assert!(!loaded.rows_from_names, "no name ends in a number");
        assert!(loaded.skipped.is_empty());
        let mut ignored: Vec<String> = loaded
            .ignored
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        ignored.sort();
        assert_eq!(ignored, ["README.txt", "notes.csv"]);
        let data = &loaded.dataset;
        assert_eq!(data.len(), 3);
        assert!(data.splits().iter().all(|&s| s == Split::PrivateTest));
        // Numbered in label order (Angry, Happy, Sad), then path order.
        assert_eq!(
            data.labels(),
            &[Emotion::Angry, Emotion::Happy, Emotion::Sad]
        );
        assert_eq!(data.rows(), &[0, 1, 2]);
        assert!(data.image(0) == small.as_raw().as_slice());
        let grey_wide = crate::face_image::to_grey(&image::DynamicImage::ImageRgb8(wide));
        assert!(data.image(1) == face_pixels(&grey_wide).as_slice());
        // The centred 80x80 square of the 100x80 picture, not the whole of it.
        let squashed =
            image::imageops::resize(&grey_wide, 48, 48, image::imageops::FilterType::Triangle);
        assert!(data.image(1) != squashed.as_raw().as_slice());
    }

    #[test]
    fn rows_come_from_file_names_only_when_every_name_gives_a_different_number() {
        let dir = tempfile::tempdir().unwrap();
        let face = GrayImage::from_fn(48, 48, |x, _| image::Luma([x as u8]));
        for (label, name) in [("3", "Training_12.png"), ("4", "PublicTest_5.png")] {
            let label_dir = dir.path().join("test").join(label);
            std::fs::create_dir_all(&label_dir).unwrap();
            face.save(label_dir.join(name)).unwrap();
        }
        let loaded = load_image_folder_with(dir.path(), &FolderOptions::default()).unwrap();
        assert_eq!(loaded.layout, FolderLayout::Splits);
        assert!(loaded.rows_from_names);
        assert_eq!(loaded.dataset.rows(), &[5, 12]);
        assert_eq!(loaded.dataset.labels(), &[Emotion::Sad, Emotion::Happy]);

        face.save(dir.path().join("test").join("4").join("x12.png"))
            .unwrap();
        let loaded = load_image_folder_with(dir.path(), &FolderOptions::default()).unwrap();
        assert!(!loaded.rows_from_names, "12 ends two names");
        assert_eq!(loaded.dataset.rows(), &[0, 1, 2]);
        assert_eq!(
            loaded.dataset.labels(),
            &[Emotion::Happy, Emotion::Sad, Emotion::Sad]
        );
    }

    #[test]
    fn unreadable_images_stop_the_load_or_are_skipped_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let label_dir = dir.path().join("fearful");
        std::fs::create_dir_all(&label_dir).unwrap();
        GrayImage::new(60, 60)
            .save(label_dir.join("1.png"))
            .unwrap();
        std::fs::write(label_dir.join("2.jpg"), b"truncated").unwrap();
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2.jpg"), "{err}");

        let options = FolderOptions {
            skip_unreadable: true,
        };
        let loaded = load_image_folder_with(dir.path(), &options).unwrap();
        assert_eq!(loaded.dataset.len(), 1);
        assert_eq!(loaded.dataset.labels(), &[Emotion::Fear]);
        assert_eq!(loaded.dataset.rows(), &[1]);
        assert_eq!(loaded.skipped.len(), 1);
        assert!(loaded.skipped[0].to_string().contains("2.jpg"));

        std::fs::remove_file(label_dir.join("1.png")).unwrap();
        let err = load_image_folder_with(dir.path(), &options)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none of its 1 images gave a face (1 unreadable, 0 without a face found)"),
            "{err}"
        );
    }

    #[test]
    fn a_crop_takes_each_face_and_images_without_one_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let label_dir = dir.path().join("test").join("surprised");
        std::fs::create_dir_all(&label_dir).unwrap();
        // Bright pictures hold a "face"; dark ones none; the crop takes the top-left 48x48.
        let bright = GrayImage::from_fn(64, 64, |x, y| image::Luma([200 + (x % 7 + y % 5) as u8]));
        bright.save(label_dir.join("a1.png")).unwrap();
        GrayImage::new(64, 64)
            .save(label_dir.join("a2.png"))
            .unwrap();
        let crop = |image: &GrayImage| -> std::result::Result<Option<Vec<u8>>, String> {
            if image.get_pixel(0, 0)[0] < 100 {
                return Ok(None);
            }
            Ok(Some(
                image::imageops::crop_imm(image, 0, 0, 48, 48)
                    .to_image()
                    .into_raw(),
            ))
        };
        let loaded =
            load_image_folder_with_crop(dir.path(), &FolderOptions::default(), crop).unwrap();
        assert_eq!(loaded.dataset.len(), 1);
        assert_eq!(loaded.dataset.rows(), &[1]);
        assert_eq!(loaded.dataset.labels(), &[Emotion::Surprise]);
        let expected = image::imageops::crop_imm(&bright, 0, 0, 48, 48).to_image();
        assert!(loaded.dataset.image(0) == expected.as_raw().as_slice());
        assert_eq!(loaded.faceless, [label_dir.join("a2.png")]);
        assert_eq!(loaded.resized, 1, "only the kept image is counted");

        // A crop that fails, or gives the wrong size, is an error naming the image.
        let failing = |_: &GrayImage| -> std::result::Result<Option<Vec<u8>>, String> {
            Err("detector broke".into())
        };
        let err = load_image_folder_with_crop(dir.path(), &FolderOptions::default(), failing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a1.png") && err.contains("detector broke"),
            "{err}"
        );
        let short = |_: &GrayImage| -> std::result::Result<Option<Vec<u8>>, String> {
            Ok(Some(vec![0; 10]))
        };
        let err = load_image_folder_with_crop(dir.path(), &FolderOptions::default(), short)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the crop gave 10 bytes"), "{err}");
    }

    #[test]
    fn a_folder_that_names_neither_a_split_nor_an_emotion_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["happy", "contempt"] {
            let label_dir = dir.path().join(name);
            std::fs::create_dir_all(&label_dir).unwrap();
            GrayImage::new(48, 48)
                .save(label_dir.join("1.png"))
                .unwrap();
        }
        let err = load_image_folder(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("contempt") && err.contains("unknown emotion 'contempt'"),
            "{err}"
        );
    }
}
