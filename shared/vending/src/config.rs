//! Configuration, read from the environment in one place: one small helper per kind of
//! variable, every variable documented on the field it fills.

use std::time::Duration;

use crate::domain::names::valid_secret_name;
use crate::domain::policy::Policy;
use crate::error::VendError;

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

/// Everything the functions are configured with. Every field comes from one environment
/// variable, named in its documentation; [`Config::from_env`] names a malformed one.
#[derive(Debug, Clone)]
pub struct Config {
    /// `OPENROUTER_BASE_URL` (default: OpenRouter's API).
    pub openrouter_base_url: String,
    /// `OPENROUTER_MANAGEMENT_KEY_SECRET_ID`, or `OPENROUTER_MANAGEMENT_KEY` for local runs.
    pub management_key: ManagementKeySource,
    /// `ORKV_POLICY`: the tenants (or one implicit tenant), their workspaces, caps, lifetime
    /// bounds, prefixes, actions and event sources (JSON; see [`Policy`]).
    pub policy: Policy,
    /// `ORKV_SECRET_PREFIX` (default `openrouter/`): every managed secret's name starts with it.
    pub secret_prefix: String,
    /// `ORKV_DEFAULT_KMS_KEY_ID`: the KMS key of new secrets when a request names none.
    pub default_kms_key_id: Option<String>,
    /// `ORKV_PENDING_LEASE_SECONDS` (120): how long a pending record blocks other
    /// invocations; must exceed the function timeout.
    pub pending_lease: Duration,
    /// `ORKV_HTTP_TIMEOUT_MS` (5000): OpenRouter request timeout.
    pub http_timeout: Duration,
    /// `ORKV_MAX_RETRIES` (3): OpenRouter retries of idempotent calls.
    pub max_retries: u32,
    /// `ORKV_ROTATION_LAMBDA_ARN`: the rotation function `RotateSecret` names.
    pub rotation_lambda_arn: Option<String>,
    /// `ORKV_ROTATION_SAFETY_DAYS` (1-1000; default: the policy's longest lifetime in days):
    /// `RotationRules.AutomaticallyAfterDays`, sent with every `RotateSecret` (a secret rotates
    /// only once rotation is configured with a function *and* rules), a safety net beside the
    /// expiry-driven sweep.
    pub rotation_after_days: i64,
    /// `ORKV_LOCAL_ROTATION_INVOKE_URL`: local runs only. A Lambda Invoke endpoint the local
    /// rotation driver calls; a release build refuses to start when it is set.
    pub local_rotation_invoke_url: Option<String>,
    /// `ORKV_RETIRE_GRACE_SECONDS` (7200): how long a superseded key stays valid after its
    /// successor became current.
    pub retire_grace: Duration,
    /// `ORKV_SWEEP_CONCURRENCY` (8, 1-64): rotations and retirements in flight at once.
    pub sweep_concurrency: usize,
    /// `ORKV_SWEEP_MAX_ROTATIONS` (10, 1-1000): rotations one sweep run starts; the rest stay
    /// due for later runs. Each starts an asynchronous rotation the rotate function runs within
    /// its reserved concurrency (the module sets this to it), and the four steps share Secrets
    /// Manager's `PutSecretValue`/`UpdateSecretVersionStage` quota.
    pub sweep_max_rotations: usize,
    /// `ORKV_ORPHANS` (`delete` or `report`): what the sweep does with orphaned keys.
    pub delete_orphans: bool,
    /// `ORKV_DRIFT` (`repair` or `report`): what the sweep does with a current key that no
    /// longer works (deleted, disabled or expired behind the product's back): rotate it at
    /// once, or only report it.
    pub repair_drift: bool,
    /// `ORKV_ORPHAN_MIN_AGE_SECONDS` (900): a product-named key younger than this is never
    /// called an orphan (it may belong to a mint in flight).
    pub orphan_min_age: Duration,
    /// `ORKV_LOW_SPEND_FRACTION` (0.1): warn when a key's `limit_remaining` is below this
    /// fraction of its limit.
    pub low_spend_fraction: f64,
    /// `ORKV_EXPIRY_WARNING_SECONDS` (86400): warn when a key expires within this long and
    /// has not been rotated.
    pub expiry_warning: Duration,
    /// `ORKV_ROTATION_STALL_SECONDS` (3600): a rotation whose `AWSPENDING` version is older
    /// than this has stalled (four steps at the longest timeout Lambda allows, 900 s each, fit
    /// in it); the sweep reports it and runs its steps again.
    pub rotation_stall_after: Duration,
    /// `ORKV_IDLE_KEY_SECONDS` (2592000, 30 days; 0 turns it off): the sweep reports a current
    /// key whose `last_used_at` is older than this (`IdleKey`).
    pub idle_key_after: Option<Duration>,
    /// `ORKV_REVOKE_SECRET` (`mark` or `delete`): revoke deletes the secret (with Secrets
    /// Manager's recovery window) rather than keep it marked revoked.
    pub revoke_deletes_secret: bool,
    /// `ORKV_RECOVERY_WINDOW_DAYS` (7-30): the recovery window of a secret revoke deletes.
    pub recovery_window_days: Option<i64>,
    /// `ORKV_EVENT_BUS`: the EventBridge bus (name or ARN) every outcome is announced on;
    /// unset, no result event is put.
    pub event_bus: Option<String>,
    /// `ORKV_EVENT_SOURCE` (default `orkv.key-vending`): the `source` of every result event
    /// (AWS reserves `aws.`).
    pub event_source: String,
}

