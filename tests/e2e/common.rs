use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dyno_scaler_heroku::fake::{FakeConfig, FakeHeroku};
pub use dyno_scaler_test_support::{
    OwnRedis, TestCerts, db_url, delayed_jobs_ddl, good_jobs_ddl, solid_queue_ddl, unique,
};
use tokio::io::AsyncBufReadExt;

pub const KEY: &str = "e2e0c0de-89ab-cdef-0123-456789abcdef";
pub const ACCOUNT: &str = "ops@example.com";
pub const APP: &str = "e2e-app";

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

pub async fn fake() -> FakeHeroku {
    fake_with(FakeConfig::default()).await
}

pub async fn fake_with(config: FakeConfig) -> FakeHeroku {
    let f = FakeHeroku::start(config).await;
    f.add_app(APP, ACCOUNT);
    f.add_formation(APP, "web", "bundle exec puma", "Standard-1X", 1);
    f.add_formation(APP, "worker", "bundle exec sidekiq -t 25", "Standard-1X", 0);
    f.add_formation(APP, "urgent", "bundle exec sidekiq -q critical -t 25", "Standard-1X", 0);
    f.add_formation(APP, "dj_worker", "bundle exec rake jobs:work", "Standard-1X", 0);
    f.add_token(KEY, ACCOUNT);
    f
}

/// A private redis-server of the test's own (nothing shared to empty), its URL and a connection.
pub async fn own_redis() -> (OwnRedis, String, redis::aio::MultiplexedConnection) {
    let server = OwnRedis::start();
    let url = server.url();
    let c = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    (server, url, c)
}

/// Pushes `n` jobs exactly as Sidekiq 6.4's client does (SADD queues + LPUSH queue:<q>).
pub async fn sidekiq_push(c: &mut redis::aio::MultiplexedConnection, queue: &str, n: usize) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.sadd("queues", queue).ignore().lpush(format!("queue:{queue}"), sidekiq_job(queue, i)).ignore();
    }
    let _: () = p.query_async(c).await.unwrap();
}

/// The `i`th job of `queue` as Sidekiq 6.4's client writes it, enqueued now.
pub fn sidekiq_job(queue: &str, i: usize) -> String {
    let t = now();
    format!(
        r#"{{"retry":true,"queue":"{queue}","class":"HardWorker","args":[{i},"a"],"jid":"{:024x}","created_at":{:.7},"enqueued_at":{:.7}}}"#,
        i + 1,
        t - 0.0002,
        t
    )
}

