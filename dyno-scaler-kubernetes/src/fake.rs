//! A faithful fake of the parts of the Kubernetes API the platform uses, for tests (yours too): the `/scale`
//! subresource of Deployments and StatefulSets (GET, merge PATCH, PUT, with `resourceVersion` preconditions answered
//! 409), pods listed by label selector and patched (annotations), a ReplicaSet that deletes the pods of lowest
//! `controller.kubernetes.io/pod-deletion-cost` first (the newest first among equals), metadata-only answers where
//! the client asks for them (`as=PartialObjectMetadata[List]`), RBAC refusals (403) and
//! unknown objects (404), all with the API's JSON shapes (`Scale`, `PodList`, `Status`).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

/// The annotation the ReplicaSet controller ranks pods by on a scale-down.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[derive(Debug, Clone)]
struct Pod {
    name: String,
    seq: u64,
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Workload {
    replicas: u32,
    rv: u64,
    pods: Vec<Pod>,
}

#[derive(Debug, Default)]
struct State {
    namespace: String,
    /// By (resource, name): resource is `deployments` or `statefulsets`.
    workloads: BTreeMap<(String, String), Workload>,
    /// (verb, resource) pairs refused with 403, e.g. ("patch", "deployments/scale").
    forbidden: BTreeSet<(String, String)>,
    /// Scale writes still to answer 409 (another writer got there first).
    conflicts: u32,
    /// Every request waits this long before it is answered (a stalled API server or connection).
    stall: std::time::Duration,
    seq: u64,
    requests: Vec<(String, String, u16)>,
}

/// The fake API server, on a local port; cheap to clone.
#[derive(Clone)]
pub struct FakeKubernetes {
    state: Arc<Mutex<State>>,
    port: u16,
}

impl std::fmt::Debug for FakeKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKubernetes").field("port", &self.port).finish()
    }
}

impl FakeKubernetes {
    /// Starts serving namespace `namespace` on a free local port.
    pub async fn start(namespace: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let port = listener.local_addr().expect("bound").port();
        let state = Arc::new(Mutex::new(State { namespace: namespace.to_owned(), ..State::default() }));
        let me = Self { state, port };
        let server = me.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.answer(req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        me
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig naming this server (plain `http://`, as `kubectl proxy` serves) and its namespace.
    pub fn kubeconfig(&self) -> String {
        let ns = self.with(|s| s.namespace.clone());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {ns}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake lock"))
    }

    /// Adds (or resets) a Deployment `name` with `replicas` running pods.
    pub fn add_deployment(&self, name: &str, replicas: u32) {
        self.add("deployments", name, replicas);
    }

    /// Adds (or resets) a StatefulSet `name` with `replicas` running pods.
    pub fn add_statefulset(&self, name: &str, replicas: u32) {
        self.add("statefulsets", name, replicas);
    }

    fn add(&self, resource: &str, name: &str, replicas: u32) {
        self.with(|s| {
            let mut w = Workload { replicas: 0, rv: 1, pods: Vec::new() };
            reconcile(&mut s.seq, resource, name, &mut w, replicas);
            s.workloads.insert((resource.to_owned(), name.to_owned()), w);
        });
    }

    /// Scales `name` as `kubectl scale` would, around the platform (not recorded as a request).
    pub fn scale(&self, name: &str, replicas: u32) {
        self.with(|s| {
            let State { workloads, seq, .. } = s;
            if let Some(((resource, n), w)) = workloads.iter_mut().find(|((_, n), _)| n == name) {
                reconcile(seq, resource, n, w, replicas);
                w.rv += 1;
            }
        });
    }

    /// The replicas of a Deployment (or StatefulSet) `name`.
    pub fn replicas(&self, name: &str) -> Option<u32> {
        self.with(|s| s.workloads.iter().find(|((_, n), _)| n == name).map(|(_, w)| w.replicas))
    }

    /// The pod names of `name`, oldest first.
    pub fn pods(&self, name: &str) -> Vec<String> {
        self.with(|s| {
            s.workloads
                .iter()
                .find(|((_, n), _)| n == name)
                .map_or_else(Vec::new, |(_, w)| w.pods.iter().map(|p| p.name.clone()).collect())
        })
    }

    /// A pod's annotation.
    pub fn annotation(&self, pod: &str, key: &str) -> Option<String> {
        self.with(|s| {
            s.workloads
                .values()
                .flat_map(|w| &w.pods)
                .find(|p| p.name == pod)
                .and_then(|p| p.annotations.get(key).cloned())
        })
    }

    /// Refuses `verb` (`get`, `list`, `patch`, `update`) on `resource` (`deployments/scale`, `pods`) with 403.
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.with(|s| s.forbidden.insert((verb.to_owned(), resource.to_owned())));
    }

    /// Lifts a refusal set by [`forbid`](Self::forbid).
    pub fn permit(&self, verb: &str, resource: &str) {
        self.with(|s| s.forbidden.remove(&(verb.to_owned(), resource.to_owned())));
    }

    /// Makes every request wait `d` before it is answered (`Duration::ZERO`: answer at once again), as a stalled API
    /// server or a frozen connection does.
    pub fn stall(&self, d: std::time::Duration) {
        self.with(|s| s.stall = d);
    }

    /// Answers the next `n` scale writes with 409 Conflict, as when another writer changed the object.
    pub fn conflict_next(&self, n: u32) {
        self.with(|s| s.conflicts = n);
    }

    /// Every request: method, path (with query) and status.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.with(|s| s.requests.clone())
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let accept = req.headers().get("accept").and_then(|a| a.to_str().ok()).unwrap_or("").to_owned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let stall = self.with(|s| s.stall);
        if !stall.is_zero() {
            tokio::time::sleep(stall).await;
        }
        let (status, json) = self.with(|s| route(s, &method, &path, &query, &body));
        let json = if (200..300).contains(&status) { as_metadata(json, &accept) } else { json };
        self.with(|s| s.requests.push((method.to_string(), format!("{path}?{query}"), status)));
        Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(json.to_string())))
            .expect("a response")
    }
}

