//! The models compiled into the library: their files (`models/NAME/` in this crate, weights
//! stored as f16), names and recorded figures. Nothing is downloaded or read at run time.

use candle_core::Device;
use fer_model::TrainedModel;

use crate::error::{Error, Result};

/// A model compiled into the library, with the evaluation that backs it.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// The name `builtin:NAME` selects.
    pub name: &'static str,
    /// One line: what it is and what it is for.
    pub summary: &'static str,
    /// The run's `config.json` (architecture, recipe, test-time augmentation).
    pub config_json: &'static str,
    /// The normalizer fitted on FER2013 Training.
    pub normalizer_json: &'static str,
    /// The parameters as safetensors (PyTorch names, f16).
    pub weights: &'static [u8],
    /// `fer eval --split public-test --json` of these weights (the selection split).
    pub eval_public_test_json: &'static str,
    /// `fer eval --json` of these weights on PrivateTest (the report split).
    pub eval_private_test_json: &'static str,
}

macro_rules! builtin {
    ($name:literal, $summary:literal) => {
        BuiltinModel {
            name: $name,
            summary: $summary,
            config_json: include_str!(concat!("../models/", $name, "/config.json")),
            normalizer_json: include_str!(concat!("../models/", $name, "/normalizer.json")),
            weights: include_bytes!(concat!("../models/", $name, "/model.safetensors")),
            eval_public_test_json: include_str!(concat!(
                "../models/",
                $name,
                "/eval-public-test.json"
            )),
            eval_private_test_json: include_str!(concat!(
                "../models/",
                $name,
                "/eval-private-test.json"
            )),
        }
    };
}

/// The built-in models; the first is [`DEFAULT_BUILTIN`]. See `models/README.md` (the model
/// card) for how each was trained and chosen. A `static`, so each file is in the binary once.
pub static BUILTIN_MODELS: &[BuiltinModel] = &[builtin!(
    "accurate",
    "vgg-bn (3.5 M parameters), the `cpu` profile's recipe of 2026-12-05 (31 epochs, \
     square-root class weights): 70.5% on PrivateTest, macro-F1 0.69; says Disgust when it \
     sees it (recall 76% on PrivateTest), Fear is its weakest class (recall 48.9%)"
)];

/// The model `builtin` (without a name) selects, and [`crate::Recognizer::builtin`] loads.
pub const DEFAULT_BUILTIN: &str = "accurate";

impl BuiltinModel {
    /// The built-in model called `name`.
    pub fn named(name: &str) -> Result<&'static BuiltinModel> {
        BUILTIN_MODELS
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::UnknownBuiltin {
                name: name.to_string(),
                available: BUILTIN_MODELS
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The default built-in model.
    pub fn default_model() -> &'static BuiltinModel {
        &BUILTIN_MODELS[0]
    }

    /// The network with its weights (converted to f32) on `device`.
    pub fn load(&self, device: &Device) -> Result<TrainedModel> {
        TrainedModel::from_bytes(
            self.config_json.as_bytes(),
            self.normalizer_json.as_bytes(),
            self.weights,
            device,
        )
        .map_err(|source| Error::Builtin {
            name: self.name,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_default_is_first() {
        let mut names: Vec<&str> = BUILTIN_MODELS.iter().map(|m| m.name).collect();
        assert_eq!(names[0], DEFAULT_BUILTIN);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BUILTIN_MODELS.len());
    }

    #[test]
    fn every_builtin_model_loads_and_its_figures_parse() {
        for model in BUILTIN_MODELS {
            let trained = model.load(&Device::Cpu).unwrap();
            assert_eq!(trained.normalizer.mean.len(), 48 * 48, "{}", model.name);
            for json in [model.eval_public_test_json, model.eval_private_test_json] {
                let value: serde_json::Value = serde_json::from_str(json).unwrap();
                let accuracy = value["accuracy"].as_f64().unwrap();
                assert!((0.5..1.0).contains(&accuracy), "{}: {accuracy}", model.name);
            }
        }
    }

    #[test]
    fn an_unknown_name_lists_the_built_in_ones() {
        let error = BuiltinModel::named("nope").unwrap_err().to_string();
        assert!(error.contains("nope"), "{error}");
        for model in BUILTIN_MODELS {
            assert!(error.contains(model.name), "{error}");
        }
    }
}
