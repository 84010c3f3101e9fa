//! `bench photos` and `bench crops`: FER2013 faces pasted into larger photos, for what the
//! photo path costs (`fer predict` beside the `fer` Python package, per photo and per folder)
//! and for what detection and cropping do to accuracy (margins, tilt).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use fer::{ModelSource, Recognizer, RecognizerOptions};
use fer_data::{Dataset, Split};
use fer_detect::FaceBox;
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Photo sizes of the generated folder and how often each occurs (most photos people run are
/// phone-camera or web sizes; a few are full 12-megapixel frames).
const PHOTO_SIZES: [((u32, u32), f64); 5] = [
    ((320, 240), 0.2),
    ((640, 480), 0.35),
    ((1280, 960), 0.2),
    ((1920, 1080), 0.2),
    ((4000, 3000), 0.05),
];

#[derive(clap::Args)]
pub struct PhotosArgs {
    /// FER2013 file; default: $FER2013_CSV, data/, or ../shared/data/ beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// Photos in the generated folder (made once under target/bench-photos/).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Posed 256x256 portraits in the second generated folder.
    #[arg(long, default_value_t = 213)]
    posed: usize,
    /// Also time the mixed folder with detection at full size (slow).
    #[arg(long)]
    full_size: bool,
    /// Runs of `fer predict` on one 640x480 photo (process start to output; the median is
    /// reported).
    #[arg(long, default_value_t = 10)]
    single_runs: usize,
    /// Runs of each folder, ours and the peer taking turns; the medians are compared (a
    /// single run on a shared machine moved by up to 50%).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    folder_runs: u32,
    /// Python with the `fer` package (pip install fer) for the peer; required unless
    /// --no-peer.
    #[arg(long, env = "FER_PEER_PYTHON")]
    python: Option<PathBuf>,
    /// Measure ours alone.
    #[arg(long)]
    no_peer: bool,
}

#[derive(clap::Args)]
pub struct CropsArgs {
    /// FER2013 file; default: $FER2013_CSV, data/, or ../shared/data/ beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// The model: builtin, builtin:NAME or a run directory.
    #[arg(long, default_value = "builtin")]
    model: String,
    /// PrivateTest images to paste (the first n).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Margins to crop with, as a share of the box side.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.15,0.2")]
    margins: Vec<f32>,
    /// Vertical shifts of the crop's centre to try, as a share of the box's height (positive:
    /// down), each with the default margin.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-0.1,-0.05,0.05,0.1"
    )]
    offsets: Vec<f32>,
    /// Tilts to paste faces at, in degrees (in-plane rotation).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "0,10,20"
    )]
    tilts: Vec<f32>,
    /// Tilts within this many degrees of upright are left alone when faces are turned upright
    /// by their eyes (larger ones are turned back to its edge); each is measured.
    #[arg(long, value_delimiter = ',', default_value = "0,5,10")]
    dead_zones: Vec<f32>,
}

/// The `fer` binary beside this xtask, built first.
pub(crate) fn fer_binary() -> anyhow::Result<PathBuf> {
    crate::pipeline::build_fer(&crate::workspace_root(), "cpu")
}

pub(crate) fn load_private_test(data: Option<&Path>) -> anyhow::Result<(Dataset, Vec<usize>)> {
    let data = match data {
        Some(path) => path.to_path_buf(),
        None => crate::default_data().context(
            "no FER2013 file found: pass --data, set FER2013_CSV, or run `cargo xtask download`",
        )?,
    };
    let dataset = fer_data::load(&data, &fer_data::LoadOptions::default())?.dataset;
    let private = dataset.indices_of(Split::PrivateTest);
    ensure!(
        !private.is_empty(),
        "{}: no PrivateTest images",
        data.display()
    );
    Ok((dataset, private))
}

/// A FER2013 face as a grey image.
fn face(dataset: &Dataset, index: usize) -> GrayImage {
    GrayImage::from_raw(48, 48, dataset.image(index).to_vec()).expect("48x48")
}

