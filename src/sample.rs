//! Sampling, five options and live continuation. Filled in by the model work.
