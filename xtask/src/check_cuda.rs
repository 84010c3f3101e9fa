//! `cargo xtask check-cuda`: builds (and lints) the `cuda` feature on a machine without a GPU,
//! with a CUDA toolkit made of PyPI's NVIDIA packages, pinned, in a virtual environment.
//!
//! The packages give `nvcc`, the headers and the runtime libraries, but only versioned
//! `lib*.so.N` files and no driver library: candle's cudarc links `-lcuda -lcudart -lcublas
//! -lcublasLt -lcurand -lnvrtc` at build time. So the toolkit gets the unversioned links, and a
//! stub `libcuda.so` (soname `libcuda.so.1`, like the toolkit's own stubs) that defines every
//! driver function cudarc declares. On a machine with a GPU the real driver is loaded instead.
//! `--cuda-root` uses an installed toolkit (e.g. /usr/local/cuda) instead of the packages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail, ensure};

/// The toolkit, pinned: CUDA 13.0 update 2, with CCCL's headers (`nv/target`, needed by
/// `cuda_fp16.h`). 13.0 rather than the newest: candle's kernels are PTX that the driver
/// compiles when they load, and a driver compiles only PTX no newer than itself, so kernels
/// from 13.0 load on every CUDA 13 driver (580 and later), a newer toolkit's only on newer ones.
const PACKAGES: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cublas==13.1.0.3",
    "nvidia-curand==10.4.0.35",
];

/// The features the check builds: the `fer` command's and the project tasks' (for
/// `cargo xtask gpu-check` on a GPU machine).
const FEATURES: &str = "fer-cli/cuda,xtask/cuda";

/// The libraries cudarc links by name (`-lNAME`) besides the driver.
const LINKED_LIBRARIES: &[&str] = &["cudart", "cublas", "cublasLt", "curand", "nvrtc"];

#[derive(clap::Args)]
pub struct CheckCudaArgs {
    /// GPU architecture the kernels are compiled for (CUDA_COMPUTE_CAP): 90 for H100/H200,
    /// 89 for L4/RTX 40, 80 for A100.
    #[arg(long, default_value_t = 90)]
    compute_cap: u32,
    /// A CUDA toolkit already installed (its bin/nvcc, include/ and lib64/ or lib/), instead
    /// of the PyPI packages.
    #[arg(long)]
    cuda_root: Option<PathBuf>,
    /// Python that creates the virtual environment for the packages.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Build only; skip clippy.
    #[arg(long)]
    no_clippy: bool,
}

