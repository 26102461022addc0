//! The Lambda side: the three handlers (`provision`, `rotation`, `sweep`), the bootstrap every function binary runs, the
//! runtime's deadline, and the one mapping from errors to the runtime's `Diagnostic`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::{info, warn};

use crate::config::Config;
use crate::deps::{Deps, RotationStarter};
use crate::error::VendError;
use crate::input::sweep::SweepInput;
use crate::ops;

/// The whole `main` of a function binary: `orkv_vending::function_main!(provision);` (or
/// `rotation`, `sweep`: the handler it serves, so each binary links only its own). A binary
/// built with its `local-rotation` feature starts rotations through the local driver when
/// `ORKV_LOCAL_ROTATION_INVOKE_URL` is set; without it (every release package) it refuses that
/// variable. (The feature is the calling crate's: a macro's `cfg` is read where it expands.)
#[macro_export]
macro_rules! function_main {
    ($handler:ident) => {
        #[cfg(feature = "local-rotation")]
        const STARTER: $crate::lambda::StarterFactory = orkv_local_rotation::starter;
        #[cfg(not(feature = "local-rotation"))]
        const STARTER: $crate::lambda::StarterFactory = $crate::deps::production_starter;

        #[tokio::main]
        async fn main() -> Result<(), lambda_runtime::Error> {
            $crate::lambda::serve(STARTER, $crate::lambda::$handler).await
        }
    };
}

/// Builds the rotation starter from the configuration: [`crate::deps::production_starter`]
/// in a release build; the local driver's in a build with the `local-rotation` feature.
/// Given the AWS configuration (`None` when only the configuration is checked), so the
/// production starter can invoke the rotation function to resume an unfinished rotation.
pub type StarterFactory =
    fn(&Config, Option<&aws_types::SdkConfig>) -> Result<Arc<dyn RotationStarter>, VendError>;

