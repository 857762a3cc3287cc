//! Core tests, one binary.
mod conformance_memory;
mod drain;
mod hooks;
mod lease;
mod loops;
mod policy_adaptive;
mod policy_props;
mod policy_rules;
mod remember;
mod scaler;
mod schedule;
