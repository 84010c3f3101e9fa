//! `cargo xtask bench`: measured figures of ours beside a peer's, in the same run.
//!
//! The machine is shared and noisy, so every figure is printed with the peer measured in the
//! same invocation and the ratio between them; absolute times alone mean little.
//!
//! The peers are PyTorch scripts in `xtask/bench/`: `seed_cnn_reference.py` (the seed
//! notebook's loader, augmentation and CNN) and `vgg_bn_reference.py` (vgg-bn's twin). They run
//! under the Python given by `--python` or `$FER_BENCH_PYTHON` (one with torch, torchvision,
//! pandas and safetensors); without either, a bench that needs a peer stops before measuring
//! and says how to make one. `--no-peer` measures ours alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::photos::median;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// FER2013 CSV ingest: time and peak memory for the .csv and the .csv.gz, beside the
    /// seed's pandas loader (`torch_reference.py ingest`).
    Ingest(IngestArgs),
    /// Augmentation throughput of the seed and modern pipelines on real images, beside the
    /// seed's torchvision pipeline (`torch_reference.py augment`) and its training step.
    Augment(AugmentArgs),
    /// Training step and inference images/s at batch 32/128/256 and batch-1 latency of the
    /// seed CNN or vgg-bn, beside PyTorch's on the same number of threads.
    TrainStep(TrainStepArgs),
    /// Photos end to end: `fer predict` on one 640x480 photo (process start to output) and on
    /// a folder of generated photos with FER2013 faces, beside the `fer` Python package.
    Photos(crate::photos::PhotosArgs),
    /// What detection and cropping do to accuracy: PrivateTest faces pasted into larger
    /// images (upright and tilted), detected, cropped with several margins and classified,
    /// against the same faces as FER2013 gives them.
    Crops(crate::photos::CropsArgs),
    /// `fer serve` under a bounded loopback load (1, 4, 16 clients; 640x480 and 320x240
    /// photos): requests/s, p50/p95/p99 latency, errors, 503s, resident memory over a soak,
    /// beside `fer predict` run once per photo.
    Serve(crate::serve_bench::ServeArgs),
    /// One load in this process, printed as JSON (used by `ingest` to measure peak memory).
    #[command(hide = true)]
    IngestProbe {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// FER2013 file (.csv or .csv.gz); default: $FER2013_CSV, data/, or ../shared/data/
    /// beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// Loads per file; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Python with torch and pandas for the seed's loader (required unless --no-peer).
    #[arg(long, env = PYTHON_ENV)]
    python: Option<PathBuf>,
    /// Skip the seed loader (it takes about a minute).
    #[arg(long)]
    no_peer: bool,
}

#[derive(clap::Args)]
pub struct AugmentArgs {
    /// FER2013 file (.csv or .csv.gz); default: $FER2013_CSV, data/, or ../shared/data/
    /// beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// Training images to augment (the first n).
    #[arg(long, default_value_t = 5000)]
    n: usize,
    /// Worker threads for our pipelines.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python with torch and torchvision (required unless --no-peer).
    #[arg(long, env = PYTHON_ENV)]
    python: Option<PathBuf>,
    /// Skip the PyTorch figures.
    #[arg(long)]
    no_peer: bool,
}

