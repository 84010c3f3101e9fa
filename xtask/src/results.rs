//! `cargo xtask results`: the small artefacts of the runs the README quotes, kept under
//! `results/`, and the README's result tables regenerated from them.
//!
//! `collect` copies what a run leaves that is small and says what was measured (the manifest,
//! configs, epoch histories, evaluations, the resumes that lengthened a run; never weights or
//! checkpoints) from a pipeline output folder or a run directory into `results/NAME/`, keeping
//! the layout. `render` replaces what lies between each marker pair `<!-- results:KEY -->` ...
//! `<!-- /results:KEY -->` in the README and in `docs/*.md` with a Markdown table computed
//! from `results/`; `render --check` writes nothing and fails, naming the file and block, when
//! one differs from what it would write.
//!
//! Blocks (`KEY`):
//! - `runs:NAME`: one row per model of `results/NAME/` (a pipeline's runs in its profile's
//!   order, then `hog-svm` and the ensembles where present; or the single run collected there).
//! - `epochs:NAME/RUN:E1,E2,...`: PublicTest accuracy and macro-F1 of `results/NAME/RUN` at
//!   the listed epochs and the last one, from its `history.json`.
//! - `bench:NAME`: the figures of `results/bench/NAME.json` (the JSON line `cargo xtask bench`
//!   prints last), ours beside the peer's.
//!
//! Numbers are formatted one way everywhere: accuracies 2 decimals (%), F1 3 decimals,
//! per-class recall 1 decimal (%), minutes 1 decimal, img/s 1 decimal, ms and s 3 decimals,
//! MiB none, ratios 2 decimals.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use fer_data::Emotion;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The largest file `collect` copies.
const MAX_BYTES: u64 = 2 * 1024 * 1024;
/// What `collect` copies from the top of a pipeline output folder.
const PIPELINE_FILES: [&str; 3] = ["manifest.json", "stats.json", "report.html"];
/// What `collect` copies from a run directory, besides its `eval-*.json`.
const RUN_FILES: [&str; 4] = [
    "config.json",
    "history.json",
    "selection.json",
    "normalizer.json",
];
/// The folder of `results/` that holds saved bench outputs (not a run's name).
const BENCH_DIR: &str = "bench";
/// Where `fer eval` stores a model's PrivateTest figures in its run directory.
const EVAL_PRIVATE: &str = "eval-private-test.json";
/// What stands in a cell without a figure.
const NONE: &str = "—";

#[derive(clap::Subcommand)]
pub enum Results {
    /// Copy the small artefacts of a pipeline output folder (or of one run directory) into
    /// results/NAME/: manifest.json, stats.json, report.html and, per run, config.json,
    /// history.json, eval-*.json, selection.json, normalizer.json, and extensions.json when a
    /// resume lengthened the run. Never weights or checkpoints; files over 2 MB are skipped and
    /// listed.
    Collect(CollectArgs),
    /// Regenerate the tables between `<!-- results:KEY -->` and `<!-- /results:KEY -->` in
    /// README.md and docs/*.md from results/ (KEY: runs:NAME, epochs:NAME/RUN:E1,E2,...,
    /// bench:NAME).
    Render(RenderArgs),
}

#[derive(clap::Args)]
pub struct CollectArgs {
    /// A `cargo xtask pipeline --out` folder or a `fer train --out` run directory.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The folder to create under results/ (letters, digits, '-', '_', '.').
    #[arg(long)]
    name: String,
    /// Replace results/NAME if it exists.
    #[arg(long)]
    force: bool,
    /// The results folder [default: results/ in the workspace].
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RenderArgs {
    /// Write nothing; fail, naming each stale block, if the file differs from what render
    /// would write.
    #[arg(long)]
    check: bool,
    /// The Markdown file holding the markers [default: the workspace's README.md and
    /// docs/*.md].
    #[arg(long, value_name = "FILE")]
    readme: Option<PathBuf>,
    /// The results folder [default: results/ in the workspace].
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
}

pub fn run(command: Results) -> Result<()> {
    let root = crate::workspace_root();
    match command {
        Results::Collect(args) => {
            check_name(&args.name)?;
            let results = args.results.unwrap_or_else(|| root.join("results"));
            let dest = results.join(&args.name);
            let collected = collect(&args.from, &dest, args.force)?;
            for (path, reason) in &collected.skipped {
                println!("skipped {} ({reason})", path.display());
            }
            println!(
                "copied {} files into {}",
                collected.copied.len(),
                dest.display()
            );
            if !collected
                .copied
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == EVAL_PRIVATE))
            {
                println!(
                    "note: no {EVAL_PRIVATE} among them: the README's tables need a model's \
                     PrivateTest evaluation (`fer eval --model RUN_DIR --split private-test`)"
                );
            }
            Ok(())
        }
        Results::Render(args) => {
            let results = args.results.unwrap_or_else(|| root.join("results"));
            let documents = match args.readme {
                Some(file) => vec![file],
                None => default_documents(&root)?,
            };
            let mut stale = Vec::new();
            for document in &documents {
                let outcome = render(document, &results, !args.check)?;
                if args.check {
                    if outcome.stale.is_empty() {
                        println!(
                            "{}: {} results blocks, all up to date",
                            document.display(),
                            outcome.blocks
                        );
                    } else {
                        stale.push(format!(
                            "{}: stale results blocks: {}",
                            document.display(),
                            outcome.stale.join(", ")
                        ));
                    }
                } else {
                    println!(
                        "{}: {} results blocks, {} rewritten",
                        document.display(),
                        outcome.blocks,
                        outcome.stale.len()
                    );
                }
            }
            ensure!(
                stale.is_empty(),
                "{}; run `cargo xtask results render`",
                stale.join("; ")
            );
            Ok(())
        }
    }
}

