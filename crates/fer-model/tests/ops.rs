//! The fast ops against candle's reference ops: values and gradients within 1e-4 relative
//! error, bit-identical results whatever the thread count.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use fer_model::Pool2d;
use fer_model::layers::{conv2d, prelu};

/// Deterministic pseudo-random values in [-1, 1) without exact zeros.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if v == 0.0 { 0.5 } else { v }
        })
        .collect()
}

fn tensor(dims: &[usize], seed: u64) -> Tensor {
    let len = dims.iter().product();
    Tensor::from_vec(values(len, seed), dims, &Device::Cpu).unwrap()
}

fn var(dims: &[usize], seed: u64) -> Var {
    Var::from_tensor(&tensor(dims, seed)).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// max |a - b| / max |b|, asserted to be at most 1e-4.
fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shapes");
    let (a, b) = (flat(ours), flat(reference));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff / scale <= 1e-4,
        "{what}: relative error {} (max diff {diff}, scale {scale})",
        diff / scale
    );
    if scale <= 1e-6 {
        // e.g. the first slope's gradient: the 5x5 max pool only passes positive values.
        let ours_scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(ours_scale <= 1e-6, "{what}: reference 0, ours {ours_scale}");
    }
}

/// The gradients of `sum(y * probe)`, for a fixed seeded `probe` of y's shape.
fn probe_grads(y: &Tensor) -> GradStore {
    let probe = tensor(y.dims(), 99);
    (y * &probe).unwrap().sum_all().unwrap().backward().unwrap()
}

/// Values of `f` and the gradients of `sum(f(vars) * probe)` for each var.
fn value_and_grads(vars: &[&Var], f: &dyn Fn() -> Tensor) -> (Tensor, Vec<Tensor>) {
    let y = f();
    let grads = probe_grads(&y);
    let g = vars
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("gradient").clone())
        .collect();
    (y, g)
}

fn check_conv(x_dims: [usize; 4], cout: usize, k: usize, padding: usize) {
    let x = var(&x_dims, 1);
    let w = var(&[cout, x_dims[1], k, k], 2);
    let b = var(&[cout], 3);
    let vars = [&x, &w, &b];
    let (ours, ours_grads) = value_and_grads(&vars, &|| {
        conv2d(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), padding).unwrap()
    });
    let (reference, reference_grads) = value_and_grads(&vars, &|| {
        x.as_tensor()
            .conv2d(w.as_tensor(), padding, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.as_tensor().reshape((1, cout, 1, 1)).unwrap())
            .unwrap()
    });
    let case = format!("conv {x_dims:?} -> {cout}, k {k}, padding {padding}");
    assert_close(&format!("{case} output"), &ours, &reference);
    for (name, (o, r)) in ["grad x", "grad weight", "grad bias"]
        .iter()
        .zip(ours_grads.iter().zip(&reference_grads))
    {
        assert_close(&format!("{case} {name}"), o, r);
    }
}

#[test]
fn conv2d_matches_candle_values_and_gradients() {
    check_conv([2, 3, 9, 8], 5, 3, 1); // the 3x3 "same" convs
    check_conv([2, 3, 9, 8], 5, 3, 0);
    check_conv([3, 1, 12, 12], 4, 5, 0); // layer 1: one channel, 5x5
    check_conv([2, 2, 7, 7], 3, 5, 2);
    check_conv([2, 4, 5, 6], 3, 1, 0); // 1x1, no im2col
    check_conv([9, 2, 6, 6], 3, 3, 1); // more images than a gradient group
}

#[test]
fn conv2d_without_bias_and_a_fixed_input_skips_the_input_gradient() {
    let x = tensor(&[2, 3, 6, 6], 4); // images: not a variable
    let w = var(&[4, 3, 3, 3], 5);
    let y = conv2d(&x, w.as_tensor(), None, 1).unwrap();
    let reference = x.conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
    assert_close("conv without bias", &y, &reference);
    let (grads, reference_grads) = (probe_grads(&y), probe_grads(&reference));
    assert!(grads.get(&x).is_none());
    assert_close(
        "conv without bias, grad weight",
        grads.get(w.as_tensor()).expect("weight gradient"),
        reference_grads.get(w.as_tensor()).unwrap(),
    );
}

