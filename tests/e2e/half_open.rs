//! Connections held half-open (a partition, a middlebox keeping the socket without a reset): the ones already open
//! stop answering while new ones would work. The daemon replaces what times out, for snapshots, the lease and the
//! `LISTEN` session alike.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::events::{dj_enqueue, dj_table};

#[tokio::test]
async fn a_half_open_redis_connection_is_replaced() {
    let fake = fake().await;
    let (redis, _url, mut c) = own_redis().await;
    let proxy = Proxy::start(redis.port).await;
    let env = with(env_sidekiq(&fake, &proxy.redis_url()), &[("DYNO_SCALER_POLL_INTERVAL", "200ms")]);
    let daemon = Daemon::start(&env);
    daemon.logged("took the lease", 1).await;
    let before = proxy.accepted();
    proxy.freeze_existing();
    let frozen = Instant::now();
    sidekiq_push(&mut c, "default", 3).await;
    let scaled = eventually(Duration::from_secs(20), || fake.quantity(APP, "worker") == Some(1)).await;
    let took = frozen.elapsed();
    let log = daemon.stop().await;
    assert!(scaled, "never scaled through new connections:\n{log}");
    assert!(log.contains("the connection is replaced"), "{log}");
    assert!(proxy.accepted() > before, "new connections were opened");
    // The 2 s timeout, the lease's renewal and one cycle: seconds, not the 170 s of a connection never replaced.
    assert!(took < Duration::from_secs(12), "{took:?}\n{log}");
}

#[tokio::test]
async fn half_open_postgres_connections_are_replaced_for_snapshots_lease_and_listen() {
    let fake = fake().await;
    let (pool, table) = dj_table(&db_url()).await;
    let pg_port = url::Url::parse(&db_url()).unwrap().port().unwrap_or(5432);
    let proxy = Proxy::start(pg_port).await;
    let via_proxy = {
        let mut u = url::Url::parse(&db_url()).unwrap();
        u.set_port(Some(proxy.port)).unwrap();
        u.to_string()
    };
    let env = with(
        env_heroku(
            &fake,
            &[("DYNO_SCALER_SOURCE", "delayed_job"), ("DATABASE_URL", &via_proxy), ("DYNO_SCALER_TABLE", &table)],
        ),
        &[("DYNO_SCALER_POLL_INTERVAL", "60s"), ("DYNO_SCALER_MAX_WORKERS", "3")],
    );
    assert_eq!(run(&["install-trigger"], &env).await.code, 0);
    let daemon = Daemon::start(&env);
    daemon.logged("took the lease", 1).await;
    daemon.logged("LISTEN", 1).await;
    proxy.freeze_existing();
    let frozen = Instant::now();
    // The LISTEN session is probed every 15 s; once replaced, an insert is heard at once (the poll is 60 s).
    daemon.logged("LISTEN session did not answer", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    dj_enqueue(&pool, &table, 2).await;
    let scaled = eventually(Duration::from_secs(15), || fake.quantity(APP, "worker") == Some(1)).await;
    let took = frozen.elapsed();
    let log = daemon.stop().await;
    assert!(scaled, "never scaled through new connections:\n{log}");
    assert!(took < Duration::from_secs(40), "{took:?}\n{log}");
}
