//! `bench serve`: a bounded load on `fer serve` over loopback (1, 4 and 16 clients, 640x480 and
//! 320x240 photos with FER2013 faces): requests/s, latency percentiles, errors, 503s and the
//! server's resident memory, beside `fer predict` run once per photo.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::photos::{fer_binary, load_private_test, median, synthetic_photo, timed};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// FER2013 file; default: $FER2013_CSV, data/, or ../shared/data/ beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// Requests per load (one size, one client count).
    #[arg(long, default_value_t = 600)]
    requests: usize,
    /// Most seconds per load; a load stops at its request count or here, whichever first.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent clients, each sending its next request when its answer arrives.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    clients: Vec<usize>,
    /// Requests of the memory soak after the loads (16 clients, 320x240): resident memory is
    /// compared before and after it.
    #[arg(long, default_value_t = 10_000)]
    soak_requests: usize,
    /// `fer predict` runs per size (one process per photo; the median is reported).
    #[arg(long, default_value_t = 10)]
    predict_runs: usize,
}

/// The photo sizes of the loads.
const SIZES: [(u32, u32); 2] = [(640, 480), (320, 240)];
/// Distinct photos per size, sent in turn.
const PHOTOS_PER_SIZE: usize = 32;

/// `fer serve` started on a free loopback port; killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(fer: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(fer)
            .args(["serve", "--addr", "127.0.0.1:0", "--queue", "64"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start fer serve")?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                bail!("fer serve exited before listening");
            };
            let line = line?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(ServerProcess { child, url })
    }

    /// The server's resident memory now, in MiB.
    fn rss_mib(&self) -> f64 {
        crate::proc_status_mib(&self.child.id().to_string(), "VmRSS:")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one load measured.
struct Load {
    answered: usize,
    ok: usize,
    busy: usize,
    errors: usize,
    seconds: f64,
    /// Latencies of the 200 answers, in seconds, sorted.
    latencies: Vec<f64>,
}

impl Load {
    fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1]
    }

    fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// `clients` threads send `requests` photos in all (or until `limit`), each one at a time.