#[test]
fn conv2d_rejects_mismatched_shapes() {
    let x = tensor(&[1, 3, 6, 6], 1);
    let err = conv2d(&x, &tensor(&[4, 2, 3, 3], 2), None, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
    let err = conv2d(&x, &tensor(&[4, 3, 3, 3], 2), Some(&tensor(&[3], 3)), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bias"), "{err}");
    let err = conv2d(
        &tensor(&[1, 3, 2, 2], 1),
        &tensor(&[4, 3, 5, 5], 2),
        None,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("larger"), "{err}");
}

fn check_prelu(x_dims: &[usize], slopes: usize) {
    let x = var(x_dims, 7);
    let alpha = Var::from_tensor(&(tensor(&[slopes], 8).abs().unwrap() * 0.5).unwrap()).unwrap();
    let vars = [&x, &alpha];
    let (ours, ours_grads) =
        value_and_grads(&vars, &|| prelu(x.as_tensor(), alpha.as_tensor()).unwrap());
    let layer = candle_nn::PReLU::new(alpha.as_tensor().clone(), slopes == 1);
    let (reference, reference_grads) = value_and_grads(&vars, &|| {
        candle_core::Module::forward(&layer, x.as_tensor()).unwrap()
    });
    let case = format!("prelu {x_dims:?} with {slopes} slopes");
    assert_close(&format!("{case} output"), &ours, &reference);
    assert_close(
        &format!("{case} grad x"),
        &ours_grads[0],
        &reference_grads[0],
    );
    assert_close(
        &format!("{case} grad alpha"),
        &ours_grads[1],
        &reference_grads[1],
    );
}

#[test]
fn prelu_matches_candle_values_and_gradients() {
    check_prelu(&[3, 4, 5, 6], 1);
    check_prelu(&[3, 4, 5, 6], 4);
    check_prelu(&[5, 1024], 1); // the fully connected layers
    check_prelu(&[5, 16], 16);
    check_prelu(&[2, 64, 44, 44], 1); // large enough to span several parallel chunks
}

fn check_padded_pool(pool: Pool2d) {
    let x = var(&[2, 3, 11, 10], 11);
    let vars = [&x];
    let (ours, ours_grads) = value_and_grads(&vars, &|| pool.forward(x.as_tensor()).unwrap());
    let unpadded = Pool2d { pad: 0, ..pool };
    let (reference, reference_grads) = value_and_grads(&vars, &|| {
        let p = pool.pad;
        let padded = x
            .as_tensor()
            .pad_with_zeros(2, p, p)
            .unwrap()
            .pad_with_zeros(3, p, p)
            .unwrap();
        unpadded.forward(&padded).unwrap()
    });
    assert_close(&format!("{pool:?} output"), &ours, &reference);
    assert_close(
        &format!("{pool:?} grad"),
        &ours_grads[0],
        &reference_grads[0],
    );
}

#[test]
fn zero_padded_pooling_equals_padding_then_pooling() {
    check_padded_pool(Pool2d::max(5, 2).with_zero_padding(2));
    check_padded_pool(Pool2d::avg(3, 2).with_zero_padding(1));
    check_padded_pool(Pool2d::max(2, 2).with_zero_padding(1));
}

#[test]
fn padded_max_pool_picks_padding_zeros_over_negative_values() {
    let x = Tensor::from_vec(vec![-1f32, -2.0, -3.0, -4.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    let y = Pool2d::max(2, 2).with_zero_padding(1).forward(&x).unwrap();
    assert_eq!(flat(&y), vec![0.0, 0.0, 0.0, 0.0]);
    let y = Pool2d::avg(2, 1).with_zero_padding(1).forward(&x).unwrap();
    assert_eq!(flat(&y)[4], -2.5); // the centre window holds all four values
}

#[test]
fn results_are_bit_identical_whatever_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let x = var(&[19, 8, 10, 10], 21);
            let w = var(&[16, 8, 3, 3], 22);
            let b = var(&[16], 23);
            let a = var(&[1], 24);
            let y = conv2d(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), 1).unwrap();
            let y = prelu(&y, a.as_tensor()).unwrap();
            let y = Pool2d::max(3, 2).with_zero_padding(1).forward(&y).unwrap();
            let probe = tensor(y.dims(), 25);
            let grads = (&y * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut all = flat(&y);
            for v in [&x, &w, &b, &a] {
                all.extend(flat(grads.get(v.as_tensor()).unwrap()));
            }
            all
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    assert_eq!(one.iter().filter(|v| v.is_nan()).count(), 0);
}

/// The seed CNN as the notebook writes it, in candle's reference ops (explicit zero padding,
/// candle conv2d and PReLU), on the parameters of a `ModelConfig` model.
fn reference_seed_cnn(vars: &candle_nn::VarMap, x: &Tensor) -> Tensor {
    use candle_core::Module;
    let data = vars.data().lock().unwrap();
    let get = |name: &str| data[name].as_tensor().clone();
    let pad = |x: &Tensor, p: usize| {
        x.pad_with_zeros(2, p, p)
            .unwrap()
            .pad_with_zeros(3, p, p)
            .unwrap()
    };
    let conv = |x: &Tensor, layer: &str| {
        let w = get(&format!("{layer}.weight"));
        let b = get(&format!("{layer}.bias"));
        let cout = b.dims()[0];
        x.conv2d(&w, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, cout, 1, 1)).unwrap())
            .unwrap()
    };
    let prelu = |x: &Tensor, name: &str| {
        candle_nn::PReLU::new(get(&format!("{name}.weight")), true)
            .forward(x)
            .unwrap()
    };
    let linear = |x: &Tensor, name: &str| {
        candle_nn::Linear::new(
            get(&format!("{name}.weight")),
            Some(get(&format!("{name}.bias"))),
        )
        .forward(x)
        .unwrap()
    };
    let x = prelu(&conv(x, "layer1.0"), "layer1.1");
    let x = Pool2d::max(5, 2).forward(&pad(&x, 2)).unwrap();
    let x = pad(&prelu(&conv(&pad(&x, 1), "layer2.1"), "layer2.2"), 1);
    let x = Pool2d::avg(3, 2)
        .forward(&prelu(&conv(&x, "layer3.0"), "layer3.1"))
        .unwrap();
    let x = prelu(&conv(&pad(&x, 1), "layer4.1"), "layer4.2");
    let x = pad(&prelu(&conv(&pad(&x, 1), "layer5.1"), "layer5.2"), 1);
    let x = Pool2d::avg(3, 2)
        .forward(&x)
        .unwrap()
        .flatten_from(1)
        .unwrap();
    let x = prelu(&linear(&x, "fc1"), "prelu");
    let x = prelu(&linear(&x, "fc2"), "prelu");
    candle_nn::ops::log_softmax(&linear(&x, "fc3"), 1).unwrap()
}

#[test]
fn seed_cnn_through_the_fast_ops_matches_the_reference_network() {
    let (vars, model) = fer_model::ModelConfig::default()
        .init(&Device::Cpu, 4)
        .unwrap();
    let x = (tensor(&[6, 1, 48, 48], 31) * 2.0).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 3, 4, 6], &Device::Cpu).unwrap();
    let ours = model.forward(&x, None).unwrap();
    let reference = reference_seed_cnn(&vars, &x);
    assert_close("seed CNN log-probs", &ours, &reference);
    let grads_of = |scores: &Tensor| {
        candle_nn::loss::nll(scores, &labels)
            .unwrap()
            .backward()
            .unwrap()
    };
    let (ours, reference) = (grads_of(&ours), grads_of(&reference));
    let data = vars.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let v = data[name].as_tensor();
        assert_close(
            &format!("gradient of {name}"),
            ours.get(v).unwrap(),
            reference.get(v).unwrap(),
        );
    }
}

