//! `rediss://` against a real TLS-only `redis-server` with a certificate made by the test.

use std::time::Duration;

use dyno_scaler_core::{Secret, SourceError};
use dyno_scaler_redis::{TlsVerify, connect, map_redis_error};
use dyno_scaler_test_support::{OwnRedis, TestCerts};

async fn ping(url: &str, verify: TlsVerify) -> Result<String, SourceError> {
    let secret = Secret::new(url);
    let mut conn = connect("test", &secret, verify, Duration::from_secs(2)).expect("a valid URL");
    redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| map_redis_error("test", &secret, e))
}

#[tokio::test]
async fn verify_none_accepts_a_certificate_nobody_vouches_for() {
    let certs = TestCerts::generate();
    let server = OwnRedis::start_tls(&certs);
    assert_eq!(ping(&server.url(), TlsVerify::None).await.unwrap(), "PONG");
    // The fragment Redis clients use does the same.
    assert_eq!(ping(&format!("{}/0#insecure", server.url()), TlsVerify::Full).await.unwrap(), "PONG");
}

#[tokio::test]
async fn verify_full_refuses_an_unknown_issuer_and_says_why() {
    let certs = TestCerts::generate();
    let server = OwnRedis::start_tls(&certs);
    let err = ping(&server.url(), TlsVerify::Full).await.unwrap_err().to_string();
    assert!(err.contains("certificate"), "the error should say the certificate was refused: {err}");
}

#[tokio::test]
async fn plain_redis_url_does_not_speak_tls_to_a_tls_port() {
    let certs = TestCerts::generate();
    let server = OwnRedis::start_tls(&certs);
    let plain = format!("redis://127.0.0.1:{}", server.port);
    assert!(ping(&plain, TlsVerify::None).await.is_err(), "a TLS-only port must not answer plain RESP");
}

#[test]
fn tls_verify_parses_and_names_bad_values() {
    assert_eq!("none".parse::<TlsVerify>(), Ok(TlsVerify::None));
    assert_eq!(" Full ".parse::<TlsVerify>(), Ok(TlsVerify::Full));
    assert!("off".parse::<TlsVerify>().unwrap_err().contains("full or none"));
}

#[tokio::test]
async fn a_tls_url_at_a_plain_redis_says_the_handshake_got_no_answer_and_names_redis_url() {
    let server = OwnRedis::start();
    let err = ping(&format!("rediss://127.0.0.1:{}", server.port), TlsVerify::None).await.unwrap_err().to_string();
    assert!(err.contains("no answer over TLS") && err.contains("`redis://` is meant"), "{err}");
    // The same server over `redis://` answers: the message is about the scheme, not the server.
    assert_eq!(ping(&server.url(), TlsVerify::None).await.unwrap(), "PONG");
}
