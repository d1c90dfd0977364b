//! The node's command connection to Redis, behind a circuit breaker.
//!
//! While Redis is reachable, commands go over one multiplexed connection with
//! a timeout each. The first I/O failure or timeout opens the breaker: every
//! call then fails at once with `Unavailable` (no caller waits on a dead
//! server), the failure is logged once, and one reconnect loop retries with
//! backoff. When a connection succeeds the breaker closes, the change is
//! logged once, and the owner is told so it can re-subscribe and
//! re-register what it holds.

use crate::broker::api::BrokerError;
use redis::aio::MultiplexedConnection;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub struct Link {
    client: redis::Client,
    conn: RwLock<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// Why and since when the breaker is open.
    down: Mutex<Option<(Instant, String)>>,
    /// Wakes the reconnect loop.
    broken: Notify,
    /// Told once per reconnection.
    pub restored: Notify,
    timeout: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Link {
    pub fn new(client: redis::Client, timeout: Duration) -> Link {
        Link {
            client,
            conn: RwLock::new(None),
            up: AtomicBool::new(false),
            down: Mutex::new(Some((Instant::now(), "not connected yet".into()))),
            broken: Notify::new(),
            restored: Notify::new(),
            timeout,
        }
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// `ok`, or why Redis is considered down and for how long.
    pub fn state(&self) -> String {
        match &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            None => "ok".into(),
            Some((since, why)) => format!(
                "redis unavailable for {:.1} s: {why}",
                since.elapsed().as_secs_f64()
            ),
        }
    }

    /// Run one operation on the connection, with the timeout and the breaker.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, BrokerError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = if self.is_up() {
            self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
        } else {
            None
        };
        let Some(conn) = conn else {
            return Err(BrokerError::Unavailable(self.state()));
        };
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_connection_error(&e) => {
                self.trip(&e.to_string());
                Err(BrokerError::Unavailable(e.to_string()))
            }
            Ok(Err(e)) => Err(BrokerError::Unavailable(format!("redis error: {e}"))),
            Err(_) => {
                let why = format!("no answer within {} ms", self.timeout.as_millis());
                self.trip(&why);
                Err(BrokerError::Unavailable(why))
            }
        }
    }

    /// Run a Lua script (EVALSHA, falling back to EVAL after a Redis restart
    /// flushed the script cache) through [`call`](Self::call).
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> Result<T, BrokerError> {
        self.call(|mut c| async move {
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            invocation.invoke_async(&mut c).await
        })
        .await
    }

    /// Open the breaker (logged only on the transition).
    pub fn trip(&self, why: &str) {
        if self.up.swap(false, Relaxed) {
            tracing::error!(error = %why, "Redis connection lost: failing fast until it returns");
            *self.down.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), why.to_string()));
            *self.conn.write().unwrap_or_else(|e| e.into_inner()) = None;
            self.broken.notify_one();
        }
    }

    /// Connect, and reconnect after every trip, until dropped.
    pub async fn keep_connected(&self) {
        let mut backoff = Duration::from_millis(50);
        let mut logged_retry = false;
        loop {
            if self.is_up() {
                self.broken.notified().await;
                backoff = Duration::from_millis(50);
                logged_retry = false;
                continue;
            }
            let attempt = async {
                let mut conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&self.connection_config())
                    .await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
                Ok::<_, redis::RedisError>(conn)
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(conn)) => {
                    *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
                    *self.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.up.store(true, Relaxed);
                    tracing::info!("Redis connection established");
                    self.restored.notify_waiters();
                }
                Ok(Err(e)) => {
                    if !logged_retry {
                        tracing::warn!(error = %e, "Redis unreachable: retrying with backoff");
                        logged_retry = true;
                    }
                    self.note_down(&e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(_) => {
                    self.note_down("connect timed out");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Timeouts are this link's own (`--redis-timeout`, applied by
    /// [`call`](Self::call)): redis-rs would otherwise fail any reply slower
    /// than its 500 ms default, which opened the breaker (and interrupted
    /// every answer the node was writing) whenever a busy moment delayed
    /// Redis or this process for half a second.
    fn connection_config(&self) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.timeout))
    }

    fn note_down(&self, why: &str) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let since = down.as_ref().map_or_else(Instant::now, |(t, _)| *t);
        *down = Some((since, why.to_string()));
    }
}

/// Script arguments, each encoded as Redis encodes it.
macro_rules! args {
    ($($a:expr),* $(,)?) => {{
        let mut v: Vec<Vec<u8>> = Vec::new();
        $( v.extend(redis::ToRedisArgs::to_redis_args(&$a)); )*
        v
    }};
}
pub(crate) use args;

/// Errors that mean the connection (not the command) failed.
pub fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}
