//! `rediss://` end to end: Heroku's self-signed case (`DYNO_SCALER_REDIS_TLS_VERIFY=none`), a trusted CA
//! (`SSL_CERT_FILE`), and the failure with its hint.

use super::common::*;

#[tokio::test]
async fn rediss_with_verification_off_reads_and_scales() {
    let fake = fake().await;
    let certs = TestCerts::generate();
    let server = OwnRedis::start_tls(&certs);
    // Push through the TLS port with verification off, as Heroku's instructions say.
    let client = redis::Client::open(format!("{}/#insecure", server.url())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    sidekiq_push(&mut c, "default", 3).await;
    let env = with(env_sidekiq(&fake, &server.url()), &[("DYNO_SCALER_REDIS_TLS_VERIFY", "none")]);
    let out = run(&["run", "--once"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.quantity(APP, "worker"), Some(1));
    // The same through the TOML setting.
    let path = std::env::temp_dir().join(format!("{}.toml", unique("tls")));
    std::fs::write(&path, "[[process]]\ntype = \"worker\"\nsource = \"sidekiq\"\nredis_tls_verify = \"none\"\n")
        .unwrap();
    let out = run(&["--config", path.to_str().unwrap(), "status", "--json"], &env_sidekiq(&fake, &server.url())).await;
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains(r#""ready":3"#), "{}", out.stdout);
}

#[tokio::test]
async fn rediss_with_verification_trusts_the_given_ca_and_refuses_others() {
    let fake = fake().await;
    let certs = TestCerts::generate();
    let server = OwnRedis::start_tls(&certs);
    let env = env_sidekiq(&fake, &server.url());
    // Verification on (the default) and a CA nobody trusts: check fails, naming the setting that helps.
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("certificate"), "{}", out.stdout);
    assert!(out.stdout.contains("DYNO_SCALER_REDIS_TLS_VERIFY=none"), "the hint names the setting: {}", out.stdout);
    // With the CA trusted through SSL_CERT_FILE, verification passes.
    let env = with(env, &[("SSL_CERT_FILE", certs.ca.to_str().unwrap())]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("check passed"), "{}", out.stdout);
}

#[tokio::test]
async fn a_bad_tls_verify_value_exits_2_naming_it() {
    let fake = fake().await;
    let env = with(env_sidekiq(&fake, "rediss://127.0.0.1:1"), &[("DYNO_SCALER_REDIS_TLS_VERIFY", "off")]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("DYNO_SCALER_REDIS_TLS_VERIFY"), "{}", out.stderr);
}
