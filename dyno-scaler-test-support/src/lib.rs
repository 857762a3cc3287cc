//! What the dyno-scaler tests share: unique names, private `redis-server`s (plain or TLS, with certificates made
//! on the spot) that a test may stop, stall and start again. Not published.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A name no other test (nor an earlier run) uses: `dst_<tag>_<pid>_<n>_<nanos>`. Tests prefix their Redis keys
/// and name their Postgres schemas with it; `scripts/test` drops `dst_*` schemas left by earlier runs.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").subsec_nanos();
    format!("dst_{tag}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A free loopback port (released before it is returned; a race with another process is possible but rare).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback").local_addr().expect("local addr").port()
}

/// A certificate authority and a server certificate for `127.0.0.1` and `localhost` signed by it, as PEM files in
/// a directory of the test's own.
pub struct TestCerts {
    /// The directory holding the files (removed on drop).
    pub dir: PathBuf,
    /// The CA certificate: give it as `SSL_CERT_FILE` to trust the server.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a fresh CA and server certificate.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "dyno-scaler test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let dir = std::env::temp_dir().join(unique("certs"));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        Self {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("server.pem", cert.pem()),
            key: write("server.key", key.serialize_pem()),
            dir,
        }
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private `redis-server` on a port of its own: stop it, stall it (SIGSTOP) and start it again on the same port.
pub struct OwnRedis {
    /// The port (plain, or TLS when started with certificates).
    pub port: u16,
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl OwnRedis {
    /// A plain server on a free port.
    pub fn start() -> Self {
        Self::spawn(free_port(), None)
    }

    /// A TLS-only server (no plain port) on a free port, serving `certs`' server certificate.
    pub fn start_tls(certs: &TestCerts) -> Self {
        Self::spawn(free_port(), Some((certs.cert.clone(), certs.key.clone())))
    }

    fn spawn(port: u16, tls: Option<(PathBuf, PathBuf)>) -> Self {
        let mut me = Self { port, tls, child: None };
        // A free port can be taken by a test running beside this one before the server binds it: another.
        for _ in 0..5 {
            if me.try_start() {
                return me;
            }
            me.port = free_port();
        }
        panic!("redis-server did not start on five free ports");
    }

    /// `redis://127.0.0.1:<port>` or `rediss://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (on the same port) after [`OwnRedis::stop`].
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server on {} did not start", self.port);
    }

    /// Starts the server on its port: whether it came up (it exits when the port is taken).
    fn try_start(&mut self) -> bool {
        self.stop();
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some((cert, key)) => {
                cmd.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]);
                cmd.arg("--tls-cert-file").arg(cert).arg("--tls-key-file").arg(key);
            }
        }
        let child =
            cmd.stdout(Stdio::null()).spawn().expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            // Ours only if it is still running once the port answers (else the port was someone else's).
            let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
                return self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stalls the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a stalled server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill").arg(sig).arg(c.id().to_string()).status().is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} of redis-server failed");
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.resume();
        self.stop();
    }
}

/// A private PostgreSQL server (its own data directory and port, trust authentication) that a test may stop and
/// start again; `initdb` takes well under a second. Run as the `postgres` user when the tests run as root.
pub struct OwnPostgres {
    /// The port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl OwnPostgres {
    /// A new cluster on a free port, started.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/test installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(unique("pg"));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        let me = Self { port: free_port(), dir, bin };
        if is_root() {
            let ok = Command::new("chown").arg("postgres").arg(&me.dir).status().is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", me.dir.display());
        }
        let data = me.dir.join("data");
        me.pg("initdb", &["-D", path(&data), "-A", "trust", "-U", "postgres", "--no-sync"]);
        me.restart();
        me
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again, on the same port).
    pub fn restart(&self) {
        let (data, log) = (self.dir.join("data"), self.dir.join("log"));
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        self.pg("pg_ctl", &["-D", path(&data), "-o", &opts, "-l", path(&log), "-w", "start"]);
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as in a crash).
    pub fn stop(&self) {
        self.pg("pg_ctl", &["-D", path(&self.dir.join("data")), "-m", "immediate", "-w", "stop"]);
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).stdout(Stdio::null()).output().expect("run a PostgreSQL program");
        assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// The Redis the tests share (`DYNO_SCALER_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`); tests keep to
