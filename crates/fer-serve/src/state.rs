//! [`AppState`]: what every handler of the server shares.

use std::sync::Arc;

use fer::Recognizer;

use crate::metrics::Metrics;
use crate::options::ServeOptions;
use crate::pool::InferencePool;

/// What every handler shares.
pub struct AppState {
    pub recognizer: Arc<Recognizer>,
    pub options: ServeOptions,
    pub pool: InferencePool,
    pub metrics: Arc<Metrics>,
    /// The served model's name in answers (a file's name, never its path).
    pub model_name: String,
    /// The answer of `GET /v1/models`, made once at start-up.
    pub models: serde_json::Value,
}
