//! `cargo xtask download`: fetch FER2013 (a mirror, a URL or a local file), verify it, store it.
//!
//! The bytes go to `<dest>/<source name>.part` first. An interrupted HTTP download resumes from
//! there with a `Range` request (the server answers 206; a 200 restarts from zero). Only once the
//! content matches the checksums of the original `fer2013.csv` is the `.part` renamed into place,
//! atomically, as `<dest>/fer2013.csv.gz` (gzip content, kept compressed) or `<dest>/fer2013.csv`
//! (plain CSV, or a zip holding it, which is extracted). Content that does not verify is kept as
//! `<name>.bad` for inspection and never installed.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

/// SHA-256 of the original, uncompressed `fer2013.csv` (301,072,766 bytes).
pub const FER2013_SHA256: &str = "3b8d9617d1017f34733c8f2474d7784c563ce86c40a86ac12c2d37cc968f871b";

/// MD5 of the original `fer2013.csv`: the checksum torchvision's `FER2013` dataset expects.
pub const FER2013_MD5: &str = "f8428a1edbd21e88f42c73edd2a14f95";

/// Public copies of FER2013 tried in order when `--from` is absent.
///
/// Each entry must serve `fer2013.csv`, `fer2013.csv.gz` or a zip holding `fer2013.csv`; whatever
/// comes back is checked against [`FER2013_SHA256`] and [`FER2013_MD5`], so a mirror that changed
/// its content fails verification instead of installing a wrong file.
///
/// - `chitradrishti/fer2013` on Hugging Face: `fer2013.csv.zip`, which public projects fetch with
///   a plain `curl -L` and document as unzipping to a 301,072,766-byte `fer2013.csv` (the size of
///   the original) with the canonical 35,887 rows and class counts. It could not be fetched from
///   where this list was written; the checksums are what vouch for it.
///
/// The authoritative source, the Kaggle competition
/// `challenges-in-representation-learning-facial-expression-recognition-challenge`, needs a
/// login, so it cannot be listed here: downloading `fer2013.csv` from it by hand and passing it
/// with `--from` is the reliable path.
pub const MIRRORS: &[&str] =
    &["https://huggingface.co/datasets/chitradrishti/fer2013/resolve/main/fer2013.csv.zip"];

/// How to supply the file by hand; ends every error about getting it.
const HOW_TO_SUPPLY: &str = "Download fer2013.csv from Kaggle \
(https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge/data, \
needs an account) and run `cargo xtask download --from /path/to/fer2013.csv` \
(a .csv.gz, a zip or an http(s) URL works too; the environment variable FER2013_URL does the same).";

/// Installed name for plain CSV content (and for CSV extracted from a zip).
const CSV_NAME: &str = "fer2013.csv";
/// Installed name for gzip content.
const GZ_NAME: &str = "fer2013.csv.gz";

/// Fail over to the next mirror when a host takes longer than this to resolve or connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for response headers once connected.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer that delivers nothing for this long is abandoned (and can be resumed).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// End-to-end budget of one request to one mirror; a longer download resumes on the next run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Buffer size for copying and hashing.
const CHUNK: usize = 1 << 20;

// No doc comment here: the `Download` variant in main.rs provides the subcommand's help.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DownloadArgs {
    /// Where to get FER2013: a local path, a file:// URL or an http(s):// URL of fer2013.csv,
    /// fer2013.csv.gz or a zip holding fer2013.csv. Without it the known public mirrors are tried
    /// in order (Kaggle needs a login, so a manual download plus --from is the reliable path).
    #[arg(long, env = "FER2013_URL", value_name = "PATH_OR_URL")]
    pub from: Option<String>,

    /// Directory to store fer2013.csv[.gz] in [default: data/ in the workspace root].
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,

    /// Expected SHA-256 of the uncompressed CSV, for a custom copy (a subset or a fixed-up file).
    /// Without it the original fer2013.csv is expected, and its MD5 is checked too.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Fetch again even if the destination already holds a verified copy; a partial download is
    /// discarded, not resumed.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: DownloadArgs) -> Result<()> {
    let request = Request::from_args(&args)?;
    let started = std::time::Instant::now();
    match fetch(&request)? {
        Outcome::AlreadyPresent { path, digests } => {
            println!(
                "{} is already there and verified; nothing to fetch (--force fetches again)",
                path.display()
            );
            print_digests(&digests, &request.expected);
        }
        Outcome::Fetched {
            path,
            digests,
            source,
        } => {
            println!(
                "fetched {source} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            println!("stored  {}", path.display());
            print_digests(&digests, &request.expected);
        }
    }
    Ok(())
}

fn print_digests(digests: &Digests, expected: &Expected) {
    println!(
        "sha256  {} (uncompressed CSV, {} bytes, verified)",
        digests.sha256, digests.bytes
    );
    if expected.md5.is_some() {
        println!("md5     {} (verified)", digests.md5);
    }
}

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Url(String),
    File(PathBuf),
}

