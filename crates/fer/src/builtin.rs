//! The models compiled into the library: their networks (`models/networks/NAME/` in this
//! crate, weights stored as f16, each in the binary once), names and recorded figures
//! (`models/NAME/`). Nothing is downloaded or read at run time.

use candle_core::Device;
use fer_model::TrainedModel;

use crate::error::{Error, Result};

/// One trained network compiled into the library: its run's files.
#[derive(Debug)]
pub struct BuiltinNetwork {
    /// Its directory under `models/networks/`: the `results/` folder of the run it comes from.
    pub name: &'static str,
    /// The run's `config.json` (architecture, recipe, test-time augmentation).
    pub config_json: &'static str,
    /// The normalizer fitted on FER2013 Training.
    pub normalizer_json: &'static str,
    /// The parameters as safetensors (PyTorch names, f16).
    pub weights: &'static [u8],
}

/// A model compiled into the library, with the evaluation that backs it.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// The name `builtin:NAME` selects.
    pub name: &'static str,
    /// One line: what it is and what it is for.
    pub summary: &'static str,
    /// Its network, or the networks of an ensemble (their class probabilities averaged).
    pub networks: &'static [&'static BuiltinNetwork],
    /// `fer eval --split public-test --json` of this model (the selection split).
    pub eval_public_test_json: &'static str,
    /// `fer eval --json` of this model on PrivateTest (the report split).
    pub eval_private_test_json: &'static str,
}

macro_rules! network {
    ($name:literal) => {
        BuiltinNetwork {
            name: $name,
            config_json: include_str!(concat!("../models/networks/", $name, "/config.json")),
            normalizer_json: include_str!(concat!(
                "../models/networks/",
                $name,
                "/normalizer.json"
            )),
            weights: include_bytes!(concat!("../models/networks/", $name, "/model.safetensors")),
        }
    };
}

macro_rules! figures {
    ($name:literal, $split:literal) => {
        include_str!(concat!("../models/", $name, "/eval-", $split, ".json"))
    };
}

/// The `cpu-long` config of 6 December 2026 plus blur, downscaling and noise, lengthened from
/// 40 to 80 epochs: for faces less sharp and clean than FER2013's.
static CPU_LONG_ROBUST_80_2026_12_06: BuiltinNetwork = network!("cpu-long-robust-80-2026-12-06");
/// The `cpu-long` config (affine and brightness/contrast added to the crops and flips) trained
/// fresh over 80 epochs with one cosine schedule (7 December 2026).
static CPU_LONG_2026_12_07_80_EPOCHS: BuiltinNetwork = network!("cpu-long-2026-12-07-80-epochs");
/// The robust config trained fresh over 80 epochs (7 December 2026).
static CPU_LONG_ROBUST_2026_12_07_80_EPOCHS: BuiltinNetwork =
    network!("cpu-long-robust-2026-12-07-80-epochs");
/// The robust config with blur, downscaling and noise on a tenth of the images each instead
/// of a fifth, trained fresh over 80 epochs (7 December 2026).
static CPU_LONG_ROBUST_LIGHT_2026_12_07_80_EPOCHS: BuiltinNetwork =
    network!("cpu-long-robust-light-2026-12-07-80-epochs");

/// The built-in models; the first is [`DEFAULT_BUILTIN`]. See `models/README.md` (the model
/// card) for how each was trained and chosen. A `static`, so each file is in the binary once.
pub static BUILTIN_MODELS: &[BuiltinModel] = &[
    BuiltinModel {
        name: "accurate",
        summary: "three vgg-bn networks averaged (10.6 M parameters), each trained 80 epochs: \
                  the `cpu-long` recipe, its robust variant (blur, downscaling and noise \
                  added) and the robust variant with lighter degradations: 71.5% on \
                  PublicTest, 72.9% on PrivateTest, macro-F1 0.72, and as good as `fast` on \
                  blurred, noisy, small or JPEG-compressed faces; three times `fast`'s compute",
        networks: &[
            &CPU_LONG_2026_12_07_80_EPOCHS,
            &CPU_LONG_ROBUST_2026_12_07_80_EPOCHS,
            &CPU_LONG_ROBUST_LIGHT_2026_12_07_80_EPOCHS,
        ],
        eval_public_test_json: figures!("accurate", "public-test"),
        eval_private_test_json: figures!("accurate", "private-test"),
    },
    BuiltinModel {
        name: "fast",
        summary: "one vgg-bn network (3.5 M parameters): the `cpu-long` recipe of 2026-12-06 \
                  with blur, downscaling and noise added, trained 80 epochs: 70.0% on \
                  PrivateTest, macro-F1 0.69, and far better than a clean-recipe network on \
                  blurred, noisy, small or JPEG-compressed faces; a third of the compute \
                  of `accurate`",
        networks: &[&CPU_LONG_ROBUST_80_2026_12_06],
        eval_public_test_json: figures!("fast", "public-test"),
        eval_private_test_json: figures!("fast", "private-test"),
    },
];

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

    /// The bytes of its weights (f16), all networks together.
    pub fn weights_bytes(&self) -> usize {
        self.networks.iter().map(|n| n.weights.len()).sum()
    }

    /// The model with its weights (converted to f32) on `device`: its network, or the
    /// ensemble of its networks.
    pub fn load(&self, device: &Device) -> Result<TrainedModel> {
        let corrupt = |source| Error::Builtin {
            name: self.name,
            source,
        };
        let networks = self
            .networks
            .iter()
            .map(|network| {
                TrainedModel::from_bytes(
                    network.config_json.as_bytes(),
                    network.normalizer_json.as_bytes(),
                    network.weights,
                    device,
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        TrainedModel::ensemble(networks, device).map_err(corrupt)
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
            assert_eq!(
                trained.networks.len(),
                model.networks.len(),
                "{}",
                model.name
            );
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