pub fn run(args: CheckCudaArgs) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let target_dir = root.join("target/cuda");
    let mut timings = Vec::new();

    let started = Instant::now();
    let (cuda_root, stub) = match &args.cuda_root {
        Some(path) => {
            let toolkit = path
                .canonicalize()
                .with_context(|| format!("--cuda-root {}: no such folder", path.display()))?;
            let stub = ["lib64/stubs", "lib/stubs", "targets/x86_64-linux/lib/stubs"]
                .iter()
                .map(|dir| toolkit.join(dir).join("libcuda.so"))
                .find(|p| p.is_file())
                .with_context(|| format!("{}: no stubs/libcuda.so", toolkit.display()))?;
            (toolkit, stub)
        }
        None => {
            let toolkit = pypi_toolkit(&args.python, &root.join("target/cuda-venv"))?;
            link_unversioned_libraries(&toolkit.join("lib"))?;
            let stub = toolkit.join("lib/stubs/libcuda.so");
            build_driver_stub(&root, &stub)?;
            (toolkit, stub)
        }
    };
    ensure!(
        cuda_root.join("bin/nvcc").is_file(),
        "{}: no bin/nvcc in this CUDA root",
        cuda_root.display()
    );
    timings.push(("toolkit", started.elapsed().as_secs_f64()));
    let nvcc_version = output(Command::new(cuda_root.join("bin/nvcc")).arg("--version"))?;
    let nvcc_version = nvcc_version
        .lines()
        .find(|l| l.contains("release"))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    println!("CUDA root: {} ({nvcc_version})", cuda_root.display());

    let path = format!(
        "{}:{}",
        cuda_root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cargo = |subcommand: &[&str]| {
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command
            .current_dir(&root)
            .args(subcommand)
            .args(["--release", "--features", FEATURES, "--target-dir"])
            .arg(&target_dir)
            .env("PATH", &path)
            .env("CUDA_ROOT", &cuda_root)
            .env("CUDA_COMPUTE_CAP", args.compute_cap.to_string());
        command
    };

    let started = Instant::now();
    let status = cargo(&["build", "-p", "fer-cli", "-p", "xtask"])
        .status()
        .context("cannot run cargo build")?;
    ensure!(status.success(), "cargo build --features {FEATURES} failed");
    timings.push(("build", started.elapsed().as_secs_f64()));

    if !args.no_clippy {
        let started = Instant::now();
        let status = cargo(&["clippy", "--workspace", "--all-targets"])
            .args(["--", "-D", "warnings"])
            .status()
            .context("cannot run cargo clippy")?;
        ensure!(
            status.success(),
            "cargo clippy --features {FEATURES} failed"
        );
        timings.push(("clippy", started.elapsed().as_secs_f64()));
    }

    // The binary links the CUDA libraries and still runs its CPU paths: where there is no GPU
    // (no driver), the loader gets the stub under the driver's soname.
    let fer = target_dir.join("release/fer");
    let driver_dir = target_dir.join("driver-stub");
    std::fs::create_dir_all(&driver_dir)?;
    let driver = driver_dir.join("libcuda.so.1");
    let _ = std::fs::remove_file(&driver);
    std::os::unix::fs::symlink(&stub, &driver)
        .with_context(|| format!("cannot link {}", driver.display()))?;
    let libraries = [
        driver_dir.clone(),
        cuda_root.join("lib"),
        cuda_root.join("lib64"),
        cuda_root.join("targets/x86_64-linux/lib"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":");
    let needed = output(
        Command::new("ldd")
            .arg(&fer)
            .env("LD_LIBRARY_PATH", &libraries),
    )
    .unwrap_or_default();
    // (nvrtc is linked only when used: candle's kernels come compiled, so the linker drops it.)
    for library in [
        "libcuda.so.1",
        "libcublas.so",
        "libcurand.so",
        "libcudart.so",
    ] {
        ensure!(
            needed.contains(library),
            "{} does not link {library}:\n{needed}",
            fer.display()
        );
    }
    let models = output(
        Command::new(&fer)
            .arg("models")
            .env("LD_LIBRARY_PATH", &libraries),
    )?;
    ensure!(
        models.contains("builtin:"),
        "the cuda build's `fer models` printed:\n{models}"
    );

    println!("cudarc {}", package_version(&root, "cudarc")?);
    if args.cuda_root.is_none() {
        println!("packages: {}", PACKAGES.join(" "));
    }
    for (step, seconds) in &timings {
        println!("{step}: {seconds:.0} s");
    }
    println!(
        "ok: {} builds with the cuda feature (kernels for sm_{}) and runs on the CPU",
        fer.display(),
        args.compute_cap
    );
    Ok(())
}

/// Creates (once) the virtual environment with [`PACKAGES`] and returns the toolkit's root
/// inside it (`site-packages/nvidia/cu13`).
fn pypi_toolkit(python: &Path, venv: &Path) -> anyhow::Result<PathBuf> {
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        let status = Command::new(python)
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .with_context(|| format!("cannot run {}", python.display()))?;
        ensure!(status.success(), "{} -m venv failed", python.display());
    }
    let status = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES)
        .status()
        .context("cannot run pip")?;
    ensure!(status.success(), "pip install of the CUDA packages failed");
    let lib = venv.join("lib");
    let site = std::fs::read_dir(&lib)
        .with_context(|| format!("{}: no lib folder in the venv", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/nvidia/cu13"))
        .find(|p| p.is_dir())
        .with_context(|| format!("no site-packages/nvidia/cu13 under {}", lib.display()))?;
    Ok(site)
}

/// Links `libNAME.so` to the packages' versioned `libNAME.so.N` in `lib`, for the linker.
fn link_unversioned_libraries(lib: &Path) -> anyhow::Result<()> {
    for name in LINKED_LIBRARIES {
        let link = lib.join(format!("lib{name}.so"));
        if link.exists() {
            continue;
        }
        let prefix = format!("lib{name}.so.");
        let versioned = std::fs::read_dir(lib)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .min_by_key(String::len)
            .with_context(|| format!("{}: no {prefix}* from the packages", lib.display()))?;
        std::os::unix::fs::symlink(&versioned, &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    Ok(())
}

/// Writes a stub driver library defining every `cu*` function cudarc's driver bindings declare.
fn build_driver_stub(root: &Path, stub: &Path) -> anyhow::Result<()> {
    if stub.is_file() {
        return Ok(());
    }
    let cudarc = package_dir(root, "cudarc")?;
    let bindings = cudarc.join("src/driver/sys/mod.rs");
    let source = std::fs::read_to_string(&bindings)
        .with_context(|| format!("cannot read {}", bindings.display()))?;
    let mut names: Vec<&str> = source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("fn cu"))
        .filter_map(|rest| rest.split('(').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    ensure!(
        names.len() > 100,
        "{}: found only {} driver functions",
        bindings.display(),
        names.len()
    );
    let c: String = names
        .iter()
        .map(|name| format!("int cu{name}(void) {{ return 999; }}\n"))
        .collect();
    let dir = stub.parent().context("stub path has no folder")?;
    std::fs::create_dir_all(dir)?;
    let c_file = dir.join("libcuda-stub.c");
    std::fs::write(&c_file, c)?;
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
        .arg(stub)
        .arg(&c_file)
        .status()
        .context("cannot run cc for the driver stub")?;
    ensure!(status.success(), "cc failed on {}", c_file.display());
    println!(
        "driver stub: {} ({} functions from cudarc's bindings; 999 = CUDA_ERROR_UNKNOWN)",
        stub.display(),
        names.len()
    );
    Ok(())
}

/// The folder of a dependency's sources, from `cargo metadata`.
fn package_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let manifest = package_field(root, name, "manifest_path")?;
    Ok(PathBuf::from(manifest)
        .parent()
        .context("manifest without a folder")?
        .to_path_buf())
}

fn package_version(root: &Path, name: &str) -> anyhow::Result<String> {
    package_field(root, name, "version")
}

fn package_field(root: &Path, name: &str, field: &str) -> anyhow::Result<String> {
    let metadata = output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["metadata", "--format-version", "1", "--features", FEATURES]),
    )?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let Some(package) = metadata["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
    else {
        bail!("cargo metadata lists no package {name}");
    };
    package[field]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{name} has no {field}"))
}

/// The stdout of a command that must succeed.
fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
