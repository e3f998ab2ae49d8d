//! In-process ML inference on the CPU: sentence embeddings and zero-shot labels ([`model`]).
pub mod model;
