//! dyno-scaler [`Platform`] for the [Heroku Platform API](https://devcenter.heroku.com/articles/platform-api-reference),
//! and (feature `fake`) a faithful fake of that API for tests.
//!
//! * reads a formation (`GET /apps/{app}/formation/{type}`), sets an absolute quantity
//!   (`PATCH … {"quantity": N}`, never relative), sets several types at once (batch `PATCH /apps/{app}/formation`),
//!   and lists the dynos of a type (`GET /apps/{app}/dynos`, following `Next-Range`);
//! * retries 429, 5xx and network errors with exponential backoff and full jitter, bounded in attempts and total
//!   time; never retries 401/403/404/422;
//! * caches the quantity after every successful read or write, so an unchanged decision costs no API call, and
//!   re-reads it at a bounded interval (someone may scale by hand), sooner after any error; when
//!   `RateLimit-Remaining` drops below a floor, reads slow down before scale changes are affected;
//! * the API key is a [`Secret`]: it never appears in `Debug`, `Display`, logs or errors.
//!
//! ```
//! use dyno_scaler_heroku::{HerokuConfig, HerokuPlatform};
//! let platform = HerokuPlatform::new(HerokuConfig::new("01234567-89ab-cdef", "my-app")).unwrap();
//! assert!(!format!("{platform:?}").contains("01234567"));
//! ```
#![deny(missing_docs)]

pub mod api;
mod call;
pub mod cedar;
mod client;
mod config;
#[cfg(feature = "fake")]
pub mod fake;

pub use client::HerokuPlatform;
pub use config::{HerokuConfig, RetryPolicy};
pub use dyno_scaler_core::{Platform, PlatformError, Secret};