impl Source {
    /// Reads `--from`: an http(s) URL, a `file://` URL, or a path.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            bail!("--from is empty: give a path or an http(s):// or file:// URL");
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Source::Url(text.to_string()));
        }
        if lower.starts_with("file://") {
            let rest = &text["file://".len()..];
            let rest = if rest
                .get(.."localhost/".len())
                .is_some_and(|host| host.eq_ignore_ascii_case("localhost/"))
            {
                &rest["localhost".len()..]
            } else {
                rest
            };
            if !rest.starts_with('/') {
                bail!(
                    "{text}: a file:// URL needs an absolute path, as in file:///data/fer2013.csv"
                );
            }
            let decoded = percent_decode(rest).with_context(|| format!("{text}: bad escape"))?;
            // file:///C:/data -> C:/data on Windows.
            let bytes = decoded.as_bytes();
            let path = if cfg!(windows) && bytes.len() >= 3 && bytes[2] == b':' {
                decoded[1..].to_string()
            } else {
                decoded
            };
            return Ok(Source::File(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            bail!(
                "{text}: unsupported URL scheme `{scheme}` (use http://, https://, file:// or a path)"
            );
        }
        Ok(Source::File(PathBuf::from(text)))
    }

    /// The source's file name, made safe for a file name under `--dest`.
    fn file_name(&self) -> String {
        let raw = match self {
            Source::Url(url) => {
                let without_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
                let path = without_scheme
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(without_scheme);
                let last = match path.split_once('/') {
                    Some((_host, path)) => path.rsplit('/').next().unwrap_or(""),
                    None => "",
                };
                percent_decode(last).unwrap_or_else(|_| last.to_string())
            }
            Source::File(path) => path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let safe: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if safe.trim_matches('.').is_empty() {
            "fer2013.download".to_string()
        } else {
            safe
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(url) => f.write_str(url),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Decodes `%XX` escapes; other bytes pass through.
fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| char::from(b).to_digit(16);
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("`{text}` does not decode to UTF-8"))
}

/// The checksums the uncompressed CSV must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex; only for the original file.
    pub md5: Option<String>,
}

impl Expected {
    /// The original Kaggle `fer2013.csv`.
    pub fn original() -> Self {
        Expected {
            sha256: FER2013_SHA256.to_string(),
            md5: Some(FER2013_MD5.to_string()),
        }
    }

    /// A custom copy, known by the SHA-256 of its uncompressed content.
    pub fn custom(sha256_hex: &str) -> Result<Self> {
        let hex = sha256_hex.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--sha256 `{sha256_hex}` is not a SHA-256: it needs 64 hex digits");
        }
        Ok(Expected {
            sha256: hex,
            md5: None,
        })
    }

    /// `Err` describes the mismatch with expected and found values.
    fn check(&self, found: &Digests) -> std::result::Result<(), String> {
        let sha_ok = found.sha256 == self.sha256;
        let md5_ok = self.md5.as_ref().is_none_or(|md5| *md5 == found.md5);
        if sha_ok && md5_ok {
            return Ok(());
        }
        let mut message = format!(
            "checksum mismatch: expected SHA-256 {}, found {}",
            self.sha256, found.sha256
        );
        if let Some(md5) = &self.md5 {
            message.push_str(&format!("; expected MD5 {md5}, found {}", found.md5));
        }
        message.push_str(&format!(" ({} bytes of uncompressed content)", found.bytes));
        Err(message)
    }
}

/// Checksums and size of uncompressed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub md5: String,
    pub bytes: u64,
}

/// What `fetch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination already held a verified copy; nothing was fetched.
    AlreadyPresent { path: PathBuf, digests: Digests },
    /// The file was fetched, verified and installed.
    Fetched {
        path: PathBuf,
        digests: Digests,
        source: String,
    },
}

/// A resolved `cargo xtask download`.
#[derive(Debug, Clone)]
pub struct Request {
    /// Tried in order until one verifies.
    pub sources: Vec<Source>,
    /// Whether `sources` is the built-in mirror list (for the wording of errors).
    pub from_mirrors: bool,
    pub dest: PathBuf,
    pub expected: Expected,
    pub force: bool,
    /// Show progress bars on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Request {
    pub fn from_args(args: &DownloadArgs) -> Result<Self> {
        let from = args.from.as_deref().filter(|from| !from.trim().is_empty());
        let (sources, from_mirrors) = match from {
            Some(from) => (vec![Source::parse(from)?], false),
            None => (
                MIRRORS
                    .iter()
                    .map(|url| Source::Url((*url).to_string()))
                    .collect(),
                true,
            ),
        };
        let expected = match &args.sha256 {
            Some(hex) => Expected::custom(hex)?,
            None => Expected::original(),
        };
        Ok(Request {
            sources,
            from_mirrors,
            dest: args.dest.clone().unwrap_or_else(default_dest),
            expected,
            force: args.force,
            progress: true,
        })
    }
}

/// `data/` in the workspace root.
fn default_dest() -> PathBuf {
    crate::workspace_root().join("data")
}

/// Gets FER2013 into `request.dest`, verified; a no-op when a verified copy is already there.
pub fn fetch(request: &Request) -> Result<Outcome> {
    let dest = &request.dest;
    fs::create_dir_all(dest)
        .with_context(|| format!("cannot create the destination directory {}", dest.display()))?;

    let mut stale = Vec::new();
    if !request.force {
        match check_existing(request)? {
            Existing::Verified(outcome) => return Ok(outcome),
            Existing::Stale(paths) => stale = paths,
        }
    }

    let agent = http_agent();
    let mut failures = Vec::new();
    for source in &request.sources {
        match fetch_one(request, &agent, source) {
            Ok(outcome) => {
                set_aside_stale(&stale, &outcome)?;
                return Ok(outcome);
            }
            Err(error) => {
                if request.sources.len() > 1 {
                    eprintln!("{source} failed: {error:#}");
                }
                let message = format!("{error:#}");
                if message.contains(&source.to_string()) {
                    failures.push(format!("  - {message}"));
                } else {
                    failures.push(format!("  - {source}: {message}"));
                }
            }
        }
    }
    let what = if request.from_mirrors {
        if request.sources.is_empty() {
            "no mirror is configured".to_string()
        } else {
            "could not fetch FER2013 from any mirror:".to_string()
        }
    } else {
        "could not fetch FER2013:".to_string()
    };
    Err(anyhow!("{what}\n{}\n{HOW_TO_SUPPLY}", failures.join("\n")))
}

/// What `<dest>` already holds.
enum Existing {
    /// A verified copy: nothing to do.
    Verified(Outcome),
    /// Installed files that do not verify (possibly none); left alone unless a fetch succeeds.
    Stale(Vec<PathBuf>),
}

fn check_existing(request: &Request) -> Result<Existing> {
    let mut stale = Vec::new();
    for (name, wanted) in [(GZ_NAME, Kind::Gzip), (CSV_NAME, Kind::Plain)] {
        let path = request.dest.join(name);
        if !path.is_file() {
            continue;
        }
        let verdict = match sniff(&path)? {
            kind if kind != wanted => Err(format!("it holds {kind} content")),
            kind => match hash_content(&path, kind, request.progress, "verifying") {
                Ok(digests) => request.expected.check(&digests).map(|()| digests),
                Err(error) => Err(format!("{error:#}")),
            },
        };
        match verdict {
            Ok(digests) => {
                return Ok(Existing::Verified(Outcome::AlreadyPresent {
                    path,
                    digests,
                }));
            }
            Err(why) => {
                eprintln!("{} does not verify ({why}); fetching again", path.display());
                stale.push(path);
            }
        }
    }
    Ok(Existing::Stale(stale))
}