/// The seed CNN's fused CPU training step against forward + loss + candle's autograd, dropout
/// included (same stream), for both heads.
#[test]
fn fused_seed_step_matches_autograd_loss_and_gradients() {
    use rand::SeedableRng;
    for head in [fer_model::Head::Softmax, fer_model::Head::Svm] {
        let config = fer_model::ModelConfig {
            head,
            ..Default::default()
        };
        let (vars, model) = config.init(&Device::Cpu, 5).unwrap();
        let x = (tensor(&[10, 1, 48, 48], 41) * 2.0).unwrap();
        let labels = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 0, 3, 3], &Device::Cpu).unwrap();
        let rng = || rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (fused_loss, fused) = model
            .loss_and_grads(&x, &labels, &fer_model::Loss::default(), Some(&mut rng()))
            .unwrap();
        let scores = model.forward(&x, Some(&mut rng())).unwrap();
        let reference_loss = fer_model::loss(head, &scores, &labels).unwrap();
        let reference = reference_loss.backward().unwrap();
        let reference_loss = reference_loss.to_scalar::<f32>().unwrap();
        assert!(
            (fused_loss - reference_loss).abs() <= 1e-4 * reference_loss.abs(),
            "{head:?}: loss {fused_loss} vs {reference_loss}"
        );
        let data = vars.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let v = data[name].as_tensor();
            assert_close(
                &format!("{head:?} gradient of {name}"),
                fused.get(v).unwrap(),
                reference.get(v).unwrap(),
            );
        }
    }
}

