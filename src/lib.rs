//! qdse: how few bits can each layer of a CNN use, on given hardware, before accuracy suffers.
//!
//! Data flow: config -> ONNX import ([`model`]) -> data ([`data`]) -> float pass and calibration
//! ([`eval`]) -> search proposes assignments ([`search`]) -> bit-true integer engine scores them
//! ([`eval::fixed`]) -> cost profile prices them ([`cost`]) -> Pareto front and reports.
pub mod cli;
pub mod config;
pub mod cost;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod fixed;
pub mod model;
pub mod report;
pub mod run_folder;
pub mod search;
