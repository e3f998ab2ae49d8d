//! AI inference: the embedding model ([`model`]), the instances that run it ([`backend`]), and
//! the dynamic batcher that feeds them from `frontier.inference.jobs` ([`batcher`]).
pub mod backend;
pub mod batcher;
pub mod model;
