//! `--device`: where a model runs, `cpu`, `cuda` or `cuda:N`.

use anyhow::Context;

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        _ => {
            let ordinal = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("invalid device '{name}' (cpu, cuda or cuda:N)"))?,
                None => anyhow::bail!("invalid device '{name}' (cpu, cuda or cuda:N)"),
            };
            candle_core::Device::new_cuda(ordinal)
                .with_context(|| format!("cannot use {name} (is fer built with --features cuda?)"))
        }
    }
}