/// Once a verified copy is installed, renames installed files that did not verify to `.bad`
/// (one with the same name has just been replaced).
fn set_aside_stale(stale: &[PathBuf], outcome: &Outcome) -> Result<()> {
    let installed = match outcome {
        Outcome::AlreadyPresent { path, .. } | Outcome::Fetched { path, .. } => path,
    };
    for path in stale
        .iter()
        .filter(|path| *path != installed && path.exists())
    {
        let bad = set_aside(path)?;
        eprintln!(
            "moved {} (did not verify) to {}",
            path.display(),
            bad.display()
        );
    }
    Ok(())
}

fn fetch_one(request: &Request, agent: &ureq::Agent, source: &Source) -> Result<Outcome> {
    let part = request.dest.join(format!("{}.part", source.file_name()));
    if request.force {
        remove_if_present(&part)?;
    }
    eprintln!("fetching {source} -> {}", part.display());
    match source {
        Source::Url(url) => download(agent, url, &part, request.progress)?,
        Source::File(path) => copy_local(path, &part, request.progress)?,
    }
    let (path, digests) = install(&part, &request.dest, &request.expected, request.progress)?;
    Ok(Outcome::Fetched {
        path,
        digests,
        source: source.to_string(),
    })
}

fn http_agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(RESPONSE_TIMEOUT))
        .timeout_per_read(Some(STALL_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .user_agent(concat!("fer-xtask/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// Downloads `url` into `part`, resuming from its current length when the server allows it.
fn download(agent: &ureq::Agent, url: &str, part: &Path, progress: bool) -> Result<()> {
    let mut offset = match fs::metadata(part) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", part.display())),
    };
    loop {
        let mut call = agent.get(url);
        if offset > 0 {
            call = call.header("Range", format!("bytes={offset}-"));
        }
        let mut response = call.call().with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let content_range = response
            .headers()
            .get("content-range")
            .and_then(|value| value.to_str().ok())
            .map(parse_content_range);
        let append = match status.as_u16() {
            200 => {
                if offset > 0 {
                    eprintln!("{url} does not resume downloads; starting again from zero");
                }
                false
            }
            206 => match content_range {
                Some((Some(start), _)) if start == offset => true,
                _ if offset > 0 => {
                    eprintln!("{url} resumed at an unexpected offset; starting again from zero");
                    remove_if_present(part)?;
                    offset = 0;
                    continue;
                }
                _ => bail!("{url} answered 206 Partial Content to a request for the whole file"),
            },
            416 if offset > 0 => {
                if matches!(content_range, Some((_, Some(total))) if total == offset) {
                    // The previous run got every byte but stopped before verifying.
                    return Ok(());
                }
                eprintln!("{url} refused to resume at byte {offset}; starting again from zero");
                remove_if_present(part)?;
                offset = 0;
                continue;
            }
            _ => bail!(
                "{url} answered HTTP {}{}",
                status.as_u16(),
                status
                    .canonical_reason()
                    .map(|reason| format!(" {reason}"))
                    .unwrap_or_default()
            ),
        };

        let start = if append { offset } else { 0 };
        let total = response.body().content_length().map(|rest| rest + start);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .with_context(|| format!("cannot write {}", part.display()))?;
        let bar = progress_bar(
            total,
            progress,
            if append { "resuming" } else { "downloading" },
        );
        bar.set_position(start);
        bar.reset_eta();
        let mut body = bar.wrap_read(response.body_mut().as_reader());
        let mut writer = BufWriter::with_capacity(CHUNK, file);
        let copied = io::copy(&mut body, &mut writer).and_then(|_| writer.flush());
        bar.finish_and_clear();
        copied.with_context(|| {
            format!(
                "download of {url} stopped; run the command again to resume from {}",
                part.display()
            )
        })?;
        let file = writer
            .into_inner()
            .map_err(|error| error.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot write {}", part.display()));
        return file;
    }
}

/// `(start, total)` from `bytes START-END/TOTAL` or `bytes */TOTAL`.
fn parse_content_range(value: &str) -> (Option<u64>, Option<u64>) {
    let Some(rest) = value.trim().strip_prefix("bytes") else {
        return (None, None);
    };
    let rest = rest.trim_start();
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range
        .split_once('-')
        .and_then(|(start, _)| start.trim().parse().ok());
    (start, total.trim().parse().ok())
}

/// Copies a local file into `part` (from the start: a local copy is fast to redo).
fn copy_local(source: &Path, part: &Path, progress: bool) -> Result<()> {
    let input = File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    let len = input
        .metadata()
        .with_context(|| format!("cannot read {}", source.display()))?
        .len();
    let output = File::create(part).with_context(|| format!("cannot write {}", part.display()))?;
    let bar = progress_bar(Some(len), progress, "copying");
    let mut reader = bar.wrap_read(BufReader::with_capacity(CHUNK, input));
    let mut writer = BufWriter::with_capacity(CHUNK, output);
    let copied = io::copy(&mut reader, &mut writer).and_then(|_| writer.flush());
    bar.finish_and_clear();
    copied.with_context(|| format!("cannot copy {} to {}", source.display(), part.display()))?;
    writer
        .into_inner()
        .map_err(|error| error.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot write {}", part.display()))
}

/// Verifies `part` and renames it (or the CSV extracted from it) into place.
/// On failure `part` is kept as `<name>.bad`, so a later run starts afresh.
fn install(
    part: &Path,
    dest: &Path,
    expected: &Expected,
    progress: bool,
) -> Result<(PathBuf, Digests)> {
    let staged = stage(part, dest, expected, progress);
    match staged {
        Ok((staged, final_path, digests)) => {
            fs::rename(&staged, &final_path).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    staged.display(),
                    final_path.display()
                )
            })?;
            if staged != part {
                remove_if_present(part)?;
            }
            Ok((final_path, digests))
        }
        Err(error) => {
            let kept = match set_aside(part) {
                Ok(bad) => format!("the fetched bytes are kept as {}", bad.display()),
                Err(set_aside_error) => format!("{set_aside_error:#}"),
            };
            Err(anyhow!("{error:#}; {kept}"))
        }
    }
}

/// Hashes `part`'s content; returns the file to rename, where to, and the digests.
fn stage(
    part: &Path,
    dest: &Path,
    expected: &Expected,
    progress: bool,
) -> Result<(PathBuf, PathBuf, Digests)> {
    let kind = sniff(part)?;
    let (staged, final_path, digests) = match kind {
        Kind::Gzip | Kind::Plain => {
            let digests = hash_content(part, kind, progress, "verifying")?;
            let name = if kind == Kind::Gzip {
                GZ_NAME
            } else {
                CSV_NAME
            };
            (part.to_path_buf(), dest.join(name), digests)
        }
        Kind::Zip => {
            let extracted = dest.join(format!("{CSV_NAME}.unzip.tmp"));
            match extract_zip_csv(part, &extracted, progress) {
                Ok(digests) => (extracted, dest.join(CSV_NAME), digests),
                Err(error) => {
                    let _ = fs::remove_file(&extracted);
                    return Err(error);
                }
            }
        }
    };
    if let Err(mismatch) = expected.check(&digests) {
        if staged != part {
            let _ = fs::remove_file(&staged);
        }
        bail!("{mismatch}; content: {}", describe_content(part));
    }
    Ok((staged, final_path, digests))
}

/// What a file holds, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zip,
    Plain,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Gzip => "gzip",
            Kind::Zip => "zip",
            Kind::Plain => "uncompressed",
        })
    }
}