/// A smooth background with noise, different per seed.
fn background(width: u32, height: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let (a, b): (f32, f32) = (rng.random_range(40.0..200.0), rng.random_range(40.0..200.0));
    let tint = [
        rng.random_range(0.8..1.2f32),
        rng.random_range(0.8..1.2f32),
        rng.random_range(0.8..1.2f32),
    ];
    let mut noise = ChaCha8Rng::seed_from_u64(rng.random());
    RgbImage::from_fn(width, height, |x, y| {
        let t = (x as f32 / width as f32 + y as f32 / height as f32) / 2.0;
        let base = a + (b - a) * t + noise.random_range(-12.0..12.0f32);
        Rgb(tint.map(|k| (base * k).clamp(0.0, 255.0) as u8))
    })
}

/// A `width` x `height` photo with one or two FER2013 faces (drawn from `faces`) on a smooth,
/// noisy background, each face a fifth to two fifths of the shorter side.
pub(crate) fn synthetic_photo(
    dataset: &Dataset,
    faces: &[usize],
    width: u32,
    height: u32,
    rng: &mut ChaCha8Rng,
) -> RgbImage {
    let mut photo = background(width, height, rng);
    let people = rng.random_range(1..=2u32);
    for p in 0..people {
        let short = width.min(height);
        let side = rng.random_range(short / 5..=short * 2 / 5).max(48);
        let cell = width / people;
        let x = p * cell + rng.random_range(0..=cell.saturating_sub(side).max(1) - 1);
        let y = rng.random_range(0..=(height - side));
        let index = faces[rng.random_range(0..faces.len())];
        let big = imageops::resize(&face(dataset, index), side, side, FilterType::CatmullRom);
        let colour = image::DynamicImage::ImageLuma8(big).to_rgb8();
        imageops::replace(&mut photo, &colour, i64::from(x), i64::from(y));
    }
    photo
}

/// Makes (once) a folder of `count` JPEG photos, each with one or two FER2013 faces.
fn photo_folder(dataset: &Dataset, faces: &[usize], count: usize) -> anyhow::Result<PathBuf> {
    let dir = crate::workspace_root().join(format!("target/bench-photos/{count}"));
    let done = dir.join(".complete");
    if done.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("making {count} photos in {}", dir.display());
    let mut rng = ChaCha8Rng::seed_from_u64(2013);
    let total: f64 = PHOTO_SIZES.iter().map(|(_, w)| w).sum();
    for k in 0..count {
        let mut pick = rng.random_range(0.0..total);
        let (width, height) = PHOTO_SIZES
            .iter()
            .find(|(_, w)| {
                pick -= w;
                pick < 0.0
            })
            .map_or(PHOTO_SIZES[0].0, |(size, _)| *size);
        let photo = synthetic_photo(dataset, faces, width, height, &mut rng);
        photo
            .save(dir.join(format!("photo-{k:04}.jpg")))
            .with_context(|| format!("cannot write photo {k}"))?;
    }
    std::fs::write(&done, b"")?;
    Ok(dir)
}

/// Makes (once) a folder of `count` posed portraits: 256x256 JPEGs, each one FER2013 face
/// filling 55 to 75% of the side, like the crops of posed-expression datasets.
fn posed_folder(dataset: &Dataset, faces: &[usize], count: usize) -> anyhow::Result<PathBuf> {
    let dir = crate::workspace_root().join(format!("target/bench-photos/posed-{count}"));
    let done = dir.join(".complete");
    if done.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("making {count} posed portraits in {}", dir.display());
    let mut rng = ChaCha8Rng::seed_from_u64(256);
    for k in 0..count {
        let mut photo = background(256, 256, &mut rng);
        let side = rng.random_range(141..=192u32);
        let index = faces[rng.random_range(0..faces.len())];
        let big = imageops::resize(&face(dataset, index), side, side, FilterType::CatmullRom);
        let x = rng.random_range(0..=256 - side);
        let y = rng.random_range(0..=256 - side);
        let colour = image::DynamicImage::ImageLuma8(big).to_rgb8();
        imageops::replace(&mut photo, &colour, i64::from(x), i64::from(y));
        photo
            .save(dir.join(format!("posed-{k:04}.jpg")))
            .with_context(|| format!("cannot write portrait {k}"))?;
    }
    std::fs::write(&done, b"")?;
    Ok(dir)
}

