//! The errors of every function, each with a stable `kind()` that becomes the Lambda
//! `errorType` (one mapping to `Diagnostic`, below). Variants are grouped by what went wrong:
//! the caller's input, the state of a secret, a rotation step, the deployment, and the remote
//! services. No variant ever holds a key's plaintext.

use orkv_openrouter::Error as OpenRouterError;
use orkv_store::StoreError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VendError {
    // --- The caller's input: nothing was created or changed. ---
    #[error("invalid request: field `{field}`: {rule}")]
    Invalid { field: String, rule: String },
    #[error(
        "invalid request: field `workspace`: {:?} is not a known workspace",
        redact_keys(workspace)
    )]
    UnknownWorkspace { workspace: String },
    #[error("policy violation: field `{field}`: {rule}")]
    Policy { field: String, rule: String },
    /// An adoption the secret or its key does not allow; nothing was changed.
    #[error("adoption refused: field `{field}`: {rule}")]
    AdoptionRefused { field: String, rule: String },
    /// The caller reached outside its tenant. Says nothing of what it does not own.
    #[error("tenant scope violation: field `{field}`: {rule}")]
    TenantScope { field: String, rule: String },
    #[error(
        "invalid request: field `workspace`: {:?} matches {count} workspaces by UUID, slug or name; name the workspace by its UUID or slug",
        redact_keys(workspace)
    )]
    AmbiguousWorkspace { workspace: String, count: usize },
    #[error(
        "unsupported event: field `detail-type`: {:?} is not one this function handles (expected {})",
        redact_keys(detail_type),
        crate::domain::action::Action::detail_types_text()
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
    // --- The state of a secret. ---
    #[error(
        "secret {} exists but is not managed by openrouter-key-vending; refusing to touch it",
        redact_keys(secret_name)
    )]
    NotManaged { secret_name: String },
    #[error("secret {secret_name} holds a record this version cannot read: {reason}")]
    CorruptRecord { secret_name: String, reason: String },
    #[error("another invocation is provisioning secret {secret_name}; retry later")]
    InProgress { secret_name: String },
    // --- Rotation steps. ---
    #[error(
        "rotation of secret {secret_name} is in progress (another version holds AWSPENDING); retry later"
    )]
    RotationInProgress { secret_name: String },
    #[error("secret {secret_name}: rotation is not enabled on it; refusing the rotation step")]
    RotationDisabled { secret_name: String },
    #[error("invalid rotation event: field `{field}`: {}", redact_keys(rule))]
    InvalidRotation { field: String, rule: String },
    #[error(
        "secret {}: field `ClientRequestToken`: {} is not a version of the secret",
        redact_keys(secret_name),
        redact_keys(token)
    )]
    UnknownToken { secret_name: String, token: String },
    #[error(
        "secret {}: field `ClientRequestToken`: version {} is not AWSPENDING; refusing the rotation step",
        redact_keys(secret_name),
        redact_keys(token)
    )]
    NotPending { secret_name: String, token: String },
    #[error(
        "secret {secret_name}: its keys were revoked; delete the secret or use another secret_name to vend a new key"
    )]
    Revoked { secret_name: String },
    #[error("secret {} does not exist", redact_keys(secret_name))]
    SecretNotFound { secret_name: String },
    #[error("secret {secret_name}: the pending key failed its test: {check}")]
    RotationTestFailed { secret_name: String, check: String },
    /// The operation's outcome was not seen when read back; repeating the request converges.
    #[error(
        "secret {secret_name}: the outcome was not confirmed when read back: {check}; repeat the request"
    )]
    NotConfirmed { secret_name: String, check: String },
    /// A new key could not be given its guardrail: it was deleted, never stored.
    #[error(
        "secret {secret_name}: the new key could not be given guardrail {guardrail_id} ({why}); it was deleted and nothing was stored; repeat the request"
    )]
    GuardrailNotAssigned {
        secret_name: String,
        guardrail_id: String,
        why: String,
    },
    // --- The deployment. ---
    #[error("configuration: {0}")]
    Config(String),
    #[error("the reply could not be encoded: {0}")]
    ReplyEncoding(String),
    // --- The remote services. ---
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
            Self::AdoptionRefused { .. } => "AdoptionRefused",
            Self::TenantScope { .. } => "TenantScopeViolation",
            Self::AmbiguousWorkspace { .. } => "AmbiguousWorkspace",
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
            Self::NotConfirmed { .. } => "ClaimNotConfirmed",
            Self::GuardrailNotAssigned { .. } => "GuardrailNotAssigned",
            Self::Config(_) => "ConfigError",
            Self::ReplyEncoding(_) => "ReplyEncoding",
            Self::OpenRouter(e) => e.kind().as_str(),
            Self::Store(e) => e.kind().as_str(),
        }
    }

    /// Shorthand for a validation failure (anything key-shaped in it is redacted).
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid {
            field: redact_keys(&field.into()),
            rule: redact_keys(&rule.into()),
        }
    }

    /// Shorthand for a tenant scope refusal.
    pub fn scope(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::TenantScope {
            field: redact_keys(&field.into()),
            rule: redact_keys(&rule.into()),
        }
    }

    /// Shorthand for a refused adoption (anything key-shaped in it is redacted).
    pub fn adoption(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::AdoptionRefused {
            field: redact_keys(&field.into()),
            rule: redact_keys(&rule.into()),
        }
    }

    /// The same refusal naming field `to` where it named `from` (a bulk request's checks run
    /// on a placeholder name that stands for its `secret_prefix`).
    #[must_use]
    pub fn with_field_renamed(self, from: &str, to: &str) -> Self {
        let rename = |field: String| if field == from { to.to_owned() } else { field };
        match self {
            Self::Invalid { field, rule } => Self::Invalid {
                field: rename(field),
                rule,
            },
            Self::Policy { field, rule } => Self::Policy {
                field: rename(field),
                rule,
            },
            Self::AdoptionRefused { field, rule } => Self::AdoptionRefused {
                field: rename(field),
                rule,
            },
            Self::TenantScope { field, rule } => Self::TenantScope {
                field: rename(field),
                rule,
            },
            other => other,
        }
    }

    /// Shorthand for a policy failure (anything key-shaped in it is redacted).
    pub fn policy(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Policy {
            field: redact_keys(&field.into()),
            rule: redact_keys(&rule.into()),
        }
    }
}

/// Replaces every OpenRouter-key-shaped token (`sk-or-…`, any case) with `[redacted]`, so an
/// error that quotes a caller's input never carries a key someone pasted into the wrong field.
#[must_use]
pub fn redact_keys(text: &str) -> String {
    const MARK: &str = "sk-or-";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(MARK) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(MARK) {
        let start = rest + found;
        out.push_str(&text[rest..start]);
        let end = text[start..]
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(text.len(), |(i, _)| start + i);
        out.push_str("[redacted]");
        rest = end;
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn key_shaped_tokens_are_redacted_and_the_rest_kept() {
        assert_eq!(redact_keys("plain"), "plain");
        assert_eq!(
            redact_keys("\"sk-or-v1-abc_DEF-123\" is not one of a, b"),
            "\"[redacted]\" is not one of a, b"
        );
        assert_eq!(
            redact_keys("x SK-OR-V1-zz y sk-or-q"),
            "x [redacted] y [redacted]"
        );
        let e = VendError::invalid("tags.sk-or-v1-k", "value sk-or-v1-v is bad");
        assert!(!e.to_string().contains("sk-or-v1"), "{e}");
    }
}