fn sniff(path: &Path) -> Result<Kind> {
    let head = read_head(path, 4)?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Kind::Gzip
    } else if head.starts_with(b"PK\x03\x04") {
        Kind::Zip
    } else {
        Kind::Plain
    })
}

fn read_head(path: &Path, len: u64) -> Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::new();
    file.take(len)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head)
}

/// A short description of a file's content for error messages, e.g. to spot an HTML page.
fn describe_content(path: &Path) -> String {
    match (sniff(path), read_head(path, 48)) {
        (Ok(Kind::Plain), Ok(head)) => {
            let text: String = String::from_utf8_lossy(&head)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("text starting `{}`", text.trim_end())
        }
        (Ok(kind), _) => format!("{kind} data"),
        (Err(error), _) => format!("unreadable ({error:#})"),
    }
}

/// Checksums of a local data file's uncompressed content (gzip or plain CSV), e.g. to record
/// in a run manifest which data a run saw.
pub fn digest_local(path: &Path) -> Result<Digests> {
    let kind = sniff(path)?;
    if kind == Kind::Zip {
        bail!(
            "{}: a zip archive; unpack it with `cargo xtask download --from {}` first",
            path.display(),
            path.display()
        );
    }
    hash_content(path, kind, true, "hashing")
}

/// Hashes the uncompressed content of a gzip or plain file.
fn hash_content(path: &Path, kind: Kind, progress: bool, label: &'static str) -> Result<Digests> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let bar = progress_bar(Some(len), progress, label);
    let raw = bar.wrap_read(BufReader::with_capacity(CHUNK, file));
    let digests = match kind {
        Kind::Gzip => hash_reader(MultiGzDecoder::new(raw), None),
        _ => hash_reader(raw, None),
    };
    bar.finish_and_clear();
    digests.with_context(|| format!("cannot read {} ({kind} content)", path.display()))
}

/// Hashes everything `reader` yields, copying it to `copy` when given.
fn hash_reader(mut reader: impl Read, mut copy: Option<&mut dyn Write>) -> io::Result<Digests> {
    let mut sha256 = Sha256::new();
    let mut md5 = Md5::new();
    let mut bytes = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = &buffer[..n];
        sha256.update(chunk);
        md5.update(chunk);
        if let Some(copy) = copy.as_mut() {
            copy.write_all(chunk)?;
        }
        bytes += n as u64;
    }
    Ok(Digests {
        sha256: format!("{:x}", sha256.finalize()),
        md5: format!("{:x}", md5.finalize()),
        bytes,
    })
}

/// Extracts the one CSV member of the zip `archive` into `out`, hashing it on the way.
fn extract_zip_csv(archive: &Path, out: &Path, progress: bool) -> Result<Digests> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let unreadable = || format!("cannot read the zip archive {}", archive.display());
    let mut zip =
        zip::ZipArchive::new(BufReader::with_capacity(CHUNK, file)).with_context(unreadable)?;
    let (index, name) = find_zip_csv(&zip).with_context(unreadable)?;
    let mut member = zip.by_index(index).with_context(|| {
        format!(
            "cannot extract {name} from {} (unzip it yourself and pass the CSV with --from)",
            archive.display()
        )
    })?;
    let bar = progress_bar(Some(member.size()), progress, "unzipping");
    let output = File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut writer = BufWriter::with_capacity(CHUNK, output);
    let digests = hash_reader(bar.wrap_read(&mut member), Some(&mut writer));
    bar.finish_and_clear();
    let digests = digests
        .and_then(|digests| writer.flush().map(|()| digests))
        .with_context(|| {
            format!(
                "cannot extract {name} from {} to {}",
                archive.display(),
                out.display()
            )
        })?;
    writer
        .into_inner()
        .map_err(|error| error.into_error())
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(digests)
}