/// Wall seconds of `command`, which must succeed.
pub(crate) fn timed(command: &mut Command) -> anyhow::Result<(f64, Vec<u8>)> {
    let start = Instant::now();
    let output = command.output().context("cannot start the command")?;
    let seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "{:?} failed: {}",
            command,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok((seconds, output.stdout))
}

/// Seconds of several runs, for a report line: "2.31 / 2.25 / 2.40".
fn list_seconds(seconds: &[f64]) -> String {
    seconds
        .iter()
        .map(|s| format!("{s:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The middle of `values` (the upper of the two middles of an even count); `values` is not
/// empty.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn photos(args: &PhotosArgs) -> anyhow::Result<()> {
    let peer = if args.no_peer {
        None
    } else {
        Some(args.python.clone().context(
            "no Python for the peer: pass --python PATH or set FER_PEER_PYTHON to a Python \
             with the `fer` package (python3 -m venv ~/.venvs/ferpeer && ~/.venvs/ferpeer/bin/pip \
             install fer), or pass --no-peer",
        )?)
    };
    let fer = fer_binary()?;
    let (dataset, private) = load_private_test(args.data.as_deref())?;
    let folder = photo_folder(&dataset, &private, args.count)?;
    let single_640 = crate::workspace_root().join("target/bench-photos/single-640x480.jpg");
    if !single_640.is_file() {
        let mut rng = ChaCha8Rng::seed_from_u64(640);
        let mut photo = background(640, 480, &mut rng);
        let big = imageops::resize(
            &face(&dataset, private[0]),
            200,
            200,
            FilterType::CatmullRom,
        );
        imageops::replace(
            &mut photo,
            &image::DynamicImage::ImageLuma8(big).to_rgb8(),
            220,
            140,
        );
        photo.save(&single_640)?;
    }

    let mut report = json!({"photos": args.count});
    // One 640x480 photo, process start to output.
    let ours_single: Vec<f64> = (0..args.single_runs)
        .map(|_| timed(Command::new(&fer).args(["predict", "-q"]).arg(&single_640)).map(|(s, _)| s))
        .collect::<anyhow::Result<_>>()?;
    let ours_single = median(ours_single);
    println!(
        "fer predict, one 640x480 photo, process start to output: {:.1} ms (median of {})",
        1e3 * ours_single,
        args.single_runs
    );
    report["single_640x480_ms"] = json!(1e3 * ours_single);

    // Each folder with ours and the peer in turn.
    let posed = posed_folder(&dataset, &private, args.posed)?;
    let script = crate::workspace_root().join("xtask/bench/fer_package_peer.py");
    for (kind, folder, count) in [
        ("mixed", &folder, args.count),
        ("posed", &posed, args.posed),
    ] {
        let mut runs = vec![("default", vec![])];
        if args.full_size && kind == "mixed" {
            runs.push(("full-size detection", vec!["--detect-size", "0"]));
        }
        let mut entry = json!({"photos": count});
        // label -> (seconds of each run, faces); the peer's runs (whole process, its own JSON).
        let mut ours: Vec<(&str, Vec<f64>, usize)> =
            runs.iter().map(|(label, _)| (*label, vec![], 0)).collect();
        let mut peer_runs: Vec<(f64, serde_json::Value)> = vec![];
        for _ in 0..args.folder_runs {
            for ((_, extra), (_, seconds, faces)) in runs.iter().zip(&mut ours) {
                let (run_seconds, stdout) = timed(
                    Command::new(&fer)
                        .args(["predict", "-q", "--format", "csv"])
                        .args(extra)
                        .arg(folder),
                )?;
                seconds.push(run_seconds);
                *faces = String::from_utf8_lossy(&stdout)
                    .lines()
                    .count()
                    .saturating_sub(1);
            }
            if let Some(python) = &peer {
                let (peer_seconds, stdout) = timed(Command::new(python).arg(&script).arg(folder))?;
                peer_runs.push((peer_seconds, crate::last_json_line(&stdout)?));
            }
        }
        let runs_note = format!("median of {}", args.folder_runs);
        for (label, seconds, faces) in &ours {
            let median_seconds = median(seconds.clone());
            println!(
                "fer predict, {count} {kind} photos ({label}): {median_seconds:.2} s ({runs_note}; runs {}), {:.1} photos/s, {faces} faces",
                list_seconds(seconds),
                count as f64 / median_seconds
            );
            entry[*label] = json!({"seconds": median_seconds, "photos_per_second": count as f64 / median_seconds, "faces": faces, "runs_seconds": seconds});
        }
        if !peer_runs.is_empty() {
            let inner_seconds: Vec<f64> = peer_runs
                .iter()
                .map(|(_, inner)| inner["seconds"].as_f64().unwrap_or(f64::NAN))
                .collect();
            let process_seconds: Vec<f64> = peer_runs.iter().map(|(s, _)| *s).collect();
            let (peer_inner, peer_seconds) = (
                median(inner_seconds.clone()),
                median(process_seconds.clone()),
            );
            let median_run = &peer_runs[inner_seconds
                .iter()
                .position(|&s| s == peer_inner)
                .unwrap_or(0)]
            .1;
            let ours = entry["default"]["seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "fer (Python) {count} {kind} photos: {peer_inner:.2} s with its model loaded ({runs_note}; runs {}; {:.1} photos/s), {peer_seconds:.2} s as a process, {} faces",
                list_seconds(&inner_seconds),
                count as f64 / peer_inner,
                median_run["faces"],
            );
            println!(
                "{kind}: ours (a whole process) {:.2}x faster than the peer with its model loaded, {:.2}x process to process",
                peer_inner / ours,
                peer_seconds / ours
            );
            entry["peer"] = json!({"folder_seconds": peer_seconds, "folder_inner": median_run, "runs_inner_seconds": inner_seconds, "runs_folder_seconds": process_seconds});
        }
        report[kind] = entry;
    }

    if let Some(python) = &peer {
        let peer_single: Vec<f64> = (0..args.single_runs.min(5))
            .map(|_| timed(Command::new(python).arg(&script).arg(&single_640)).map(|(s, _)| s))
            .collect::<anyhow::Result<_>>()?;
        let peer_single = median(peer_single);
        println!(
            "fer (Python) one 640x480 photo, process start to output: {:.1} ms; ours {:.2}x faster",
            1e3 * peer_single,
            peer_single / ours_single
        );
        report["peer_single_640x480_ms"] = json!(1e3 * peer_single);
    }
    println!("{report}");
    Ok(())
}

/// A face pasted into a canvas: where it went (the square it covers before tilting).
struct Pasted {
    canvas: GrayImage,
    square: FaceBox,
}

fn paste(face: &GrayImage, side: u32, tilt_degrees: f32, rng: &mut ChaCha8Rng) -> Pasted {
    let canvas_side = 480;
    let mut canvas = GrayImage::from_fn(canvas_side, canvas_side, |_, _| {
        Luma([rng.random_range(60..190u8)])
    });
    let big = imageops::resize(face, side, side, FilterType::CatmullRom);
    let big = if tilt_degrees == 0.0 {
        big
    } else {
        let theta = tilt_degrees.to_radians();
        let centre = (side as f32 / 2.0, side as f32 / 2.0);
        let projection = rotation_about(theta, centre);
        projection(&big)
    };
    let x = rng.random_range(0..=canvas_side - side);
    let y = rng.random_range(0..=canvas_side - side);
    imageops::replace(&mut canvas, &big, i64::from(x), i64::from(y));
    Pasted {
        canvas,
        square: FaceBox {
            x,
            y,
            width: side,
            height: side,
            score: 0.0,
        },
    }
}

/// The `q` quantile (0 to 1) of `values`, nearest rank; NaN when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// In-plane rotation about `centre`, edges repeated (no black corners to find).
fn rotation_about(theta: f32, centre: (f32, f32)) -> impl Fn(&GrayImage) -> GrayImage {
    move |image: &GrayImage| {
        let (w, h) = image.dimensions();
        let (sin, cos) = theta.sin_cos();
        GrayImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - centre.0, y as f32 + 0.5 - centre.1);
            let sx = (cos * dx + sin * dy + centre.0 - 0.5)
                .round()
                .clamp(0.0, w as f32 - 1.0);
            let sy = (-sin * dx + cos * dy + centre.1 - 0.5)
                .round()
                .clamp(0.0, h as f32 - 1.0);
            *image.get_pixel(sx as u32, sy as u32)
        })
    }
}

