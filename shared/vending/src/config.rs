//! Configuration, read from the environment in one place.

use std::time::Duration;

use crate::error::VendError;
use crate::policy::Policy;

/// Where the management key comes from.
#[derive(Clone)]
pub enum ManagementKeySource {
    /// A Secrets Manager secret id (plain string value, or JSON with `management_key`/`api_key`).
    Secret(String),
    /// The key itself (local runs only).
    Direct(orkv_openrouter::ManagementKey),
}

impl std::fmt::Debug for ManagementKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(id) => f.debug_tuple("Secret").field(id).finish(),
            Self::Direct(_) => f.write_str("Direct([redacted])"),
        }
    }
}

/// Everything the provision function is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub openrouter_base_url: String,
    pub management_key: ManagementKeySource,
    pub policy: Policy,
    /// Every managed secret's name starts with this.
    pub secret_prefix: String,
    pub default_kms_key_id: Option<String>,
    /// How long a pending record blocks other invocations; must exceed the function timeout.
    pub pending_lease: Duration,
    pub http_timeout: Duration,
    pub max_retries: u32,
    /// How rotations are started.
    pub rotation: RotationMode,
    /// How long a superseded key stays valid after its successor became current.
    pub retire_grace: Duration,
    /// Sweep: rotations and retirements in flight at once.
    pub sweep_concurrency: usize,
    /// Sweep: delete orphaned keys (`true`) or only report them.
    pub delete_orphans: bool,
    /// Sweep: a product-named key younger than this is never called an orphan (it may belong
    /// to a mint in flight).
    pub orphan_min_age: Duration,
    /// Sweep: warn when a key's `limit_remaining` is below this fraction of its limit.
    pub low_spend_fraction: f64,
    /// Sweep: warn when a key expires within this long and has not been rotated.
    pub expiry_warning: Duration,
    /// Revoke: delete the secret (with Secrets Manager's recovery window) rather than keep it
    /// marked revoked.
    pub revoke_deletes_secret: bool,
    /// Revoke with `ORKV_REVOKE_SECRET=delete`: the secret's recovery window in days (7-30).
    pub recovery_window_days: Option<i64>,
}

/// How the sweep and the on-demand actions start a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationMode {
    /// `RotateSecret`, so Secrets Manager invokes the rotation function (production).
    SecretsManager {
        /// `RotationLambdaARN` to set on secrets that have none yet.
        lambda_arn: Option<String>,
        /// `RotationRules.AutomaticallyAfterDays`, a safety net beside the expiry-driven sweep.
        after_days: Option<i64>,
    },
    /// Local runs: play Secrets Manager's part (label `AWSPENDING`, call the four steps in
    /// order with one token) against a Lambda Invoke endpoint such as `cargo lambda watch`'s.
    LocalInvoke(String),
    /// Tests: play Secrets Manager's part with this process's own rotation handler.
    InProcess,
}

