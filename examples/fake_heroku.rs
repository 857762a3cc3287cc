//! Testing your own scaling policy against the fake Heroku API and the in-memory queue, with a manual clock.
//!
//! `cargo run --example fake_heroku`

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler::core::{InMemoryQueue, ManualClock, Policy, PolicyConfig, Scaler};
use dyno_scaler::heroku::fake::{FakeConfig, FakeHeroku};
use dyno_scaler::heroku::{HerokuConfig, HerokuPlatform};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeHeroku::start(FakeConfig::default()).await;
    fake.add_app("my-app", "me@example.com");
    fake.add_formation("my-app", "worker", "bundle exec sidekiq", "Standard-1X", 0);
    fake.add_token("test-token", "me@example.com");
    let mut config = HerokuConfig::new("test-token", "my-app");
    config.base_url = fake.url();

    let clock = Arc::new(ManualClock::at_secs(1_700_000_000));
    let queue = InMemoryQueue::new(clock.clone());
    let policy =
        Policy::new(PolicyConfig { max_workers: 3, down_delay: Duration::from_secs(60), ..PolicyConfig::classic() })?;
    let scaler = Scaler::builder("worker", Arc::new(queue.clone()), Arc::new(HerokuPlatform::new(config)?), policy)
        .clock(clock.clone())
        .build();

    queue.push_many("default", 60);
    scaler.reconcile().await?;
    assert_eq!(fake.quantity("my-app", "worker"), Some(3));
    assert_eq!(fake.dyno_names("my-app", "worker"), ["worker.1", "worker.2", "worker.3"]);

    queue.clear();
    clock.advance(Duration::from_secs(61));
    scaler.reconcile().await?; // the down delay starts
    clock.advance(Duration::from_secs(61));
    scaler.reconcile().await?;
    assert_eq!(fake.quantity("my-app", "worker"), Some(0));
    let patches: Vec<String> = fake.requests_with("PATCH").into_iter().map(|r| r.body).collect();
    println!("PATCH bodies sent: {patches:?}");
    Ok(())
}