pub fn crops(args: &CropsArgs) -> anyhow::Result<()> {
    let source: ModelSource = args.model.parse()?;
    let recognizer = Recognizer::open(&source, RecognizerOptions::default())?;
    let (dataset, private) = load_private_test(args.data.as_deref())?;
    let picked: Vec<usize> = private.into_iter().take(args.n).collect();
    let labels: Vec<usize> = picked
        .iter()
        .map(|&i| usize::from(dataset.labels()[i].label()))
        .collect();
    let accuracy = |predicted: &[(usize, usize)]| {
        predicted.iter().filter(|(k, p)| labels[*k] == *p).count() as f64
            / predicted.len().max(1) as f64
    };
    let top = |e: &fer::Emotions| usize::from(e.top().0.label());

    // The faces as FER2013 gives them.
    let pixels: Vec<u8> = picked
        .iter()
        .flat_map(|&i| dataset.image(i).to_vec())
        .collect();
    let direct: Vec<(usize, usize)> = recognizer
        .classify_pixels(&pixels)?
        .iter()
        .enumerate()
        .map(|(k, e)| (k, top(e)))
        .collect();
    println!(
        "{} PrivateTest faces, model {source}: as FER2013 crops {:.2}%",
        picked.len(),
        100.0 * accuracy(&direct)
    );
    let mut report = json!({"model": source.to_string(), "faces": picked.len(), "direct_accuracy": accuracy(&direct), "pasted": []});

    for &tilt in &args.tilts {
        let mut rng = ChaCha8Rng::seed_from_u64(48);
        // Every other face tilts the other way.
        let signed_tilt = |k: usize| if k.is_multiple_of(2) { tilt } else { -tilt };
        // Detect once per pasted face, then crop with every margin.
        let mut found: Vec<(usize, GrayImage, FaceBox)> = Vec::new();
        for (k, &index) in picked.iter().enumerate() {
            let side = [96u32, 144, 240][k % 3];
            let pasted = paste(&face(&dataset, index), side, signed_tilt(k), &mut rng);
            let best = recognizer
                .detect_faces(&pasted.canvas)
                .into_iter()
                .filter(|b| b.iou(&pasted.square) >= 0.3)
                .max_by(|a, b| a.iou(&pasted.square).total_cmp(&b.iou(&pasted.square)));
            if let Some(best) = best {
                found.push((k, pasted.canvas, best));
            }
        }
        // O-Net's landmarks of each found face, and how well their roll gives the tilt back.
        let mut landmarks = Vec::with_capacity(found.len());
        for (_, canvas, b) in &found {
            landmarks.push(recognizer.locate_landmarks(canvas, std::slice::from_ref(b))?[0]);
        }
        let errors: Vec<f64> = found
            .iter()
            .zip(&landmarks)
            .map(|((k, _, _), marks)| f64::from((marks.roll_degrees() - signed_tilt(*k)).abs()))
            .collect();
        let trusted = landmarks
            .iter()
            .filter(|marks| {
                marks
                    .upright_turn(
                        fer::UPRIGHT_MIN_FACE_PROBABILITY,
                        fer::UPRIGHT_MAX_ROLL_DEGREES,
                        0.0,
                    )
                    .is_some()
            })
            .count();
        let (median_error, p90_error) = (percentile(&errors, 0.5), percentile(&errors, 0.9));
        println!(
            "tilt {tilt:>4}°: O-Net's eye line against the tilt (the faces' own roll included): median {median_error:.1}°, 90th percentile {p90_error:.1}°; {trusted} of {} rolls trusted",
            landmarks.len()
        );
        // Accuracy on the found faces, cropped with `margin` around their box moved down by
        // `offset` box heights, turned upright by their eyes or not.
        let score = |margin: f32, offset: f32, dead_zone: Option<f32>| -> anyhow::Result<f64> {
            let crops: Vec<u8> = found
                .iter()
                .zip(&landmarks)
                .flat_map(|((_, canvas, b), marks)| {
                    let dy = (offset * b.height as f32).round() as i64;
                    let shifted = FaceBox {
                        y: (i64::from(b.y) + dy).max(0) as u32,
                        ..*b
                    };
                    let roll = dead_zone.map_or(0.0, |zone| {
                        marks
                            .upright_turn(
                                fer::UPRIGHT_MIN_FACE_PROBABILITY,
                                fer::UPRIGHT_MAX_ROLL_DEGREES,
                                zone,
                            )
                            .unwrap_or(0.0)
                    });
                    fer_detect::crop_face_upright(canvas, &shifted, margin, roll).into_raw()
                })
                .collect();
            let predicted: Vec<(usize, usize)> = recognizer
                .classify_pixels(&crops)?
                .iter()
                .zip(&found)
                .map(|(e, (k, _, _))| (*k, top(e)))
                .collect();
            Ok(accuracy(&predicted))
        };
        let same_faces_direct: Vec<(usize, usize)> =
            found.iter().map(|(k, _, _)| direct[*k]).collect();
        let direct_accuracy = accuracy(&same_faces_direct);
        let mut rows: Vec<serde_json::Value> = Vec::new();
        let plain = score(fer_detect::DEFAULT_MARGIN, 0.0, None)?;
        println!(
            "tilt {tilt:>4}°, margin {:.2}: {}/{} found, accuracy {:.2}% as boxed (the same faces as FER2013 crops: {:.2}%)",
            fer_detect::DEFAULT_MARGIN,
            found.len(),
            picked.len(),
            100.0 * plain,
            100.0 * direct_accuracy
        );
        rows.push(json!({"tilt": tilt, "margin": fer_detect::DEFAULT_MARGIN, "found": found.len(), "accuracy_as_boxed": plain, "roll_error_median_degrees": median_error, "roll_error_p90_degrees": p90_error, "rolls_trusted": trusted, "direct_accuracy_same_faces": direct_accuracy}));
        for &zone in &args.dead_zones {
            let upright = score(fer_detect::DEFAULT_MARGIN, 0.0, Some(zone))?;
            println!(
                "tilt {tilt:>4}°, margin {:.2}: turned by the eyes' roll beyond {zone}°: accuracy {:.2}%",
                fer_detect::DEFAULT_MARGIN,
                100.0 * upright
            );
            rows.push(json!({"tilt": tilt, "margin": fer_detect::DEFAULT_MARGIN, "dead_zone_degrees": zone, "found": found.len(), "accuracy_upright": upright}));
        }
        let default_zone = Some(fer::UPRIGHT_DEAD_ZONE_DEGREES);
        for &margin in &args.margins {
            let cropped = score(margin, 0.0, default_zone)?;
            println!(
                "tilt {tilt:>4}°, margin {margin:.2}: {}/{} found, accuracy {:.2}% (the same faces as FER2013 crops: {:.2}%)",
                found.len(),
                picked.len(),
                100.0 * cropped,
                100.0 * direct_accuracy
            );
            rows.push(json!({"tilt": tilt, "margin": margin, "found": found.len(), "accuracy": cropped, "direct_accuracy_same_faces": direct_accuracy}));
        }
        for &offset in &args.offsets {
            let margin = fer_detect::DEFAULT_MARGIN;
            let cropped = score(margin, offset, default_zone)?;
            println!(
                "tilt {tilt:>4}°, margin {margin:.2}, centre moved {offset:+.2} box heights: accuracy {:.2}%",
                100.0 * cropped
            );
            rows.push(json!({"tilt": tilt, "margin": margin, "offset": offset, "found": found.len(), "accuracy": cropped}));
        }
        report["pasted"]
            .as_array_mut()
            .expect("an array")
            .extend(rows);
    }
    println!("{report}");
    Ok(())
}
