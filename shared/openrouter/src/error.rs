//! Errors of the OpenRouter client, typed by HTTP status and OpenRouter's error body.

use std::time::Duration;

/// A stable, matchable name for each error, used as the Lambda `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    /// A key over its own spend cap (402 in current documentation, 403 "Key limit exceeded" in
    /// older material): distinct from an account out of credit.
    KeyLimitExceeded,
    /// The account is out of credit (402 without the key's limit in question): every key of
    /// the account is refused, whatever its own cap.
    CreditsExhausted,
    NotFound,
    RateLimited,
    Server,
    UnexpectedStatus,
    Timeout,
    Connection,
    Decode,
    CreateOutcomeUnknown,
    Config,
}

impl ErrorKind {
    /// The stable name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "OpenRouterBadRequest",
            Self::Unauthorized => "OpenRouterUnauthorized",
            Self::Forbidden => "OpenRouterForbidden",
            Self::KeyLimitExceeded => "OpenRouterKeyLimitExceeded",
            Self::CreditsExhausted => "OpenRouterCreditsExhausted",
            Self::NotFound => "OpenRouterNotFound",
            Self::RateLimited => "OpenRouterRateLimited",
            Self::Server => "OpenRouterServerError",
            Self::UnexpectedStatus => "OpenRouterUnexpectedStatus",
            Self::Timeout => "OpenRouterTimeout",
            Self::Connection => "OpenRouterConnection",
            Self::Decode => "OpenRouterDecode",
            Self::CreateOutcomeUnknown => "OpenRouterCreateOutcomeUnknown",
            Self::Config => "OpenRouterConfig",
        }
    }
}

/// An OpenRouter call that failed. Messages never carry a key's plaintext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("OpenRouter rejected the request (400): {message}")]
    BadRequest { message: String },
    #[error("OpenRouter refused the credentials (401): {message}")]
    Unauthorized { message: String },
    #[error("OpenRouter forbids this operation for this key (403): {message}")]
    Forbidden { message: String },
    #[error("the key is over its own spend cap ({status}): {message}")]
    KeyLimitExceeded { status: u16, message: String },
    #[error("the account is out of credit (402): {message}")]
    CreditsExhausted { message: String },
    #[error("OpenRouter has no such resource (404): {message}")]
    NotFound { message: String },
    #[error("OpenRouter rate-limited the call (429): {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("OpenRouter failed ({status}): {message}")]
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("OpenRouter answered with unexpected status {status}: {message}")]
    UnexpectedStatus { status: u16, message: String },
    #[error("OpenRouter did not answer within {0:?}")]
    Timeout(Duration),
    #[error("could not reach OpenRouter: {0}")]
    Connection(String),
    #[error("could not decode OpenRouter's reply to {what}")]
    Decode { what: &'static str },
    /// A key creation whose outcome is unknown: the key may exist and its plaintext is lost.
    #[error("the outcome of creating key {name:?} is unknown ({cause}); it must be reconciled")]
    CreateOutcomeUnknown { name: String, cause: String },
    #[error("invalid OpenRouter client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The stable kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadRequest { .. } => ErrorKind::BadRequest,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::KeyLimitExceeded { .. } => ErrorKind::KeyLimitExceeded,
            Self::CreditsExhausted { .. } => ErrorKind::CreditsExhausted,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Server { .. } => ErrorKind::Server,
            Self::UnexpectedStatus { .. } => ErrorKind::UnexpectedStatus,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Connection(_) => ErrorKind::Connection,
            Self::Decode { .. } => ErrorKind::Decode,
            Self::CreateOutcomeUnknown { .. } => ErrorKind::CreateOutcomeUnknown,
            Self::Config(_) => ErrorKind::Config,
        }
    }

    /// Whether the same call may succeed if made again later (the caller decides whether
    /// repeating is safe for its operation).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::CreateOutcomeUnknown
        )
    }

    /// The server's `Retry-After`, when it sent one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    pub(crate) fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            400 => Self::BadRequest { message },
            401 => Self::Unauthorized { message },
            // 402 names the key when its own limit is spent; otherwise the account is out of
            // credit.
            402 if message.to_ascii_lowercase().contains("key") => {
                Self::KeyLimitExceeded { status, message }
            }
            402 => Self::CreditsExhausted { message },
            // Older material answers a key over its cap with 403 and this text, newer material
            // "Budget limit exceeded" (a key limit or a guardrail budget); any other 403 (an
            // inference key on a management endpoint) stays Forbidden.
            403 if ["key limit exceeded", "budget limit exceeded"]
                .iter()
                .any(|m| message.to_ascii_lowercase().contains(m)) =>
            {
                Self::KeyLimitExceeded { status, message }
            }
            403 => Self::Forbidden { message },
            404 => Self::NotFound { message },
            429 => Self::RateLimited {
                message,
                retry_after,
            },
            500..=599 => Self::Server {
                status,
                message,
                retry_after,
            },
            _ => Self::UnexpectedStatus { status, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_cap_is_recognised_in_both_documented_forms() {
        for (status, message) in [
            (402, "Insufficient credits for this key"),
            (403, "Key limit exceeded"),
        ] {
            let e = Error::from_status(status, message.to_owned(), None);
            assert_eq!(e.kind(), ErrorKind::KeyLimitExceeded, "{status}");
            assert!(!e.is_transient());
        }
        let other = Error::from_status(403, "Only management keys can do this".into(), None);
        assert_eq!(other.kind(), ErrorKind::Forbidden);
        let budget = Error::from_status(403, "Budget limit exceeded".into(), None);
        assert_eq!(budget.kind(), ErrorKind::KeyLimitExceeded);
        let credits = Error::from_status(402, "Insufficient credits. Add more".into(), None);
        assert_eq!(
            credits.kind(),
            ErrorKind::CreditsExhausted,
            "the account, not the key"
        );
        assert!(!credits.is_transient());
    }
}