impl From<VendError> for Diagnostic {
    fn from(e: VendError) -> Self {
        Self {
            error_type: e.kind().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The bootstrap of every function binary: configuration (checked, and only checked with
/// `--check-config`), one Secrets Manager client (and an EventBridge client when
/// `ORKV_EVENT_BUS` is set, sharing its HTTP client), then the runtime loop.
///
/// # Errors
/// A configuration error names the variable; runtime errors end the process.
pub async fn serve<H>(starter: StarterFactory, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: AsyncFn(&Deps, LambdaEvent<Value>) -> Result<Value, Diagnostic>,
{
    lambda_runtime::tracing::init_default_subscriber();
    exit_on_shutdown_signal();
    let cfg = Config::from_env()?;
    starter(&cfg, None)?;
    if std::env::args().nth(1).as_deref() == Some("--check-config") {
        // Operators and the infrastructure test: is this environment a valid configuration?
        println!("configuration ok");
        return Ok(());
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let starter = starter(&cfg, Some(&aws))?;
    let store = orkv_store::SecretStore::from_shared_config(&aws);
    let events = cfg
        .event_bus
        .as_deref()
        .map(|bus| orkv_events::EventBus::from_shared_config(&aws, bus, &cfg.event_source));
    let mut deps = Deps::new(cfg, store).with_starter(starter);
    if let Some(bus) = events {
        deps = deps.with_events(bus);
    }
    let (deps, handler) = (&deps, &handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handler(deps, event)
    }))
    .await
}

/// The provision function: EventBridge `OpenRouter Key Requested` (and the on-demand actions),
/// or a pipeline's direct invocation.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn provision(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let deadline = lambda_deadline(event.context.deadline);
    let arn = event.context.invoked_function_arn;
    answer(
        "provision",
        Box::pin(provision_reply(deps, event.payload, &arn, deadline)).await,
    )
}

/// The rotation function: one of Secrets Manager's four steps.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn rotation(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let deadline = lambda_deadline(event.context.deadline);
    answer(
        "rotation",
        Box::pin(rotation_reply(deps, &event.payload, deadline)).await,
    )
}

/// The sweep function, run by the schedule.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn sweep(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let deadline = lambda_deadline(event.context.deadline);
    answer(
        "sweep",
        Box::pin(sweep_reply(deps, &event.payload, deadline)).await,
    )
}

/// The one way an outcome leaves a function: the reply, or the error logged and mapped.
fn answer(function: &str, result: Result<Value, VendError>) -> Result<Value, Diagnostic> {
    result.map_err(|e| {
        warn!(error_type = e.kind(), error = %e, function, "invocation failed");
        Diagnostic::from(e)
    })
}

async fn provision_reply(
    deps: &Deps,
    payload: Value,
    invoked_function_arn: &str,
    deadline: Instant,
) -> Result<Value, VendError> {
    let reply = ops::handle_invocation(deps, payload, invoked_function_arn, deadline).await?;
    let field = |name: &str| {
        reply
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    info!(
        status = field("status"),
        secret = field("secret_name"),
        key_hash = field("key_hash"),
        "request handled"
    );
    Ok(reply)
}

async fn rotation_reply(
    deps: &Deps,
    payload: &Value,
    deadline: Instant,
) -> Result<Value, VendError> {
    let result = ops::rotation_step(deps, payload, deadline).await;
    if let Some(line) = rotation_emf(&result, deps.clock().now()) {
        println!("{line}");
    }
    let reply = result?;
    serde_json::to_value(&reply).map_err(|e| VendError::ReplyEncoding(e.to_string()))
}

/// The rotate function's metric line (Embedded Metric Format, the sweep's namespace, dimension
/// `Function=rotate`): `RotationsCompleted` when `finishSecret` made a successor current,
/// `RotationStepFailures` when a step failed (Secrets Manager retries it).
fn rotation_emf(
    result: &Result<ops::rotate::StepReply, VendError>,
    at: time::OffsetDateTime,
) -> Option<Value> {
    use crate::input::rotation::Step;
    use ops::rotate::StepOutcome;
    let metric = match result {
        Ok(r) if r.step == Step::FinishSecret && r.outcome == StepOutcome::Done => {
            "RotationsCompleted"
        }
        Ok(_) => return None,
        Err(_) => "RotationStepFailures",
    };
    Some(serde_json::json!({
        "_aws": {
            "Timestamp": at.unix_timestamp() * 1000,
            "CloudWatchMetrics": [{
                "Namespace": ops::sweep::report::METRIC_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        "Function": "rotate",
        metric: 1,
    }))
}

async fn sweep_reply(deps: &Deps, payload: &Value, deadline: Instant) -> Result<Value, VendError> {
    let input = SweepInput::parse(payload)?;
    let report = ops::sweep(deps, &input, deadline).await?;
    let now = deps.clock().now();
    println!("{}", report.emf(now));
    for w in &report.spend {
        println!("{}", w.emf(now));
    }
    serde_json::to_value(&report).map_err(|e| VendError::ReplyEncoding(e.to_string()))
}

/// Converts the runtime's deadline (epoch milliseconds) to an `Instant`.
#[must_use]
pub fn lambda_deadline(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = deadline_ms.saturating_sub(now_ms);
    // Local runtimes may send no deadline: allow a minute.
    let left = if left == 0 || left > 15 * 60 * 1000 {
        60_000
    } else {
        left
    };
    Instant::now() + Duration::from_millis(left)
}

/// Exits cleanly (status 0) on SIGTERM or SIGINT. Lambda sends SIGTERM only in its Shutdown
/// phase, when no invocation runs; locally (`cargo lambda watch`, containers) it can arrive at
/// any time, and every operation is built to be finished by its retry after a crash at any
/// point (tested with SIGKILL), so exiting at once is safe. Call from inside the runtime.
pub fn exit_on_shutdown_signal() {
    #[cfg(unix)]
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        std::process::exit(0);
    });
}