/// key prefixes of their own in it.
pub fn redis_url() -> String {
    std::env::var("DYNO_SCALER_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        .trim_end_matches('/')
        .to_owned()
}

/// The Postgres database the tests share (`DYNO_SCALER_TEST_DATABASE_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`); tests keep to schemas of their own in it.
pub fn db_url() -> String {
    std::env::var("DYNO_SCALER_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// What `rails generate delayed_job:active_record` and `db:migrate` create (Rails 7: `timestamp(6)` columns, or
/// `timestamptz` when the app uses them), for `table` (schema-qualified or not). Idempotent.
pub fn delayed_jobs_ddl(table: &str, timestamptz: bool) -> String {
    let ts = if timestamptz { "timestamp(6) with time zone" } else { "timestamp(6) without time zone" };
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
           id bigserial PRIMARY KEY,
           priority integer DEFAULT 0 NOT NULL,
           attempts integer DEFAULT 0 NOT NULL,
           handler text NOT NULL,
           last_error text,
           run_at {ts},
           locked_at {ts},
           failed_at {ts},
           locked_by character varying,
           queue character varying,
           created_at {ts},
           updated_at {ts});
         CREATE INDEX IF NOT EXISTS delayed_jobs_priority ON {table} USING btree (priority, run_at);"
    )
}

/// What `GoodJob::Adapter#enqueue` sends for one job of the `default` queue: the `INSERT` into `table`
/// (`schema.good_jobs`), then its `NOTIFY good_job`.
pub fn good_job_enqueue_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (id, active_job_id, queue_name, priority, serialized_params, scheduled_at, created_at, \
           updated_at, job_class) SELECT u, u, 'default', 0, '{{}}', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', \
           now() AT TIME ZONE 'UTC', 'SyncJob' FROM (SELECT gen_random_uuid() AS u) g; \
         NOTIFY good_job, '{{\"queue_name\":\"default\"}}';"
    )
}

/// `n` finished jobs into `table` (GoodJob keeps them). Follow it with `VACUUM ANALYZE` (a statement of its own),
/// as autovacuum leaves a table, else the first reader sets the new rows' hint bits.
pub fn good_job_finished_sql(table: &str, n: u64) -> String {
    format!(
        "INSERT INTO {table} (queue_name, priority, serialized_params, scheduled_at, performed_at, finished_at, \
           created_at, updated_at, job_class) SELECT 'q' || (g % 5), 0, '{{}}', now(), now(), now(), now(), now(), 'X' \
         FROM generate_series(1, {n}) g"
    )
}

/// What GoodJob v4's install generator creates (`create_good_jobs.rb.erb`, with the columns and indexes later v4
/// migrations add: `labels`, `locked_by_id`, `locked_at`, `lock_type`), in `schema`. `datetime` columns are Rails
/// 7's `timestamp(6)`.
pub fn good_jobs_ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE {schema}.good_jobs (
           id uuid DEFAULT gen_random_uuid() PRIMARY KEY,
           queue_name text, priority integer, serialized_params jsonb,
           scheduled_at timestamp(6), performed_at timestamp(6), finished_at timestamp(6), error text,
           created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL,
           active_job_id uuid, concurrency_key text, cron_key text, retried_good_job_id uuid, cron_at timestamp(6),
           batch_id uuid, batch_callback_id uuid, is_discrete boolean, executions_count integer, job_class text,
           error_event smallint, labels text[], locked_by_id uuid, locked_at timestamp(6), lock_type smallint);
         CREATE TABLE {schema}.good_job_processes (
           id uuid DEFAULT gen_random_uuid() PRIMARY KEY,
           created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL, state jsonb, lock_type smallint);
         CREATE TABLE {schema}.good_job_settings (
           id uuid DEFAULT gen_random_uuid() PRIMARY KEY,
           created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL, key text, value jsonb);
         CREATE UNIQUE INDEX index_good_job_settings_on_key ON {schema}.good_job_settings (key);
         CREATE INDEX index_good_jobs_on_scheduled_at ON {schema}.good_jobs (scheduled_at) WHERE (finished_at IS NULL);
         CREATE INDEX index_good_jobs_on_queue_name_and_scheduled_at ON {schema}.good_jobs (queue_name, scheduled_at)
           WHERE (finished_at IS NULL);
         CREATE INDEX index_good_jobs_on_active_job_id_and_created_at ON {schema}.good_jobs (active_job_id, created_at);
         CREATE INDEX index_good_jobs_on_concurrency_key_when_unfinished ON {schema}.good_jobs (concurrency_key)
           WHERE (finished_at IS NULL);
         CREATE INDEX index_good_jobs_on_cron_key_and_created_at_cond ON {schema}.good_jobs (cron_key, created_at)
           WHERE (cron_key IS NOT NULL);
         CREATE UNIQUE INDEX index_good_jobs_on_cron_key_and_cron_at_cond ON {schema}.good_jobs (cron_key, cron_at)
           WHERE (cron_key IS NOT NULL);
         CREATE INDEX index_good_jobs_on_active_job_id ON {schema}.good_jobs (active_job_id);
         CREATE INDEX index_good_jobs_jobs_on_finished_at ON {schema}.good_jobs (finished_at)
           WHERE retried_good_job_id IS NULL AND finished_at IS NOT NULL;
         CREATE INDEX index_good_jobs_jobs_on_priority_created_at_when_unfinished
           ON {schema}.good_jobs (priority DESC NULLS LAST, created_at) WHERE finished_at IS NULL;
         CREATE INDEX index_good_jobs_on_batch_id ON {schema}.good_jobs (batch_id) WHERE batch_id IS NOT NULL;
         CREATE INDEX index_good_jobs_on_batch_callback_id ON {schema}.good_jobs (batch_callback_id)
           WHERE batch_callback_id IS NOT NULL;
         CREATE INDEX index_good_jobs_on_priority_scheduled_at_unfinished_unlocked
           ON {schema}.good_jobs (priority, scheduled_at, id) WHERE finished_at IS NULL AND locked_by_id IS NULL;
         CREATE INDEX index_good_jobs_on_locked_by_id ON {schema}.good_jobs (locked_by_id) WHERE locked_by_id IS NOT NULL;"
    )
}