/// The `source` of result events unless `ORKV_EVENT_SOURCE` names another.
pub const DEFAULT_EVENT_SOURCE: &str = "orkv.key-vending";

/// Reads variables through a lookup (the environment, or a test's table).
struct Vars<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, VendError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| VendError::Config(format!("{name}: {v:?} is not a whole number"))),
        }
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration, VendError> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }

    /// An optional number within `range`.
    fn bounded(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<i64>, VendError> {
        if self.text(name).is_none() {
            return Ok(None);
        }
        let d = self.number(name, 0)?;
        if !range.contains(&d) {
            return Err(VendError::Config(format!(
                "{name} must be within {}-{}",
                range.start(),
                range.end()
            )));
        }
        Ok(i64::try_from(d).ok())
    }

    /// One of two words: `Ok(true)` for `yes`, `Ok(false)` for `no` or unset when `no` is
    /// the default.
    fn choice(&self, name: &str, no: &str, yes: &str, default: bool) -> Result<bool, VendError> {
        match self.text(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some(v) if v == yes => Ok(true),
            Some(v) if v == no => Ok(false),
            Some(other) => Err(VendError::Config(format!(
                "{name}: {other:?} must be \"{}\" or \"{}\"",
                if default { yes } else { no },
                if default { no } else { yes }
            ))),
        }
    }

    fn management_key(&self) -> Result<ManagementKeySource, VendError> {
        match (
            self.text("OPENROUTER_MANAGEMENT_KEY_SECRET_ID"),
            self.text("OPENROUTER_MANAGEMENT_KEY"),
        ) {
            (Some(id), _) => Ok(ManagementKeySource::Secret(id)),
            (None, Some(key)) => Ok(ManagementKeySource::Direct(
                orkv_openrouter::ManagementKey::new(key),
            )),
            (None, None) => Err(VendError::Config(
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID is not set (or, for local runs, OPENROUTER_MANAGEMENT_KEY)".into(),
            )),
        }
    }

    fn policy(&self, prefix: &str) -> Result<Policy, VendError> {
        let text = self
            .text("ORKV_POLICY")
            .ok_or_else(|| VendError::Config("ORKV_POLICY is not set".into()))?;
        Policy::from_json_with_prefix(&text, prefix)
            .map_err(|e| VendError::Config(format!("ORKV_POLICY: {e}")))
    }

    fn secret_prefix(&self) -> Result<String, VendError> {
        let prefix = self
            .text("ORKV_SECRET_PREFIX")
            .unwrap_or_else(|| crate::domain::policy::DEFAULT_PREFIX.into());
        if !valid_secret_name(&prefix) {
            return Err(VendError::Config(format!(
                "ORKV_SECRET_PREFIX: {prefix:?} may hold only A-Z a-z 0-9 / _ + = . @ -"
            )));
        }
        Ok(prefix)
    }

    fn pending_lease(&self) -> Result<Duration, VendError> {
        let lease = self.number("ORKV_PENDING_LEASE_SECONDS", 120)?;
        if lease == 0 {
            return Err(VendError::Config(
                "ORKV_PENDING_LEASE_SECONDS must be at least 1".into(),
            ));
        }
        Ok(Duration::from_secs(lease))
    }

    fn sweep_concurrency(&self) -> Result<usize, VendError> {
        let n = self.number("ORKV_SWEEP_CONCURRENCY", 8)?;
        if !(1..=64).contains(&n) {
            return Err(VendError::Config(
                "ORKV_SWEEP_CONCURRENCY must be within 1-64".into(),
            ));
        }
        Ok(usize::try_from(n).unwrap_or(8))
    }

    fn sweep_max_rotations(&self) -> Result<usize, VendError> {
        let n = self.number("ORKV_SWEEP_MAX_ROTATIONS", 10)?;
        if !(1..=1000).contains(&n) {
            return Err(VendError::Config(
                "ORKV_SWEEP_MAX_ROTATIONS must be within 1-1000".into(),
            ));
        }
        Ok(usize::try_from(n).unwrap_or(10))
    }

    /// `ORKV_EVENT_BUS` and `ORKV_EVENT_SOURCE`, checked as `PutEvents` checks them.
    fn events(&self) -> Result<(Option<String>, String), VendError> {
        let bus = self.text("ORKV_EVENT_BUS").map(|b| b.trim().to_owned());
        if let Some(b) = &bus {
            let name = b.rsplit(":event-bus/").next().unwrap_or(b);
            let ok_name = !name.is_empty()
                && name.len() <= 256
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
            let ok_arn = !b.starts_with("arn:") || b.contains(":events:");
            if !ok_name || !ok_arn || b.len() > 1600 {
                return Err(VendError::Config(format!(
                    "ORKV_EVENT_BUS: {b:?} must be an event bus name (1-256 of A-Z a-z 0-9 / . _ -) or an events ARN"
                )));
            }
        }
        let source = self
            .text("ORKV_EVENT_SOURCE")
            .map_or_else(|| DEFAULT_EVENT_SOURCE.to_owned(), |s| s.trim().to_owned());
        if source.len() > 256 || source.starts_with("aws.") {
            return Err(VendError::Config(format!(
                "ORKV_EVENT_SOURCE: {source:?} must be at most 256 characters and not start with \"aws.\" (reserved by AWS)"
            )));
        }
        Ok((bus, source))
    }

    fn low_spend_fraction(&self) -> Result<f64, VendError> {
        match self.text("ORKV_LOW_SPEND_FRACTION") {
            None => Ok(0.1),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err(VendError::Config(format!(
                    "ORKV_LOW_SPEND_FRACTION: {v:?} must be a number within 0-1"
                ))),
            },
        }
    }
}