/// The answer as the API server gives it to a client asking for metadata only (`Accept:
/// application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`, what `list_metadata` and `patch_metadata`
/// send): each object reduced to its `metadata`.
fn as_metadata(json: Value, accept: &str) -> Value {
    let partial =
        |o: &Value| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
    if accept.contains("as=PartialObjectMetadataList") {
        let items: Vec<Value> = json["items"].as_array().map(|i| i.iter().map(partial).collect()).unwrap_or_default();
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": json["metadata"], "items": items})
    } else if accept.contains("as=PartialObjectMetadata") {
        partial(&json)
    } else {
        json
    }
}

fn status(code: u16, reason: &str, message: String) -> (u16, Value) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (code, body)
}

fn pod_json(ns: &str, name: &str, p: &Pod) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": p.name, "namespace": ns, "labels": {"app": name},
            "annotations": p.annotations, "resourceVersion": p.seq.to_string(), "uid": format!("uid-{}", p.seq)},
           "spec": {"containers": [{"name": "worker", "image": "app:latest"}]},
           "status": {"phase": "Running"}})
}

fn scale_json(ns: &str, name: &str, w: &Workload) -> Value {
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": w.rv.to_string()},
           "spec": {"replicas": w.replicas}, "status": {"replicas": w.replicas, "selector": format!("app={name}")}})
}

/// The ReplicaSet's work: add pods, or delete the lowest deletion cost first (the newest first among equals).
fn reconcile(seq: &mut u64, resource: &str, name: &str, w: &mut Workload, replicas: u32) {
    while (w.pods.len() as u32) < replicas {
        *seq += 1;
        let pod_name = if resource == "statefulsets" {
            format!("{name}-{}", w.pods.len())
        } else {
            format!("{name}-7d4b9c-{:05}", *seq)
        };
        w.pods.push(Pod { name: pod_name, seq: *seq, annotations: BTreeMap::new() });
    }
    while (w.pods.len() as u32) > replicas {
        let cost = |p: &Pod| p.annotations.get(DELETION_COST).and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        let victim = if resource == "statefulsets" {
            w.pods.len() - 1
        } else {
            (0..w.pods.len()).min_by_key(|&i| (cost(&w.pods[i]), std::cmp::Reverse(w.pods[i].seq))).expect("a pod")
        };
        w.pods.remove(victim);
    }
    w.replicas = replicas;
}

