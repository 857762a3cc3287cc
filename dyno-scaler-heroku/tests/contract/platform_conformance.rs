//! The Heroku platform keeps the `Platform` contract against the fake Heroku server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dyno_scaler_core::Platform;
use dyno_scaler_core::conformance::{PlatformBackend, run_platform_conformance};
use dyno_scaler_heroku::HerokuPlatform;
use dyno_scaler_heroku::fake::FakeHeroku;

struct Backend {
    fake: FakeHeroku,
    platform: Arc<HerokuPlatform>,
}

#[async_trait]
impl PlatformBackend for Backend {
    async fn add(&self, process_type: &str, quantity: u32) {
        match self.fake.quantity("my-app", process_type) {
            Some(_) => self.fake.set_quantity("my-app", process_type, quantity),
            None => self.fake.add_formation("my-app", process_type, "bundle exec sidekiq", "Standard-1X", quantity),
        }
    }
    async fn quantity(&self, process_type: &str) -> Option<u32> {
        self.fake.quantity("my-app", process_type)
    }
    async fn limit(&self, process_type: &str, limit: u32) -> bool {
        self.fake.set_type_limit("my-app", process_type, limit);
        true
    }
    fn knows_types(&self) -> bool {
        true
    }
    fn platform(&self) -> Arc<dyn Platform> {
        self.platform.clone()
    }
}

#[tokio::test]
async fn the_heroku_platform_keeps_the_platform_contract() {
    let fake = super::fake().await;
    let mut config = super::config(&fake);
    // The contract reads what the backend holds at once: no cached quantity.
    config.refresh_interval = Duration::ZERO;
    let platform = Arc::new(HerokuPlatform::new(config).unwrap());
    run_platform_conformance(&Backend { fake, platform }).await;
}