/// The index and name of the archive's only `.csv` file, skipping directories and macOS
/// metadata (`__MACOSX/`, `._*`).
fn find_zip_csv<R: Read + Seek>(zip: &zip::ZipArchive<R>) -> Result<(usize, String)> {
    let mut names = Vec::new();
    let mut csvs = Vec::new();
    for index in 0..zip.len() {
        let entry = zip.by_index_data(index)?;
        let name = entry.name().map_or_else(
            |_| String::from_utf8_lossy(entry.name_raw()).into_owned(),
            |name| name.into_owned(),
        );
        let base = name
            .rsplit('/')
            .next()
            .unwrap_or(&name)
            .to_ascii_lowercase();
        if entry.is_file()
            && !name.starts_with("__MACOSX/")
            && !base.starts_with("._")
            && base.ends_with(".csv")
        {
            csvs.push((index, name.clone()));
        }
        names.push(name);
    }
    // Kaggle bundles put fer2013.csv beside train.csv / test.csv: the original wins.
    if let Some(original) = csvs
        .iter()
        .position(|(_, name)| name.rsplit('/').next() == Some(CSV_NAME))
    {
        return Ok(csvs.swap_remove(original));
    }
    match csvs.len() {
        1 => Ok(csvs.swap_remove(0)),
        0 => bail!(
            "no .csv member (members: {})",
            names
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => bail!(
            "more than one .csv member ({}); unzip it yourself and pass the CSV with --from",
            csvs.into_iter()
                .map(|(_, name)| name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A byte progress bar on stderr (bytes, rate, ETA), or a hidden one.
fn progress_bar(len: Option<u64>, visible: bool, label: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg:>11} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{msg:>11} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.with_style(style).with_message(label)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// `x.part` -> `x.bad`, `x` -> `x.bad`.
fn bad_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".part").unwrap_or(&name);
    path.with_file_name(format!("{stem}.bad"))
}

/// Renames a file that failed verification to `.bad`.
fn set_aside(path: &Path) -> Result<PathBuf> {
    let bad = bad_path(path);
    fs::rename(path, &bad)
        .with_context(|| format!("cannot rename {} to {}", path.display(), bad.display()))?;
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    /// A small CSV in the FER2013 layout: a header and 40 rows of 48x48 pixels (~300 KB).
    fn synthetic_csv() -> Vec<u8> {
        let mut csv = String::from("emotion,pixels,Usage\n");
        for row in 0..40usize {
            let pixels: Vec<String> = (0..48 * 48)
                .map(|i| ((row * 31 + i * 7) % 256).to_string())
                .collect();
            let usage = if row < 30 { "Training" } else { "PublicTest" };
            csv.push_str(&format!("{},{},{usage}\n", row % 7, pixels.join(" ")));
        }
        csv.into_bytes()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A zip archive of `(name, content, deflate?)` members; a name ending in `/` is a directory.
    fn zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
        zip_with(members, SimpleFileOptions::default())
    }

    /// [`zip`] with `options` for every member (their compression method is overridden).
    fn zip_with(members: &[(&str, &[u8], bool)], options: SimpleFileOptions) -> Vec<u8> {
        let mut writer = ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, content, deflate) in members {
            let method = if *deflate {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            };
            let options = options.compression_method(method);
            if name.ends_with('/') {
                writer.add_directory(*name, options).unwrap();
            } else {
                writer.start_file(*name, options).unwrap();
                writer.write_all(content).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    fn request(from: &str, dest: &Path, sha256: &str) -> Request {
        let args = DownloadArgs {
            from: Some(from.to_string()),
            dest: Some(dest.to_path_buf()),
            sha256: Some(sha256.to_string()),
            force: false,
        };
        Request {
            progress: false,
            ..Request::from_args(&args).unwrap()
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::write(path, bytes).unwrap();
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Behaviour {
        /// Honour `Range: bytes=N-` with 206 (or 416 past the end).
        Serve,
        /// Answer 200 with the whole body, Range or not.
        IgnoreRange,
        /// Answer 404.
        NotFound,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        path: String,
        range: Option<String>,
    }

    struct Server {
        base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Server {
        fn start(body: Vec<u8>, behaviour: Behaviour) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = answer(stream, &body, behaviour, &log);
                }
            });
            Server { base, seen }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    /// Serves one request on `stream`, then closes it.
    fn answer(
        mut stream: TcpStream,
        body: &[u8],
        behaviour: Behaviour,
        log: &Mutex<Vec<Seen>>,
    ) -> io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("range")
            {
                range = Some(value.trim().to_string());
            }
        }
        log.lock().unwrap().push(Seen {
            path,
            range: range.clone(),
        });
        let start = range
            .as_deref()
            .and_then(|range| range.strip_prefix("bytes="))
            .and_then(|range| range.strip_suffix('-'))
            .and_then(|start| start.parse::<usize>().ok());
        let len = body.len();
        let (status, extra, payload): (&str, String, &[u8]) = match (behaviour, start) {
            (Behaviour::NotFound, _) => ("404 Not Found", String::new(), b"no such file"),
            (Behaviour::Serve, Some(start)) if start >= len => (
                "416 Range Not Satisfiable",
                format!("Content-Range: bytes */{len}\r\n"),
                b"",
            ),
            (Behaviour::Serve, Some(start)) => (
                "206 Partial Content",
                format!("Content-Range: bytes {start}-{}/{len}\r\n", len - 1),
                &body[start..],
            ),
            _ => ("200 OK", String::new(), body),
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            payload.len()
        )?;
        stream.write_all(payload)?;
        stream.flush()
    }

    #[test]
    fn local_copy_arrives_verified_and_a_second_run_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let csv = synthetic_csv();
        let source = dir.path().join("my-fer2013.csv");
        write(&source, &csv);
        let dest = dir.path().join("data");
        let request = request(source.to_str().unwrap(), &dest, &sha256_hex(&csv));

        let outcome = fetch(&request).unwrap();
        let installed = dest.join("fer2013.csv");
        let Outcome::Fetched { path, digests, .. } = outcome else {
            panic!("expected a fetch, got {outcome:?}");
        };
        assert_eq!(path, installed);
        assert_eq!(digests.sha256, sha256_hex(&csv));
        assert_eq!(digests.bytes, csv.len() as u64);
        assert_eq!(fs::read(&installed).unwrap(), csv);
        assert_eq!(names_in(&dest), ["fer2013.csv"], "no .part left behind");

        // The second run must not fetch: the source is gone and the file is untouched.
        let modified = fs::metadata(&installed).unwrap().modified().unwrap();
        fs::remove_file(&source).unwrap();
        let again = fetch(&request).unwrap();
        assert!(
            matches!(&again, Outcome::AlreadyPresent { path, .. } if *path == installed),
            "{again:?}"
        );
        assert_eq!(
            fs::metadata(&installed).unwrap().modified().unwrap(),
            modified
        );
        assert_eq!(fs::read(&installed).unwrap(), csv);
    }

    #[test]
    fn wrong_checksum_fails_with_both_hashes_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let csv = synthetic_csv();
        let source = dir.path().join("fer2013.csv");
        write(&source, &csv);
        let dest = dir.path().join("data");
        let wrong = "ab".repeat(32);

        let error = fetch(&request(source.to_str().unwrap(), &dest, &wrong)).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(&wrong), "{message}");
        assert!(message.contains(&sha256_hex(&csv)), "{message}");
        assert!(message.contains(source.to_str().unwrap()), "{message}");
        assert!(message.contains("--from"), "{message}");
        assert!(!dest.join("fer2013.csv").exists());
        assert!(!dest.join("fer2013.csv.gz").exists());
        assert_eq!(
            names_in(&dest),
            ["fer2013.csv.bad"],
            "kept for inspection only"
        );
    }

    #[test]
    fn default_checksums_report_md5_too() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("fer2013.csv");
        write(&source, b"emotion,pixels,Usage\n0,1 2 3,Training\n");
        let mut request = request(
            source.to_str().unwrap(),
            &dir.path().join("data"),
            &"0".repeat(64),
        );
        request.expected = Expected::original();
        let message = format!("{:#}", fetch(&request).unwrap_err());
        assert!(message.contains(FER2013_SHA256), "{message}");
        assert!(message.contains(FER2013_MD5), "{message}");
        assert!(
            message.contains("text starting `emotion,pixels,Usage"),
            "{message}"
        );
    }

    #[test]
    fn file_url_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let csv = synthetic_csv();
        let source = dir.path().join("fer 2013.csv");
        write(&source, &csv);
        let url = format!("file://{}", source.to_str().unwrap().replace(' ', "%20"));
        let dest = dir.path().join("data");
        let outcome = fetch(&request(&url, &dest, &sha256_hex(&csv))).unwrap();
        assert!(matches!(outcome, Outcome::Fetched { .. }), "{outcome:?}");
        assert_eq!(fs::read(dest.join("fer2013.csv")).unwrap(), csv);
    }

    #[test]
    fn http_download_fetches_the_whole_file() {
        let csv = synthetic_csv();
        let server = Server::start(csv.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        let url = server.url("/files/fer2013.csv");
        let outcome = fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        let Outcome::Fetched { path, source, .. } = outcome else {
            panic!("expected a fetch, got {outcome:?}");
        };
        assert_eq!(path, dir.path().join("fer2013.csv"));
        assert_eq!(source, url);
        assert_eq!(fs::read(&path).unwrap(), csv);
        assert_eq!(
            server.seen(),
            [Seen {
                path: "/files/fer2013.csv".into(),
                range: None
            }]
        );
        assert_eq!(names_in(dir.path()), ["fer2013.csv"]);
    }

    #[test]
    fn http_download_resumes_a_partial_file() {
        let csv = synthetic_csv();
        let server = Server::start(csv.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        let half = csv.len() / 2;
        write(&dir.path().join("fer2013.csv.part"), &csv[..half]);

        let url = server.url("/fer2013.csv");
        let outcome = fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        assert!(matches!(outcome, Outcome::Fetched { .. }), "{outcome:?}");
        assert_eq!(
            server.seen(),
            [Seen {
                path: "/fer2013.csv".into(),
                range: Some(format!("bytes={half}-"))
            }]
        );
        assert_eq!(fs::read(dir.path().join("fer2013.csv")).unwrap(), csv);
        assert_eq!(names_in(dir.path()), ["fer2013.csv"]);
    }

    #[test]
    fn http_download_restarts_when_the_server_ignores_range() {
        let csv = synthetic_csv();
        let server = Server::start(csv.clone(), Behaviour::IgnoreRange);
        let dir = tempfile::tempdir().unwrap();
        // A stale partial file: resuming onto it would corrupt the result.
        write(
            &dir.path().join("fer2013.csv.part"),
            b"garbage from another run",
        );

        let url = server.url("/fer2013.csv");
        fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].range.as_deref(), Some("bytes=24-"));
        assert_eq!(fs::read(dir.path().join("fer2013.csv")).unwrap(), csv);
    }

    #[test]
    fn http_download_of_a_complete_part_only_verifies() {
        let csv = synthetic_csv();
        let server = Server::start(csv.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("fer2013.csv.part"), &csv);

        let url = server.url("/fer2013.csv");
        fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "416 means done, no second request: {seen:?}");
        assert_eq!(seen[0].range, Some(format!("bytes={}-", csv.len())));
        assert_eq!(fs::read(dir.path().join("fer2013.csv")).unwrap(), csv);
    }

    #[test]
    fn http_404_names_the_url() {
        let server = Server::start(Vec::new(), Behaviour::NotFound);
        let dir = tempfile::tempdir().unwrap();
        let url = server.url("/missing/fer2013.csv");
        let error = fetch(&request(&url, dir.path(), &"0".repeat(64))).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("{url} answered HTTP 404 Not Found")),
            "{message}"
        );
        assert!(message.contains("cargo xtask download --from"), "{message}");
        assert_eq!(names_in(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn http_gzip_is_stored_compressed_and_verified_uncompressed() {
        let csv = synthetic_csv();
        let gz = gzip(&csv);
        let server = Server::start(gz.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        let url = server.url("/fer2013.csv.gz");

        // The hash of the compressed bytes is not what is checked ...
        let error = fetch(&request(&url, dir.path(), &sha256_hex(&gz))).unwrap_err();
        assert!(
            format!("{error:#}").contains(&sha256_hex(&csv)),
            "{error:#}"
        );
        assert!(!dir.path().join("fer2013.csv.gz").exists());

        // ... the hash of the CSV inside is.
        let outcome = fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        let Outcome::Fetched { path, digests, .. } = outcome else {
            panic!("expected a fetch, got {outcome:?}");
        };
        assert_eq!(path, dir.path().join("fer2013.csv.gz"));
        assert_eq!(digests.sha256, sha256_hex(&csv));
        assert_eq!(digests.bytes, csv.len() as u64);
        assert_eq!(fs::read(&path).unwrap(), gz);
        assert!(!dir.path().join("fer2013.csv").exists());

        // And it verifies in place on the next run.
        let again = fetch(&request(&url, dir.path(), &sha256_hex(&csv))).unwrap();
        assert!(matches!(again, Outcome::AlreadyPresent { .. }), "{again:?}");
        assert_eq!(server.seen().len(), 2);
    }

    #[test]
    fn zip_is_extracted_to_csv() {
        let csv = synthetic_csv();
        for deflate in [true, false] {
            let archive = zip(&[
                ("fer2013/", b"", false),
                ("__MACOSX/fer2013/._fer2013.csv", b"resource fork", false),
                ("fer2013/fer2013.csv", &csv, deflate),
            ]);
            let dir = tempfile::tempdir().unwrap();
            let source = dir.path().join("fer2013.csv.zip");
            write(&source, &archive);
            let dest = dir.path().join("data");
            let outcome = fetch(&request(source.to_str().unwrap(), &dest, &sha256_hex(&csv)));
            let Ok(Outcome::Fetched { path, digests, .. }) = outcome else {
                panic!("expected a fetch, got {outcome:?}");
            };
            assert_eq!(path, dest.join("fer2013.csv"));
            assert_eq!(digests.sha256, sha256_hex(&csv));
            assert_eq!(fs::read(&path).unwrap(), csv, "deflate: {deflate}");
            assert_eq!(names_in(&dest), ["fer2013.csv"]);
        }
    }

    #[test]
    fn zip_without_csv_or_truncated_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("data");
        let no_csv = dir.path().join("no-csv.zip");
        write(&no_csv, &zip(&[("readme.txt", b"hello", true)]));
        let message = format!(
            "{:#}",
            fetch(&request(no_csv.to_str().unwrap(), &dest, &"0".repeat(64))).unwrap_err()
        );
        assert!(
            message.contains("no .csv member (members: readme.txt)"),
            "{message}"
        );
        assert!(message.contains("no-csv.zip"), "{message}");

        let csv = synthetic_csv();
        let archive = zip(&[("fer2013.csv", &csv, true)]);
        let truncated = dir.path().join("truncated.zip");
        write(&truncated, &archive[..archive.len() / 2]);
        let message = format!(
            "{:#}",
            fetch(&request(
                truncated.to_str().unwrap(),
                &dest,
                &sha256_hex(&csv)
            ))
            .unwrap_err()
        );
        assert!(message.contains("truncated.zip"), "{message}");
        assert!(
            message.contains(&format!(
                "cannot read the zip archive {}",
                dest.join("truncated.zip.part").display()
            )),
            "{message}"
        );
        assert!(!dest.join("fer2013.csv").exists());

        // A zip signature followed by anything else is no archive either.
        let not_zip = dir.path().join("not-a.zip");
        write(&not_zip, b"PK\x03\x04 but nothing after it");
        let message = format!(
            "{:#}",
            fetch(&request(not_zip.to_str().unwrap(), &dest, &"0".repeat(64))).unwrap_err()
        );
        assert!(message.contains("not-a.zip"), "{message}");
        assert!(message.contains("cannot read the zip archive"), "{message}");
        assert!(!dest.join("fer2013.csv").exists());
    }

    #[test]
    fn zip_with_two_csv_members_fails_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("data");
        let two = dir.path().join("two.zip");
        write(
            &two,
            &zip(&[("train.csv", b"a", true), ("test.csv", b"b", false)]),
        );
        let message = format!(
            "{:#}",
            fetch(&request(two.to_str().unwrap(), &dest, &"0".repeat(64))).unwrap_err()
        );
        assert!(
            message.contains("more than one .csv member (train.csv, test.csv)"),
            "{message}"
        );
        assert!(message.contains("two.zip"), "{message}");
        assert!(!dest.join("fer2013.csv").exists());
    }

    #[test]
    fn kaggle_bundle_prefers_fer2013_csv_over_its_siblings() {
        let csv = synthetic_csv();
        let bundle = zip(&[
            ("train.csv", b"emotion,pixels\n", true),
            ("fer2013/fer2013.csv", &csv, true),
            ("test.csv", b"pixels\n", false),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("bundle.zip");
        write(&source, &bundle);
        let dest = dir.path().join("data");
        fetch(&request(source.to_str().unwrap(), &dest, &sha256_hex(&csv))).unwrap();
        assert_eq!(std::fs::read(dest.join("fer2013.csv")).unwrap(), csv);
    }

    #[test]
    fn zip64_archive_is_extracted() {
        let csv = synthetic_csv();
        let archive = zip_with(
            &[("fer2013.csv", &csv, true)],
            SimpleFileOptions::default().large_file(true),
        );
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("fer2013.csv.zip");
        write(&source, &archive);
        let dest = dir.path().join("data");
        fetch(&request(source.to_str().unwrap(), &dest, &sha256_hex(&csv))).unwrap();
        assert_eq!(fs::read(dest.join("fer2013.csv")).unwrap(), csv);
        assert_eq!(names_in(&dest), ["fer2013.csv"]);
    }

    #[test]
    fn unreachable_url_fails_fast_and_says_how_to_supply_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:1/fer2013.csv";
        let started = Instant::now();
        let error = fetch(&request(url, dir.path(), &"0".repeat(64))).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("cannot reach {url}")),
            "{message}"
        );
        assert!(
            message.contains("Download fer2013.csv from Kaggle"),
            "{message}"
        );
        assert!(
            message.contains(
                "challenges-in-representation-learning-facial-expression-recognition-challenge"
            ),
            "{message}"
        );
        assert!(
            message.contains("cargo xtask download --from /path/to/fer2013.csv"),
            "{message}"
        );
    }

    #[test]
    fn failing_mirrors_are_all_tried_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Server::start(Vec::new(), Behaviour::NotFound);
        let unreachable = "http://127.0.0.1:1/fer2013.csv".to_string();
        let request = Request {
            sources: vec![
                Source::Url(missing.url("/fer2013.csv")),
                Source::Url(unreachable.clone()),
            ],
            from_mirrors: true,
            dest: dir.path().to_path_buf(),
            expected: Expected::original(),
            force: false,
            progress: false,
        };
        let message = format!("{:#}", fetch(&request).unwrap_err());
        assert!(
            message.starts_with("could not fetch FER2013 from any mirror:"),
            "{message}"
        );
        assert!(message.contains(&missing.url("/fer2013.csv")), "{message}");
        assert!(message.contains(&unreachable), "{message}");
        assert!(message.contains("--from"), "{message}");
    }

    #[test]
    fn a_mirror_that_fails_gives_way_to_the_next() {
        let csv = synthetic_csv();
        let missing = Server::start(Vec::new(), Behaviour::NotFound);
        let good = Server::start(csv.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        let request = Request {
            sources: vec![
                Source::Url(missing.url("/fer2013.csv")),
                Source::Url(good.url("/fer2013.csv")),
            ],
            from_mirrors: true,
            dest: dir.path().to_path_buf(),
            expected: Expected::custom(&sha256_hex(&csv)).unwrap(),
            force: false,
            progress: false,
        };
        let outcome = fetch(&request).unwrap();
        assert!(
            matches!(&outcome, Outcome::Fetched { source, .. } if *source == good.url("/fer2013.csv")),
            "{outcome:?}"
        );
        assert_eq!(fs::read(dir.path().join("fer2013.csv")).unwrap(), csv);
    }

    #[test]
    fn force_fetches_again_and_a_bad_existing_file_is_set_aside() {
        let csv = synthetic_csv();
        let server = Server::start(csv.clone(), Behaviour::Serve);
        let dir = tempfile::tempdir().unwrap();
        let url = server.url("/fer2013.csv");
        let mut request = request(&url, dir.path(), &sha256_hex(&csv));
        fetch(&request).unwrap();
        assert_eq!(server.seen().len(), 1);

        request.force = true;
        let outcome = fetch(&request).unwrap();
        assert!(matches!(outcome, Outcome::Fetched { .. }), "{outcome:?}");
        assert_eq!(server.seen().len(), 2);

        // Installed files that do not verify: one is replaced, the other set aside.
        request.force = false;
        write(&dir.path().join("fer2013.csv"), b"emotion,pixels,Usage\n");
        write(&dir.path().join("fer2013.csv.gz"), &gzip(b"not it"));
        let outcome = fetch(&request).unwrap();
        assert!(matches!(outcome, Outcome::Fetched { .. }), "{outcome:?}");
        assert_eq!(server.seen().len(), 3);
        assert_eq!(fs::read(dir.path().join("fer2013.csv")).unwrap(), csv);
        assert_eq!(
            fs::read(dir.path().join("fer2013.csv.gz.bad")).unwrap(),
            gzip(b"not it")
        );
        assert_eq!(names_in(dir.path()), ["fer2013.csv", "fer2013.csv.gz.bad"]);
    }

    #[test]
    fn a_failed_fetch_leaves_installed_files_alone() {
        let csv = synthetic_csv();
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("fer2013.csv");
        write(&installed, &csv);
        let source = dir.path().join("other.csv");
        write(&source, b"emotion,pixels,Usage\n");
        // A mistyped --sha256: the installed file does not match it, and neither does the source.
        let error = fetch(&request(
            source.to_str().unwrap(),
            dir.path(),
            &"1".repeat(64),
        ));
        assert!(error.is_err());
        assert_eq!(fs::read(&installed).unwrap(), csv);
        assert_eq!(
            names_in(dir.path()),
            ["fer2013.csv", "other.csv", "other.csv.bad"]
        );
    }

    #[test]
    fn sources_and_part_names() {
        let url = "https://example.org/a/fer2013.csv.zip?download=true#x";
        let source = Source::parse(url).unwrap();
        assert_eq!(source, Source::Url(url.to_string()));
        assert_eq!(source.file_name(), "fer2013.csv.zip");
        assert_eq!(
            Source::Url("http://host".into()).file_name(),
            "fer2013.download"
        );
        assert_eq!(
            Source::Url("http://host/dir/".into()).file_name(),
            "fer2013.download"
        );
        assert_eq!(
            Source::parse("file:///tmp/my%20data/fer2013.csv").unwrap(),
            Source::File(PathBuf::from("/tmp/my data/fer2013.csv"))
        );
        assert_eq!(
            Source::parse("file://localhost/tmp/x.csv").unwrap(),
            Source::File(PathBuf::from("/tmp/x.csv"))
        );
        assert_eq!(
            Source::parse("data/fer2013.csv.gz").unwrap(),
            Source::File(PathBuf::from("data/fer2013.csv.gz"))
        );
        assert_eq!(
            Source::File(PathBuf::from("/x/fer 2013 (1).csv")).file_name(),
            "fer_2013__1_.csv"
        );
        let error = Source::parse("ftp://example.org/fer2013.csv").unwrap_err();
        assert!(
            error.to_string().contains("unsupported URL scheme `ftp`"),
            "{error}"
        );
        assert!(Source::parse("file://relative/path").is_err());
        assert!(Source::parse("  ").is_err());
    }

    #[test]
    fn sha256_option_is_validated() {
        let upper = "AB".repeat(32);
        assert_eq!(Expected::custom(&upper).unwrap().sha256, "ab".repeat(32));
        assert_eq!(Expected::custom(&upper).unwrap().md5, None);
        let error = Expected::custom("abc").unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error}");
        assert!(Expected::custom(&"g".repeat(64)).is_err());
    }

    #[test]
    fn command_line_parses() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: DownloadArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from([
            "download",
            "--from",
            "x.csv",
            "--dest",
            "out",
            "--sha256",
            &"a".repeat(64),
            "--force",
        ])
        .unwrap();
        let request = Request::from_args(&cli.args).unwrap();
        assert_eq!(request.sources, [Source::File(PathBuf::from("x.csv"))]);
        assert!(!request.from_mirrors);
        assert_eq!(request.dest, PathBuf::from("out"));
        assert!(request.force);

        let defaults = Request::from_args(&DownloadArgs::default()).unwrap();
        assert!(defaults.from_mirrors);
        assert_eq!(defaults.sources.len(), MIRRORS.len());
        assert_eq!(defaults.expected, Expected::original());
        assert!(defaults.dest.ends_with("data"));
    }

    #[test]
    fn mirrors_are_https_and_distinct() {
        assert!(!MIRRORS.is_empty());
        for (i, mirror) in MIRRORS.iter().enumerate() {
            assert!(mirror.starts_with("https://"), "{mirror}");
            assert!(!MIRRORS[..i].contains(mirror), "duplicate {mirror}");
            assert!(matches!(Source::parse(mirror), Ok(Source::Url(_))));
        }
    }

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(
            parse_content_range("bytes 100-999/1000"),
            (Some(100), Some(1000))
        );
        assert_eq!(parse_content_range("bytes */1000"), (None, Some(1000)));
        assert_eq!(parse_content_range("bytes 5-9/*"), (Some(5), None));
        assert_eq!(parse_content_range("items 1-2/3"), (None, None));
    }
}
