//! [`ModelSource`]: which model to use, as a user writes it (`builtin`, `builtin:NAME`, or a
//! path to a run directory or a `.safetensors` file in one).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use candle_core::Device;
use fer_model::TrainedModel;

use crate::builtin::{BuiltinModel, DEFAULT_BUILTIN};
use crate::error::{Error, Result};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A built-in model, by name.
    Builtin(String),
    /// A run directory (its `best.safetensors`) or a `.safetensors` file with `config.json`
    /// and `normalizer.json` beside it.
    Path(PathBuf),
}

impl Default for ModelSource {
    /// The default built-in model.
    fn default() -> Self {
        ModelSource::Builtin(DEFAULT_BUILTIN.to_string())
    }
}

impl FromStr for ModelSource {
    type Err = Error;

    /// `builtin` (the default built-in model), `builtin:NAME` (checked), anything else a path.
    fn from_str(text: &str) -> Result<Self> {
        if text == "builtin" {
            return Ok(ModelSource::default());
        }
        if let Some(name) = text.strip_prefix("builtin:") {
            BuiltinModel::named(name)?;
            return Ok(ModelSource::Builtin(name.to_string()));
        }
        if text.is_empty() {
            return Err(Error::InvalidInput(
                "an empty model name: give builtin, builtin:NAME or a path".into(),
            ));
        }
        Ok(ModelSource::Path(PathBuf::from(text)))
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Builtin(name) => write!(f, "builtin:{name}"),
            ModelSource::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl ModelSource {
    /// The model, on `device`.
    pub fn load(&self, device: &Device) -> Result<TrainedModel> {
        match self {
            ModelSource::Builtin(name) => BuiltinModel::named(name)?.load(device),
            ModelSource::Path(path) => {
                TrainedModel::open(path, device).map_err(|source| Error::Model {
                    path: path.clone(),
                    source,
                })
            }
        }
    }

    /// The run directory, for a path to one (where `fer eval` may store its figures).
    pub fn run_dir(&self) -> Option<&std::path::Path> {
        match self {
            ModelSource::Path(path) if path.is_dir() => Some(path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_and_paths_parse() {
        assert_eq!(
            "builtin".parse::<ModelSource>().unwrap(),
            ModelSource::default()
        );
        let named = format!("builtin:{DEFAULT_BUILTIN}");
        assert_eq!(
            named.parse::<ModelSource>().unwrap(),
            ModelSource::Builtin(DEFAULT_BUILTIN.into())
        );
        assert_eq!(named.parse::<ModelSource>().unwrap().to_string(), named);
        assert_eq!(
            "runs/cpu".parse::<ModelSource>().unwrap(),
            ModelSource::Path("runs/cpu".into())
        );
        let error = "builtin:nope".parse::<ModelSource>().unwrap_err();
        assert!(matches!(error, Error::UnknownBuiltin { .. }), "{error}");
        assert!("".parse::<ModelSource>().is_err());
    }

    #[test]
    fn a_missing_model_is_an_error_naming_it() {
        let source: ModelSource = "no/such/run".parse().unwrap();
        let Err(error) = source.load(&Device::Cpu) else {
            panic!("a missing run loaded");
        };
        assert_eq!(error.to_string(), "cannot load model no/such/run");
    }
}