#[derive(clap::Args)]
pub struct TrainStepArgs {
    /// Batch sizes to measure (the JSON line reports 128).
    #[arg(long, value_delimiter = ',', default_value = "32,128,256")]
    batches: Vec<usize>,
    /// Threads for us (rayon) and for PyTorch.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds of timed steps per figure (the median step is reported).
    #[arg(long, default_value_t = 6.0)]
    secs: f64,
    /// Python with torch (required unless --no-peer).
    #[arg(long, env = PYTHON_ENV)]
    python: Option<PathBuf>,
    /// Skip the PyTorch figures.
    #[arg(long)]
    no_peer: bool,
    /// The network to time: seed-cnn (peer: xtask/bench/seed_cnn_reference.py) or vgg-bn
    /// (the `cpu`/`best` profiles' network; peer: its PyTorch twin, xtask/bench/vgg_bn_reference.py).
    #[arg(long, default_value = "seed-cnn")]
    architecture: String,
    /// Channels of vgg-bn's first stage.
    #[arg(long, default_value_t = 32)]
    width: usize,
    /// The training step's optimizer: `adadelta` (the seed's: lr 0.1, rho 0.95) or `cpu`
    /// (the cpu profile's: SGD with Nesterov momentum 0.9, lr 0.05, weight decay 5e-4, then
    /// its weight average, decay 0.998). The PyTorch peer runs the same.
    #[arg(long, value_enum, default_value_t = Recipe::Adadelta)]
    recipe: Recipe,
    /// Instead of the step: where vgg-bn's step time goes, each layer's forward and backward
    /// at the first --batches size (median of --repeats profiles).
    #[arg(long)]
    layers: bool,
    /// Profiles per layer for --layers.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Rounds per batch size, each ours then PyTorch's at once; every figure is the median
    /// over the rounds (this shared machine's speed drifts between runs, and alternating
    /// rounds puts both sides under the same drift).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

pub fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Ingest(args) => ingest(&args),
        Bench::Augment(args) => augment(&args),
        Bench::TrainStep(args) => train_step(&args),
        Bench::Photos(args) => crate::photos::photos(&args),
        Bench::Crops(args) => crate::photos::crops(&args),
        Bench::Serve(args) => crate::serve_bench::serve(&args),
        Bench::IngestProbe { data } => {
            let start = Instant::now();
            let loaded = fer_data::load(&data, &fer_data::LoadOptions::default())?;
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({"seconds": seconds, "images": loaded.dataset.len(), "peak_rss_mib": peak_rss_mib()})
            );
            Ok(())
        }
    }
}

fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let python = peer_python(args.python.as_deref(), args.no_peer)?;
    let data = resolve_data(args.data.as_deref())?;
    let (csv, gz) = plain_and_gzip(&data)?;
    println!(
        "ingest benchmark: {} runs per file, best run reported",
        args.runs
    );
    let mut ours = serde_json::Map::new();
    for (name, path) in [("csv", &csv), ("gz", &gz)] {
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..args.runs.max(1) {
            let probe = run_probe(path)?;
            let seconds = probe["seconds"].as_f64().unwrap_or(f64::NAN);
            let rss = probe["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
            best = Some(match best {
                Some((s, r)) => (s.min(seconds), r.max(rss)),
                None => (seconds, rss),
            });
        }
        let (seconds, rss) = best.expect("at least one run");
        println!(
            "  fer-data  {name:>3}: {seconds:6.3} s, peak RSS {rss:6.0} MiB  ({})",
            path.display()
        );
        ours.insert(
            name.into(),
            json!({"seconds": seconds, "peak_rss_mib": rss}),
        );
    }
    let mut report = json!({"ours": ours});
    if let Some(python) = &python {
        match torch_reference(python, &["ingest", "--data", &csv.to_string_lossy()]) {
            Ok(peer) => {
                let seed = peer["seed_way_s"].as_f64().unwrap_or(f64::NAN);
                let vectorised = peer["vectorised_s"].as_f64().unwrap_or(f64::NAN);
                let ours_csv = report["ours"]["csv"]["seconds"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                println!("  seed (pandas + Python loop) csv: {seed:6.3} s");
                println!("  pandas vectorised          csv: {vectorised:6.3} s");
                println!(
                    "  speed-up on the csv: {:.1}x the seed's loader, {:.1}x vectorised pandas",
                    seed / ours_csv,
                    vectorised / ours_csv
                );
                report["peer"] = peer;
                report["speedup_vs_seed"] = json!(seed / ours_csv);
                report["speedup_vs_vectorised"] = json!(vectorised / ours_csv);
            }
            Err(e) => println!("  seed loader: not measured ({e:#})"),
        }
    } else {
        println!("  seed loader: skipped (--no-peer)");
    }
    println!("{report}");
    Ok(())
}

fn augment(args: &AugmentArgs) -> anyhow::Result<()> {
    use fer_augment::{Pipeline, PipelineConfig};
    let python = peer_python(args.python.as_deref(), args.no_peer)?;
    let data = resolve_data(args.data.as_deref())?;
    let dataset = fer_data::load(&data, &fer_data::LoadOptions::default())?.dataset;
    let train = dataset.view(fer_data::Split::Training);
    let indices: Vec<usize> = train.indices().iter().copied().take(args.n).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build()?;
    println!(
        "augment benchmark: {} real training images, {} threads, batches of 128",
        indices.len(),
        args.threads
    );
    let mut ours = serde_json::Map::new();
    for name in ["seed", "modern", "everything"] {
        let pipeline = Pipeline::new(PipelineConfig::named(name).expect("built-in"), 0)?;
        let mut epoch = 0u64;
        let mut images = 0usize;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < 3.0 || epoch < 2 {
            pool.install(|| {
                for batch in indices.chunks(128) {
                    std::hint::black_box(pipeline.augment_from(&dataset, batch, epoch));
                }
            });
            images += indices.len();
            epoch += 1;
        }
        let rate = images as f64 / start.elapsed().as_secs_f64();
        println!("  fer-augment {name:<10}: {rate:10.0} img/s");
        ours.insert(name.into(), json!(rate));
    }
    let mut report = json!({"ours_img_s": ours, "threads": args.threads});
    if let Some(python) = &python {
        let (csv, _) = plain_and_gzip(&data)?;
        let n = args.n.to_string();
        match torch_reference(
            python,
            &["augment", "--data", &csv.to_string_lossy(), "--n", &n],
        ) {
            Ok(peer) => {
                let theirs = peer["img_s"].as_f64().unwrap_or(f64::NAN);
                let seed = report["ours_img_s"]["seed"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "  torchvision seed pipeline : {theirs:10.0} img/s (one image at a time, 1 thread, as the seed's DataLoader)"
                );
                println!("  ratio seed/seed: {:.1}x", seed / theirs);
                report["torchvision_img_s"] = json!(theirs);
                report["ratio_seed_vs_torchvision"] = json!(seed / theirs);
            }
            Err(e) => println!("  torchvision: not measured ({e:#})"),
        }
        match torch_reference(python, &["speed", "--batches", "128", "--secs", "4"]) {
            Ok(peer) => {
                let step = peer["batches"]["128"]["train_img_s"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let modern = report["ours_img_s"]["everything"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                println!("  PyTorch seed-CNN training step (batch 128): {step:.0} img/s");
                println!(
                    "  slowest pipeline ('everything') runs at {:.0}x the training step (target >= 20x)",
                    modern / step
                );
                report["torch_train_step_img_s"] = json!(step);
                report["everything_vs_train_step"] = json!(modern / step);
            }
            Err(e) => println!("  PyTorch training step: not measured ({e:#})"),
        }
    } else {
        println!("  PyTorch: skipped (--no-peer)");
    }
    println!("{report}");
    Ok(())
}

/// Median seconds of `f` after `warm` calls, timed for at least `secs` and 3 calls.
pub(crate) fn median_seconds(
    warm: usize,
    secs: f64,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    for _ in 0..warm {
        f()?;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// (batch size, inference img/s, training img/s).
pub(crate) type Figures = (usize, f64, f64);

/// What [`our_train_step`] times: a network, where, and for how long per figure.
pub(crate) struct StepSpec<'a> {
    pub device: &'a candle_core::Device,
    /// `seed-cnn` or `vgg-bn`.
    pub architecture: &'a str,
    /// vgg-bn's first-stage channels.
    pub width: usize,
    /// Seconds of timed steps per figure (the median step is reported).
    pub secs: f64,
    /// The optimizer of the timed training step.
    pub recipe: Recipe,
}

/// The optimizer of a timed training step (`--recipe`); the PyTorch peer runs the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Recipe {
    /// The seed's Adadelta (lr 0.1, rho 0.95).
    Adadelta,
    /// The cpu profile's SGD (Nesterov momentum 0.9, lr 0.05, weight decay 5e-4), then its
    /// weight average (decay 0.998).
    Cpu,
}

impl Recipe {
    /// The optimizer and the weight average's decay, if any.
    fn optimizer(self) -> (fer_model::OptimizerConfig, Option<f64>) {
        use fer_model::{OptimizerConfig, SgdConfig};
        match self {
            Recipe::Adadelta => (OptimizerConfig::default(), None),
            Recipe::Cpu => (
                OptimizerConfig::Sgd(SgdConfig {
                    lr: 0.05,
                    ..SgdConfig::default()
                }),
                Some(0.998),
            ),
        }
    }

    /// How the bench's header line names it.
    fn describe(self) -> &'static str {
        match self {
            Recipe::Adadelta => "Adadelta",
            Recipe::Cpu => "SGD (Nesterov) + weight average, as the cpu profile",
        }
    }

    /// Its `--recipe` value, passed on to the peer script.
    fn flag(self) -> &'static str {
        match self {
            Recipe::Adadelta => "adadelta",
            Recipe::Cpu => "cpu",
        }
    }
}

/// Our figures for one network: per batch (batch, inference img/s, training img/s), then
/// batch-1 latency (s). On a GPU every timed call waits for the device to finish.
pub(crate) fn our_train_step(
    spec: &StepSpec,
    batches: &[usize],
) -> anyhow::Result<(Vec<Figures>, f64)> {
    use candle_core::Tensor;
    use fer_model::{AnyOptimizer, ModelConfig};
    use rand::{Rng, SeedableRng};
    let device = spec.device;
    let architecture: fer_model::Architecture =
        serde_json::from_value(serde_json::Value::String(spec.architecture.to_string()))
            .map_err(|_| anyhow::anyhow!("unknown architecture {}", spec.architecture))?;
    let config = ModelConfig {
        architecture,
        width: spec.width,
        ..ModelConfig::default()
    };
    let (vars, model) = config.init(device, 0)?;
    let mut params: Vec<(String, candle_core::Var)> = vars
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("var map lock poisoned"))?
        .iter()
        .filter(|(k, _)| !fer_model::layers::batch_norm::is_running_statistic(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let (optimizer_config, ema) = spec.recipe.optimizer();
    let mut optimizer = AnyOptimizer::new(
        optimizer_config,
        params.into_iter().map(|(_, v)| v).collect(),
    )?;
    let average = ema
        .map(|decay| {
            fer_model::WeightAverage::new(fer_model::EmaConfig { decay }, &config, &vars, device)
        })
        .transpose()?;
    let mut steps = 0u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut figures = Vec::new();
    for &n in batches {
        let pixels: Vec<f32> = (0..n * 2304).map(|_| rng.random::<f32>()).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..7u32)).collect();
        let x = Tensor::from_vec(pixels, (n, 1, 48, 48), device)?;
        let y = Tensor::from_vec(labels, n, device)?;
        let infer = median_seconds(3, spec.secs, || {
            let scores = model.predict(&x)?;
            std::hint::black_box(scores.sum_all()?.to_scalar::<f32>()?);
            Ok(())
        })?;
        let mut dropout = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut step = || -> anyhow::Result<()> {
            let (_, grads) =
                model.loss_and_grads(&x, &y, &fer_model::Loss::default(), Some(&mut dropout))?;
            optimizer.step(&grads)?;
            if let Some(average) = &average {
                average.update(&vars, steps)?;
            }
            steps += 1;
            device.synchronize()?;
            Ok(())
        };
        let train = median_seconds(2, spec.secs, &mut step)?;
        // Steady state: the resident set after the timed steps, then after 10 more.
        let settled = rss_mib();
        for _ in 0..10 {
            step()?;
        }
        let grown = rss_mib() - settled;
        let (infer_rate, train_rate) = (n as f64 / infer, n as f64 / train);
        println!(
            "  ours    batch {n:4}: inference {infer_rate:8.1} img/s | train step {train_rate:7.1} img/s | RSS {settled:.0} MiB, {grown:+.1} MiB over 10 more steps"
        );
        figures.push((n, infer_rate, train_rate));
    }
    let one = Tensor::from_vec(
        (0..2304).map(|_| rng.random::<f32>()).collect::<Vec<f32>>(),
        (1, 1, 48, 48),
        device,
    )?;
    let latency = median_seconds(20, spec.secs.min(5.0), || {
        std::hint::black_box(model.predict(&one)?.to_vec2::<f32>()?);
        Ok(())
    })?;
    Ok((figures, latency))
}

