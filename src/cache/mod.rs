//! Request serving: the multi-layer cache (memory, Redis, disk) in front of the analytics.
