//! Evaluators (in progress).