fn load(url: &str, photos: &[Vec<u8>], clients: usize, requests: usize, limit: Duration) -> Load {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let endpoint = format!("{url}/v1/analyze");
    let per_client: Vec<(Vec<f64>, usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let (mut latencies, mut busy, mut errors) = (Vec::new(), 0, 0);
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= requests || started.elapsed() > limit {
                            break;
                        }
                        let sent = Instant::now();
                        let answer = agent
                            .post(&endpoint)
                            .header("Content-Type", "image/jpeg")
                            .send(&photos[k % photos.len()][..]);
                        match answer {
                            Ok(mut response) => {
                                let status = response.status().as_u16();
                                let mut body = String::new();
                                let read =
                                    response.body_mut().as_reader().read_to_string(&mut body);
                                match (status, read) {
                                    (200, Ok(_)) if body.contains("\"faces\"") => {
                                        latencies.push(sent.elapsed().as_secs_f64());
                                    }
                                    (503, _) => busy += 1,
                                    _ => errors += 1,
                                }
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    (latencies, busy, errors)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = per_client.iter().flat_map(|c| c.0.clone()).collect();
    latencies.sort_by(f64::total_cmp);
    let busy = per_client.iter().map(|c| c.1).sum();
    let errors = per_client.iter().map(|c| c.2).sum();
    Load {
        answered: latencies.len() + busy + errors,
        ok: latencies.len(),
        busy,
        errors,
        seconds,
        latencies,
    }
}

/// `PHOTOS_PER_SIZE` JPEG photos of `width` x `height` with FER2013 faces, in memory and in
/// `dir` (for `fer predict`).
fn photos_of_size(
    dataset: &fer_data::Dataset,
    faces: &[usize],
    (width, height): (u32, u32),
    dir: &Path,
) -> anyhow::Result<(Vec<Vec<u8>>, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(width * 10_000 + height));
    let mut bytes = Vec::new();
    let mut paths = Vec::new();
    for k in 0..PHOTOS_PER_SIZE {
        let photo = synthetic_photo(dataset, faces, width, height, &mut rng);
        let path = dir.join(format!("{width}x{height}-{k:02}.jpg"));
        photo
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bytes.push(std::fs::read(&path)?);
        paths.push(path);
    }
    Ok((bytes, paths))
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    ensure!(
        args.clients.iter().all(|&c| c >= 1),
        "--clients: each count must be at least 1"
    );
    let fer = fer_binary()?;
    let (dataset, faces) = load_private_test(args.data.as_deref())?;
    let dir = crate::workspace_root().join("target/bench-serve");
    let mut sizes = Vec::new();
    for size in SIZES {
        sizes.push((size, photos_of_size(&dataset, &faces, size, &dir)?));
    }
    drop(dataset);

    // The peer: one `fer predict` process per photo, as a script without a server would run.
    let mut predict = Vec::new();
    for ((width, height), (_, paths)) in &sizes {
        let runs: Vec<f64> = paths
            .iter()
            .cycle()
            .take(args.predict_runs.max(1))
            .map(|path| {
                timed(
                    Command::new(&fer)
                        .args(["predict", "--json", "-q"])
                        .arg(path),
                )
                .map(|(seconds, _)| seconds)
            })
            .collect::<anyhow::Result<_>>()?;
        predict.push(((*width, *height), median(runs)));
    }

    let server = ServerProcess::start(&fer)?;
    eprintln!("fer serve at {}", server.url);
    // Warm up: the first requests fault in the model and the allocator's pools.
    let warm = load(&server.url, &sizes[0].1.0, 2, 64, Duration::from_secs(60));
    ensure!(warm.errors == 0, "{} errors while warming up", warm.errors);
    let rss_before = server.rss_mib();

    println!(
        "{:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6} {:>12}",
        "photo",
        "clients",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "503s",
        "vs predict"
    );
    let mut rows = Vec::new();
    for ((width, height), (photos, _)) in &sizes {
        let predict_seconds = predict
            .iter()
            .find(|(size, _)| *size == (*width, *height))
            .map_or(f64::NAN, |(_, s)| *s);
        for &clients in &args.clients {
            let run = load(
                &server.url,
                photos,
                clients,
                args.requests,
                Duration::from_secs(args.seconds),
            );
            let ratio = run.requests_per_second() * predict_seconds;
            println!(
                "{:>9} {:>7} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>6} {:>6} {:>11.1}x",
                format!("{width}x{height}"),
                clients,
                run.answered,
                run.requests_per_second(),
                1e3 * run.percentile(0.50),
                1e3 * run.percentile(0.95),
                1e3 * run.percentile(0.99),
                run.errors,
                run.busy,
                ratio
            );
            rows.push(json!({
                "photo": format!("{width}x{height}"),
                "clients": clients,
                "requests": run.answered,
                "ok": run.ok,
                "errors": run.errors,
                "busy_503": run.busy,
                "seconds": run.seconds,
                "requests_per_second": run.requests_per_second(),
                "p50_ms": 1e3 * run.percentile(0.50),
                "p95_ms": 1e3 * run.percentile(0.95),
                "p99_ms": 1e3 * run.percentile(0.99),
                "p99_over_p50": run.percentile(0.99) / run.percentile(0.50),
                "fer_predict_seconds_per_photo": predict_seconds,
                "ratio_to_fer_predict": ratio,
            }));
        }
    }
    let rss_after_loads = server.rss_mib();
    let soak = load(
        &server.url,
        &sizes[1].1.0,
        16,
        args.soak_requests,
        Duration::from_secs(3600),
    );
    let rss_after_soak = server.rss_mib();
    println!(
        "memory: {rss_before:.1} MiB after warm-up, {rss_after_loads:.1} MiB after the loads, \
         {rss_after_soak:.1} MiB after {} more requests ({} errors, {} 503s, {:.1} req/s)",
        soak.answered,
        soak.errors,
        soak.busy,
        soak.requests_per_second()
    );
    for ((width, height), seconds) in &predict {
        println!(
            "fer predict, one process per {width}x{height} photo: {:.0} ms",
            1e3 * seconds
        );
    }
    let summary: Value = json!({
        "bench": "serve",
        "loads": rows,
        "fer_predict_seconds_per_photo": predict
            .iter()
            .map(|((w, h), s)| (format!("{w}x{h}"), json!(s)))
            .collect::<serde_json::Map<_, _>>(),
        "memory_mib": {
            "after_warm_up": rss_before,
            "after_loads": rss_after_loads,
            "after_soak": rss_after_soak,
            "soak_requests": soak.answered,
            "soak_errors": soak.errors,
            "soak_busy_503": soak.busy,
            "soak_requests_per_second": soak.requests_per_second(),
        },
    });
    println!("{summary}");
    Ok(())
}