impl Config {
    /// Reads every variable documented on [`Config`]'s fields.
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
        let vars = Vars(get);
        let management_key = vars.management_key()?;
        let secret_prefix = vars.secret_prefix()?;
        let policy = vars.policy(&secret_prefix)?;
        let pending_lease = vars.pending_lease()?;
        let local_rotation_invoke_url = vars.text("ORKV_LOCAL_ROTATION_INVOKE_URL");
        let longest_days = policy.longest_ttl_seconds().div_ceil(86_400).clamp(1, 1000);
        let rotation_after_days = match vars.bounded("ORKV_ROTATION_SAFETY_DAYS", 1..=1000)? {
            Some(days) => days,
            None => i64::try_from(longest_days).unwrap_or(1000),
        };
        let (event_bus, event_source) = vars.events()?;
        Ok(Self {
            event_bus,
            event_source,
            rotation_lambda_arn: vars.text("ORKV_ROTATION_LAMBDA_ARN"),
            rotation_after_days,
            local_rotation_invoke_url,
            sweep_concurrency: vars.sweep_concurrency()?,
            sweep_max_rotations: vars.sweep_max_rotations()?,
            delete_orphans: vars.choice("ORKV_ORPHANS", "report", "delete", true)?,
            repair_drift: vars.choice("ORKV_DRIFT", "report", "repair", true)?,
            revoke_deletes_secret: vars.choice("ORKV_REVOKE_SECRET", "mark", "delete", false)?,
            low_spend_fraction: vars.low_spend_fraction()?,
            recovery_window_days: vars.bounded("ORKV_RECOVERY_WINDOW_DAYS", 7..=30)?,
            retire_grace: vars.seconds("ORKV_RETIRE_GRACE_SECONDS", 7200)?,
            orphan_min_age: vars.seconds("ORKV_ORPHAN_MIN_AGE_SECONDS", 900)?,
            expiry_warning: vars.seconds("ORKV_EXPIRY_WARNING_SECONDS", 86_400)?,
            rotation_stall_after: vars.seconds("ORKV_ROTATION_STALL_SECONDS", 3600)?,
            idle_key_after: Some(vars.seconds("ORKV_IDLE_KEY_SECONDS", 2_592_000)?)
                .filter(|d| !d.is_zero()),
            openrouter_base_url: vars
                .text("OPENROUTER_BASE_URL")
                .unwrap_or_else(|| orkv_openrouter::DEFAULT_BASE_URL.to_owned()),
            management_key,
            policy,
            secret_prefix,
            default_kms_key_id: vars.text("ORKV_DEFAULT_KMS_KEY_ID"),
            pending_lease,
            http_timeout: Duration::from_millis(vars.number("ORKV_HTTP_TIMEOUT_MS", 5_000)?),
            max_retries: u32::try_from(vars.number("ORKV_MAX_RETRIES", 3)?).unwrap_or(3),
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
        // Rotation rules are always configured: the policy's longest lifetime (90 days).
        assert_eq!(cfg.rotation_after_days, 90);
        assert!(!format!("{cfg:?}").contains("sentinel"));
    }

    #[test]
    fn the_event_bus_and_source_are_checked_and_named() {
        let base = [("OPENROUTER_MANAGEMENT_KEY", "k"), ("ORKV_POLICY", POLICY)];
        let cfg = Config::from_lookup(env(&base)).expect("valid");
        assert_eq!(cfg.event_bus, None);
        assert_eq!(cfg.event_source, DEFAULT_EVENT_SOURCE);
        for good in [
            "orkv-results",
            "arn:aws:events:eu-west-1:123456789012:event-bus/orkv-results",
        ] {
            let mut vars = base.to_vec();
            vars.push(("ORKV_EVENT_BUS", good));
            let cfg = Config::from_lookup(env(&vars)).expect(good);
            assert_eq!(cfg.event_bus.as_deref(), Some(good));
        }
        for (var, bad) in [
            ("ORKV_EVENT_BUS", "has space"),
            ("ORKV_EVENT_BUS", "arn:aws:sqs:eu-west-1:1:q"),
            ("ORKV_EVENT_SOURCE", "aws.secretsmanager"),
        ] {
            let mut vars = base.to_vec();
            vars.push((var, bad));
            let err = Config::from_lookup(env(&vars)).expect_err(bad);
            assert!(err.to_string().contains(var), "{err}");
        }
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
