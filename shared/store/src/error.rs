//! Store errors: a stable kind for each, the operation that failed, and the service's message
//! (never a secret value).

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

/// A stable, matchable name for each store error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    NotFound,
    AlreadyExists,
    VersionConflict,
    Throttled,
    InvalidRequest,
    AccessDenied,
    Service,
    Transport,
}

impl StoreErrorKind {
    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "SecretNotFound",
            Self::AlreadyExists => "SecretAlreadyExists",
            Self::VersionConflict => "SecretVersionConflict",
            Self::Throttled => "SecretsManagerThrottled",
            Self::InvalidRequest => "SecretsManagerInvalidRequest",
            Self::AccessDenied => "SecretsManagerAccessDenied",
            Self::Service => "SecretsManagerError",
            Self::Transport => "SecretsManagerUnreachable",
        }
    }
}

/// A Secrets Manager call that failed. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager {operation} failed ({code}): {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl StoreError {
    /// The stable kind.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether the call may succeed if repeated later.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Throttled | StoreErrorKind::Transport | StoreErrorKind::Service
        )
    }

    pub(crate) fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let code = inner.code().unwrap_or("Unknown").to_owned();
                let message: String = inner.message().unwrap_or("").chars().take(300).collect();
                let kind = match code.as_str() {
                    "ResourceNotFoundException" => StoreErrorKind::NotFound,
                    // Decided by the operation, not the message (AWS's text names no token):
                    // a version write meeting its token with another value is a conflict; a
                    // create meeting the name is "exists".
                    "ResourceExistsException" if operation == "PutSecretValue" => {
                        StoreErrorKind::VersionConflict
                    }
                    "ResourceExistsException" => StoreErrorKind::AlreadyExists,
                    "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                        StoreErrorKind::Throttled
                    }
                    "InvalidParameterException"
                    | "InvalidRequestException"
                    | "ValidationException"
                    | "LimitExceededException"
                    | "MalformedPolicyDocumentException" => StoreErrorKind::InvalidRequest,
                    "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" => {
                        StoreErrorKind::AccessDenied
                    }
                    _ => StoreErrorKind::Service,
                };
                Self {
                    kind,
                    operation,
                    code,
                    message,
                }
            }
            SdkError::TimeoutError(_) => Self {
                kind: StoreErrorKind::Transport,
                operation,
                code: "Timeout".into(),
                message: "no answer in time".into(),
            },
            other => Self {
                kind: StoreErrorKind::Transport,
                operation,
                code: "Dispatch".into(),
                message: std::error::Error::source(other)
                    .map_or_else(|| "request not delivered".to_owned(), |s| s.to_string())
                    .chars()
                    .take(300)
                    .collect(),
            },
        }
    }
}
