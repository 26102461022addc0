//! The chaos: faults at both services and process kills, paced by the workload's progress (one
//! OpenRouter fault every few operations, the kills spread evenly over the operations, so a
//! slow run is not simply drowned in faults), and the workload of concurrent clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use super::Soak;
use super::client::{call, provision_payload, secret_name};
use super::pool::Pool;

/// The OpenRouter faults injected in turn.
fn faults() -> [serde_json::Value; 6] {
    [
        json!({"op": "*", "action": "rate_limit", "retry_after": 0.05, "times": 1}),
        json!({"op": "*", "action": "status", "status": 503, "times": 1}),
        json!({"op": "*", "action": "delay", "ms": 150, "times": 1}),
        json!({"op": "create_key", "action": "drop_after_commit", "times": 1}),
        json!({"op": "*", "action": "status", "status": 502, "times": 1}),
        json!({"op": "create_key", "action": "error_after_commit", "times": 1}),
    ]
}

impl Soak {
    /// Turns the faults on, runs the workload to its end under the chaos, and stops the chaos.
    pub(super) async fn chaos_and_workload(&self) {
        self.proxy
            .set_faults(self.cfg.throttle_per_mille, self.cfg.reset_per_mille);
        let stop = Arc::new(AtomicBool::new(false));
        let done_ops = Arc::new(AtomicU64::new(0));
        let next_op = Arc::new(AtomicU64::new(0));
        let chaos = self.spawn_chaos(stop.clone(), done_ops.clone());
        let monitor = self.spawn_monitor(stop.clone(), next_op.clone());
        let observer = self.spawn_observer(stop.clone());
        let workers: Vec<JoinHandle<()>> = (0..self.cfg.concurrency)
            .map(|_| self.spawn_worker(next_op.clone(), done_ops.clone()))
            .collect();
        for w in workers {
            let _ = w.await;
        }
        stop.store(true, Ordering::SeqCst);
        let _ = chaos.await;
        let _ = observer.await;
        monitor.abort();
    }

    fn spawn_chaos(&self, stop: Arc<AtomicBool>, done_ops: Arc<AtomicU64>) -> JoinHandle<()> {
        let (kills, or_faults) = (self.kills.clone(), self.or_faults.clone());
        let (provision, rotate, sweep) = (
            self.provision.clone(),
            self.rotate.clone(),
            self.sweep.clone(),
        );
        let control = self.control.clone();
        let target_kills = self.cfg.kills as u64;
        let ops = self.cfg.operations as u64;
        tokio::spawn(async move {
            let faults = faults();
            let mut i: usize = 0;
            let mut faults_at = 0;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let done = done_ops.load(Ordering::SeqCst);
                if done >= faults_at {
                    control.fault(faults[i % faults.len()].clone()).await;
                    or_faults.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    faults_at = done + 3;
                }
                let k = kills.load(Ordering::SeqCst);
                if k < target_kills && done * target_kills >= k * ops {
                    match rand::random_range(0..10) {
                        0..=5 => provision.kill_one(rand::random_range(0..8)).await,
                        6..=8 => rotate.kill_one(rand::random_range(0..8)).await,
                        _ => sweep.kill_one(0).await,
                    }
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    }

    /// Progress every 5 s (and, with `ORKV_SOAK_DUMP`, the logs so far each minute).
    fn spawn_monitor(&self, stop: Arc<AtomicBool>, next_op: Arc<AtomicU64>) -> JoinHandle<()> {
        let (counters, kills) = (self.counters.clone(), self.kills.clone());
        let pools = [
            self.provision.clone(),
            self.rotate.clone(),
            self.sweep.clone(),
        ];
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut ticks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ticks += 1;
                if let Ok(dir) = std::env::var("ORKV_SOAK_DUMP")
                    && ticks.is_multiple_of(12)
                {
                    for (n, pool) in pools.iter().enumerate() {
                        let _ =
                            std::fs::write(format!("{dir}/pool{n}.log"), pool.all_output().await);
                    }
                }
                eprintln!(
                    "soak {:>5.0}s: op {} started, {} invocations ({} retries), {} served, {} kills",
                    t0.elapsed().as_secs_f64(),
                    next_op.load(Ordering::SeqCst),
                    counters.invocations.load(Ordering::Relaxed),
                    counters.retried.load(Ordering::Relaxed),
                    counters.served.load(Ordering::Relaxed),
                    kills.load(Ordering::SeqCst)
                );
            }
        })
    }

    /// One client: takes operation numbers until the workload is done.
    fn spawn_worker(&self, next_op: Arc<AtomicU64>, done_ops: Arc<AtomicU64>) -> JoinHandle<()> {
        let client = Client {
            provision: self.provision.clone(),
            sweep: self.sweep.clone(),
            counters: self.counters.clone(),
            seen: self.seen.clone(),
            revoked: self.revoked.clone(),
            prefix: self.prefix.clone(),
        };
        let (total, secrets) = (self.cfg.operations as u64, self.cfg.secrets);
        tokio::spawn(async move {
            loop {
                let n = next_op.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    break;
                }
                if !client.operation(n, rand::random_range(0..secrets)).await {
                    client.counters.unfinished.fetch_add(1, Ordering::Relaxed);
                }
                done_ops.fetch_add(1, Ordering::SeqCst);
            }
        })
    }
}

/// What one worker needs.
struct Client {
    provision: Arc<Pool>,
    sweep: Arc<Pool>,
    counters: Arc<super::client::Counters>,
    seen: Arc<tokio::sync::Mutex<String>>,
    revoked: Arc<tokio::sync::Mutex<std::collections::BTreeSet<usize>>>,
    prefix: String,
}

impl Client {
    /// Operation `n` on secret `i`, drawn at random; `false` when it never got an answer.
    async fn operation(&self, n: u64, i: usize) -> bool {
        let secret = secret_name(&self.prefix, i);
        let (c, seen) = (&*self.counters, &*self.seen);
        match rand::random_range(0..100) {
            // Provision (the first request for a secret, or a repeat).
            0..=39 => {
                let p = provision_payload(&secret, 10, &format!("p-{i}"));
                call(&self.provision, p, c, seen, 60).await
            }
            // A duplicate delivery, concurrently.
            40..=54 => {
                let p = provision_payload(&secret, 10, &format!("p-{i}"));
                let (a, b) = tokio::join!(
                    call(&self.provision, p.clone(), c, seen, 60),
                    call(&self.provision, p, c, seen, 60)
                );
                a && b
            }
            // A cap update.
            55..=69 => {
                let limit = [10, 12, 15][rand::random_range(0..3)];
                let p = provision_payload(&secret, limit, &format!("u-{n}"));
                call(&self.provision, p, c, seen, 60).await
            }
            // Rotate now (a leak disables the old key at once).
            70..=84 => {
                let reason = if n.is_multiple_of(3) {
                    "leak"
                } else {
                    "manual"
                };
                let p = json!({"action": "rotate", "secret_name": secret, "reason": reason, "idempotency_id": format!("r-{n}")});
                call(&self.provision, p, c, seen, 60).await
            }
            // Revoke (one secret in ten is revoked at some point).
            85..=89 if i % 10 == 9 => {
                self.revoked.lock().await.insert(i);
                let p = json!({"action": "revoke", "secret_name": secret, "idempotency_id": format!("x-{i}")});
                call(&self.provision, p, c, seen, 60).await
            }
            // A sweep.
            _ => {
                let p = json!({"execution_id": format!("soak-{n}")});
                call(&self.sweep, p, c, seen, 10).await
            }
        }
    }
}