/// Pushes `n` jobs exactly as `Resque.push` does (SADD resque:queues + RPUSH resque:queue:<q>).
pub async fn resque_push(c: &mut redis::aio::MultiplexedConnection, queue: &str, n: usize) {
    for i in 0..n {
        let _: () = redis::pipe()
            .sadd("resque:queues", queue)
            .ignore()
            .rpush(format!("resque:queue:{queue}"), format!(r#"{{"class":"ImageResizer","args":[{i},"thumb"]}}"#))
            .ignore()
            .query_async(c)
            .await
            .unwrap();
    }
}

/// The binary with a clean environment (nothing inherited that could configure it) plus `env`.
pub fn command(args: &[&str], env: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dyno-scaler"));
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub async fn run(args: &[&str], env: &[(&str, String)]) -> Out {
    let out = tokio::time::timeout(Duration::from_secs(60), command(args, env).output())
        .await
        .expect("binary finished")
        .unwrap();
    let o = Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!o.all().contains(KEY), "the API key appeared in the output:\n{}", o.all());
    o
}

/// Environment for one Sidekiq `worker` process type (the seed's four variables, plus the fake's URL).
pub fn env_sidekiq(fake: &FakeHeroku, redis_url: &str) -> Vec<(&'static str, String)> {
    env_heroku(fake, &[("DYNO_SCALER_SOURCE", "sidekiq"), ("REDIS_URL", redis_url)])
}

/// The fake Heroku's key, app and URL, plus `extra`. The end-to-end tests check quantities the classic policy's
/// threshold table gives (the adaptive policy is judged by the core tests and the simulator).
pub fn env_heroku(fake: &FakeHeroku, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let base = vec![
        ("HEROKU_API_KEY", KEY.to_string()),
        ("HEROKU_APP_NAME", APP.to_string()),
        ("HEROKU_API_URL", fake.url()),
        ("DYNO_SCALER_POLICY", "classic".to_string()),
    ];
    with(base, extra)
}

/// `text` written to a TOML file of the test's own (`name` must be unique).
pub fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn with(mut env: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    for (k, v) in extra {
        env.retain(|(e, _)| e != k);
        env.push((k, v.to_string()));
    }
    env
}

/// Waits until `f` holds, up to `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// Sends `sig` (as `kill` spells it: `-TERM`, `-HUP`) to a spawned daemon.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

/// Stops a spawned daemon with SIGTERM; it must exit 0 within 10 s without logging the API key. Its stderr.
pub async fn stop_daemon(child: tokio::process::Child) -> String {
    signal(&child, "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.expect("exited").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(KEY), "the API key was logged");
    stderr
}

/// A child process of the test's own (a real Sidekiq server, a node-resque worker), killed and reaped on drop.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running daemon whose log is collected as it is written.
pub struct Daemon {
    pub child: tokio::process::Child,
    /// What it wrote to stderr (its log).
    pub log: Arc<Mutex<String>>,
    /// What it wrote to stdout (l2met lines).
    pub stdout: Arc<Mutex<String>>,
}

/// Collects the lines of `from` into a string as they are written.
fn collect(from: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let mut lines = tokio::io::BufReader::new(from).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut t = sink.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

impl Daemon {
    pub fn start(env: &[(&str, String)]) -> Self {
        Self::start_with(&["run"], env)
    }

    /// `dyno-scaler <args>` with `env`.
    pub fn start_with(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut child = command(args, env).spawn().unwrap();
        let log = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Self { child, log, stdout }
    }

    /// Waits until the log holds `text` `times` times.
    pub async fn logged(&self, text: &str, times: usize) {
        let ok = eventually(Duration::from_secs(20), || self.log.lock().unwrap().matches(text).count() >= times).await;
        assert!(ok, "the daemon never logged {text:?} ({times}x):\n{}", self.log.lock().unwrap());
    }

    pub async fn stop(self) -> String {
        signal(&self.child, "-TERM");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait_with_output()).await;
        let status = status.expect("exited").unwrap().status;
        let log = self.log.lock().unwrap().clone();
        assert_eq!(status.code(), Some(0), "{log}");
        assert!(!log.contains(KEY), "the API key was logged");
        log
    }
}

/// A TCP proxy to `127.0.0.1:<target>` that can be frozen: connections stay open but no byte passes either way, as
/// in a network partition (the daemon behind it sees timeouts, not resets).
pub struct Proxy {
    pub port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    /// One flag per connection accepted so far: set, that connection passes no byte (new ones still do).
    conns: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>> = Arc::default();
        let (f, c) = (frozen.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                let mine = Arc::new(std::sync::atomic::AtomicBool::new(false));
                c.lock().unwrap().push(mine.clone());
                tokio::spawn(pump(ri, wo, [f.clone(), mine.clone()]));
                tokio::spawn(pump(ro, wi, [f.clone(), mine]));
            }
        });
        Self { port, frozen, conns, task }
    }

    /// Stops every byte of the connections open now, as a middlebox holding them half-open does; connections
    /// opened later pass.
    pub fn freeze_existing(&self) {
        for c in self.conns.lock().unwrap().iter() {
            c.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops every byte from passing (until dropped).
    pub fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: [Arc<std::sync::atomic::AtomicBool>; 2],
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.iter().any(|f| f.load(std::sync::atomic::Ordering::SeqCst)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `GET path` on `127.0.0.1:port` (HTTP/1.1, one request): the status and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    (status, body.to_owned())
}

/// A fresh schema named after `prefix` holding GoodJob's tables; a pool on the database, and `schema.good_jobs`.
pub async fn good_job_table(prefix: &str) -> (sqlx::PgPool, String) {
    let pool = sqlx::PgPool::connect(&db_url()).await.expect("Postgres is required (run scripts/test)");
    let schema = unique(prefix);
    let ddl = format!("CREATE SCHEMA {schema}; {}", good_jobs_ddl(&schema));
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
    (pool, format!("{schema}.good_jobs"))
}

/// The environment of a `good_job` process type on `table`, against `fake`, the poll a minute away (only an event
/// explains a quick reaction).
pub fn env_good_job(fake: &FakeHeroku, table: &str) -> Vec<(&'static str, String)> {
    let url = db_url();
    let setting = [("DYNO_SCALER_SOURCE", "good_job"), ("DATABASE_URL", url.as_str()), ("DYNO_SCALER_TABLE", table)];
    with(env_heroku(fake, &setting), &[("DYNO_SCALER_POLL_INTERVAL", "60s")])
}

/// The gem file `scripts/build-gem` wrote (`scripts/test` builds it before the tests).
pub fn gem_file() -> std::path::PathBuf {
    let file = format!("dyno-scaler-{}-x86_64-linux.gem", env!("CARGO_PKG_VERSION"));
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/gem").join(file);
    assert!(path.exists(), "{} is missing: scripts/test builds it (scripts/build-gem)", path.display());
    path
}

/// The gem installed from its file into an empty `GEM_HOME` of the test's own (`name`), as a user installs it.
pub fn installed_gem(name: &str) -> std::path::PathBuf {
    let home = std::env::temp_dir().join(format!("dyno-scaler-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new("gem")
        .args(["install", "--local", "--no-document"])
        .arg(gem_file())
        .env("GEM_HOME", &home)
        .env("GEM_PATH", &home)
        .output()
        .expect("gem");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    home
}
