//! [`DeviceName`]: where a model runs, `cpu`, `cuda` or `cuda:N`, as people write it.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

/// A device as named on a command line or in a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    /// The CUDA device with this ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl DeviceName {
    /// The candle device; fails when CUDA is asked for but this build has no `cuda` feature
    /// or the machine no such GPU.
    pub fn open(self) -> candle_core::Result<Device> {
        match self {
            DeviceName::Cpu => Ok(Device::Cpu),
            DeviceName::Cuda(ordinal) => Device::new_cuda(ordinal),
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

    #[test]
    fn the_cpu_opens_and_cuda_fails_cleanly_without_a_gpu() {
        assert!(DeviceName::Cpu.open().unwrap().is_cpu());
        if !cfg!(feature = "cuda") {
            assert!(DeviceName::Cuda(0).open().is_err());
        }
    }
}
