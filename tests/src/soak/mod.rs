//! The chaos soak: the real function binaries (several provision and rotate processes, a sweep)
//! under a loopback Lambda Runtime API, moto behind a fault proxy (throttling, connections cut
//! after the call), the emulator injecting 429s with `Retry-After`, 5xx, slow replies and
//! replies dropped after a create, and processes killed at random and restarted. Clients
//! retry like EventBridge does. Afterwards: faults off, one converging pass, two sweeps, and
//! the invariants, each required to be zero.

mod chaos;
mod check;
mod client;
mod observe;
mod pool;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use orkv_openrouter_emulator::{Emulator, EmulatorConfig};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::proxy::LatencyProxy;
use crate::{Control, MANAGEMENT_KEY, Moto, secrets_client, unique};

use client::{Counters, call, dangling_pending, provision_payload, secret_name};
use pool::{Pool, invoke_front};

/// How big and how hostile a run is.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Client operations (provision, duplicate, update, rotate, revoke, sweep).
    pub operations: usize,
    /// Process kills to inject (spread over the run).
    pub kills: usize,
    /// Distinct secrets the operations touch.
    pub secrets: usize,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Where the function binaries are.
    pub bin_dir: PathBuf,
    /// Fault rates at the Secrets Manager proxy, per mille.
    pub throttle_per_mille: u64,
    pub reset_per_mille: u64,
    /// Who runs a rotation's four steps.
    pub rotation: SoakRotation,
}

/// Who runs a rotation's four steps in a soak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SoakRotation {
    /// The local driver plays Secrets Manager's part (moto cannot invoke a Lambda): the
    /// functions call the rotate pool through `ORKV_LOCAL_ROTATION_INVOKE_URL`.
    #[default]
    LocalDriver,
    /// The production path: the functions (packaged, without the local driver) call
    /// `RotateSecret` naming the rotate function, and the AWS at `ORKV_MOTO_URL` (LocalStack,
    /// started by `tests/localstack/run.sh`) invokes its steps through its own Lambda API,
    /// bridged to the rotate pool (`crate::lambda_api`).
    SecretsManager,
}

/// What a run did, and the invariants (all must be zero).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakFigures {
    pub operations: u64,
    pub requests_served: u64,
    pub invocations: u64,
    pub retried_invocations: u64,
    pub definitive_refusals: u64,
    pub kills: u64,
    pub faults_secrets_manager_throttled: u64,
    pub faults_secrets_manager_cut_after_call: u64,
    pub faults_openrouter_injected: u64,
    pub seconds: f64,
    // Invariants.
    pub live_keys_without_a_referencing_secret: u64,
    /// Live keys without the guardrail the policy names, and keys a consumer read as current
    /// that never carried it (a key stored as usable before its assignment).
    pub keys_without_their_guardrail: u64,
    pub secrets_whose_current_key_does_not_work: u64,
    pub duplicate_live_keys_for_one_secret: u64,
    pub superseded_keys_live_after_grace_and_a_sweep: u64,
    pub plaintexts_outside_secrets_manager: u64,
    pub unfinished_operations: u64,
    /// Keys the last sweep reported without their guardrail beyond those that really lack it
    /// (with the 120 dead assignment rows the soak leaves ahead of every key). Must be 0.
    pub sweep_reports_of_a_missing_guardrail_that_is_there: u64,
    /// Secrets left with `AWSPENDING` on a version that is not current at the very end.
    pub rotations_left_pending: u64,
    /// Reads by the consumer (no stage, as applications read) of an active current record
    /// whose key was refused while that record stayed current. Must be 0.
    pub consumer_reads_of_a_current_record_without_a_working_key: u64,
    /// Live keys of a secret whose revoke was answered `revoked`. Must be 0.
    pub keys_live_after_a_revoke_answered: u64,
    /// Live keys without a limit, or with one above the tenant's `max_limit` for their
    /// workspace (issue 29: every limit the product sets is checked against the policy).
    pub live_keys_above_the_tenants_max_limit: u64,
    /// Active secrets whose live keys may together spend more than the record's cap
    /// (OpenRouter's `limit_remaining`, summed over every live generation: ADR 0010).
    pub secrets_whose_live_keys_may_spend_past_their_cap: u64,
    /// Reads the consumer made during the chaos.
    pub consumer_reads: u64,
    /// The longest time one rotation held `AWSPENDING` on a version that was not current.
    pub longest_seconds_a_rotation_held_awspending: f64,
    /// Figures, not invariants: rotations a driver had given up on (its retries spent under
    /// the faults) that a request resumed and finished after the chaos, as Secrets Manager's
    /// own retries would.
    pub rotations_resumed_after_the_chaos: u64,
    /// What each violation was (the first few), for the one who has to fix it.
    pub details: Vec<String>,
}

