//! The enumerated values of `fer train`'s flags, each mapped to the library setting it selects.

use clap::ValueEnum;
use fer_model::optim::{AdamWConfig, SgdConfig};
use fer_model::{AdadeltaConfig, Architecture, ClassWeighting, Head, OptimizerConfig};

/// Which kind of model `fer train` trains (`--model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// A CNN (the seed's or VGG-style), trained by gradient descent.
    Cnn,
    /// HOG features and a linear SVM, C chosen on PublicTest; leaves a PrivateTest report in
    /// RUN_DIR/eval-private-test.json, and --config takes a HOG-SVM config.
    HogSvm,
}

/// The output head (`--head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadChoice {
    /// Log-softmax with the negative log-likelihood (NLL) loss (the seed).
    Softmax,
    /// Linear SVM scores with the squared hinge loss (L2-SVM, Tang 2013).
    Svm,
}

impl From<HeadChoice> for Head {
    fn from(choice: HeadChoice) -> Head {
        match choice {
            HeadChoice::Softmax => Head::Softmax,
            HeadChoice::Svm => Head::Svm,
        }
    }
}

/// The network (`--architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchitectureChoice {
    /// The notebook's 5-conv PReLU CNN.
    SeedCnn,
    /// VGG-style with batch norm (the cpu and best profiles').
    VggBn,
}

impl From<ArchitectureChoice> for Architecture {
    fn from(choice: ArchitectureChoice) -> Architecture {
        match choice {
            ArchitectureChoice::SeedCnn => Architecture::SeedCnn,
            ArchitectureChoice::VggBn => Architecture::VggBn,
        }
    }
}

/// Class weights of the loss (`--class-weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassWeightsChoice {
    /// Every image counts the same.
    None,
    /// n / (7 n_c) for class c (sklearn's "balanced").
    Balanced,
    /// The square root of the balanced weights.
    SqrtBalanced,
}

impl From<ClassWeightsChoice> for ClassWeighting {
    fn from(choice: ClassWeightsChoice) -> ClassWeighting {
        match choice {
            ClassWeightsChoice::None => ClassWeighting::None,
            ClassWeightsChoice::Balanced => ClassWeighting::Balanced,
            ClassWeightsChoice::SqrtBalanced => ClassWeighting::SqrtBalanced,
        }
    }
}

/// The optimizer (`--optimizer`), each with its default settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    /// Adadelta (the seed).
    Adadelta,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
    /// AdamW.
    #[value(name = "adamw")]
    AdamW,
}

impl From<OptimizerChoice> for OptimizerConfig {
    fn from(choice: OptimizerChoice) -> OptimizerConfig {
        match choice {
            OptimizerChoice::Adadelta => OptimizerConfig::Adadelta(AdadeltaConfig::default()),
            OptimizerChoice::Sgd => OptimizerConfig::Sgd(SgdConfig::default()),
            OptimizerChoice::AdamW => OptimizerConfig::AdamW(AdamWConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value's name is the library's own name for the setting (as in config.json).
    #[test]
    fn values_map_to_the_library_settings_of_the_same_name() {
        fn json_name(value: impl serde::Serialize) -> String {
            let name = serde_json::to_value(value).unwrap();
            name.as_str().unwrap().replace('_', "-")
        }
        fn cli_name(value: &impl ValueEnum) -> String {
            value.to_possible_value().unwrap().get_name().to_string()
        }
        for choice in HeadChoice::value_variants() {
            assert_eq!(cli_name(choice), json_name(Head::from(*choice)));
        }
        for choice in ArchitectureChoice::value_variants() {
            assert_eq!(cli_name(choice), json_name(Architecture::from(*choice)));
        }
        for choice in ClassWeightsChoice::value_variants() {
            assert_eq!(cli_name(choice), json_name(ClassWeighting::from(*choice)));
        }
        for choice in OptimizerChoice::value_variants() {
            let config = serde_json::to_value(OptimizerConfig::from(*choice)).unwrap();
            let kind = config["kind"].as_str().unwrap().replace('_', "");
            assert_eq!(cli_name(choice), kind, "{config}");
        }
    }
}
