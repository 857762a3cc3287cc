//! Heroku Cedar's stop order, observed and not documented (`heroku-platform-api.md` §8): a scale-down stops the
//! highest-numbered dynos first. The rule is the core's ([`dyno_scaler_core::cedar`]), shared with the in-memory
//! platform and the simulator.

pub use dyno_scaler_core::cedar::{place, victims};
