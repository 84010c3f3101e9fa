//! Files of a run, written atomically so an interrupted run never loses or corrupts what it
//! had saved: tensors as safetensors under PyTorch names (strict loading, errors naming the
//! file and the parameter) and JSON documents (one reader, one writer for the crate).
//!
//! ```text
//! RUN_DIR/
//!   config.json              the run's TrainConfig (model, optimizer, augmentation, ...)
//!   normalizer.json          the Normalizer fitted on Training
//!   best.safetensors         parameters of the best epoch on PublicTest (PyTorch names)
//!   last.safetensors         parameters after the last finished epoch
//!   history.json             one record per epoch (the seed's table and more)
//!   checkpoints/epoch-NNNN/  model.safetensors, optimizer.safetensors, state.json
//!   state.json               the commit point: which epoch checkpoint is current
//!   teacher.safetensors      a distilled run's teacher probabilities on Training
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// Errors reading or writing a run directory; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The I/O error is the source, so a printed chain names it once.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid checkpoint: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A model file opened without the run's `config.json` or `normalizer.json` beside it.
    #[error(
        "{} is not there: a model file needs its run's {file} beside it",
        missing.display()
    )]
    MissingBeside {
        file: &'static str,
        missing: PathBuf,
    },
    #[error(transparent)]
    Write(#[from] fer_data::Error),
}

impl CheckpointError {
    pub(crate) fn invalid(path: &Path, message: impl ToString) -> Self {
        CheckpointError::Invalid {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Writes `bytes` atomically (temporary file + rename; see [`fer_data::write_atomically`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    Ok(fer_data::write_atomically(path, bytes)?)
}

/// Reads the JSON document at `path` as a `T`; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::invalid(path, e))
}

/// Writes `value` as pretty JSON with a final newline, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CheckpointError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| CheckpointError::invalid(path, e))?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Serialises named tensors as safetensors and writes them atomically.
pub fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), CheckpointError> {
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let bytes =
        safetensors::serialize(sorted, None).map_err(|e| CheckpointError::invalid(path, e))?;
    write_atomically(path, &bytes)
}

/// The parameters of `vars` under their names (PyTorch's for the seed CNN).
pub fn named_parameters(vars: &VarMap) -> HashMap<String, Tensor> {
    let data = vars.data().lock().expect("var map lock");
    data.iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect()
}

/// Saves the parameters of `vars` (PyTorch names), atomically.
pub fn save_parameters(path: &Path, vars: &VarMap) -> Result<(), CheckpointError> {
    save_tensors(path, &named_parameters(vars))
}

/// Reads a safetensors file, with an error naming the file when it is missing, truncated or
/// not safetensors.
pub fn load_tensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| CheckpointError::invalid(path, e))
}

/// Loads parameters into `vars`: every var must be present with its shape and no extra
/// tensor may be left over (PyTorch's `strict=True`). Tensors stored in another float type
/// (f16, bf16) are converted to the var's.
pub fn load_parameters(path: &Path, vars: &VarMap) -> Result<(), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_parameters_from_buffer(&bytes, path, vars)
}

/// [`load_parameters`] from safetensors bytes in memory; errors name `path` (the file they
/// came from, or what they stand for).
pub fn load_parameters_from_buffer(
    bytes: &[u8],
    path: &Path,
    vars: &VarMap,
) -> Result<(), CheckpointError> {
    let data = vars.data().lock().expect("var map lock");
    let device = data
        .values()
        .next()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    let mut tensors = candle_core::safetensors::load_buffer(bytes, &device)
        .map_err(|e| CheckpointError::invalid(path, e))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let tensor = tensors.remove(name).ok_or_else(|| {
            CheckpointError::invalid(
                path,
                format!("missing parameter '{name}' (another architecture?)"),
            )
        })?;
        if tensor.shape() != var.shape() {
            return Err(CheckpointError::invalid(
                path,
                format!(
                    "parameter '{name}' has shape {:?}, the model needs {:?}",
                    tensor.dims(),
                    var.dims()
                ),
            ));
        }
        let tensor = tensor
            .to_dtype(var.dtype())
            .map_err(|e| CheckpointError::invalid(path, e))?;
        var.set(&tensor)
            .map_err(|e| CheckpointError::invalid(path, e))?;
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(CheckpointError::invalid(
            path,
            format!("unexpected parameter '{extra}' (another architecture?)"),
        ));
    }
    Ok(())
}