fn train_step(args: &TrainStepArgs) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build()?;
    if args.layers {
        return pool.install(|| layer_profile(args));
    }
    let python = peer_python(args.python.as_deref(), args.no_peer)?;
    println!(
        "train-step benchmark: {} (width {}), f32, {}, {} threads, {} kernels, median step over {} s",
        args.architecture,
        args.width,
        args.recipe.describe(),
        args.threads,
        fer_model::cpu_kernels(),
        args.secs
    );
    // The seed CNN's peer is xtask/bench/seed_cnn_reference.py; vgg-bn's is its PyTorch twin
    // beside it (same module names: our weights load into it strictly).
    let (script, extra) = match args.architecture.as_str() {
        "seed-cnn" => {
            anyhow::ensure!(
                args.recipe == Recipe::Adadelta,
                "--recipe cpu is for vgg-bn (the seed CNN trains with Adadelta)"
            );
            (PEER_SEED_CNN, Vec::new())
        }
        _ => (
            PEER_VGG_BN,
            vec![
                "--width".to_string(),
                args.width.to_string(),
                "--dropout".to_string(),
                fer_model::ModelConfig::default().dropout.to_string(),
                "--recipe".to_string(),
                args.recipe.flag().to_string(),
            ],
        ),
    };
    // Each batch size is measured for us, then at once for PyTorch, so that both see about
    // the same load on this shared machine; with --rounds, that pair again and again, and
    // the medians reported.
    let rounds = args.rounds.max(1);
    let mut ours = Vec::new();
    let mut latency = f64::NAN;
    let mut peer = serde_json::Map::new();
    let mut peer_latency = f64::NAN;
    let last = args.batches.len().saturating_sub(1);
    for (i, &n) in args.batches.iter().enumerate() {
        let spec = StepSpec {
            device: &candle_core::Device::Cpu,
            architecture: &args.architecture,
            width: args.width,
            secs: args.secs,
            recipe: args.recipe,
        };
        let (batch, threads, secs) = (
            n.to_string(),
            args.threads.to_string(),
            args.secs.to_string(),
        );
        let mut peer_args = vec![
            "speed",
            "--batches",
            &batch,
            "--threads",
            &threads,
            "--secs",
            &secs,
        ];
        peer_args.extend(extra.iter().map(String::as_str));
        // (inference, training, batch-1 latency) per round, ours and PyTorch's.
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (figures, l) = pool.install(|| our_train_step(&spec, &[n]))?;
            let &(_, infer, train) = figures.first().context("no figures measured")?;
            mine.push((infer, train, l));
            let Some(python) = &python else {
                continue;
            };
            match run_peer(python, script, &peer_args) {
                Ok(t) => {
                    let b = &t["batches"][&batch];
                    let figure = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
                    let pair = (figure(&b["infer_img_s"]), figure(&b["train_img_s"]));
                    theirs.push((pair.0, pair.1, figure(&t["batch1_latency_ms"]) / 1e3));
                    if rounds > 1 {
                        println!(
                            "  round {round}/{rounds}, batch {n:4}: ours inference {infer:8.1} train {train:7.1} img/s, PyTorch {:8.1} / {:7.1} -> {:.2}x / {:.2}x",
                            pair.0,
                            pair.1,
                            infer / pair.0,
                            train / pair.1
                        );
                    }
                }
                Err(e) => println!("  PyTorch batch {n:4}: not measured ({e:#})"),
            }
        }
        let of = |v: &[(f64, f64, f64)], k: usize| {
            median(v.iter().map(|f| [f.0, f.1, f.2][k]).collect())
        };
        let (infer, train) = (of(&mine, 0), of(&mine, 1));
        ours.push((n, infer, train));
        if i == last {
            latency = of(&mine, 2);
            println!("  ours    batch-1 latency {:.3} ms", latency * 1e3);
        }
        if theirs.is_empty() {
            continue;
        }
        let (t_infer, t_train) = (of(&theirs, 0), of(&theirs, 1));
        println!(
            "  PyTorch batch {n:4}: inference {t_infer:8.1} img/s | train step {t_train:7.1} img/s  -> ours/PyTorch: inference {:.2}x, train {:.2}x",
            infer / t_infer,
            train / t_train
        );
        peer.insert(
            batch.clone(),
            json!({"infer_img_s": t_infer, "train_img_s": t_train, "infer_ratio": infer / t_infer, "train_ratio": train / t_train}),
        );
        peer_latency = of(&theirs, 2) * 1e3;
    }
    let mut report = json!({"threads": args.threads, "kernels": fer_model::cpu_kernels(), "batch1_latency_ms": latency * 1e3});
    if let Some(&(_, infer, train)) = ours.iter().find(|f| f.0 == 128) {
        report["train_img_s"] = json!(train);
        report["infer_img_s"] = json!(infer);
    }
    if python.is_none() {
        println!("  PyTorch: skipped (--no-peer)");
    } else {
        println!(
            "  PyTorch batch-1 latency {peer_latency:.3} ms -> ours/PyTorch {:.2}x the time",
            latency * 1e3 / peer_latency
        );
        if let Some(p) = peer.get("128") {
            report["train_ratio"] = p["train_ratio"].clone();
            report["infer_ratio"] = p["infer_ratio"].clone();
        }
        report["torch_batch1_latency_ms"] = json!(peer_latency);
        report["torch"] = Value::Object(peer);
    }
    println!("{report}");
    Ok(())
}

