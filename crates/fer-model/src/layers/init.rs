//! Parameter creation with PyTorch's default initialisation, and seeded re-initialisation so
//! that the same seed gives the same weights on every machine.

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Redraws every weight and bias of `vars` uniformly in PyTorch's default bounds from a seeded
/// stream, in name order; single-value PReLU weights keep their constant 0.25.
pub(crate) fn reinit_seeded(vars: &VarMap, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    let data = vars.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let fan_in = |weight: &str| -> Option<usize> {
        let dims = data.get(weight)?.dims().to_vec();
        (dims.len() >= 2).then(|| dims[1..].iter().product())
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let weight_name = match name.strip_suffix(".bias") {
            Some(layer) => format!("{layer}.weight"),
            None => name.clone(),
        };
        let Some(fan_in) = fan_in(&weight_name) else {
            continue; // PReLU slope: constant init
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
    }
    Ok(())
}

/// PyTorch's default init for conv and linear layers: weights and biases uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (kaiming_uniform with a = sqrt(5)).
fn torch_default(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// The weight of a bias-free `Conv2d(inputs, outputs, kernel)`, PyTorch's default init.
pub(crate) fn conv_weight(
    inputs: usize,
    outputs: usize,
    kernel: usize,
    vb: VarBuilder,
) -> Result<Tensor> {
    let init = torch_default(inputs * kernel * kernel);
    vb.get_with_hints((outputs, inputs, kernel, kernel), "weight", init)
}

/// The weight and bias of `Conv2d(inputs, outputs, kernel)`, PyTorch's default init.
pub(crate) fn conv_weight_and_bias(
    inputs: usize,
    outputs: usize,
    kernel: usize,
    vb: VarBuilder,
) -> Result<(Tensor, Tensor)> {
    let weight = conv_weight(inputs, outputs, kernel, vb.clone())?;
    let bias = vb.get_with_hints(outputs, "bias", torch_default(inputs * kernel * kernel))?;
    Ok((weight, bias))
}

/// `Linear(inputs, outputs)` with a bias, PyTorch's default init.
pub(crate) fn linear(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let init = torch_default(inputs);
    let weight = vb.get_with_hints((outputs, inputs), "weight", init)?;
    let bias = vb.get_with_hints(outputs, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}
