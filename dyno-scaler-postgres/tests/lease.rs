//! The Postgres lease keeps the lease contract against a real server: an advisory lock on a session of its own,
//! freed by the server a TTL after its holder stopped renewing; the pause in the learned table.

use std::sync::Arc;
use std::time::Duration;

use dyno_scaler_core::conformance::run_lease_conformance;
use dyno_scaler_core::lease::{Lease, Pause};
use dyno_scaler_core::{Secret, SourceError};
use dyno_scaler_postgres::Db;
use dyno_scaler_test_support::{db_url, unique};
use sqlx::Executor;

async fn schema() -> String {
    let schema = unique("lease");
    let pool = sqlx::PgPool::connect(&db_url()).await.unwrap();
    let ddl = format!(
        "CREATE SCHEMA {schema}; {}",
        dyno_scaler_postgres::learned::CREATE.replace("dyno_scaler_learned", &format!("{schema}.learned"))
    );
    pool.execute(sqlx::AssertSqlSafe(ddl)).await.unwrap();
    schema
}

#[tokio::test]
async fn the_postgres_lease_keeps_the_lease_contract() {
    let schema = schema().await;
    let table = format!("{schema}.learned");
    let url = Secret::new(db_url());
    // The lock names carry the scope (here the test's schema), so tests sharing the database never meet.
    let make = |pt: &str| {
        let db = Db::new("test", &url, Duration::from_secs(2), Some(&table)).unwrap();
        Arc::new(db.lease(&schema, pt)) as Arc<dyn Lease>
    };
    run_lease_conformance(&make, Duration::from_millis(600), true).await;
}

#[tokio::test]
async fn without_a_learned_table_the_lease_works_and_a_pause_is_refused_clearly() {
    let url = Secret::new(db_url());
    let db = Db::new("test", &url, Duration::from_secs(2), None).unwrap();
    let lease = db.lease(&unique("nolearn"), "worker");
    assert!(lease.campaign("one", Duration::from_secs(5)).await.unwrap().held);
    assert_eq!(lease.read().await.unwrap().pause, None);
    let err = lease.set_pause(Some(&Pause::new("ops", std::time::SystemTime::now(), None))).await.unwrap_err();
    assert!(matches!(err, SourceError::Other { .. }) && err.to_string().contains("learned_table"), "{err}");
    lease.release("one").await.unwrap();
}

#[tokio::test]
async fn the_postgres_store_keeps_the_store_contract_with_a_learned_table_and_without() {
    let schema = schema().await;
    let table = format!("{schema}.learned");
    let url = Secret::new(db_url());
    for learned in [Some(table.as_str()), None] {
        let db = Db::new("test", &url, Duration::from_secs(2), learned).unwrap();
        let store = dyno_scaler_postgres::PostgresStore::new(db, &format!("{schema}{}", learned.is_some()));
        assert_eq!(dyno_scaler_core::Store::remembers(&store), learned.is_some());
        dyno_scaler_core::conformance::run_store_conformance(Arc::new(store), Duration::from_millis(600)).await;
    }
}
