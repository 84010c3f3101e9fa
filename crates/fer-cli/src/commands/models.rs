//! `fer models`: the models built into this binary, with the figures recorded for each.

use fer::{BUILTIN_MODELS, BuiltinModel, DEFAULT_BUILTIN};
use fer_report::EvalReport;

/// List the models built into `fer` (`--model builtin:NAME`), with their FER2013 figures:
/// accuracy and macro-F1 on PublicTest (where they were chosen) and PrivateTest (reported),
/// and PrivateTest without its exact copies of Training images. Their model card is
/// crates/fer/models/README.md.
#[derive(clap::Args)]
pub struct ModelsArgs {
    /// Print JSON: every model with its summary, size and both evaluations in full.
    #[arg(long)]
    pub json: bool,
}

/// A built-in model's recorded evaluations.
struct Figures {
    public: EvalReport,
    private: EvalReport,
}

fn figures(model: &BuiltinModel) -> anyhow::Result<Figures> {
    let parse = |json: &str, split: &str| -> anyhow::Result<EvalReport> {
        serde_json::from_str(json).map_err(|e| {
            anyhow::anyhow!(
                "built-in model {}: its {split} figures do not parse: {e}",
                model.name
            )
        })
    };
    Ok(Figures {
        public: parse(model.eval_public_test_json, "PublicTest")?,
        private: parse(model.eval_private_test_json, "PrivateTest")?,
    })
}

pub fn run(args: &ModelsArgs) -> anyhow::Result<()> {
    if args.json {
        let models = fer::json::builtin_models()?;
        outln!("{}", serde_json::to_string_pretty(&models)?)?;
        return Ok(());
    }
    outln!(
        "{:<28} {:>9} {:>17} {:>17} {:>26}",
        "model",
        "weights",
        "PublicTest",
        "PrivateTest",
        "PrivateTest w/o copies"
    )?;
    for model in BUILTIN_MODELS {
        let figures = figures(model)?;
        let pair = |accuracy: f64, f1: f64| format!("{:.2}% F1 {:.3}", 100.0 * accuracy, f1);
        let without = figures
            .private
            .without_training_copies
            .as_ref()
            .map_or_else(|| "-".to_string(), |w| pair(w.accuracy, w.macro_f1));
        let name = if model.name == DEFAULT_BUILTIN {
            format!("builtin:{} (default)", model.name)
        } else {
            format!("builtin:{}", model.name)
        };
        outln!(
            "{name:<28} {:>6.1} MB {:>17} {:>17} {:>26}",
            model.weights_bytes() as f64 / 1e6,
            pair(figures.public.accuracy, figures.public.macro_f1),
            pair(figures.private.accuracy, figures.private.macro_f1),
            without
        )?;
        outln!("  {}", model.summary)?;
        let recall: Vec<String> = figures
            .private
            .per_class
            .iter()
            .map(|c| format!("{} {:.0}%", c.class, 100.0 * c.recall))
            .collect();
        outln!("  PrivateTest recall: {}", recall.join(", "))?;
    }
    Ok(())
}
