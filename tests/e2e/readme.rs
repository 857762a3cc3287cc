//! The README's first screen, as a Heroku user follows it: the variables its `heroku config:set` line sets, with
//! what Heroku sets itself, are enough for `dyno-scaler check` to pass.

use crate::common::*;

/// The shell block under "## Running it on Heroku".
fn heroku_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Running it on Heroku").expect("the Heroku section")..];
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_owned()
}

#[tokio::test]
async fn the_readmes_heroku_commands_set_what_check_needs() {
    let block = heroku_block();
    for line in ["bundle add dyno-scaler", "scaler: bundle exec dyno-scaler run", "bundle exec dyno-scaler check"] {
        assert!(block.contains(line), "the block lacks {line:?}:\n{block}");
    }
    let set = block.lines().find_map(|l| l.strip_prefix("heroku config:set ")).expect("a heroku config:set line");
    let set = set.split('#').next().unwrap();
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    // What the README sets, `<token>` being the token `heroku authorizations:create` printed.
    let mut env: Vec<(&'static str, String)> = set
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("KEY=VALUE");
            let v = if v == "<token>" { KEY.to_owned() } else { v.to_owned() };
            (&*Box::leak(k.to_owned().into_boxed_str()), v)
        })
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["HEROKU_API_KEY", "DYNO_SCALER_SOURCE", "DYNO_SCALER_MAX_WORKERS"], "{set}");
    // What Heroku sets itself (the dyno metadata, the Redis add-on), and the fake's address for Heroku's.
    env.extend([("HEROKU_APP_NAME", APP.to_owned()), ("REDIS_URL", url), ("HEROKU_API_URL", fake.url())]);
    let out = run(&["check"], &env).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("check passed"), "{}", out.stdout);
}
