//! The VGG-style batch-norm network: PyTorch parameter names and shapes, train/eval modes,
//! and test-time flip averaging.

use candle_core::{Device, Tensor};
use fer_model::{Architecture, Classifier, Head, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(test_time_flip: bool) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::VggBn,
        width: 4,
        test_time_flip,
        ..ModelConfig::default()
    }
}

/// Class probabilities (N, 7) that `model` predicts for `images`.
fn probabilities(model: &dyn Classifier, images: &Tensor) -> Vec<Vec<f32>> {
    model
        .predict(images)
        .unwrap()
        .exp()
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n * 2304).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(values, (n, 1, 48, 48), &Device::Cpu).unwrap()
}

#[test]
fn parameters_carry_pytorch_names_and_shapes() {
    let (vars, _) = config(false).init(&Device::Cpu, 1).unwrap();
    let data = vars.data().lock().unwrap();
    let shape = |name: &str| -> Vec<usize> {
        data.get(name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
            .dims()
            .to_vec()
    };
    assert_eq!(shape("features.0.weight"), [4, 1, 3, 3]);
    assert_eq!(shape("features.1.weight"), [4]);
    assert_eq!(shape("features.1.running_var"), [4]);
    assert_eq!(shape("features.3.weight"), [4, 4, 3, 3]);
    assert_eq!(shape("features.7.weight"), [8, 4, 3, 3]);
    assert_eq!(shape("features.24.weight"), [32, 32, 3, 3]);
    assert_eq!(shape("features.25.running_mean"), [32]);
    assert_eq!(shape("classifier.1.weight"), [128, 32 * 9]);
    assert_eq!(shape("classifier.4.weight"), [7, 128]);
    // 8 convs (no bias) with 4 batch-norm tensors each, and 2 linear layers with biases.
    assert_eq!(data.len(), 8 * 5 + 4);
    // Batch-norm starts as the identity: weight 1, bias 0, running mean 0, running var 1.
    let ones = data["features.1.weight"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(ones.iter().all(|&v| v == 1.0));
    let var = data["features.1.running_var"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(var.iter().all(|&v| v == 1.0));
}

#[test]
fn training_mode_moves_running_statistics_and_evaluation_is_deterministic() {
    let (vars, model) = config(false).init(&Device::Cpu, 2).unwrap();
    let x = images(6, 3);
    let before = model.predict(&x).unwrap();
    assert_eq!(
        before.to_vec2::<f32>().unwrap(),
        model.predict(&x).unwrap().to_vec2::<f32>().unwrap()
    );
    let mean_before = vars.data().lock().unwrap()["features.1.running_mean"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let scores = model.forward(&x, Some(&mut rng)).unwrap();
    assert_eq!(scores.dims(), [6, 7]);
    let mean_after = vars.data().lock().unwrap()["features.1.running_mean"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(mean_before, mean_after);
    // Evaluation now uses the moved statistics: different scores than before.
    let after = model.predict(&x).unwrap();
    let change = (after - before).unwrap().abs().unwrap().max_all().unwrap();
    assert!(change.to_scalar::<f32>().unwrap() > 1e-6);
}

#[test]
fn test_time_flip_averages_the_probabilities_of_the_image_and_its_mirror() {
    // Same seed, same weights: one model with flip averaging, one without.
    let (_, plain) = config(false).init(&Device::Cpu, 5).unwrap();
    let (_, flipped) = config(true).init(&Device::Cpu, 5).unwrap();
    let x = images(3, 6);
    let mirrored = {
        let data = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = data.clone();
        for (row_in, row_out) in data.chunks(48).zip(out.chunks_mut(48)) {
            for (i, v) in row_in.iter().rev().enumerate() {
                row_out[i] = *v;
            }
        }
        Tensor::from_vec(out, x.shape(), &Device::Cpu).unwrap()
    };
    let p = plain.predict(&x).unwrap().exp().unwrap();
    let q = plain.predict(&mirrored).unwrap().exp().unwrap();
    let expected = ((p + q).unwrap() * 0.5).unwrap().to_vec2::<f32>().unwrap();
    for got in [
        flipped.predict(&x).unwrap(),
        flipped.forward(&x, None).unwrap(),
    ] {
        let got = got.exp().unwrap().to_vec2::<f32>().unwrap();
        for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
            assert!((g - e).abs() < 1e-5, "{g} vs {e}");
        }
    }
    // Probabilities still sum to 1, and the head is unchanged.
    let sums = flipped.predict(&x).unwrap().exp().unwrap().sum(1).unwrap();
    for s in sums.to_vec1::<f32>().unwrap() {
        assert!((s - 1.0).abs() < 1e-5);
    }
    assert_eq!(flipped.head(), Head::Softmax);
}

/// The shifted views with flip averaging: a full-size ten-crop, equal to averaging the ten
/// views computed by hand (edge pixels repeated).
#[test]
fn test_time_shift_averages_ten_views() {
    let (plain_vars, plain) = config(false).init(&Device::Cpu, 5).unwrap();
    let ten_crop = ModelConfig {
        test_time_shift: 3,
        ..config(true)
    };
    let (averaged_vars, averaged) = ten_crop.init(&Device::Cpu, 5).unwrap();
    // A fresh network predicts nearly 1/7 everywhere; sharpen its output layer so that the
    // views give visibly different probabilities.
    for vars in [&plain_vars, &averaged_vars] {
        let data = vars.data().lock().unwrap();
        let last = &data["classifier.4.weight"];
        last.set(&(last.as_tensor() * 300.0).unwrap()).unwrap();
    }
    let x = images(2, 8);
    let data = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // The image moved so that output pixel (y, x) reads input (y + dy, x + dx), clamped;
    // mirrored after the shift when `mirror`.
    let view = |dy: i64, dx: i64, mirror: bool| {
        let mut out = vec![0f32; data.len()];
        for n in 0..2 {
            for y in 0..48i64 {
                for x in 0..48i64 {
                    let sx = if mirror { 47 - x } else { x };
                    let (yy, xx) = ((y + dy).clamp(0, 47), (sx + dx).clamp(0, 47));
                    out[n * 2304 + (y * 48 + x) as usize] =
                        data[n * 2304 + (yy * 48 + xx) as usize];
                }
            }
        }
        Tensor::from_vec(out, x.shape(), &Device::Cpu).unwrap()
    };
    let mut sum = Tensor::zeros((2, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    for mirror in [false, true] {
        for (dy, dx) in [(0, 0), (-3, -3), (-3, 3), (3, -3), (3, 3)] {
            let p = plain.predict(&view(dy, dx, mirror)).unwrap().exp().unwrap();
            sum = (sum + p).unwrap();
        }
    }
    let expected = (sum / 10.0).unwrap().to_vec2::<f32>().unwrap();
    let got = probabilities(averaged.as_ref(), &x);
    for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
        assert!((g - e).abs() < 2e-6, "{g} vs {e}");
    }
    // Different from the plain prediction: the views matter.
    let single = probabilities(plain.as_ref(), &x);
    let moved: f32 = single
        .iter()
        .flatten()
        .zip(got.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(moved > 1e-3, "{moved}");
    let too_far = ModelConfig {
        test_time_shift: 24,
        ..config(true)
    };
    let err = too_far.init(&Device::Cpu, 5).err().unwrap().to_string();
    assert!(err.contains("test_time_shift"), "{err}");
}

/// Fewer than eight images take the one-image path on the CPU (each layer spread over the
/// threads, batch norm folded into the convolutions, Winograd weights cached between calls):
/// the same scores as the layer-by-layer forward within 1e-4 (relative, floor 1; Winograd
/// reassociates the sums of seven layers, measured up to 2e-5 on the SVM head's margins), for both
/// heads, and a change to a convolution's weights or to a batch norm's statistics shows in
/// the very next prediction.
#[test]
fn one_image_predict_matches_forward_and_follows_changed_parameters() {
    for head in [Head::Softmax, Head::Svm] {
        let config = ModelConfig {
            head,
            width: 8,
            ..config(false)
        };
        let (vars, model) = config.init(&Device::Cpu, 3).unwrap();
        // Every parameter and statistic away from its initial value (batch norm starts as
        // the identity), running variances positive.
        let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let reseed = |name: &str, rng: &mut ChaCha8Rng| {
            let var = vars.data().lock().unwrap()[name].clone();
            let (lo, hi) = match name {
                n if n.ends_with("running_var") => (0.5, 2.0),
                n if n.ends_with(".weight") && var.dims().len() == 1 => (0.5, 1.5),
                _ => (-0.3, 0.3),
            };
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.random_range(lo..hi))
                .collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        };
        for name in &names {
            reseed(name, &mut rng);
        }
        let compare = |x: &Tensor, what: &str| -> Vec<f32> {
            let got: Vec<f32> = model
                .predict(x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f32> = model
                .forward(x, None)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            eprintln!("{head:?}, {what}: largest relative difference {worst:.1e}");
            assert!(
                worst <= 1e-4,
                "{head:?}, {what}: relative difference {worst:e}"
            );
            got
        };
        let one = images(1, 5);
        compare(&images(3, 6), "three images");
        let mut previous = compare(&one, "one image");
        assert_eq!(previous, compare(&one, "again, cached"), "{head:?}");
        for name in [
            "features.4.weight",       // stage 1's second convolution
            "features.15.running_var", // stage 3's first batch norm
            "features.24.weight",      // stage 4's second convolution
            "features.25.weight",      // its batch norm's scale
        ] {
            reseed(name, &mut rng);
            let after = compare(&one, name);
            assert_ne!(after, previous, "{head:?}, {name}: the change shows");
            previous = after;
        }
    }
}
