//! The provision function's errors, each with a stable `kind()` that becomes the Lambda
//! `errorType`. No variant ever holds a key's plaintext.

use orkv_openrouter::Error as OpenRouterError;
use orkv_store::StoreError;

/// Why a provision request failed.
#[derive(Debug, thiserror::Error)]
pub enum VendError {
    #[error("invalid request: field `{field}`: {rule}")]
    Invalid { field: String, rule: String },
    #[error("invalid request: field `workspace`: {workspace:?} is not a known workspace")]
    UnknownWorkspace { workspace: String },
    #[error("policy violation: field `{field}`: {rule}")]
    Policy { field: String, rule: String },
    #[error(
        "unsupported event: field `detail-type`: {detail_type:?} is not one this function handles (expected \"OpenRouter Key Requested\", \"OpenRouter Key Rotation Requested\" or \"OpenRouter Key Revocation Requested\")"
    )]
    UnsupportedEvent { detail_type: String },
    #[error(
        "field `{field}` cannot change in place for secret {secret_arn} (key {key_hash}, workspace {workspace_id}, expires {expires_at}): it is fixed when the key is created; rotate the key to change it"
    )]
    ImmutableField {
        field: &'static str,
        secret_arn: String,
        key_hash: String,
        workspace_id: String,
        expires_at: String,
    },
    #[error(
        "secret {secret_name} exists but is not managed by openrouter-key-vending; refusing to touch it"
    )]
    NotManaged { secret_name: String },
    #[error("secret {secret_name} holds a record this version cannot read: {reason}")]
    CorruptRecord { secret_name: String, reason: String },
    #[error("another invocation is provisioning secret {secret_name}; retry later")]
    InProgress { secret_name: String },
    #[error(
        "rotation of secret {secret_name} is in progress (another version holds AWSPENDING); retry later"
    )]
    RotationInProgress { secret_name: String },
    #[error("secret {secret_name}: rotation is not enabled on it; refusing the rotation step")]
    RotationDisabled { secret_name: String },
    #[error("invalid rotation event: field `{field}`: {rule}")]
    InvalidRotation { field: &'static str, rule: String },
    #[error(
        "secret {secret_name}: field `ClientRequestToken`: {token} is not a version of the secret"
    )]
    UnknownToken { secret_name: String, token: String },
    #[error(
        "secret {secret_name}: field `ClientRequestToken`: version {token} is not AWSPENDING; refusing the rotation step"
    )]
    NotPending { secret_name: String, token: String },
    #[error(
        "secret {secret_name}: its keys were revoked; delete the secret or use another secret_name to vend a new key"
    )]
    Revoked { secret_name: String },
    #[error("secret {secret_name} does not exist")]
    SecretNotFound { secret_name: String },
    #[error("secret {secret_name}: the pending key failed its test: {check}")]
    RotationTestFailed { secret_name: String, check: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    OpenRouter(#[from] OpenRouterError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VendError {
    /// The stable name, used as the Lambda `errorType`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "InvalidRequest",
            Self::UnknownWorkspace { .. } => "UnknownWorkspace",
            Self::Policy { .. } => "PolicyViolation",
            Self::UnsupportedEvent { .. } => "UnsupportedEvent",
            Self::ImmutableField { .. } => "ImmutableFieldChanged",
            Self::NotManaged { .. } => "SecretNotManaged",
            Self::CorruptRecord { .. } => "CorruptSecretRecord",
            Self::InProgress { .. } => "ProvisionInProgress",
            Self::RotationInProgress { .. } => "RotationInProgress",
            Self::RotationDisabled { .. } => "RotationDisabled",
            Self::InvalidRotation { .. } => "InvalidRotationEvent",
            Self::UnknownToken { .. } => "UnknownRotationToken",
            Self::NotPending { .. } => "VersionNotPending",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::Revoked { .. } => "SecretRevoked",
            Self::RotationTestFailed { .. } => "RotationTestFailed",
            Self::Config(_) => "ConfigError",
            Self::OpenRouter(e) => e.kind().as_str(),
            Self::Store(e) => e.kind().as_str(),
        }
    }

    /// Shorthand for a validation failure.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// Shorthand for a policy failure.
    pub fn policy(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Policy {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<VendError> for lambda_runtime::Diagnostic {
    fn from(e: VendError) -> Self {
        Self {
            error_type: e.kind().to_owned(),
            error_message: e.to_string(),
        }
    }
}
