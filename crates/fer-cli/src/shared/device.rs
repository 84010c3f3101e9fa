//! `--device`: where a model runs, `cpu`, `cuda` or `cuda:N`, checked when the flags are parsed.

use anyhow::Context;
use fer_model::DeviceName;

/// The `--device` flag of the commands that run a model.
#[derive(clap::Args)]
pub struct DeviceArgs {
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceName,
}

impl DeviceArgs {
    /// The candle device; fails when CUDA is asked for but not available.
    pub fn open(&self) -> anyhow::Result<candle_core::Device> {
        self.device.open().with_context(|| {
            format!(
                "cannot use {} (is fer built with --features cuda?)",
                self.device
            )
        })
    }
}