/// `train-step --layers`: vgg-bn's step, layer by layer (see `VggBn::layer_times`).
fn layer_profile(args: &TrainStepArgs) -> anyhow::Result<()> {
    use candle_core::{DType, Device, Tensor};
    use rand::{Rng, SeedableRng};
    anyhow::ensure!(
        args.architecture == "vgg-bn",
        "--layers profiles vgg-bn only (the seed CNN's step is one fused kernel on the CPU)"
    );
    let n = *args.batches.first().context("no batch size")?;
    let device = Device::Cpu;
    let vars = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &device);
    let defaults = fer_model::ModelConfig::default();
    let model = fer_model::VggBn::new(vb, args.width, defaults.head, defaults.dropout)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let pixels: Vec<f32> = (0..n * 2304).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..7u32)).collect();
    let x = Tensor::from_vec(pixels, (n, 1, 48, 48), &device)?;
    let y = Tensor::from_vec(labels, n, &device)?;
    let loss = fer_model::Loss::default();
    let mut runs = Vec::new();
    for _ in 0..=args.repeats.max(1) {
        runs.push(model.layer_times(&x, &y, &loss, &mut rng)?);
    }
    runs.remove(0); // warm-up
    let rows: Vec<(String, f64, f64)> = (0..runs[0].len())
        .map(|i| {
            (
                runs[0][i].name.clone(),
                median(runs.iter().map(|r| r[i].forward_s).collect()),
                median(runs.iter().map(|r| r[i].backward_s).collect()),
            )
        })
        .collect();
    let total: f64 = rows.iter().map(|(_, f, b)| f + b).sum();
    println!(
        "vgg-bn width {} batch {n}, {} threads: each layer alone, median of {} (ms; share of the sum)",
        args.width,
        args.threads,
        runs.len()
    );
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(40);
    println!(
        "  {:<width$} {:>9} {:>9} {:>7}",
        "layer", "forward", "backward", "share"
    );
    for (name, forward, backward) in &rows {
        println!(
            "  {name:<width$} {:9.2} {:9.2} {:6.1}%",
            forward * 1e3,
            backward * 1e3,
            (forward + backward) / total * 100.0
        );
    }
    let (forward, backward): (f64, f64) =
        rows.iter().fold((0.0, 0.0), |(f, b), r| (f + r.1, b + r.2));
    println!(
        "  {:<width$} {:9.2} {:9.2}   = {:.1} ms, {:.1} img/s without the optimizer",
        "sum",
        forward * 1e3,
        backward * 1e3,
        total * 1e3,
        n as f64 / total
    );
    let layers: Vec<Value> = rows
        .iter()
        .map(|(name, f, b)| json!({"layer": name, "forward_ms": f * 1e3, "backward_ms": b * 1e3}))
        .collect();
    println!(
        "{}",
        json!({"architecture": "vgg-bn", "width": args.width, "batch": n, "threads": args.threads, "layers": layers, "sum_ms": total * 1e3})
    );
    Ok(())
}