impl Config {
    /// Reads `OPENROUTER_BASE_URL`, `OPENROUTER_MANAGEMENT_KEY_SECRET_ID` or
    /// `OPENROUTER_MANAGEMENT_KEY`, `ORKV_POLICY`, `ORKV_SECRET_PREFIX`,
    /// `ORKV_DEFAULT_KMS_KEY_ID`, `ORKV_PENDING_LEASE_SECONDS`, `ORKV_HTTP_TIMEOUT_MS`,
    /// `ORKV_MAX_RETRIES`.
    ///
    /// # Errors
    /// [`VendError::Config`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, VendError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Config::from_env`], from any lookup (tests).
    ///
    /// # Errors
    /// [`VendError::Config`] naming the missing or malformed variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, VendError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> Result<u64, VendError> {
            match non_empty(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| VendError::Config(format!("{name}: {v:?} is not a whole number"))),
            }
        };
        let management_key = match (
            non_empty("OPENROUTER_MANAGEMENT_KEY_SECRET_ID"),
            non_empty("OPENROUTER_MANAGEMENT_KEY"),
        ) {
            (Some(id), _) => ManagementKeySource::Secret(id),
            (None, Some(key)) => {
                ManagementKeySource::Direct(orkv_openrouter::ManagementKey::new(key))
            }
            (None, None) => {
                return Err(VendError::Config(
                    "OPENROUTER_MANAGEMENT_KEY_SECRET_ID is not set (or, for local runs, OPENROUTER_MANAGEMENT_KEY)".into(),
                ));
            }
        };
        let policy_text = non_empty("ORKV_POLICY")
            .ok_or_else(|| VendError::Config("ORKV_POLICY is not set".into()))?;
        let policy = Policy::from_json(&policy_text)
            .map_err(|e| VendError::Config(format!("ORKV_POLICY: {e}")))?;
        let secret_prefix = non_empty("ORKV_SECRET_PREFIX").unwrap_or_else(|| "openrouter/".into());
        if !crate::request::valid_secret_name(&secret_prefix) {
            return Err(VendError::Config(format!(
                "ORKV_SECRET_PREFIX: {secret_prefix:?} may hold only A-Z a-z 0-9 / _ + = . @ -"
            )));
        }
        let lease = number("ORKV_PENDING_LEASE_SECONDS", 120)?;
        if lease == 0 {
            return Err(VendError::Config(
                "ORKV_PENDING_LEASE_SECONDS must be at least 1".into(),
            ));
        }
        let rotation = match (
            non_empty("ORKV_LOCAL_ROTATION_INVOKE_URL"),
            non_empty("ORKV_ROTATION_LAMBDA_ARN"),
        ) {
            (Some(url), _) => RotationMode::LocalInvoke(url),
            (None, arn) => RotationMode::SecretsManager {
                lambda_arn: arn,
                after_days: match non_empty("ORKV_ROTATION_SAFETY_DAYS") {
                    None => None,
                    Some(_) => {
                        let d = number("ORKV_ROTATION_SAFETY_DAYS", 0)?;
                        if !(1..=1000).contains(&d) {
                            return Err(VendError::Config(
                                "ORKV_ROTATION_SAFETY_DAYS must be within 1-1000".into(),
                            ));
                        }
                        i64::try_from(d).ok()
                    }
                },
            },
        };
        let concurrency = number("ORKV_SWEEP_CONCURRENCY", 8)?;
        if !(1..=64).contains(&concurrency) {
            return Err(VendError::Config(
                "ORKV_SWEEP_CONCURRENCY must be within 1-64".into(),
            ));
        }
        let delete_orphans = match non_empty("ORKV_ORPHANS").as_deref().map(str::trim) {
            None | Some("delete") => true,
            Some("report") => false,
            Some(other) => {
                return Err(VendError::Config(format!(
                    "ORKV_ORPHANS: {other:?} must be \"delete\" or \"report\""
                )));
            }
        };
        let revoke_deletes_secret = match non_empty("ORKV_REVOKE_SECRET").as_deref().map(str::trim)
        {
            None | Some("mark") => false,
            Some("delete") => true,
            Some(other) => {
                return Err(VendError::Config(format!(
                    "ORKV_REVOKE_SECRET: {other:?} must be \"mark\" or \"delete\""
                )));
            }
        };
        let low_spend_fraction = match non_empty("ORKV_LOW_SPEND_FRACTION") {
            None => 0.1,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => f,
                _ => {
                    return Err(VendError::Config(format!(
                        "ORKV_LOW_SPEND_FRACTION: {v:?} must be a number within 0-1"
                    )));
                }
            },
        };
        let recovery_window_days = match non_empty("ORKV_RECOVERY_WINDOW_DAYS") {
            None => None,
            Some(_) => {
                let d = number("ORKV_RECOVERY_WINDOW_DAYS", 30)?;
                if !(7..=30).contains(&d) {
                    return Err(VendError::Config(
                        "ORKV_RECOVERY_WINDOW_DAYS must be within 7-30".into(),
                    ));
                }
                i64::try_from(d).ok()
            }
        };
        Ok(Self {
            recovery_window_days,
            rotation,
            retire_grace: Duration::from_secs(number("ORKV_RETIRE_GRACE_SECONDS", 7200)?),
            sweep_concurrency: usize::try_from(concurrency).unwrap_or(8),
            delete_orphans,
            orphan_min_age: Duration::from_secs(number("ORKV_ORPHAN_MIN_AGE_SECONDS", 900)?),
            low_spend_fraction,
            expiry_warning: Duration::from_secs(number("ORKV_EXPIRY_WARNING_SECONDS", 86_400)?),
            revoke_deletes_secret,
            openrouter_base_url: non_empty("OPENROUTER_BASE_URL")
                .unwrap_or_else(|| orkv_openrouter::DEFAULT_BASE_URL.to_owned()),
            management_key,
            policy,
            secret_prefix,
            default_kms_key_id: non_empty("ORKV_DEFAULT_KMS_KEY_ID"),
            pending_lease: Duration::from_secs(lease),
            http_timeout: Duration::from_millis(number("ORKV_HTTP_TIMEOUT_MS", 5_000)?),
            max_retries: u32::try_from(number("ORKV_MAX_RETRIES", 3)?).unwrap_or(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const POLICY: &str = r#"{"workspaces":[{"workspace":"checkout","max_limit":100}]}"#;

    #[test]
    fn missing_variables_are_named() {
        let err = Config::from_lookup(env(&[("ORKV_POLICY", POLICY)])).expect_err("no key");
        assert!(
            err.to_string()
                .contains("OPENROUTER_MANAGEMENT_KEY_SECRET_ID"),
            "{err}"
        );
        let err =
            Config::from_lookup(env(&[("OPENROUTER_MANAGEMENT_KEY", "k")])).expect_err("no policy");
        assert!(err.to_string().contains("ORKV_POLICY"), "{err}");
        let err = Config::from_lookup(env(&[
            ("OPENROUTER_MANAGEMENT_KEY", "k"),
            ("ORKV_POLICY", POLICY),
            ("ORKV_HTTP_TIMEOUT_MS", "soon"),
        ]))
        .expect_err("bad number");
        assert!(err.to_string().contains("ORKV_HTTP_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn defaults_are_production_ones_and_the_key_is_never_shown() {
        let cfg = Config::from_lookup(env(&[
            ("OPENROUTER_MANAGEMENT_KEY", "sk-or-v1-config-sentinel"),
            ("ORKV_POLICY", POLICY),
        ]))
        .expect("valid");
        assert_eq!(cfg.openrouter_base_url, "https://openrouter.ai/api/v1");
        assert_eq!(cfg.secret_prefix, "openrouter/");
        assert!(!format!("{cfg:?}").contains("sentinel"));
    }

    #[test]
    fn recovery_window_is_bounded_and_named() {
        let base = [("OPENROUTER_MANAGEMENT_KEY", "k"), ("ORKV_POLICY", POLICY)];
        let cfg = Config::from_lookup(env(&base)).expect("valid");
        assert_eq!(cfg.recovery_window_days, None);
        let mut vars = base.to_vec();
        vars.push(("ORKV_RECOVERY_WINDOW_DAYS", "7"));
        assert_eq!(
            Config::from_lookup(env(&vars))
                .expect("valid")
                .recovery_window_days,
            Some(7)
        );
        for bad in ["6", "31", "a week"] {
            let mut vars = base.to_vec();
            vars.push(("ORKV_RECOVERY_WINDOW_DAYS", bad));
            let err = Config::from_lookup(env(&vars)).expect_err(bad);
            assert!(
                err.to_string().contains("ORKV_RECOVERY_WINDOW_DAYS"),
                "{err}"
            );
        }
    }
}