fn route(s: &mut State, method: &Method, path: &str, query: &str, body: &Value) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let verb = match *method {
        Method::GET if parts.last() == Some(&"pods") => "list",
        Method::GET => "get",
        Method::PATCH => "patch",
        Method::PUT => "update",
        Method::POST => "create",
        _ => return status(405, "MethodNotAllowed", format!("{method} is not supported here")),
    };
    match parts.as_slice() {
        ["apis", "apps", "v1", "namespaces", ns, resource, name, "scale"] => {
            let r = format!("{resource}/scale");
            if s.refuses(verb, &r) {
                return forbidden(verb, &r, ns, name);
            }
            let key = (resource.to_string(), name.to_string());
            let namespace = s.namespace.clone();
            if *ns != namespace || !s.workloads.contains_key(&key) {
                return status(404, "NotFound", format!("{resource}.apps \"{name}\" not found"));
            }
            if verb == "get" {
                return (200, scale_json(ns, name, &s.workloads[&key]));
            }
            let w = s.workloads.get_mut(&key).expect("checked");
            let sent_rv = body["metadata"]["resourceVersion"].as_str();
            let stale = sent_rv.is_some_and(|rv| rv != w.rv.to_string()) || (verb == "update" && sent_rv.is_none());
            if s.conflicts > 0 || stale {
                s.conflicts = s.conflicts.saturating_sub(1);
                let message = format!(
                    "Operation cannot be fulfilled on {resource}.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                );
                return status(409, "Conflict", message);
            }
            let Some(replicas) = body["spec"]["replicas"].as_u64().and_then(|r| u32::try_from(r).ok()) else {
                return status(422, "Invalid", "spec.replicas: Required value".into());
            };
            reconcile(&mut s.seq, resource, name, w, replicas);
            w.rv += 1;
            (200, scale_json(ns, name, w))
        }
        ["api", "v1", "namespaces", ns, "pods"] => {
            if s.refuses("list", "pods") {
                return forbidden("list", "pods", ns, "");
            }
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(|v| v.replace("%3D", "=").replace("%3d", "="))
                .unwrap_or_default();
            let app = selector.strip_prefix("app=").unwrap_or("");
            let items: Vec<Value> = s
                .workloads
                .iter()
                .filter(|((_, n), _)| n == app && *ns == s.namespace)
                .flat_map(|((_, n), w)| w.pods.iter().map(move |p| pod_json(ns, n, p)))
                .collect();
            (
                200,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": s.seq.to_string()}, "items": items}),
            )
        }
        ["api", "v1", "namespaces", ns, "pods", name] if verb == "patch" => {
            if s.refuses("patch", "pods") {
                return forbidden("patch", "pods", ns, name);
            }
            let namespace = s.namespace.clone();
            for ((_, app), w) in s.workloads.iter_mut() {
                if let Some(p) = w.pods.iter_mut().find(|p| p.name == *name && *ns == namespace) {
                    if let Some(a) = body["metadata"]["annotations"].as_object() {
                        for (k, v) in a {
                            match v.as_str() {
                                Some(v) => p.annotations.insert(k.clone(), v.to_owned()),
                                None => p.annotations.remove(k),
                            };
                        }
                    }
                    let app = app.clone();
                    return (200, pod_json(ns, &app, p));
                }
            }
            status(404, "NotFound", format!("pods \"{name}\" not found"))
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] if verb == "create" => {
            // What `kubectl auth can-i` asks: is this verb on this resource (and subresource) allowed?
            let a = &body["spec"]["resourceAttributes"];
            let (resource, sub) = (a["resource"].as_str().unwrap_or(""), a["subresource"].as_str().unwrap_or(""));
            let r = if sub.is_empty() { resource.to_owned() } else { format!("{resource}/{sub}") };
            let v = a["verb"].as_str().unwrap_or("");
            let allowed = !s.refuses(v, &r);
            let mut review = body.clone();
            review["status"] =
                json!({"allowed": allowed, "reason": if allowed { "RBAC: allowed by the fake" } else { "" }});
            (201, review)
        }
        _ => status(404, "NotFound", format!("the server could not find the requested resource ({path})")),
    }
}

impl State {
    /// Whether RBAC refuses `verb` on `resource` (`pods`, `deployments/scale`): the one rule both the requests and
    /// the access reviews answer by.
    fn refuses(&self, verb: &str, resource: &str) -> bool {
        self.forbidden.contains(&(verb.to_owned(), resource.to_owned()))
    }
}

fn forbidden(verb: &str, resource: &str, ns: &str, name: &str) -> (u16, Value) {
    let (res, sub) = resource.split_once('/').map_or((resource, ""), |(r, s)| (r, s));
    let group = if res == "pods" { String::new() } else { " in API group \"apps\"".to_owned() };
    let on = if sub.is_empty() { format!("resource \"{res}\"") } else { format!("resource \"{res}/{sub}\"") };
    let message = format!(
        "{res}{} \"{name}\" is forbidden: User \"system:serviceaccount:{ns}:dyno-scaler\" cannot {verb} {on}{group} in the namespace \"{ns}\"",
        if res == "pods" { "" } else { ".apps" }
    );
    status(403, "Forbidden", message)
}