fn resolve_data(data: Option<&Path>) -> anyhow::Result<PathBuf> {
    match data {
        Some(path) => Ok(path.to_path_buf()),
        None => crate::default_data().context(
            "no FER2013 file found: pass --data, set FER2013_CSV, or run `cargo xtask download`",
        ),
    }
}

/// The seed notebook's loader, augmentation, CNN and recipe in PyTorch
/// (see docs/seed-experiment.md).
pub(crate) const PEER_SEED_CNN: &str = "xtask/bench/seed_cnn_reference.py";
/// fer-model's vgg-bn in PyTorch, with the same parameter names.
pub(crate) const PEER_VGG_BN: &str = "xtask/bench/vgg_bn_reference.py";

/// The environment variable naming the peers' Python (the `--python` flag's fallback).
pub(crate) const PYTHON_ENV: &str = "FER_BENCH_PYTHON";

/// The Python that runs the peers: `None` with `--no-peer`, else the one given by `--python`
/// or `$FER_BENCH_PYTHON` (clap reads both into `python`). With neither, an error says how to
/// make one, before anything is measured rather than after minutes of our own figures.
pub(crate) fn peer_python(python: Option<&Path>, no_peer: bool) -> anyhow::Result<Option<PathBuf>> {
    if no_peer {
        return Ok(None);
    }
    match python {
        Some(python) => Ok(Some(python.to_path_buf())),
        None => bail!(
            "no Python for the PyTorch peer: pass --python PATH or set {PYTHON_ENV} to a Python \
             with torch, torchvision, pandas and safetensors, e.g.\n\
             \n    python3 -m venv ~/.venvs/torchref\n    \
             ~/.venvs/torchref/bin/pip install torch torchvision pandas safetensors\n    \
             export {PYTHON_ENV}=~/.venvs/torchref/bin/python\n\n\
             or pass --no-peer to measure ours alone"
        ),
    }
}

