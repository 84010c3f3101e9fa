//! One module per `fer` subcommand, each a thin layer over the libraries. Commands never use
//! each other: what several need is in [`crate::shared`].

pub mod eval;
pub mod export;
pub mod models;
pub mod plot;
pub mod predict;
pub mod preview;
pub mod report;
pub mod serve;
pub mod stats;
pub mod train;
