//! `--device`: where a model runs, `cpu`, `cuda` or `cuda:N`, checked when the flags are parsed.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;

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
        self.device.open()
    }
}

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    /// The CUDA device with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceName {
    /// The candle device; fails when CUDA is asked for but not available.
    pub fn open(self) -> anyhow::Result<candle_core::Device> {
        match self {
            DeviceName::Cpu => Ok(candle_core::Device::Cpu),
            DeviceName::Cuda(ordinal) => candle_core::Device::new_cuda(ordinal)
                .with_context(|| format!("cannot use {self} (is fer built with --features cuda?)")),
        }
    }
}

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "cpu" => Ok(DeviceName::Cpu),
            "cuda" => Ok(DeviceName::Cuda(0)),
            _ => name
                .strip_prefix("cuda:")
                .and_then(|ordinal| ordinal.parse().ok())
                .map(DeviceName::Cuda)
                .ok_or_else(|| "expected cpu, cuda or cuda:N".to_string()),
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Cpu => f.write_str("cpu"),
            DeviceName::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_devices_and_back() {
        assert_eq!("cpu".parse(), Ok(DeviceName::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceName::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceName::Cuda(3)));
        assert_eq!(DeviceName::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda3", "CPU", ""] {
            assert_eq!(
                bad.parse::<DeviceName>(),
                Err("expected cpu, cuda or cuda:N".to_string()),
                "{bad}"
            );
        }
    }
}
