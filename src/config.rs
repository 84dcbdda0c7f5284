//! Experiment configuration (in progress).