impl SoakFigures {
    /// Sum of the invariants that must be zero.
    #[must_use]
    pub fn violations(&self) -> u64 {
        self.live_keys_without_a_referencing_secret
            + self.keys_without_their_guardrail
            + self.sweep_reports_of_a_missing_guardrail_that_is_there
            + self.secrets_whose_current_key_does_not_work
            + self.duplicate_live_keys_for_one_secret
            + self.superseded_keys_live_after_grace_and_a_sweep
            + self.plaintexts_outside_secrets_manager
            + self.unfinished_operations
            + self.rotations_left_pending
            + self.consumer_reads_of_a_current_record_without_a_working_key
            + self.keys_live_after_a_revoke_answered
            + self.live_keys_above_the_tenants_max_limit
            + self.secrets_whose_live_keys_may_spend_past_their_cap
    }
}

/// Everything one run shares: the stand-ins, the pools, and what the clients saw.
struct Soak {
    cfg: SoakConfig,
    moto: Moto,
    proxy: LatencyProxy,
    /// The consumer's way in: the strict layer without faults.
    _consumer_proxy: LatencyProxy,
    consumer: aws_sdk_secretsmanager::Client,
    observations: Arc<observe::Observations>,
    emulator: Emulator,
    control: Control,
    sm: aws_sdk_secretsmanager::Client,
    provision: Arc<Pool>,
    rotate: Arc<Pool>,
    sweep: Arc<Pool>,
    /// How the provision and sweep functions start a rotation (their environment).
    starter_env: Vec<(&'static str, String)>,
    prefix: String,
    counters: Arc<Counters>,
    seen: Arc<Mutex<String>>,
    revoked: Arc<Mutex<BTreeSet<usize>>>,
    kills: Arc<AtomicU64>,
    or_faults: Arc<AtomicU64>,
    /// The guardrail every key in the checkout workspace must carry.
    guardrail: String,
}

/// Runs the soak and checks the invariants.
///
/// # Panics
/// When moto or the binaries cannot be started.
pub async fn run(cfg: &SoakConfig) -> SoakFigures {
    let started = Instant::now();
    let soak = Soak::start(cfg.clone()).await;
    soak.seed().await;
    soak.chaos_and_workload().await;
    let (mut unfinished, resumed) = soak.converge().await;
    let final_sweep = soak.final_sweeps(&mut unfinished).await;
    let mut figures = soak.check(unfinished, resumed, &final_sweep).await;
    figures.seconds = started.elapsed().as_secs_f64();
    soak.dump_logs(&final_sweep).await;
    drop(soak.moto);
    figures
}

impl Soak {
    /// moto behind the fault proxy, the emulator, the management key secret, the pools.
    async fn start(cfg: SoakConfig) -> Self {
        let moto = Moto::start().await;
        let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
        // Every function call meets AWS's behaviour where moto's differs (`crate::strict`).
        proxy.set_strict(true);
        let consumer_proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
        consumer_proxy.set_strict(true);
        let (consumer, _) = crate::secrets_client_at(&consumer_proxy.url).await;
        let emulator = Emulator::start(EmulatorConfig {
            management_key: MANAGEMENT_KEY.to_owned(),
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator");
        let control = Control::new(&emulator);
        let (sm, _) = secrets_client(&moto).await;
        let _ = sm
            .create_secret()
            .name(crate::MANAGEMENT_KEY_SECRET)
            .secret_string(json!({ "management_key": MANAGEMENT_KEY }).to_string())
            .send()
            .await;
        let guardrail = control
            .create_guardrail(crate::CHECKOUT_WORKSPACE_ID, 1_000_000.0)
            .await;
        // OpenRouter keeps the assignment rows of deleted keys (CONTRACT.md): more of them
        // than a page lie ahead of every key the soak makes.
        control
            .leave_dead_assignment_rows(&guardrail, crate::CHECKOUT_WORKSPACE_ID, 120)
            .await;
        let policy = crate::guarded_policy(&guardrail);
        let base_env = |sm: &str, emu: &str, mut extra: Vec<(&'static str, String)>| {
            extra.push(("ORKV_POLICY", policy.clone()));
            base_env(sm, emu, extra)
        };
        let env = base_env(&proxy.url, &emulator.url(), vec![]);
        let rotate = Pool::start(cfg.bin_dir.join("rotate"), 2, env).await;
        let invoke_url = invoke_front(rotate.clone()).await;
        let starter_env = match cfg.rotation {
            SoakRotation::LocalDriver => vec![("ORKV_LOCAL_ROTATION_INVOKE_URL", invoke_url)],
            SoakRotation::SecretsManager => {
                let bridge = invoke_url
                    .split("/2015-03-31/")
                    .next()
                    .unwrap_or(&invoke_url)
                    .to_owned();
                let arn = crate::lambda_api::bridge_rotate_function(&moto.url, &bridge).await;
                // The sweep signs as its role too: its RotateSecret is its own call here (the
                // local driver's calls are Secrets Manager's work, so it signs as none).
                vec![("ORKV_ROTATION_LAMBDA_ARN", arn)]
            }
        };
        let provision = Pool::start(
            cfg.bin_dir.join("provision"),
            3,
            base_env(&proxy.url, &emulator.url(), starter_env.clone()),
        )
        .await;
        let sweep = Pool::start(
            cfg.bin_dir.join("sweep"),
            1,
            base_env(
                &proxy.url,
                &emulator.url(),
                sweep_env(cfg.rotation, &starter_env),
            ),
        )
        .await;
        Self {
            cfg,
            moto,
            proxy,
            _consumer_proxy: consumer_proxy,
            consumer,
            observations: Arc::default(),
            emulator,
            control,
            sm,
            provision,
            rotate,
            sweep,
            starter_env,
            prefix: unique("soak"),
            guardrail,
            counters: Arc::new(Counters::default()),
            seen: Arc::new(Mutex::new(String::new())),
            revoked: Arc::default(),
            kills: Arc::new(AtomicU64::new(0)),
            or_faults: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Every secret exists with rotation enabled before the chaos starts, as Terraform and a
    /// first provisioning would leave them. (On moto, enabling rotation is the local driver's
    /// two-step workaround, a rules-only RotateSecret and a label move back, which is not
    /// atomic; in AWS it is part of RotateSecret. It is not what the soak is about.)
    async fn seed(&self) {
        let driver = orkv_vending::Deps::new(
            crate::world::config(&format!("{}/api/v1", self.emulator.url()), &[]),
            orkv_store::SecretStore::new(self.sm.clone()),
        );
        for i in 0..self.cfg.secrets {
            let secret = secret_name(&self.prefix, i);
            let payload = provision_payload(&secret, 10, &format!("p-{i}"));
            if call(&self.provision, payload, &self.counters, &self.seen, 60).await
                && self.cfg.rotation == SoakRotation::LocalDriver
            {
                let _ = orkv_local_rotation::enable_rotation(&driver, &secret).await;
            }
        }
    }

    /// Faults off, every secret provisioned (or revoked) once more, and the rotations whose
    /// driver gave up (`AWSPENDING` left on a version that is not current) resumed by a rotate
    /// request, as Secrets Manager's own retries would. Answers (failures, resumed).
    async fn converge(&self) -> (u64, u64) {
        self.proxy.set_faults(0, 0);
        reqwest::Client::new()
            .delete(format!("{}/_emulator/faults", self.emulator.url()))
            .send()
            .await
            .expect("clear faults");
        let revoked = self.revoked.lock().await.clone();
        let mut failures = 0;
        for i in 0..self.cfg.secrets {
            let secret = secret_name(&self.prefix, i);
            let payload = if revoked.contains(&i) {
                json!({"action": "revoke", "secret_name": secret, "idempotency_id": format!("x-{i}")})
            } else {
                provision_payload(&secret, 10, &format!("final-{i}"))
            };
            if !call(&self.provision, payload, &self.counters, &self.seen, 60).await {
                failures += 1;
            }
        }
        let mut resumed = 0;
        for i in (0..self.cfg.secrets).filter(|i| !revoked.contains(i)) {
            let secret = secret_name(&self.prefix, i);
            if !dangling_pending(&self.sm, &secret).await {
                continue;
            }
            resumed += 1;
            if !self.resume(i, &secret).await {
                failures += 1;
            }
        }
        (failures, resumed)
    }

    /// Resumes the rotation a driver gave up on. Under the local driver, a rotate request does
    /// it (the driver finishes the pending token first). Under the production path nothing in
    /// the product may: AWS refuses `RotateSecret` while the rotation is pending, and Secrets
    /// Manager itself retries the rotation, which LocalStack does not; its `RotateSecret`
    /// with no token re-runs the pending rotation's four steps under that rotation's own
    /// token, which is that retry (LOCALSTACK.md), so the soak calls it directly.
    async fn resume(&self, i: usize, secret: &str) -> bool {
        match self.cfg.rotation {
            SoakRotation::LocalDriver => {
                let payload = json!({"action": "rotate", "secret_name": secret, "reason": "manual",
                    "idempotency_id": format!("resume-{i}")});
                call(&self.provision, payload, &self.counters, &self.seen, 60).await
            }
            SoakRotation::SecretsManager => {
                let retried = self.sm.rotate_secret().secret_id(secret).send().await;
                retried.is_ok() && !dangling_pending(&self.sm, secret).await
            }
        }
    }

    /// The final sweeps: every operation has ended, so no step is in flight and the orphan
    /// minimum age (which spares keys a running step may still store; 120 s during the chaos,
    /// 900 s in production) has nothing left to protect. They run as a sweep process started
    /// with it at 0, as the sweep that runs once that age has passed would.
    async fn final_sweeps(&self, failures: &mut u64) -> Arc<Pool> {
        let final_sweep = Pool::start(
            self.cfg.bin_dir.join("sweep"),
            1,
            base_env(&self.proxy.url, &self.emulator.url(), {
                let mut env = sweep_env(self.cfg.rotation, &self.starter_env);
                env.push(("ORKV_ORPHAN_MIN_AGE_SECONDS", "0".into()));
                env
            }),
        )
        .await;
        for run in 0..2 {
            let payload = json!({"execution_id": format!("final-{run}")});
            if !call(&final_sweep, payload, &self.counters, &self.seen, 10).await {
                *failures += 1;
            }
        }
        final_sweep
    }

    /// With `ORKV_SOAK_DUMP=dir`: every process's log.
    async fn dump_logs(&self, final_sweep: &Pool) {
        let Ok(dir) = std::env::var("ORKV_SOAK_DUMP") else {
            return;
        };
        let pools: [&Pool; 4] = [&self.provision, &self.rotate, &self.sweep, final_sweep];
        for (n, pool) in pools.iter().enumerate() {
            let _ = std::fs::write(format!("{dir}/pool{n}.log"), pool.all_output().await);
        }
    }
}

/// The sweep's environment for `rotation`: how it starts rotations, and under the production
/// path its role's access key (`crate::iam`), since its `RotateSecret` is then its own call.
fn sweep_env(
    rotation: SoakRotation,
    starter_env: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = starter_env.to_vec();
    if rotation == SoakRotation::SecretsManager {
        env.push((
            "AWS_ACCESS_KEY_ID",
            format!("{}sweep", crate::iam::ROLE_KEY_PREFIX),
        ));
    }
    env
}

/// The functions' environment: moto through the proxy, the management key from its secret,
/// no grace, timeouts and a lease as production sets them relative to a 10 s function.
fn base_env(
    sm_url: &str,
    emulator_url: &str,
    extra: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("ORKV_RETIRE_GRACE_SECONDS", "0".into()),
        // Longer than any invocation, as in production (900 s by default): a key minted a
        // moment ago may belong to a step still running.
        ("ORKV_ORPHAN_MIN_AGE_SECONDS", "120".into()),
        ("ORKV_HTTP_TIMEOUT_MS", "3000".into()),
        // Must exceed the function timeout (10 s here), as the README requires: a lease
        // that ends while its owner still runs lets a second writer in.
        ("ORKV_PENDING_LEASE_SECONDS", "12".into()),
        ("RUST_LOG", "debug".into()),
    ];
    env.extend(extra);
    crate::world::deployed_env(sm_url, emulator_url, env)
}
