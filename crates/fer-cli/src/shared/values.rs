//! Flag values that several commands take: enumerated ones, with a value parser whose errors
//! say which values are expected, and batch sizes.

use std::marker::PhantomData;

use clap::ValueEnum;
use clap::builder::{PossibleValue, TypedValueParser};
use fer_augment::PipelineConfig;

/// `on` or `off`, for flags that override a setting either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl From<Switch> for bool {
    fn from(switch: Switch) -> bool {
        switch == Switch::On
    }
}

/// A built-in augmentation profile (`--augment`, `--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AugmentProfile {
    /// No augmentation (the seed's ablation).
    None,
    /// The seed notebook's flip, rotation by up to 6 degrees and (no-op) colour jitter.
    Seed,
    /// Shifted crops, flips, small affine changes, brightness/contrast jitter, random erasing.
    Modern,
    /// Modern, plus blur, downscaling and Gaussian noise (each on a fifth of the images).
    Robust,
    /// Every transform, once (for benchmarks and previews).
    Everything,
}

impl AugmentProfile {
    /// The profile's augmentation config.
    pub fn config(self) -> PipelineConfig {
        match self {
            AugmentProfile::None => PipelineConfig::none(),
            AugmentProfile::Seed => PipelineConfig::seed(),
            AugmentProfile::Modern => PipelineConfig::modern(),
            AugmentProfile::Robust => PipelineConfig::robust(),
            AugmentProfile::Everything => PipelineConfig::everything(),
        }
    }
}

/// Parses a `--batch-size`: a whole number of images, at least 1.
pub fn batch_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(size) => Ok(size),
        Err(error) => Err(error.to_string()),
    }
}

/// A value parser for a [`ValueEnum`] that reports a bad value as clap's "invalid value" usage
/// error (exit code 2) ending in "expected a, b or c"; `--help` lists the values.
pub fn one_of<E: ValueEnum + Clone + Send + Sync + 'static>() -> OneOf<E> {
    OneOf(PhantomData)
}

/// See [`one_of`].
#[derive(Clone)]
pub struct OneOf<E>(PhantomData<E>);

impl<E: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for OneOf<E> {
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<E, clap::Error> {
        let parse = |text: &str| {
            E::from_str(text, false).map_err(|_| format!("expected {}", expected::<E>()))
        };
        parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            E::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The values of `E` as a phrase: `a`, `a or b`, `a, b or c`.
fn expected<E: ValueEnum>() -> String {
    let names: Vec<String> = E::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .filter(|value| !value.is_hide_set())
        .map(|value| value.get_name().to_string())
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_start_at_1() {
        assert_eq!(batch_size("1"), Ok(1));
        assert_eq!(batch_size("256"), Ok(256));
        assert_eq!(batch_size("0"), Err("must be at least 1".to_string()));
        assert!(batch_size("-3").is_err());
        assert!(batch_size("lots").is_err());
    }

    #[test]
    fn expected_values_read_as_a_phrase() {
        assert_eq!(expected::<Switch>(), "on or off");
        assert_eq!(
            expected::<AugmentProfile>(),
            "none, seed, modern, robust or everything"
        );
    }

    #[test]
    fn profiles_are_the_named_configs() {
        for profile in AugmentProfile::value_variants() {
            let name = profile.to_possible_value().unwrap();
            assert_eq!(
                Some(profile.config()),
                PipelineConfig::named(name.get_name()),
                "{}",
                name.get_name()
            );
        }
    }
}