#[test]
fn fused_seed_predict_matches_forward_for_both_heads() {
    for head in [fer_model::Head::Softmax, fer_model::Head::Svm] {
        let config = fer_model::ModelConfig {
            head,
            ..Default::default()
        };
        let (_, model) = config.init(&Device::Cpu, 6).unwrap();
        for n in [1, 5] {
            let x = (tensor(&[n, 1, 48, 48], 51) * 2.0).unwrap();
            let fused = model.predict(&x).unwrap();
            let reference = model.forward(&x, None).unwrap();
            assert_close(&format!("{head:?} predict, batch {n}"), &fused, &reference);
        }
    }
}

/// One image, or fewer images than threads, runs every layer as stages spread over the pool
/// (batch-1 latency, Winograd convolutions): the same bits on 1, 2 and 3 threads, image by
/// image, and within [`BATCH_1_TOLERANCE`] of the batch path.
#[test]
fn few_image_predict_gives_the_same_bits_on_any_thread_count() {
    let (_, model) = fer_model::ModelConfig::default()
        .init(&Device::Cpu, 7)
        .unwrap();
    let x = (tensor(&[2, 1, 48, 48], 61) * 2.0).unwrap();
    let predict = |threads: usize, x: &Tensor| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| flat(&model.predict(x).unwrap()))
    };
    let first = x.narrow(0, 0, 1).unwrap();
    let second = x.narrow(0, 1, 1).unwrap();
    let one = predict(1, &first);
    assert_eq!(one.len(), 7);
    assert!(one.iter().all(|v| v.is_finite() && *v < 0.0), "{one:?}");
    for threads in [2, 3] {
        assert_eq!(predict(threads, &first), one, "{threads} threads");
    }
    // Two images on three threads: each image as it is alone.
    let mut each = one.clone();
    each.extend(predict(1, &second));
    assert_eq!(predict(3, &x), each);
    // Sixteen images alone (the stages) against one batch of sixteen (im2col): the largest
    // relative difference of their log-probabilities, asserted below the documented bound.
    let many = (tensor(&[16, 1, 48, 48], 62) * 2.0).unwrap();
    let batch = predict(2, &many);
    let alone: Vec<f32> = (0..16)
        .flat_map(|i| predict(2, &many.narrow(0, i, 1).unwrap()))
        .collect();
    let worst = batch
        .iter()
        .zip(&alone)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0f32, f32::max);
    eprintln!("batch-1 path against the batch path: largest relative difference {worst:.2e}");
    assert!(worst <= BATCH_1_TOLERANCE, "{worst:e}");
}

/// How far batch-1 scores may be from the batch path's (relative, floor 1): Winograd
/// reassociates the convolutions' sums. Measured 6.1e-8 on sixteen images of a seeded model
/// (the test prints it); README and ARCHITECTURE quote this bound.
const BATCH_1_TOLERANCE: f32 = 1e-6;

/// The batch-1 path keeps conv2..conv5's weights transformed between calls: a change to one
/// output channel's filter of any of them (a training step, a load) shows in the very next
/// prediction, which again matches the batch path.
#[test]
fn one_image_predict_follows_changed_weights() {
    let (vars, model) = fer_model::ModelConfig::default()
        .init(&Device::Cpu, 8)
        .unwrap();
    let x = (tensor(&[1, 1, 48, 48], 71) * 2.0).unwrap();
    let mut previous = flat(&model.predict(&x).unwrap());
    assert_eq!(
        previous,
        flat(&model.predict(&x).unwrap()),
        "cached weights"
    );
    for name in [
        "layer2.1.weight",
        "layer3.0.weight",
        "layer4.1.weight",
        "layer5.1.weight",
    ] {
        let var = vars.data().lock().unwrap()[name].clone();
        let mut values = flat(var.as_tensor());
        let filter = values.len() / var.dims()[0];
        // The last output channel only: one block of the cache.
        let last = values.len() - filter;
        for v in &mut values[last..] {
            *v = -3.0 * *v + 0.01;
        }
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let after = flat(&model.predict(&x).unwrap());
        let reference = flat(&model.forward(&x, None).unwrap());
        for (a, b) in after.iter().zip(&reference) {
            assert!(
                (a - b).abs() <= BATCH_1_TOLERANCE * b.abs().max(1.0),
                "{name}: {a} vs {b}"
            );
        }
        assert_ne!(after, previous, "{name}: the change shows");
        previous = after;
    }
}
