//! EventBridge adapter: puts the product's result events on the configured bus. A put is
//! retried (the SDK's standard retries for throttling, 5xx and transport errors; then this
//! crate's own rounds for the entries `PutEvents` reports failed, as AWS advises), and a put
//! that still fails is returned to the caller to log: it never fails a key operation that
//! already succeeded.

use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

/// Attempts per call (the SDK's standard retry mode).
pub const MAX_ATTEMPTS: u32 = 3;
/// Rounds of re-putting an entry `PutEvents` answered as failed (throttled or internal).
pub const FAILED_ENTRY_ROUNDS: u32 = 3;
/// Time one `PutEvents` call may take, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// The largest event AWS accepts (`PutEvents`: 256 KB per entry, detail and all).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// One event: its `detail-type`, its detail (JSON) and the ARNs it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub detail_type: String,
    pub detail: serde_json::Value,
    pub resources: Vec<String>,
}

/// Why a put failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PutEvents on {bus}: {code}: {message}")]
pub struct PutError {
    pub bus: String,
    pub code: String,
    pub message: String,
}

/// The product's event bus: where result events go, under one `source`.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
    bus: String,
    source: String,
}

/// The SDK client configuration: `shared` (region, credentials, endpoint, and the one HTTP
/// client every SDK client of the function shares) plus bounded timeouts and retries.
#[must_use]
pub fn client_config(shared: &aws_types::SdkConfig) -> aws_sdk_eventbridge::config::Builder {
    use aws_sdk_eventbridge::config::retry::RetryConfig;
    use aws_sdk_eventbridge::config::timeout::TimeoutConfig;
    aws_sdk_eventbridge::config::Builder::from(shared)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(1)),
        )
}

impl EventBus {
    /// Events on `bus` (a name or an ARN) under `source`, through `client`.
    #[must_use]
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            source: source.into(),
        }
    }

    /// As [`EventBus::new`], on a client built from `shared` with [`client_config`].
    #[must_use]
    pub fn from_shared_config(
        shared: &aws_types::SdkConfig,
        bus: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Self::new(
            Client::from_conf(client_config(shared).build()),
            bus,
            source,
        )
    }

    /// The bus events go to.
    #[must_use]
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// The `source` every event carries.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Puts one event: one `PutEvents` call, repeated (up to [`FAILED_ENTRY_ROUNDS`]) only
    /// while AWS answers the entry as failed.
    ///
    /// # Errors
    /// [`PutError`] with AWS's error code once the retries are spent, or at once for an
    /// event larger than AWS accepts.
    pub async fn put(&self, event: &Event) -> Result<(), PutError> {
        let detail = event.detail.to_string();
        if detail.len() + event.detail_type.len() + self.source.len() > MAX_EVENT_BYTES {
            return Err(self.error("EventTooLarge", "the event exceeds 256 KB"));
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(&event.detail_type)
            .detail(detail)
            .set_resources(Some(event.resources.clone()))
            .build();
        let mut last = None;
        for round in 0..FAILED_ENTRY_ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100 << round)).await;
            }
            let out = match self.client.put_events().entries(entry.clone()).send().await {
                Ok(out) => out,
                Err(e) => {
                    use aws_sdk_eventbridge::error::ProvideErrorMetadata;
                    let code = e.code().unwrap_or("Transport").to_owned();
                    let message = e.message().unwrap_or("no reply").to_owned();
                    return Err(self.error(&code, &message));
                }
            };
            if out.failed_entry_count() == 0 {
                return Ok(());
            }
            let Some(failed) = out.entries().first() else {
                return Err(self.error("Failed", "PutEvents answered no entry"));
            };
            let code = failed.error_code().unwrap_or("Failed").to_owned();
            let message = failed.error_message().unwrap_or("").to_owned();
            // Only a throttled or internal failure is worth another round (AWS: "retry
            // entries that failed with ThrottlingException or InternalFailure").
            let retryable = matches!(code.as_str(), "ThrottlingException" | "InternalFailure");
            last = Some(self.error(&code, &message));
            if !retryable {
                break;
            }
        }
        Err(last.unwrap_or_else(|| self.error("Failed", "no answer")))
    }

    fn error(&self, code: &str, message: &str) -> PutError {
        PutError {
            bus: self.bus.clone(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}
