//! A Redis connection that is replaced when it stops answering.
//!
//! redis-rs' `ConnectionManager` reconnects when its connection is dropped or refused, but not when a command
//! times out (redis-rs/redis-rs#1032): a connection held half-open (a partition, a middlebox keeping the socket
//! without a reset) keeps timing out for good, while a new one would work. [`Conn`] hands out the current
//! manager and replaces it with a new, lazily connecting one as soon as a command through it times out, so the
//! next command connects afresh.

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A self-replacing Redis connection; clones share it (and its replacement).
#[derive(Clone)]
pub struct Conn {
    current: Arc<Mutex<ConnectionManager>>,
    client: redis::Client,
    config: ConnectionManagerConfig,
    name: &'static str,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Conn {
    pub(crate) fn new(
        name: &'static str,
        client: redis::Client,
        config: ConnectionManagerConfig,
    ) -> redis::RedisResult<Self> {
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self { current: Arc::new(Mutex::new(manager)), client, config, name })
    }

    fn manager(&self) -> ConnectionManager {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After `error` on a command: a timeout replaces the connection (the next command connects anew).
    fn after(&self, error: &redis::RedisError) {
        if !error.is_timeout() {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => {
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                tracing::warn!(source = self.name, "Redis did not answer in time: the connection is replaced");
            }
            Err(e) => tracing::warn!(source = self.name, error = %e, "cannot replace the Redis connection"),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut manager = self.manager();
            let answer = manager.req_packed_command(cmd).await;
            if let Err(e) = &answer {
                self.after(e);
            }
            answer
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut manager = self.manager();
            let answer = manager.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &answer {
                self.after(e);
            }
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.manager().get_db()
    }
}
