//! dyno-scaler as a library: a Sidekiq source, the Heroku platform (pointed at the fake server here, so the
//! example runs anywhere with a Redis), a policy, the `job_enqueued` hook and the polling controller.
//!
//! `cargo run --example library` (needs Redis at REDIS_URL, default redis://127.0.0.1:6379/0)

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler::core::{Controller, DemandRule, Policy, PolicyConfig, Scaler};
use dyno_scaler::heroku::fake::{FakeConfig, FakeHeroku};
use dyno_scaler::heroku::{HerokuConfig, HerokuPlatform};
use dyno_scaler::sidekiq::{SidekiqConfig, SidekiqSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A local fake of the Heroku Platform API (use HerokuConfig::new(key, app) alone for the real one).
    let fake = FakeHeroku::start(FakeConfig::default()).await;
    fake.add_app("my-app", "me@example.com");
    fake.add_formation("my-app", "worker", "bundle exec sidekiq", "Standard-1X", 0);
    fake.add_token("my-token", "me@example.com");
    let mut heroku = HerokuConfig::new("my-token", "my-app");
    heroku.base_url = fake.url();

    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let mut sidekiq = SidekiqConfig::new(redis);
    sidekiq.namespace = Some("dyno-scaler-example".into());
    sidekiq.queues = Some(vec!["default".into()]);

    let policy = Policy::new(PolicyConfig {
        min_workers: 0,
        max_workers: 4,
        rules: vec![DemandRule::seed_thresholds(), DemandRule::LatencyTarget(Duration::from_secs(30))],
        down_delay: Duration::from_secs(30),
        ..PolicyConfig::classic()
    })?;
    let scaler = Scaler::builder(
        "worker",
        Arc::new(SidekiqSource::new(sidekiq)?),
        Arc::new(HerokuPlatform::new(heroku)?),
        policy,
    )
    .build();

    // Right after enqueueing a job: returns at once; a background task reconciles.
    scaler.job_enqueued();

    // Or poll: one cycle here; `controller.run(shutdown)` loops until shutdown.
    let controller = Controller::new(vec![scaler.clone()], Duration::from_secs(5));
    for result in controller.run_once().await {
        match result {
            Ok(report) => println!(
                "{}: {} -> {} ({})",
                report.process_type, report.decision.from, report.decision.to, report.decision.reason
            ),
            Err(e) => println!("held: {e}"),
        }
    }
    Ok(())
}
