//! The files under deploy/kubernetes: their shapes agree with each other, and the configuration they ship runs.

use serde_json::Value;

use super::common::*;

/// The documents of a YAML file (read by Debian's python3-yaml).
pub fn documents(path: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/parse_yaml.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .args([script, path])
        .output()
        .expect("Debian's /usr/bin/python3 with python3-yaml (scripts/test installs it)");
    assert!(out.status.success(), "{path} is not YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

#[tokio::test]
async fn the_keda_deployment_files_agree_and_their_configuration_runs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/keda/dyno-scaler-keda.yaml");
    let docs = documents(path);
    let (deploy, service, so, config) =
        (kind(&docs, "Deployment"), kind(&docs, "Service"), kind(&docs, "ScaledObject"), kind(&docs, "ConfigMap"));
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..2], ["keda-scaler", "--listen"]);
    let port: u64 = args[2].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(service["spec"]["ports"][0]["targetPort"].as_u64(), Some(port));
    assert_eq!(service["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"]);
    let trigger = &so["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "external-push", "StreamIsActive wakes from zero");
    let address = format!(
        "{}.{}.svc:{}",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert_eq!(trigger["metadata"]["scalerAddress"].as_str(), Some(address.as_str()));
    assert_eq!(so["metadata"]["namespace"], deploy["metadata"]["namespace"]);

    // The shipped configuration, run as the Deployment runs it (its REDIS_URL pointed at a test server).
    let toml = config["data"]["dyno-scaler.toml"].as_str().unwrap();
    let file = config_file(&unique("keda_deploy"), toml);
    let (_redis, url, _c) = own_redis().await;
    let env = vec![("DYNO_SCALER_CONFIG", file.to_str().unwrap().to_owned()), ("REDIS_URL", url)];
    let listen = format!("127.0.0.1:{}", dyno_scaler_test_support::free_port());
    let daemon = Daemon::start_with(&["keda-scaler", "--listen", &listen], &env);
    let process_type = trigger["metadata"]["processType"].as_str().unwrap();
    daemon.logged(&format!("process_types={process_type}"), 1).await;
    daemon.stop().await;
}

/// `kubectl kustomize` of `dir` (a kustomization), as documents.
fn kustomize(dir: &str) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", dir])
        .output()
        .expect("kubectl (scripts/test installs Debian's kubernetes-client when absent)");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    let file = std::env::temp_dir().join(format!("{}.yaml", unique("kustomized")));
    std::fs::write(&file, &out.stdout).unwrap();
    let docs = documents(file.to_str().unwrap());
    let _ = std::fs::remove_file(&file);
    docs
}

/// The kustomize base renders in its namespace; an overlay moves every object (and the RoleBinding's subject) to
/// another and sets the image; the rendered Role is exactly rbac.yaml's, whose rights the Kubernetes tests prove
/// enough.
#[test]
fn the_kustomize_base_and_an_overlay_render_with_their_namespace_and_image() {
    let root = env!("CARGO_MANIFEST_DIR");
    let shipped = documents(&format!("{root}/deploy/kubernetes/rbac.yaml"));
    for (dir, ns, image) in [
        (format!("{root}/deploy/kubernetes"), "app", "ghcr.io/dyno-scaler/dyno-scaler:0.1.0"),
        (format!("{root}/deploy/overlays/example"), "jobs", "registry.example.com/ops/dyno-scaler:0.1.0"),
    ] {
        let docs = kustomize(&dir);
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        for k in ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment"] {
            assert!(kinds.contains(&k), "{dir}: no {k} in {kinds:?}");
        }
        for d in &docs {
            assert_eq!(d["metadata"]["namespace"], ns, "{dir}: {} {}", d["kind"], d["metadata"]["name"]);
        }
        assert_eq!(kind(&docs, "RoleBinding")["subjects"][0]["namespace"], ns, "{dir}: the binding's subject");
        let container = &kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], image, "{dir}");
        assert_eq!(kind(&docs, "Role")["rules"], kind(&shipped, "Role")["rules"], "{dir}: the rights tested");
    }
}