/// What Solid Queue v1.5's install generator creates (`db/queue_schema.rb`; `datetime` is Rails 7's
/// `timestamp(6)`), in `schema`: the tables the source reads, with their indexes and foreign keys, and the others.
pub fn solid_queue_ddl(schema: &str) -> String {
    let t = |name: &str| format!("{schema}.solid_queue_{name}");
    let exec = |name: &str, extra: &str| {
        format!(
            "CREATE TABLE {} (id bigserial PRIMARY KEY, job_id bigint NOT NULL{extra}, created_at timestamp(6) NOT NULL);
             CREATE UNIQUE INDEX index_solid_queue_{name}_on_job_id ON {} (job_id);
             ALTER TABLE {} ADD FOREIGN KEY (job_id) REFERENCES {} (id) ON DELETE CASCADE;",
            t(name),
            t(name),
            t(name),
            t("jobs")
        )
    };
    format!(
        "CREATE TABLE {jobs} (id bigserial PRIMARY KEY, queue_name varchar NOT NULL, class_name varchar NOT NULL,
           arguments text, priority integer DEFAULT 0 NOT NULL, active_job_id varchar, scheduled_at timestamp(6),
           finished_at timestamp(6), concurrency_key varchar, created_at timestamp(6) NOT NULL,
           updated_at timestamp(6) NOT NULL);
         CREATE INDEX index_solid_queue_jobs_on_active_job_id ON {jobs} (active_job_id);
         CREATE INDEX index_solid_queue_jobs_on_class_name ON {jobs} (class_name);
         CREATE INDEX index_solid_queue_jobs_on_finished_at ON {jobs} (finished_at);
         CREATE INDEX index_solid_queue_jobs_for_filtering ON {jobs} (queue_name, finished_at);
         CREATE INDEX index_solid_queue_jobs_for_alerting ON {jobs} (scheduled_at, finished_at);
         {ready}
         CREATE INDEX index_solid_queue_poll_all ON {ready_t} (priority, job_id);
         CREATE INDEX index_solid_queue_poll_by_queue ON {ready_t} (queue_name, priority, job_id);
         {scheduled}
         CREATE INDEX index_solid_queue_dispatch_all ON {scheduled_t} (scheduled_at, priority, job_id);
         {claimed}
         CREATE INDEX index_solid_queue_claimed_executions_on_process_id_and_job_id ON {claimed_t} (process_id, job_id);
         {blocked}
         CREATE INDEX index_solid_queue_blocked_executions_for_release ON {blocked_t} (concurrency_key, priority, job_id);
         CREATE INDEX index_solid_queue_blocked_executions_for_maintenance ON {blocked_t} (expires_at, concurrency_key);
         {failed}
         {recurring}
         CREATE UNIQUE INDEX index_solid_queue_recurring_executions_on_task_key_and_run_at
           ON {recurring_t} (task_key, run_at);
         CREATE TABLE {processes} (id bigserial PRIMARY KEY, kind varchar NOT NULL, last_heartbeat_at timestamp(6) NOT NULL,
           supervisor_id bigint, pid integer NOT NULL, hostname varchar, metadata text, created_at timestamp(6) NOT NULL,
           name varchar NOT NULL);
         CREATE INDEX index_solid_queue_processes_on_last_heartbeat_at ON {processes} (last_heartbeat_at);
         CREATE UNIQUE INDEX index_solid_queue_processes_on_name_and_supervisor_id ON {processes} (name, supervisor_id);
         CREATE INDEX index_solid_queue_processes_on_supervisor_id ON {processes} (supervisor_id);
         CREATE TABLE {pauses} (id bigserial PRIMARY KEY, queue_name varchar NOT NULL, created_at timestamp(6) NOT NULL);
         CREATE UNIQUE INDEX index_solid_queue_pauses_on_queue_name ON {pauses} (queue_name);
         CREATE TABLE {semaphores} (id bigserial PRIMARY KEY, key varchar NOT NULL, value integer DEFAULT 1 NOT NULL,
           expires_at timestamp(6) NOT NULL, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
         CREATE UNIQUE INDEX index_solid_queue_semaphores_on_key ON {semaphores} (key);",
        jobs = t("jobs"),
        ready = exec("ready_executions", ", queue_name varchar NOT NULL, priority integer DEFAULT 0 NOT NULL"),
        ready_t = t("ready_executions"),
        scheduled = exec(
            "scheduled_executions",
            ", queue_name varchar NOT NULL, priority integer DEFAULT 0 NOT NULL, scheduled_at timestamp(6) NOT NULL"
        ),
        scheduled_t = t("scheduled_executions"),
        claimed = exec("claimed_executions", ", process_id bigint"),
        claimed_t = t("claimed_executions"),
        blocked = exec(
            "blocked_executions",
            ", queue_name varchar NOT NULL, priority integer DEFAULT 0 NOT NULL, concurrency_key varchar NOT NULL, \
               expires_at timestamp(6) NOT NULL"
        ),
        blocked_t = t("blocked_executions"),
        failed = exec("failed_executions", ", error text"),
        recurring = exec("recurring_executions", ", task_key varchar NOT NULL, run_at timestamp(6) NOT NULL"),
        recurring_t = t("recurring_executions"),
        processes = t("processes"),
        pauses = t("pauses"),
        semaphores = t("semaphores"),
    )
}
