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
    /// A guardrail's budget refused the key's spend (`limit_source`
    /// `openrouter_guardrail_budget`): the key is valid.
    GuardrailBudgetExceeded,
    /// The workspace's budget refused the spend (`openrouter_workspace_budget`): the key is
    /// valid.
    WorkspaceBudgetExceeded,
    /// Spend already in flight holds the budget (`openrouter_in_flight_budget`): transient,
    /// with `Retry-After`.
    InFlightBudget,
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
            Self::GuardrailBudgetExceeded => "OpenRouterGuardrailBudgetExceeded",
            Self::WorkspaceBudgetExceeded => "OpenRouterWorkspaceBudgetExceeded",
            Self::InFlightBudget => "OpenRouterInFlightBudget",
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
    #[error("the account is out of credit ({status}): {message}")]
    CreditsExhausted { status: u16, message: String },
    #[error("a guardrail's budget refused the spend ({status}): {message}")]
    GuardrailBudgetExceeded { status: u16, message: String },
    #[error("the workspace's budget refused the spend ({status}): {message}")]
    WorkspaceBudgetExceeded { status: u16, message: String },
    #[error("spend in flight holds the budget ({status}{}): {message}", wait_text(.retry_after))]
    InFlightBudget {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("OpenRouter has no such resource (404): {message}")]
    NotFound { message: String },
    #[error("OpenRouter rate-limited the call (429{}): {message}", wait_text(.retry_after))]
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

/// `; retry after N s` when the server asked for a wait (a wait longer than the client's
/// longest is not waited, so the caller sees it).
fn wait_text(wait: &Option<Duration>) -> String {
    wait.map_or_else(String::new, |w| {
        format!("; OpenRouter asks to retry after {} s", w.as_secs_f64())
    })
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
            Self::GuardrailBudgetExceeded { .. } => ErrorKind::GuardrailBudgetExceeded,
            Self::WorkspaceBudgetExceeded { .. } => ErrorKind::WorkspaceBudgetExceeded,
            Self::InFlightBudget { .. } => ErrorKind::InFlightBudget,
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
                | ErrorKind::InFlightBudget
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
            Self::RateLimited { retry_after, .. }
            | Self::Server { retry_after, .. }
            | Self::InFlightBudget { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error an answer of `status` means, classified as OpenRouter documents it: first by
    /// `error.metadata.limit_source` (`limit_source`), then by status, and only last by the
    /// message's text (OpenRouter's *Errors and debugging* and *Limits* pages; CONTRACT.md,
    /// "Spend refusals carry `error.metadata.limit_source`").
    pub(crate) fn from_reply(
        status: u16,
        message: String,
        limit_source: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Self {
        match limit_source {
            Some("openrouter_key_limit") => return Self::KeyLimitExceeded { status, message },
            Some("openrouter_guardrail_budget") => {
                return Self::GuardrailBudgetExceeded { status, message };
            }
            Some("openrouter_workspace_budget") => {
                return Self::WorkspaceBudgetExceeded { status, message };
            }
            Some("openrouter_credits") => return Self::CreditsExhausted { status, message },
            Some("openrouter_in_flight_budget") => {
                return Self::InFlightBudget {
                    status,
                    message,
                    retry_after,
                };
            }
            _ => {}
        }
        let text = message.to_ascii_lowercase();
        match status {
            400 => Self::BadRequest { message },
            401 => Self::Unauthorized { message },
            // Without a source, 402 is the key's own limit only when the text says so ("key
            // limit", "... for this key"); the account out of credit reads "Insufficient
            // credits. ... Make sure your key is on the correct account or org", which names
            // a key without being about one.
            402 if text.contains("key limit") || text.contains("for this key") => {
                Self::KeyLimitExceeded { status, message }
            }
            402 => Self::CreditsExhausted { status, message },
            // Older material answers a key over its cap with 403 and this text, newer material
            // "Budget limit exceeded" (a key limit or a guardrail budget); any other 403 (an
            // inference key on a management endpoint) stays Forbidden.
            403 if ["key limit exceeded", "budget limit exceeded"]
                .iter()
                .any(|m| text.contains(m)) =>
            {
                Self::KeyLimitExceeded { status, message }
            }
            403 => Self::Forbidden { message },
            404 => Self::NotFound { message },
            429 => Self::RateLimited {
                message,
                retry_after,
            },
            // 408 Request Timeout: the request did not arrive whole; transient like a 5xx.
            408 | 500..=599 => Self::Server {
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

    fn kind(status: u16, message: &str, source: Option<&str>) -> ErrorKind {
        Error::from_reply(status, message.to_owned(), source, None).kind()
    }

    #[test]
    fn a_key_over_its_cap_is_recognised_in_both_documented_forms() {
        for (status, message) in [
            (402, "Insufficient credits for this key"),
            (403, "Key limit exceeded"),
            (403, "Key limit exceeded (daily limit)"),
        ] {
            assert_eq!(kind(status, message, None), ErrorKind::KeyLimitExceeded);
            assert!(!Error::from_reply(status, message.into(), None, None).is_transient());
        }
        assert_eq!(
            kind(403, "Only management keys can do this", None),
            ErrorKind::Forbidden
        );
        assert_eq!(
            kind(403, "Budget limit exceeded", None),
            ErrorKind::KeyLimitExceeded
        );
    }

    /// OpenRouter's *Errors and debugging* page: the account out of credit answers 402
    /// "Insufficient credits. ... Make sure your key is on the correct account or org", which
    /// names a key; before, any 402 whose text held "key" was the key's own limit.
    #[test]
    fn the_account_out_of_credit_is_not_the_keys_limit_though_its_text_names_a_key() {
        let text = "Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits";
        assert_eq!(kind(402, text, None), ErrorKind::CreditsExhausted);
        assert_eq!(
            kind(402, text, Some("openrouter_credits")),
            ErrorKind::CreditsExhausted
        );
    }

    /// `error.metadata.limit_source` decides before the status and the text (OpenRouter's
    /// *Limits* page and *Errors and debugging* page; CONTRACT.md).
    #[test]
    fn the_limit_source_decides_before_the_status_and_the_text() {
        let budget = "Budget limit exceeded";
        assert_eq!(
            kind(403, budget, Some("openrouter_guardrail_budget")),
            ErrorKind::GuardrailBudgetExceeded
        );
        assert_eq!(
            kind(403, budget, Some("openrouter_workspace_budget")),
            ErrorKind::WorkspaceBudgetExceeded
        );
        assert_eq!(
            kind(403, budget, Some("openrouter_key_limit")),
            ErrorKind::KeyLimitExceeded
        );
        assert_eq!(
            kind(402, "Insufficient credits", Some("openrouter_key_limit")),
            ErrorKind::KeyLimitExceeded
        );
        let in_flight = Error::from_reply(
            402,
            "Request would exceed the budget with spend in flight".into(),
            Some("openrouter_in_flight_budget"),
            Some(Duration::from_secs(2)),
        );
        assert_eq!(in_flight.kind(), ErrorKind::InFlightBudget);
        assert!(in_flight.is_transient(), "in-flight spend clears");
        assert_eq!(in_flight.retry_after(), Some(Duration::from_secs(2)));
        // An unknown source falls back to the status and the text.
        assert_eq!(
            kind(403, "Key limit exceeded", Some("openrouter_something_new")),
            ErrorKind::KeyLimitExceeded
        );
    }

    #[test]
    fn a_request_timeout_is_transient() {
        let e = Error::from_reply(408, "Request Timeout".into(), None, None);
        assert!(e.is_transient());
    }
}
