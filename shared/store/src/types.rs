//! What the store reads and writes: new secrets, versions, write results, summaries from
//! `ListSecrets` and descriptions from `DescribeSecret`.

use secrecy::SecretString;
use time::OffsetDateTime;

/// What to create.
#[derive(Debug)]
pub struct NewSecret<'a> {
    pub name: &'a str,
    /// The JSON value (holds a plaintext key: never log it).
    pub value: &'a SecretString,
    pub description: Option<&'a str>,
    pub tags: &'a [(String, String)],
    pub kms_key_id: Option<&'a str>,
}

/// A version of a secret as read back.
#[derive(Debug)]
pub struct SecretVersion {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: SecretString,
    pub stages: Vec<String>,
    pub created_date: Option<OffsetDateTime>,
}

/// The identity of a written version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub arn: String,
    pub name: String,
    pub version_id: String,
}

/// A managed secret as `ListSecrets` shows it: metadata and tags, no value.
#[derive(Debug, Clone)]
pub struct SecretSummary {
    pub arn: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub rotation_enabled: bool,
    /// The version `AWSCURRENT` is on, as the listing shows it (`SecretVersionsToStages`).
    pub current_version: Option<String>,
    /// A version holding `AWSPENDING` without `AWSCURRENT`: a rotation not finished.
    pub pending_version: Option<String>,
}

impl SecretSummary {
    /// The value of tag `key`, if set.
    #[must_use]
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A secret's metadata as `DescribeSecret` shows it.
#[derive(Debug, Clone)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    /// The customer KMS key the secret is encrypted with; `None`: Secrets Manager's own
    /// (`aws/secretsmanager`).
    pub kms_key_id: Option<String>,
    pub deleted: bool,
    pub tags: Vec<(String, String)>,
    /// Version id to its staging labels.
    pub versions: std::collections::BTreeMap<String, Vec<String>>,
}

impl SecretDescription {
    /// The value of tag `key`, if set.
    #[must_use]
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The version holding `stage`, if any.
    #[must_use]
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    /// Whether version `id` holds `stage`.
    #[must_use]
    pub fn has(&self, id: &str, stage: &str) -> bool {
        self.versions
            .get(id)
            .is_some_and(|stages| stages.iter().any(|s| s == stage))
    }
}
