//! Saves a seeded seed-CNN under PyTorch names and prints its log-probabilities for the first
//! `n` PrivateTest images (input = pixels minus the Training per-pixel mean), as JSON, for
//! comparison with `xtask/bench/seed_cnn_reference.py logits --weights OUT --data DATA`:
//! `parity DATA OUT.safetensors [N]`.

use candle_core::{Device, Tensor};
use fer_data::{LoadOptions, Normalizer, NormalizerConfig, Split, load};
use fer_model::ModelConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(data), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: parity DATA OUT.safetensors [N]".into());
    };
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let dataset = load(&data, &LoadOptions::default())?.dataset;
    let normalizer = Normalizer::fit(&dataset.view(Split::Training), NormalizerConfig::default())?;
    let private = dataset.view(Split::PrivateTest);
    let first = dataset.view_of(private.indices()[..n].to_vec())?;
    let inputs = Tensor::from_vec(normalizer.apply_view(&first), (n, 1, 48, 48), &Device::Cpu)?;
    let (vars, model) = ModelConfig::default().init(&Device::Cpu, 0)?;
    vars.save(&out)?;
    let log_probs: Vec<Vec<f32>> = model.forward(&inputs, None)?.to_vec2()?;
    println!(
        "{}",
        serde_json::json!({ "split": "PrivateTest", "n": n, "log_probs": log_probs })
    );
    Ok(())
}