/// Runs `xtask/bench/seed_cnn_reference.py ARGS` and returns the JSON of its last line.
fn torch_reference(python: &Path, args: &[&str]) -> anyhow::Result<Value> {
    run_peer(python, PEER_SEED_CNN, args)
}

/// Runs the PyTorch script `script` (relative to the workspace root) with `args` and returns
/// the JSON of its last line.
pub(crate) fn run_peer(python: &Path, script: &str, args: &[&str]) -> anyhow::Result<Value> {
    let script = crate::workspace_root().join(script);
    if !script.is_file() {
        bail!("{} not found", script.display());
    }
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{} failed: {}",
            python.display(),
            stderr.lines().last().unwrap_or("")
        );
    }
    crate::last_json_line(&output.stdout)
}

/// Both forms of the file: the given one and the other, made once under target/bench-data.
fn plain_and_gzip(data: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut magic = [0u8; 2];
    std::io::Read::read_exact(
        &mut std::fs::File::open(data)
            .with_context(|| format!("cannot open {}", data.display()))?,
        &mut magic,
    )
    .with_context(|| format!("cannot read {}", data.display()))?;
    let scratch = crate::workspace_root().join("target/bench-data");
    std::fs::create_dir_all(&scratch)?;
    if magic == [0x1f, 0x8b] {
        let csv = scratch.join("fer2013.csv");
        if !csv.is_file() {
            let mut input = flate2::read::MultiGzDecoder::new(std::fs::File::open(data)?);
            let tmp = scratch.join("fer2013.csv.tmp");
            std::io::copy(&mut input, &mut std::fs::File::create(&tmp)?)
                .with_context(|| format!("cannot decompress {}", data.display()))?;
            std::fs::rename(&tmp, &csv)?;
        }
        Ok((csv, data.to_path_buf()))
    } else {
        let gz = scratch.join("fer2013.csv.gz");
        if !gz.is_file() {
            let tmp = scratch.join("fer2013.csv.gz.tmp");
            let mut encoder = flate2::write::GzEncoder::new(
                std::fs::File::create(&tmp)?,
                flate2::Compression::best(),
            );
            std::io::copy(&mut std::fs::File::open(data)?, &mut encoder)?;
            encoder.finish()?;
            std::fs::rename(&tmp, &gz)?;
        }
        Ok((data.to_path_buf(), gz))
    }
}

