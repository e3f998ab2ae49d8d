//! AI inference: the embedding model ([`model`]), the instances that run it ([`backend`]), and
//! the dynamic batcher that feeds them from `frontier.inference.jobs` ([`batcher`]), and the
//! OpenAI-compatible server that makes this process a model instance for others ([`serve`]).
//! `crate::workers::inference_batcher` runs the batcher as a consumer-group worker.
pub mod backend;
pub mod batcher;
pub mod model;
pub mod serve;
