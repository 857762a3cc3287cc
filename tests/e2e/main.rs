//! End-to-end tests of the `dyno-scaler` binary against the real Redis and Postgres and the fake Heroku API.
//! Each test uses its own Redis database or Postgres schema, so they run in parallel.

mod adaptive;
mod common;
mod config_errors;
mod dashboard;
mod deploy;
mod events;
mod faults;
mod gem;
mod good_job;
mod half_open;
mod history;
mod image;
mod keda;
mod kubernetes;
mod lease;
mod metrics;
mod node_resque;
mod notify;
mod readme;
mod run;
mod sidekiq_real;
mod status_check;
mod tls;
mod web;
