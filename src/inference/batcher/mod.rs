//! The dynamic batcher: per-model priority queues, batch formation and adaptive sizing.
