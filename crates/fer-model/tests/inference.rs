//! One inference path: `predict_faces` (what `fer predict` and the `fer` crate call) gives the
//! probabilities `evaluate` (what `fer eval` measures) gives, for the seed CNN and for a
//! network with test-time flip averaging.

use candle_core::Device;
use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{Normalizer, NormalizerConfig, Split};
use fer_model::eval::{evaluate, predict_faces};
use fer_model::{Architecture, ModelConfig};

fn same_probabilities_from_predict_and_evaluate(config: ModelConfig) {
    let data = generate(&SyntheticConfig::small(7));
    let normalizer =
        Normalizer::fit(&data.view(Split::Training), NormalizerConfig::default()).unwrap();
    let (_vars, model) = config.init(&Device::Cpu, 3).unwrap();
    let view = data.view(Split::PublicTest);
    let batch = 16;
    let evaluation = evaluate(model.as_ref(), &view, &normalizer, &Device::Cpu, batch).unwrap();
    let pixels: Vec<u8> = (0..view.len())
        .flat_map(|k| view.image(k).to_vec())
        .collect();
    let predicted =
        predict_faces(model.as_ref(), &normalizer, &pixels, &Device::Cpu, batch).unwrap();
    assert_eq!(predicted.len(), evaluation.predictions.len());
    for (p, e) in predicted.iter().zip(&evaluation.predictions) {
        // The same batches through the same path: the same bits.
        assert_eq!(p, &e.probabilities, "{:?}", config.architecture);
    }
    // One face at a time (the batch-1 kernels of the seed CNN) stays within 1e-5.
    let one_by_one = predict_faces(
        model.as_ref(),
        &normalizer,
        &pixels[..5 * 2304],
        &Device::Cpu,
        1,
    )
    .unwrap();
    for (p, e) in one_by_one.iter().zip(&evaluation.predictions) {
        for (a, b) in p.iter().zip(&e.probabilities) {
            assert!(
                (a - b).abs() <= 1e-5,
                "{a} vs {b} ({:?})",
                config.architecture
            );
        }
    }
}

#[test]
fn the_seed_cnn_predicts_what_it_is_evaluated_on() {
    same_probabilities_from_predict_and_evaluate(ModelConfig::default());
}

#[test]
fn a_flip_averaging_network_predicts_what_it_is_evaluated_on() {
    same_probabilities_from_predict_and_evaluate(ModelConfig {
        architecture: Architecture::VggBn,
        width: 4,
        test_time_flip: true,
        ..ModelConfig::default()
    });
}

#[test]
fn predict_faces_refuses_a_partial_face() {
    let (_vars, model) = ModelConfig::default().init(&Device::Cpu, 3).unwrap();
    let normalizer = Normalizer::fit(
        &generate(&SyntheticConfig::small(1)).view(Split::Training),
        NormalizerConfig::default(),
    )
    .unwrap();
    let error = predict_faces(model.as_ref(), &normalizer, &[0; 2305], &Device::Cpu, 4)
        .unwrap_err()
        .to_string();
    assert!(error.contains("2305 bytes"), "{error}");
}
