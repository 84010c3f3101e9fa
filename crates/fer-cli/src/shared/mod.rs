//! What the `fer` subcommands share: the data flags and loading, flag values, device choice,
//! progress bars, evaluation reports and the data a run was trained on. Commands depend on this module and the libraries,
//! never on each other.

pub mod data;
pub mod device;
pub mod evaluation;
pub mod progress;
pub mod recognizer;
pub mod run_data;
pub mod values;