fn run_probe(path: &Path) -> anyhow::Result<Value> {
    let output = Command::new(std::env::current_exe()?)
        .args(["bench", "ingest-probe", "--data"])
        .arg(path)
        .output()?;
    if !output.status.success() {
        bail!("probe failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    crate::last_json_line(&output.stdout)
}

/// Peak resident memory of this process (VmHWM), in MiB; NaN where /proc is unavailable.
fn peak_rss_mib() -> f64 {
    crate::proc_status_mib("self", "VmHWM:")
}

/// Resident memory of this process now (VmRSS), in MiB; NaN where /proc is unavailable.
fn rss_mib() -> f64 {
    crate::proc_status_mib("self", "VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_python_comes_from_the_flag_or_environment_or_fails_with_a_recipe() {
        assert_eq!(peer_python(None, true).unwrap(), None);
        assert_eq!(peer_python(Some(Path::new("/opt/py")), true).unwrap(), None);
        assert_eq!(
            peer_python(Some(Path::new("/opt/py")), false).unwrap(),
            Some(PathBuf::from("/opt/py"))
        );
        let message = peer_python(None, false).unwrap_err().to_string();
        for needed in [
            "--python",
            PYTHON_ENV,
            "python3 -m venv",
            "pip install torch",
            "--no-peer",
        ] {
            assert!(message.contains(needed), "{needed} missing from: {message}");
        }
    }

    #[test]
    fn the_peer_scripts_are_in_the_repository() {
        for script in [PEER_SEED_CNN, PEER_VGG_BN] {
            assert!(crate::workspace_root().join(script).is_file(), "{script}");
        }
    }
}
