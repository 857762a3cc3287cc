//! The crates' layers, read from `cargo metadata`: the core depends on no adapter, and each adapter on the core and
//! the shared Redis or Postgres crate only, so an adapter is added or dropped without touching another.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each library crate of the workspace and the workspace crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("dyno-scaler-core", &[]),
    ("dyno-scaler-redis", &["dyno-scaler-core"]),
    ("dyno-scaler-postgres", &["dyno-scaler-core"]),
    ("dyno-scaler-sidekiq", &["dyno-scaler-core", "dyno-scaler-redis"]),
    ("dyno-scaler-resque", &["dyno-scaler-core", "dyno-scaler-redis"]),
    ("dyno-scaler-delayed-job", &["dyno-scaler-core", "dyno-scaler-postgres"]),
    ("dyno-scaler-good-job", &["dyno-scaler-core", "dyno-scaler-postgres"]),
    ("dyno-scaler-solid-queue", &["dyno-scaler-core", "dyno-scaler-postgres"]),
    ("dyno-scaler-request-queue", &["dyno-scaler-core", "dyno-scaler-redis"]),
    ("dyno-scaler-heroku", &["dyno-scaler-core"]),
    ("dyno-scaler-kubernetes", &["dyno-scaler-core"]),
    ("dyno-scaler-keda", &["dyno-scaler-core"]),
    ("dyno-scaler-simulator", &["dyno-scaler-core"]),
];

/// Every workspace crate and the workspace crates it depends on (normal dependencies, not dev or build).
fn workspace_deps() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"].as_array().expect("dependencies").iter();
            let deps = deps
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|n| members.contains(*n))
                .map(String::from)
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn adapters_depend_on_the_core_and_their_shared_crate_only_and_the_core_on_none() {
    let deps = workspace_deps();
    // The check can see a dependency: the facade depends on every adapter.
    assert!(deps["dyno-scaler"].contains("dyno-scaler-sidekiq"), "{deps:?}");
    for (krate, allowed) in ALLOWED {
        let found = deps.get(*krate).unwrap_or_else(|| panic!("{krate} is not in the workspace: {deps:?}"));
        let extra: Vec<&String> = found.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{krate} depends on {extra:?}; it may depend on {allowed:?} only");
    }
    let unlisted: Vec<&String> = deps
        .keys()
        .filter(|k| !ALLOWED.iter().any(|(a, _)| a == k))
        .filter(|k| !matches!(k.as_str(), "dyno-scaler" | "dyno-scaler-test-support"))
        .collect();
    assert!(unlisted.is_empty(), "a new crate needs its layer here: {unlisted:?}");
}
