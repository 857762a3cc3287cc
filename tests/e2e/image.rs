//! The container image as a user gets it: the OCI layout `scripts/build-image` writes (run by `scripts/test` before
//! the tests, with no registry reached), unpacked, and the binary run from its root filesystem as the image's
//! non-root user; the Dockerfile builds the same files with the same script.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

#[tokio::test]
async fn the_image_unpacks_and_runs_as_its_user_from_its_root_filesystem() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let layout = repo.join("target/image");
    assert!(
        layout.join("index.json").exists(),
        "target/image is missing: scripts/test builds it (scripts/build-image)"
    );
    assert_eq!(read_json(&layout.join("oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = read_json(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], env!("CARGO_PKG_VERSION"));
    let manifest = read_json(&blob(&layout, entry["digest"].as_str().unwrap()));
    let config = read_json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let c = &config["config"];
    assert_eq!(c["User"], "10001:10001", "a non-root user");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/dyno-scaler"]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]), "`run` by default");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);

    let root = std::env::temp_dir().join(format!("dyno-scaler-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());
    let untar = std::process::Command::new("tar").arg("-xzf").arg(&layer).arg("-C").arg(&root).status().unwrap();
    assert!(untar.success());
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").exists(), "CA certificates");

    let env: Vec<(String, String)> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let inside = |args: &[&str], extra: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new("/usr/sbin/chroot");
        cmd.arg("--userspec=10001:10001").arg(&root).arg("/usr/local/bin/dyno-scaler").args(args).env_clear();
        for (k, v) in env.iter().cloned().chain(extra.into_iter().map(|(k, v)| (k.to_owned(), v))) {
            cmd.env(k, v);
        }
        cmd.output()
    };
    let version = inside(&["--version"], vec![]).await.expect("chroot (root is needed)");
    assert!(version.status.success(), "{}", String::from_utf8_lossy(&version.stderr));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("dyno-scaler {}", env!("CARGO_PKG_VERSION")));
    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let check = inside(&["check"], env_sidekiq(&fake, &url)).await.unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("check passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&root);

    // The Dockerfile's last stage is the same files, by the same script, with the same settings.
    let dockerfile = std::fs::read_to_string(repo.join("Dockerfile")).unwrap();
    for line in [
        "python3 scripts/build-image.py --rootfs",
        "FROM scratch",
        "COPY --from=build /rootfs /",
        "USER 10001:10001",
        "ENTRYPOINT [\"/usr/local/bin/dyno-scaler\"]",
        "CMD [\"run\"]",
    ] {
        assert!(dockerfile.contains(line), "the Dockerfile lacks {line:?}");
    }
    for (k, v) in &env {
        assert!(dockerfile.contains(&format!("{k}={v}")), "the Dockerfile's ENV lacks {k}={v}");
    }
}