/// The Markdown files `render` keeps by default: README.md, then every `docs/*.md` in name
/// order (a file without markers renders as zero blocks).
fn default_documents(root: &Path) -> Result<Vec<PathBuf>> {
    let docs = root.join("docs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&docs)
        .with_context(|| format!("cannot list {}", docs.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", docs.display()))?;
    found.retain(|p| p.extension().is_some_and(|e| e == "md"));
    found.sort();
    found.insert(0, root.join("README.md"));
    Ok(found)
}

/// A folder name under `results/`: one path component, not `bench`.
fn check_name(name: &str) -> Result<()> {
    check_component(name)?;
    ensure!(
        name != BENCH_DIR,
        "name `{BENCH_DIR}` is taken: results/{BENCH_DIR}/ holds saved bench outputs"
    );
    Ok(())
}

/// One path component of letters, digits, '-', '_', '.' (not first).
fn check_component(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "name `{name}`: use letters, digits, '-', '_' and '.' (not first)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// collect

/// What `collect` did, paths relative to the source folder.
#[derive(Debug, Default)]
pub struct Collected {
    pub copied: Vec<PathBuf>,
    /// Each with the reason it was left out.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Copies the small artefacts of `from` (a pipeline output folder, or a run directory) into
/// `dest`, keeping the layout. `dest` is built beside itself and renamed into place, so a
/// failed copy leaves no half folder; an existing `dest` is replaced only with `force`.
pub fn collect(from: &Path, dest: &Path, force: bool) -> Result<Collected> {
    ensure!(from.is_dir(), "{}: no such directory", from.display());
    let is_pipeline = from.join("manifest.json").is_file();
    ensure!(
        is_pipeline || from.join("config.json").is_file(),
        "{}: neither a pipeline output folder (manifest.json) nor a run directory (config.json)",
        from.display()
    );
    ensure!(
        force || !dest.exists(),
        "{} exists; pass --force to replace it",
        dest.display()
    );
    let name = dest
        .file_name()
        .with_context(|| format!("{}: not a folder name", dest.display()))?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{}.partial", name.to_string_lossy()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    let mut collected = Collected::default();
    if is_pipeline {
        for entry in sorted_entries(from)? {
            let path = entry.path();
            let file = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && path.join("config.json").is_file() {
                collect_run(
                    &path,
                    &staging.join(&file),
                    Path::new(&file),
                    &mut collected,
                )?;
            } else if path.is_file() && PIPELINE_FILES.contains(&file.as_str()) {
                copy_small(&path, &staging.join(&file), file.into(), &mut collected)?;
            } else {
                collected
                    .skipped
                    .push((file.into(), left_out_reason(&path).into()));
            }
        }
    } else {
        collect_run(from, &staging, Path::new(""), &mut collected)?;
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    std::fs::rename(&staging, dest)
        .with_context(|| format!("cannot rename {} to {}", staging.display(), dest.display()))?;
    Ok(collected)
}

/// Copies a run directory's small artefacts; `relative` is its path in the report.
fn collect_run(run: &Path, dest: &Path, relative: &Path, collected: &mut Collected) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for entry in sorted_entries(run)? {
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        let wanted = RUN_FILES.contains(&file.as_str())
            || (file.starts_with("eval-") && file.ends_with(".json"));
        if path.is_file() && wanted {
            copy_small(&path, &dest.join(&file), relative.join(&file), collected)?;
        } else if file == "state.json" {
            // Its epochs are history.json's; what else it says of how the run was trained
            // (the resumes that lengthened it, when any) is kept as extensions.json.
            keep_extensions(&path, dest, relative, collected)?;
            collected
                .skipped
                .push((relative.join(&file), "its epochs are history.json's".into()));
        } else {
            collected
                .skipped
                .push((relative.join(&file), left_out_reason(&path).into()));
        }
    }
    Ok(())
}

/// Writes `dest/extensions.json` when the run's `state.json` records resumes that lengthened
/// the run (a schedule then restarted; the run's config alone does not say so).
fn keep_extensions(
    state: &Path,
    dest: &Path,
    relative: &Path,
    collected: &mut Collected,
) -> Result<()> {
    let state: serde_json::Value = read_json(state)?;
    let Some(extensions) = state
        .get("extensions")
        .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
    else {
        return Ok(());
    };
    let path = dest.join("extensions.json");
    let text = serde_json::to_string_pretty(extensions)? + "\n";
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    collected.copied.push(relative.join("extensions.json"));
    Ok(())
}

fn left_out_reason(path: &Path) -> &'static str {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match name.as_deref() {
        Some("checkpoints") => "checkpoints",
        Some(n) if n.ends_with(".safetensors") => "weights",
        _ => "not one of the artefacts kept",
    }
}

fn copy_small(
    source: &Path,
    dest: &Path,
    relative: PathBuf,
    collected: &mut Collected,
) -> Result<()> {
    // A pipeline's report shows FER2013 faces, and the data set is never committed: the
    // report is kept without that figure.
    let report = if source.file_name().is_some_and(|n| n == "report.html") {
        let html = std::fs::read_to_string(source)
            .with_context(|| format!("cannot read {}", source.display()))?;
        match without_sample_faces(&html) {
            Some(kept) => {
                collected.skipped.push((
                    format!("{}#sample-faces", relative.display()).into(),
                    "FER2013 faces are never committed; the rest of the report is kept".into(),
                ));
                Some(kept)
            }
            None => Some(html),
        }
    } else {
        None
    };
    let bytes = match &report {
        Some(html) => html.len() as u64,
        None => std::fs::metadata(source)
            .with_context(|| format!("cannot read {}", source.display()))?
            .len(),
    };
    if bytes > MAX_BYTES {
        collected
            .skipped
            .push((relative, format!("{bytes} bytes, over the 2 MB limit")));
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match report {
        Some(html) => std::fs::write(dest, html)
            .with_context(|| format!("cannot write {}", dest.display()))?,
        None => {
            std::fs::copy(source, dest).with_context(|| {
                format!("cannot copy {} to {}", source.display(), dest.display())
            })?;
        }
    }
    collected.copied.push(relative);
    Ok(())
}

/// How fer-report's HTML opens the figure of sample faces (`html.rs`, `figure`).
const SAMPLE_FACES: &str = "<figure><svg role=\"img\" aria-label=\"sample faces\"";
const SAMPLE_FACES_NOTE: &str =
    "<p>(The sample faces are left out of this copy: FER2013 images are never committed.)</p>";

/// `html` without its figures of sample faces, or `None` when it has none.
fn without_sample_faces(html: &str) -> Option<String> {
    let mut rest = html;
    let mut kept = String::with_capacity(html.len());
    let mut found = false;
    while let Some(start) = rest.find(SAMPLE_FACES) {
        let end = rest[start..]
            .find("</figure>")
            .map_or(rest.len(), |e| start + e + "</figure>".len());
        kept.push_str(&rest[..start]);
        kept.push_str(SAMPLE_FACES_NOTE);
        rest = &rest[end..];
        found = true;
    }
    kept.push_str(rest);
    found.then_some(kept)
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

// ---------------------------------------------------------------------------------------
// render

/// What `render` found.
#[derive(Debug)]
pub struct Rendered {
    /// Marker pairs in the file.
    pub blocks: usize,
    /// Keys of the blocks whose content differs from what `results/` gives.
    pub stale: Vec<String>,
}

/// Regenerates every results block of `readme` from `results`; writes the file when `write`
/// and something changed.
pub fn render(readme: &Path, results: &Path, write: bool) -> Result<Rendered> {
    let text = std::fs::read_to_string(readme)
        .with_context(|| format!("cannot read {}", readme.display()))?;
    let (new_text, rendered) = render_text(&text, readme, results)?;
    if write && new_text != text {
        fer_data::write_atomically(readme, new_text.as_bytes())
            .with_context(|| format!("cannot write {}", readme.display()))?;
    }
    Ok(rendered)
}

/// One marker pair: its key, the line of its opening marker (1-based), and the byte range
/// between the two marker lines.
#[derive(Debug)]
struct Block {
    key: String,
    line: usize,
    content: std::ops::Range<usize>,
}

const OPEN: &str = "<!-- results:";
const CLOSE: &str = "<!-- /results:";
const END: &str = "-->";

/// The marker pairs of `text`. A marker is a whole line (surrounding blanks aside), so one
/// quoted inside a sentence or a code span is text.
fn find_blocks(text: &str, file: &Path) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let key = |prefix: &str| {
            trimmed
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(END))
                .map(|key| key.trim().to_string())
        };
        if let Some(key) = key(CLOSE) {
            match open.take() {
                Some((open_key, open_line, content_start)) if open_key == key => {
                    blocks.push(Block {
                        key,
                        line: open_line,
                        content: content_start..start,
                    });
                }
                Some((open_key, open_line, _)) => bail!(
                    "{}: line {number}: `{CLOSE}{key} {END}` does not close block `{open_key}` \
                     (opened on line {open_line})",
                    file.display()
                ),
                None => bail!(
                    "{}: line {number}: `{CLOSE}{key} {END}` closes no block",
                    file.display()
                ),
            }
        } else if let Some(key) = key(OPEN) {
            if let Some((open_key, open_line, _)) = &open {
                bail!(
                    "{}: line {number}: block `{key}` opens inside block `{open_key}` (line \
                     {open_line})",
                    file.display()
                );
            }
            ensure!(
                !key.is_empty(),
                "{}: line {number}: a results marker without a key",
                file.display()
            );
            open = Some((key, number, offset));
        }
    }
    if let Some((key, line, _)) = open {
        bail!(
            "{}: line {line}: block `{key}` is never closed (`{CLOSE}{key} {END}`)",
            file.display()
        );
    }
    Ok(blocks)
}

/// `text` with every block regenerated from `results`, and which blocks changed.
fn render_text(text: &str, file: &Path, results: &Path) -> Result<(String, Rendered)> {
    let blocks = find_blocks(text, file)?;
    let mut out = String::with_capacity(text.len());
    let mut stale = Vec::new();
    let mut copied = 0;
    for block in &blocks {
        let table = table_for(&block.key, results).with_context(|| {
            format!(
                "{}: line {}: block `{}`",
                file.display(),
                block.line,
                block.key
            )
        })?;
        // Blank lines around the table: Markdown then reads it as a table whatever the
        // renderer makes of the comment lines.
        let content = format!("\n{table}\n");
        if text[block.content.clone()] != content {
            stale.push(block.key.clone());
        }
        out.push_str(&text[copied..block.content.start]);
        out.push_str(&content);
        copied = block.content.end;
    }
    out.push_str(&text[copied..]);
    Ok((
        out,
        Rendered {
            blocks: blocks.len(),
            stale,
        },
    ))
}

/// The Markdown table of one block key.
fn table_for(key: &str, results: &Path) -> Result<String> {
    let (kind, argument) = key.split_once(':').unwrap_or((key, ""));
    match kind {
        "runs" => {
            check_name(argument)?;
            runs_table(&existing_folder(results, argument)?)
        }
        "epochs" => {
            let (run, epochs) = argument
                .rsplit_once(':')
                .context("expected `epochs:NAME/RUN:E1,E2,...`")?;
            let mut parts = run.split('/');
            check_name(parts.next().unwrap_or(""))?;
            for part in parts {
                check_component(part)?;
            }
            let epochs = epochs
                .split(',')
                .map(|e| {
                    e.trim()
                        .parse::<usize>()
                        .with_context(|| format!("`{e}` is not an epoch number"))
                })
                .collect::<Result<Vec<_>>>()?;
            epochs_table(&existing_folder(results, run)?, &epochs)
        }
        "bench" => {
            check_component(argument)?;
            let dir = existing_folder(results, BENCH_DIR)?;
            bench_table(&dir.join(format!("{argument}.json")))
        }
        _ => bail!("unknown block kind `{kind}` (known: runs:, epochs:, bench:)"),
    }
}

/// `results/relative`, which must be a folder.
fn existing_folder(results: &Path, relative: &str) -> Result<PathBuf> {
    let dir = results.join(relative);
    if !dir.is_dir() {
        let hint = if relative == BENCH_DIR {
            "save a bench run's output there (see results/README.md)".to_string()
        } else {
            format!(
                "collect it with `cargo xtask results collect --from RUN_OUT_DIR --name {}`",
                relative.split('/').next().unwrap_or(relative)
            )
        };
        bail!("results folder {} not found: {hint}", dir.display());
    }
    Ok(dir)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: unexpected content", path.display()))
}

/// What the tables read of a pipeline's `manifest.json`.
#[derive(Deserialize)]
struct Manifest {
    profile: ManifestProfile,
}

#[derive(Deserialize)]
struct ManifestProfile {
    runs: Vec<Named>,
    #[serde(default)]
    ensembles: Vec<Ensemble>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Ensemble {
    name: String,
    members: Vec<String>,
}

/// What the tables read of `fer eval --json` (fer-report's `EvalReport`).
#[derive(Deserialize)]
struct Eval {
    accuracy: f64,
    macro_f1: f64,
    per_class: Vec<ClassFigures>,
    #[serde(default)]
    without_training_copies: Option<Subset>,
}

#[derive(Deserialize)]
struct ClassFigures {
    class: String,
    recall: f64,
}

#[derive(Deserialize)]
struct Subset {
    accuracy: f64,
    macro_f1: f64,
}

/// What the tables read of one `history.json` entry (fer-model's `EpochRecord`).
#[derive(Deserialize)]
struct Epoch {
    epoch: usize,
    val_accuracy: f64,
    val_macro_f1: f64,
    best_epoch: usize,
    train_seconds: f64,
    eval_seconds: f64,
}

/// What the tables read of a HOG-SVM run's `selection.json`.
#[derive(Deserialize)]
struct Selection {
    chosen_c: f64,
    candidates: Vec<Candidate>,
    feature_seconds: f64,
}

#[derive(Deserialize)]
struct Candidate {
    c: f64,
    public_test_accuracy: f64,
    train_seconds: f64,
}

fn percent(share: f64) -> String {
    format!("{:.2}%", 100.0 * share)
}

fn minutes(seconds: f64) -> String {
    format!("{:.1}", seconds / 60.0)
}

fn history(run: &Path) -> Result<Option<Vec<Epoch>>> {
    let path = run.join("history.json");
    if !path.is_file() {
        return Ok(None);
    }
    let history: Vec<Epoch> = read_json(&path)?;
    ensure!(!history.is_empty(), "{}: no epochs", path.display());
    Ok(Some(history))
}

/// "48.8 (44.9 + 3.9)": wall minutes of training and of the per-epoch PublicTest evaluations.
fn wall(histories: &[&[Epoch]]) -> String {
    let train: f64 = histories
        .iter()
        .flat_map(|h| h.iter())
        .map(|e| e.train_seconds)
        .sum();
    let eval: f64 = histories
        .iter()
        .flat_map(|h| h.iter())
        .map(|e| e.eval_seconds)
        .sum();
    format!(
        "{} ({} + {})",
        minutes(train + eval),
        minutes(train),
        minutes(eval)
    )
}

/// The `runs:NAME` table of `dir` (a collected pipeline output or a single run).
fn runs_table(dir: &Path) -> Result<String> {
    let manifest_path = dir.join("manifest.json");
    // (name, members when an ensemble)
    let mut models: Vec<(String, Vec<String>)> = Vec::new();
    if manifest_path.is_file() {
        let manifest: Manifest = read_json(&manifest_path)?;
        for run in manifest.profile.runs {
            ensure!(
                dir.join(&run.name).is_dir(),
                "{}: missing (a run of {})",
                dir.join(&run.name).display(),
                manifest_path.display()
            );
            models.push((run.name, Vec::new()));
        }
        if dir.join("hog-svm").is_dir() {
            models.push(("hog-svm".into(), Vec::new()));
        }
        for ensemble in manifest.profile.ensembles {
            if dir.join(&ensemble.name).is_dir() {
                models.push((ensemble.name, ensemble.members));
            }
        }
    } else {
        ensure!(
            dir.join("config.json").is_file(),
            "{}: neither a collected pipeline output (manifest.json) nor a run (config.json)",
            dir.display()
        );
        models.push((String::new(), Vec::new()));
    }
    let mut table = String::from(
        "| model | PrivateTest acc. | macro-F1 | acc. / macro-F1 without Training copies | epochs \
         | wall min (training + PublicTest) | best on PublicTest |",
    );
    for emotion in Emotion::ALL {
        let _ = write!(table, " {} |", emotion.name());
    }
    table.push_str("\n|---|---|---|---|---|---|---|");
    table.push_str(&"---|".repeat(Emotion::COUNT));
    table.push('\n');
    for (name, members) in &models {
        let run = dir.join(name);
        let label = if name.is_empty() {
            dir.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        } else {
            name.clone()
        };
        let eval_path = run.join(EVAL_PRIVATE);
        ensure!(
            eval_path.is_file(),
            "{}: missing (the model's PrivateTest evaluation)",
            eval_path.display()
        );
        let eval: Eval = read_json(&eval_path)?;
        let names: Vec<&str> = eval.per_class.iter().map(|c| c.class.as_str()).collect();
        let expected: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
        ensure!(
            names == expected,
            "{}: per_class lists {names:?}, expected {expected:?}",
            eval_path.display()
        );
        let without = eval.without_training_copies.as_ref().map_or_else(
            || NONE.to_string(),
            |s| format!("{} / {:.3}", percent(s.accuracy), s.macro_f1),
        );
        let (epochs, wall_cell, best) = if members.is_empty() {
            match history(&run)? {
                Some(history) => {
                    let last = history.last().expect("not empty");
                    let best = history
                        .iter()
                        .find(|e| e.epoch == last.best_epoch)
                        .with_context(|| {
                            format!(
                                "{}: best epoch {} is not in the history",
                                run.join("history.json").display(),
                                last.best_epoch
                            )
                        })?;
                    (
                        history.len().to_string(),
                        wall(&[&history]),
                        format!("epoch {}: {}", best.epoch, percent(best.val_accuracy)),
                    )
                }
                None if run.join("selection.json").is_file() => {
                    let path = run.join("selection.json");
                    let selection: Selection = read_json(&path)?;
                    let chosen = selection
                        .candidates
                        .iter()
                        .find(|c| c.c == selection.chosen_c)
                        .with_context(|| {
                            format!(
                                "{}: chosen C {} is not among the candidates",
                                path.display(),
                                selection.chosen_c
                            )
                        })?;
                    let seconds = selection.feature_seconds
                        + selection
                            .candidates
                            .iter()
                            .map(|c| c.train_seconds)
                            .sum::<f64>();
                    (
                        NONE.to_string(),
                        minutes(seconds),
                        format!("C = {}: {}", chosen.c, percent(chosen.public_test_accuracy)),
                    )
                }
                None => (NONE.to_string(), NONE.to_string(), NONE.to_string()),
            }
        } else {
            // An ensemble costs its members' training.
            let mut histories = Vec::new();
            for member in members {
                let history = history(&dir.join(member))?.with_context(|| {
                    format!(
                        "{}: missing",
                        dir.join(member).join("history.json").display()
                    )
                })?;
                histories.push(history);
            }
            let epochs: Vec<String> = histories.iter().map(|h| h.len().to_string()).collect();
            let slices: Vec<&[Epoch]> = histories.iter().map(Vec::as_slice).collect();
            (epochs.join(" + "), wall(&slices), NONE.to_string())
        };
        let _ = write!(
            table,
            "| `{label}` | {} | {:.3} | {without} | {epochs} | {wall_cell} | {best} |",
            percent(eval.accuracy),
            eval.macro_f1
        );
        for class in &eval.per_class {
            let _ = write!(table, " {:.1} |", 100.0 * class.recall);
        }
        table.push('\n');
    }
    Ok(table)
}

/// The `epochs:NAME/RUN:E1,...` table: PublicTest figures at `epochs` and at the last epoch.
fn epochs_table(run: &Path, epochs: &[usize]) -> Result<String> {
    let path = run.join("history.json");
    let history = history(run)?.with_context(|| format!("{}: missing", path.display()))?;
    let last = history.last().expect("not empty");
    let mut wanted = epochs.to_vec();
    if !wanted.contains(&last.epoch) {
        wanted.push(last.epoch);
    }
    let mut table =
        String::from("| epoch | PublicTest acc. | PublicTest macro-F1 |\n|---|---|---|\n");
    for epoch in wanted {
        let record = history.iter().find(|e| e.epoch == epoch).with_context(|| {
            format!(
                "{}: no epoch {epoch} (the run has epochs {}..={})",
                path.display(),
                history[0].epoch,
                last.epoch
            )
        })?;
        let mut notes = Vec::new();
        if epoch == last.best_epoch {
            notes.push("best");
        }
        if epoch == last.epoch {
            notes.push("last");
        }
        let label = if notes.is_empty() {
            epoch.to_string()
        } else {
            format!("{epoch} ({})", notes.join(", "))
        };
        let _ = writeln!(
            table,
            "| {label} | {} | {:.3} |",
            percent(record.val_accuracy),
            record.val_macro_f1
        );
    }
    Ok(table)
}

/// How a bench figure is written.
#[derive(Clone, Copy)]
enum Unit {
    ImagesPerSecond,
    Milliseconds,
    Seconds,
    Mebibytes,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::ImagesPerSecond => format!("{value:.1}"),
            Unit::Milliseconds | Unit::Seconds => format!("{value:.3}"),
            Unit::Mebibytes => format!("{value:.0}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::ImagesPerSecond => "img/s",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Mebibytes => "MiB",
        }
    }
}

/// The number at `pointer` (a JSON pointer), if there is one (bench writes NaN as null).
fn number(json: &Value, pointer: &str) -> Option<f64> {
    json.pointer(pointer).and_then(Value::as_f64)
}

/// The `bench:NAME` table: each figure of `path` that bench prints, ours beside the peer's,
/// with ours / peer (for times: the share of the peer's time; for rates: the speed ratio).
fn bench_table(path: &Path) -> Result<String> {
    let json: Value = read_json(path)?;
    ensure!(
        json.is_object(),
        "{}: expected the JSON object bench prints last",
        path.display()
    );
    // (metric, unit, ours, peer)
    let mut rows: Vec<(String, Unit, Option<f64>, Option<f64>)> = Vec::new();
    // train-step: batch 128 at the top level, every batch's PyTorch figures under `torch`
    // with the ratios (ours at other batches is the ratio times PyTorch's figure).
    let mut batches: Vec<(usize, &Value)> = json
        .get("torch")
        .and_then(Value::as_object)
        .map(|torch| {
            torch
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        })
        .unwrap_or_default();
    batches.sort_by_key(|b| b.0);
    if batches.is_empty()
        && (json.get("train_img_s").is_some() || json.get("infer_img_s").is_some())
    {
        batches.push((128, &Value::Null));
    }
    for (what, key) in [("training step", "train"), ("inference", "infer")] {
        for &(batch, peer) in &batches {
            let theirs = number(peer, &format!("/{key}_img_s"));
            let ours = if batch == 128 {
                number(&json, &format!("/{key}_img_s"))
            } else {
                None
            }
            .or_else(|| Some(theirs? * number(peer, &format!("/{key}_ratio"))?));
            rows.push((
                format!("{what}, batch {batch}"),
                Unit::ImagesPerSecond,
                ours,
                theirs,
            ));
        }
    }
    rows.push((
        "batch-1 latency".into(),
        Unit::Milliseconds,
        number(&json, "/batch1_latency_ms"),
        number(&json, "/torch_batch1_latency_ms"),
    ));
    // ingest
    let csv = number(&json, "/ours/csv/seconds");
    rows.extend([
        (
            "load .csv, against the seed's pandas loader".to_string(),
            Unit::Seconds,
            csv,
            number(&json, "/peer/seed_way_s"),
        ),
        (
            "load .csv, against vectorised pandas".into(),
            Unit::Seconds,
            csv.filter(|_| json.pointer("/peer/vectorised_s").is_some()),
            number(&json, "/peer/vectorised_s"),
        ),
        (
            "load .csv.gz".into(),
            Unit::Seconds,
            number(&json, "/ours/gz/seconds"),
            None,
        ),
        (
            "peak RSS, .csv".into(),
            Unit::Mebibytes,
            number(&json, "/ours/csv/peak_rss_mib"),
            None,
        ),
        (
            "peak RSS, .csv.gz".into(),
            Unit::Mebibytes,
            number(&json, "/ours/gz/peak_rss_mib"),
            None,
        ),
    ]);
    // augment
    rows.extend([
        (
            "augmentation, seed pipeline, against torchvision's".to_string(),
            Unit::ImagesPerSecond,
            number(&json, "/ours_img_s/seed"),
            number(&json, "/torchvision_img_s"),
        ),
        (
            "augmentation, modern pipeline".into(),
            Unit::ImagesPerSecond,
            number(&json, "/ours_img_s/modern"),
            None,
        ),
        (
            "augmentation, everything pipeline, against PyTorch's seed-CNN training step".into(),
            Unit::ImagesPerSecond,
            number(&json, "/ours_img_s/everything"),
            number(&json, "/torch_train_step_img_s"),
        ),
    ]);
    rows.retain(|(_, _, ours, peer)| ours.is_some() || peer.is_some());
    ensure!(
        !rows.is_empty(),
        "{}: none of the figures `cargo xtask bench` prints",
        path.display()
    );
    let mut table = String::from("| metric | ours | peer | ours / peer |\n|---|---|---|---|\n");
    if let Some(threads) = json.get("threads").and_then(Value::as_u64) {
        let _ = writeln!(table, "| threads | {threads} | {threads} | |");
    }
    if let Some(kernels) = json.get("kernels").and_then(Value::as_str) {
        let _ = writeln!(table, "| our CPU kernels | {kernels} | | |");
    }
    let cell =
        |unit: Unit, value: Option<f64>| value.map_or_else(|| NONE.to_string(), |v| unit.format(v));
    for (metric, unit, ours, peer) in rows {
        let ratio = match (ours, peer) {
            (Some(ours), Some(peer)) => format!("{:.2}x", ours / peer),
            _ => NONE.to_string(),
        };
        let _ = writeln!(
            table,
            "| {metric} ({}) | {} | {} | {ratio} |",
            unit.name(),
            cell(unit, ours),
            cell(unit, peer)
        );
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn write_json(path: &Path, value: &Value) {
        write(path, &serde_json::to_string_pretty(value).unwrap());
    }

    fn eval_json(accuracy: f64, recall: f64, without: bool) -> Value {
        let per_class: Vec<Value> = Emotion::ALL
            .iter()
            .map(|e| json!({"class": e.name(), "precision": 0.5, "recall": recall, "f1": 0.5, "support": 10}))
            .collect();
        let mut eval = json!({
            "split": "PrivateTest", "n": 70, "accuracy": accuracy, "macro_f1": 0.629,
            "loss": null, "confusion": vec![[10, 0, 0, 0, 0, 0, 0]; 7], "per_class": per_class
        });
        if without {
            eval["without_training_copies"] = json!({"excluded": 3, "n": 67, "accuracy": 0.66556, "macro_f1": 0.6071, "recall": vec![0.5; 7]});
        }
        eval
    }

    fn history_json(accuracies: &[f64], best: usize) -> Value {
        let epochs: Vec<Value> = accuracies
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({
                    "epoch": i + 1, "train_loss": 1.0, "val_loss": 1.0, "val_accuracy": a,
                    "train_accuracy": null, "val_macro_f1": a / 2.0, "best_epoch": best, "lr": 0.1,
                    "train_seconds": 600.0, "eval_seconds": 30.0, "train_images_per_second": 150.0
                })
            })
            .collect();
        Value::Array(epochs)
    }

    /// A small pipeline output folder: two CNN runs, a HOG-SVM run, an ensemble.
    fn pipeline_out(root: &Path) -> PathBuf {
        let out = root.join("runs/cpu");
        write_json(
            &out.join("manifest.json"),
            &json!({"profile_name": "cpu", "profile": {
                "description": "x", "cnn": {}, "runs": [{"name": "vgg"}, {"name": "seed"}],
                "hog_svm": {}, "ensembles": [{"name": "both", "members": ["vgg", "seed"]}]
            }}),
        );
        write(&out.join("stats.json"), "{}");
        write(
            &out.join("report.html"),
            &format!(
                "<html><section>{SAMPLE_FACES} width=\"9\"><image href=\"data:face\"/></svg>\
                 <figcaption>faces</figcaption></figure>\n<p>runs</p></section></html>"
            ),
        );
        write(&out.join("configs/vgg.json"), "{}");
        write(&out.join("plots/class-distribution.png"), "png");
        for (run, accuracy) in [("vgg", 0.6776), ("seed", 0.6)] {
            let dir = out.join(run);
            write(&dir.join("config.json"), "{}");
            write(&dir.join("normalizer.json"), "{}");
            write(&dir.join("state.json"), "{}");
            write_json(
                &dir.join("history.json"),
                &history_json(&[0.5, 0.6623, 0.66], 2),
            );
            write_json(
                &dir.join(EVAL_PRIVATE),
                &eval_json(accuracy, 0.617, run == "vgg"),
            );
            write(&dir.join("best.safetensors"), "weights");
            write(&dir.join("last.safetensors"), "weights");
            write(
                &dir.join("checkpoints/epoch-0001/model.safetensors"),
                "weights",
            );
            write(&dir.join("checkpoints/epoch-0001/state.json"), "{}");
        }
        let hog = out.join("hog-svm");
        write(&hog.join("config.json"), r#"{"model": "hog-svm"}"#);
        write(&hog.join("weights.safetensors"), "weights");
        write_json(
            &hog.join("selection.json"),
            &json!({"chosen_c": 0.001, "candidates": [
                {"c": 0.0001, "public_test_accuracy": 0.45, "epochs": 9, "converged": true, "train_seconds": 10.0},
                {"c": 0.001, "public_test_accuracy": 0.4712, "epochs": 9, "converged": true, "train_seconds": 20.0}
            ], "training_images": 1, "public_test_images": 1, "feature_len": 1, "feature_seconds": 8.0}),
        );
        write_json(&hog.join(EVAL_PRIVATE), &eval_json(0.5029, 0.36, true));
        let both = out.join("both");
        write(&both.join("config.json"), r#"{"ensemble": {}}"#);
        write_json(&both.join(EVAL_PRIVATE), &eval_json(0.6796, 0.619, true));
        out
    }

    fn relative(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn collect_keeps_the_small_artefacts_and_skips_weights_checkpoints_and_big_files() {
        let root = tempfile::tempdir().unwrap();
        let out = pipeline_out(root.path());
        // Over the limit: left out, and said so.
        let big = vec![b' '; MAX_BYTES as usize + 1];
        std::fs::write(out.join("stats.json"), &big).unwrap();
        let dest = root.path().join("results/cpu");
        let collected = collect(&out, &dest, false).unwrap();
        let copied = relative(&collected.copied);
        for expected in [
            "manifest.json",
            "report.html",
            "vgg/config.json",
            "vgg/history.json",
            "vgg/normalizer.json",
            "vgg/eval-private-test.json",
            "hog-svm/selection.json",
            "both/eval-private-test.json",
        ] {
            assert!(
                copied.iter().any(|c| c == expected),
                "{expected} in {copied:?}"
            );
            assert!(dest.join(expected).is_file(), "{expected}");
        }
        let skipped: Vec<(String, &str)> = collected
            .skipped
            .iter()
            .map(|(p, r)| (p.display().to_string(), r.as_str()))
            .collect();
        for (path, reason) in [
            ("vgg/best.safetensors", "weights"),
            ("vgg/checkpoints", "checkpoints"),
            ("hog-svm/weights.safetensors", "weights"),
        ] {
            assert!(
                skipped.contains(&(path.to_string(), reason)),
                "{path} in {skipped:?}"
            );
        }
        assert!(
            skipped
                .iter()
                .any(|(p, r)| p == "stats.json" && r.contains("over the 2 MB limit")),
            "{skipped:?}"
        );
        for absent in [
            "stats.json",
            "vgg/best.safetensors",
            "vgg/checkpoints",
            "vgg/state.json",
            "hog-svm/weights.safetensors",
            "configs",
            "plots",
        ] {
            assert!(!dest.join(absent).exists(), "{absent} was copied");
        }
        // The report is kept without the FER2013 faces, and says so.
        let report = std::fs::read_to_string(dest.join("report.html")).unwrap();
        assert_eq!(
            report,
            format!("<html><section>{SAMPLE_FACES_NOTE}\n<p>runs</p></section></html>")
        );
        assert!(skipped.iter().any(|(p, _)| p == "report.html#sample-faces"));
        // Nothing is left half made beside it.
        let names: Vec<_> = std::fs::read_dir(root.path().join("results"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cpu"]);
        // Collecting again is refused without --force, and replaces the folder with it.
        let error = format!("{:#}", collect(&out, &dest, false).unwrap_err());
        assert!(
            error.contains("--force") && error.contains("results/cpu"),
            "{error}"
        );
        std::fs::write(dest.join("stale.json"), "{}").unwrap();
        collect(&out, &dest, true).unwrap();
        assert!(!dest.join("stale.json").exists());
        assert!(dest.join("vgg/history.json").is_file());
    }

    #[test]
    fn collect_takes_a_single_run_directory_and_refuses_other_folders() {
        let root = tempfile::tempdir().unwrap();
        let out = pipeline_out(root.path());
        let dest = root.path().join("results/one");
        let collected = collect(&out.join("vgg"), &dest, false).unwrap();
        let mut copied = relative(&collected.copied);
        copied.sort();
        assert_eq!(
            copied,
            [
                "config.json",
                "eval-private-test.json",
                "history.json",
                "normalizer.json"
            ]
        );
        // A run lengthened by a resume: its extensions are kept beside its config.
        let extensions = r#"[{"after_epoch": 40, "from_epochs": 40, "to_epochs": 80}]"#;
        write(
            &out.join("vgg/state.json"),
            &format!(r#"{{"epoch": 41, "extensions": {extensions}}}"#),
        );
        let dest = root.path().join("results/lengthened");
        let collected = collect(&out.join("vgg"), &dest, false).unwrap();
        assert!(relative(&collected.copied).contains(&"extensions.json".to_string()));
        let kept: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dest.join("extensions.json")).unwrap())
                .unwrap();
        assert_eq!(
            kept,
            serde_json::from_str::<serde_json::Value>(extensions).unwrap()
        );
        assert!(!dest.join("state.json").exists());
        let error = format!(
            "{:#}",
            collect(&out.join("plots"), &root.path().join("results/x"), false).unwrap_err()
        );
        assert!(
            error.contains("plots") && error.contains("neither"),
            "{error}"
        );
        let error = format!(
            "{:#}",
            collect(&root.path().join("nowhere"), &dest, true).unwrap_err()
        );
        assert!(error.contains("nowhere: no such directory"), "{error}");
        assert!(check_name("bench").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("cpu-v3").is_ok());
    }

    const TABLE_README: &str = "# fer\n\nIntro.\n\n<!-- results:runs:cpu -->\nold table\n\
        <!-- /results:runs:cpu -->\n\nMore text.\n\n<!-- results:epochs:cpu/vgg:1 -->\n\
        <!-- /results:epochs:cpu/vgg:1 -->\n\n<!-- results:bench:train-step -->\n\
        <!-- /results:bench:train-step -->\nEnd, `<!-- results:runs:quoted -->` inline.\n";

    fn results_with_everything(root: &Path) -> PathBuf {
        let out = pipeline_out(root);
        let results = root.join("results");
        collect(&out, &results.join("cpu"), false).unwrap();
        write_json(
            &results.join("bench/train-step.json"),
            &json!({
                "threads": 2, "kernels": "AVX2 + FMA", "batch1_latency_ms": 0.61234, "train_img_s": 331.3,
                "infer_img_s": 1500.0, "train_ratio": 1.25, "infer_ratio": 1.5,
                "torch_batch1_latency_ms": 1.2,
                "torch": {
                    "32": {"infer_img_s": 800.0, "train_img_s": 200.0, "infer_ratio": 1.5, "train_ratio": 1.1},
                    "128": {"infer_img_s": 1000.0, "train_img_s": 265.0, "infer_ratio": 1.5, "train_ratio": 1.25}
                }
            }),
        );
        results
    }

    #[test]
    fn render_fills_every_block_and_check_finds_a_stale_one() {
        let root = tempfile::tempdir().unwrap();
        let results = results_with_everything(root.path());
        let readme = root.path().join("README.md");
        write(&readme, TABLE_README);
        let error = format!("{:#}", run_check(&readme, &results).unwrap_err());
        assert!(error.contains("runs:cpu"), "{error}");
        let rendered = render(&readme, &results, true).unwrap();
        assert_eq!(rendered.blocks, 3);
        assert_eq!(
            rendered.stale,
            ["runs:cpu", "epochs:cpu/vgg:1", "bench:train-step"]
        );
        let text = std::fs::read_to_string(&readme).unwrap();
        let expected_runs = "<!-- results:runs:cpu -->\n\n\
            | model | PrivateTest acc. | macro-F1 | acc. / macro-F1 without Training copies | epochs | wall min (training + PublicTest) | best on PublicTest | Angry | Disgust | Fear | Happy | Sad | Surprise | Neutral |\n\
            |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
            | `vgg` | 67.76% | 0.629 | 66.56% / 0.607 | 3 | 31.5 (30.0 + 1.5) | epoch 2: 66.23% | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 |\n\
            | `seed` | 60.00% | 0.629 | — | 3 | 31.5 (30.0 + 1.5) | epoch 2: 66.23% | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 | 61.7 |\n\
            | `hog-svm` | 50.29% | 0.629 | 66.56% / 0.607 | — | 0.6 | C = 0.001: 47.12% | 36.0 | 36.0 | 36.0 | 36.0 | 36.0 | 36.0 | 36.0 |\n\
            | `both` | 67.96% | 0.629 | 66.56% / 0.607 | 3 + 3 | 63.0 (60.0 + 3.0) | — | 61.9 | 61.9 | 61.9 | 61.9 | 61.9 | 61.9 | 61.9 |\n\
            \n<!-- /results:runs:cpu -->\n\nMore text.\n";
        assert!(text.contains(expected_runs), "{text}");
        let expected_epochs = "<!-- results:epochs:cpu/vgg:1 -->\n\n\
            | epoch | PublicTest acc. | PublicTest macro-F1 |\n|---|---|---|\n\
            | 1 | 50.00% | 0.250 |\n| 3 (last) | 66.00% | 0.330 |\n\n\
            <!-- /results:epochs:cpu/vgg:1 -->\n";
        assert!(text.contains(expected_epochs), "{text}");
        let expected_bench = "| metric | ours | peer | ours / peer |\n|---|---|---|---|\n\
            | threads | 2 | 2 | |\n\
            | our CPU kernels | AVX2 + FMA | | |\n\
            | training step, batch 32 (img/s) | 220.0 | 200.0 | 1.10x |\n\
            | training step, batch 128 (img/s) | 331.3 | 265.0 | 1.25x |\n\
            | inference, batch 32 (img/s) | 1200.0 | 800.0 | 1.50x |\n\
            | inference, batch 128 (img/s) | 1500.0 | 1000.0 | 1.50x |\n\
            | batch-1 latency (ms) | 0.612 | 1.200 | 0.51x |\n\n\
            <!-- /results:bench:train-step -->\nEnd, `<!-- results:runs:quoted -->` inline.\n";
        assert!(text.contains(expected_bench), "{text}");
        assert!(text.starts_with("# fer\n\nIntro.\n\n"));
        // Rendered, the file is up to date, and rendering again changes nothing.
        run_check(&readme, &results).unwrap();
        assert!(render(&readme, &results, true).unwrap().stale.is_empty());
        assert_eq!(std::fs::read_to_string(&readme).unwrap(), text);
        // A changed figure makes exactly its block stale, and --check writes nothing.
        write_json(
            &results.join("cpu/seed").join(EVAL_PRIVATE),
            &eval_json(0.61, 0.617, false),
        );
        let error = format!("{:#}", run_check(&readme, &results).unwrap_err());
        assert!(
            error.contains("stale results blocks: runs:cpu;") && error.contains("README.md"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&readme).unwrap(), text);
    }

    /// `render --check` as the command runs it.
    fn run_check(readme: &Path, results: &Path) -> Result<()> {
        run(Results::Render(RenderArgs {
            check: true,
            readme: Some(readme.to_path_buf()),
            results: Some(results.to_path_buf()),
        }))
    }

    #[test]
    fn a_marker_naming_a_missing_results_folder_is_an_error_naming_both() {
        let root = tempfile::tempdir().unwrap();
        let results = root.path().join("results");
        std::fs::create_dir_all(&results).unwrap();
        let readme = root.path().join("README.md");
        for (key, folder) in [
            ("runs:cpu-v9", "results/cpu-v9"),
            ("epochs:cpu-v9/vgg:3", "results/cpu-v9/vgg"),
            ("bench:train-step", "results/bench"),
        ] {
            write(
                &readme,
                &format!("x\n<!-- results:{key} -->\n<!-- /results:{key} -->\n"),
            );
            let error = format!("{:#}", render(&readme, &results, false).unwrap_err());
            assert!(
                error.contains(&format!("line 2: block `{key}`"))
                    && error.contains(folder)
                    && error.contains("not found"),
                "{error}"
            );
        }
    }

    #[test]
    fn malformed_markers_and_figures_are_errors_naming_the_line_or_file() {
        let root = tempfile::tempdir().unwrap();
        let results = results_with_everything(root.path());
        let file = Path::new("README.md");
        let error = |text: &str| format!("{:#}", render_text(text, file, &results).unwrap_err());
        let unclosed = error("a\n<!-- results:runs:cpu -->\nb\n");
        assert!(
            unclosed.contains("line 2") && unclosed.contains("never closed"),
            "{unclosed}"
        );
        let crossed = error("<!-- results:runs:cpu -->\n<!-- /results:runs:other -->\n");
        assert!(
            crossed.contains("line 2") && crossed.contains("does not close block `runs:cpu`"),
            "{crossed}"
        );
        let nested = error("<!-- results:runs:cpu -->\n<!-- results:bench:x -->\n");
        assert!(nested.contains("opens inside"), "{nested}");
        let unknown = error("<!-- results:plots:cpu -->\n<!-- /results:plots:cpu -->\n");
        assert!(unknown.contains("unknown block kind `plots`"), "{unknown}");
        let epoch =
            error("<!-- results:epochs:cpu/vgg:9 -->\n<!-- /results:epochs:cpu/vgg:9 -->\n");
        assert!(epoch.contains("history.json: no epoch 9"), "{epoch}");
        let escape = error("<!-- results:runs:../x -->\n<!-- /results:runs:../x -->\n");
        assert!(escape.contains("`../x`"), "{escape}");
        std::fs::write(results.join("cpu/vgg").join(EVAL_PRIVATE), "{").unwrap();
        let broken = error("<!-- results:runs:cpu -->\n<!-- /results:runs:cpu -->\n");
        assert!(
            broken.contains("cpu/vgg/eval-private-test.json: unexpected content"),
            "{broken}"
        );
        // A file without markers renders to itself.
        let plain = "# title\n\n| a | b |\n|---|---|\n";
        let (text, rendered) = render_text(plain, file, &results).unwrap();
        assert_eq!((text.as_str(), rendered.blocks), (plain, 0));
    }

    #[test]
    fn a_single_run_and_the_other_bench_outputs_render() {
        let root = tempfile::tempdir().unwrap();
        let out = pipeline_out(root.path());
        let results = root.path().join("results");
        collect(&out.join("vgg"), &results.join("vgg-only"), false).unwrap();
        let runs = table_for("runs:vgg-only", &results).unwrap();
        assert!(runs.contains("| `vgg-only` | 67.76% | 0.629 |"), "{runs}");
        let epochs = table_for("epochs:vgg-only:2", &results).unwrap();
        assert!(epochs.contains("| 2 (best) | 66.23% | 0.331 |"), "{epochs}");
        write_json(
            &results.join("bench/ingest.json"),
            &json!({"ours": {"csv": {"seconds": 0.5, "peak_rss_mib": 300.4},
                             "gz": {"seconds": 0.75, "peak_rss_mib": 310.0}},
                    "peer": {"rows": 35887, "seed_way_s": 25.0, "vectorised_s": 5.0},
                    "speedup_vs_seed": 40.0, "speedup_vs_vectorised": 10.0}),
        );
        let ingest = table_for("bench:ingest", &results).unwrap();
        assert!(
            ingest.contains(
                "| load .csv, against the seed's pandas loader (s) | 0.500 | 25.000 | 0.02x |"
            ) && ingest.contains("| load .csv.gz (s) | 0.750 | — | — |")
                && ingest.contains("| peak RSS, .csv (MiB) | 300 | — | — |")
                && !ingest.contains("threads"),
            "{ingest}"
        );
        write_json(
            &results.join("bench/augment.json"),
            &json!({"ours_img_s": {"seed": 10000.0, "modern": 8000.0, "everything": 5000.0},
                    "threads": 2, "torchvision_img_s": 2000.0, "ratio_seed_vs_torchvision": 5.0}),
        );
        let augment = table_for("bench:augment", &results).unwrap();
        assert!(
            augment.contains("| augmentation, seed pipeline, against torchvision's (img/s) | 10000.0 | 2000.0 | 5.00x |")
                && augment.contains("| augmentation, everything pipeline, against PyTorch's seed-CNN training step (img/s) | 5000.0 | — | — |"),
            "{augment}"
        );
        write_json(&results.join("bench/other.json"), &json!({"x": 1}));
        let error = format!("{:#}", table_for("bench:other", &results).unwrap_err());
        assert!(error.contains("other.json: none of the figures"), "{error}");
    }

    #[test]
    fn the_repository_documents_agree_with_results() {
        let root = crate::workspace_root();
        let documents = default_documents(&root).unwrap();
        assert!(
            documents.contains(&root.join("docs/benchmark-history.md")),
            "{documents:?}"
        );
        let mut blocks = 0;
        for document in &documents {
            let rendered = render(document, &root.join("results"), false).unwrap();
            assert!(
                rendered.stale.is_empty(),
                "{}: stale results blocks {:?}; run `cargo xtask results render`",
                document.display(),
                rendered.stale
            );
            blocks += rendered.blocks;
        }
        assert!(
            blocks >= 20,
            "only {blocks} results blocks in {documents:?}"
        );
    }
}
