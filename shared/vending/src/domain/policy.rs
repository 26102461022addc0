//! The deploy-time policy: the tenants, the workspaces each may use (each with its own maximum
//! cap and lifetime bounds), each tenant's secret-name prefix, actions and event sources.
//!
//! Two forms, one meaning. The single-policy form (`{"workspaces": [...]}`) is one implicit
//! tenant with every action, the managed prefix, and no identity to check: deployments made
//! before tenants keep working unchanged. The tenant form (`{"tenants": {"checkout": {...}}}`)
//! names each tenant; a caller is then one of them, by the Lambda alias it invoked
//! ([`super::scope`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a tenant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Vend a key into a new secret.
    Provision,
    /// Change an existing key (cap, lifetime settings, or a field that needs a new key).
    Update,
    /// Rotate now (manual).
    Rotate,
    /// Rotate now because the key leaked (every older key is disabled at once).
    LeakRotate,
    /// Revoke every key of a secret.
    Revoke,
    /// Take over a key the product did not mint (adoption).
    Adopt,
}

impl Permission {
    pub const ALL: [Self; 6] = [
        Self::Provision,
        Self::Update,
        Self::Rotate,
        Self::LeakRotate,
        Self::Revoke,
        Self::Adopt,
    ];

    /// The name used in the policy and in errors.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Update => "update",
            Self::Rotate => "rotate",
            Self::LeakRotate => "leak_rotate",
            Self::Revoke => "revoke",
            Self::Adopt => "adopt",
        }
    }
}

/// Lifetime bounds: the policy's own, or a workspace entry's (which lie within them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub default_ttl_seconds: u64,
    pub default_rotate_before_seconds: u64,
}

/// One workspace a tenant may vend keys in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePolicy {
    /// The workspace's UUID or slug (never its display name: names are not unique).
    pub workspace: String,
    /// The largest `limit` (USD) a key in this workspace may have.
    pub max_limit: f64,
    /// Narrower lifetime bounds for this tenant in this workspace (within the policy's).
    #[serde(default)]
    pub min_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub max_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub default_ttl_seconds: Option<u64>,
    /// The guardrail every key this tenant vends in this workspace must carry (its UUID; it
    /// must live in this workspace: checked against OpenRouter before the first key).
    #[serde(default)]
    pub guardrail_id: Option<String>,
}

impl WorkspacePolicy {
    /// This entry's bounds, the policy's where it sets none.
    #[must_use]
    pub fn bounds(&self, base: &Bounds) -> Bounds {
        let min = self.min_ttl_seconds.unwrap_or(base.min_ttl_seconds);
        let max = self.max_ttl_seconds.unwrap_or(base.max_ttl_seconds);
        Bounds {
            min_ttl_seconds: min,
            max_ttl_seconds: max,
            // The policy's default, brought within narrower bounds.
            default_ttl_seconds: self
                .default_ttl_seconds
                .unwrap_or_else(|| base.default_ttl_seconds.min(max).max(min)),
            default_rotate_before_seconds: base.default_rotate_before_seconds,
        }
    }
}

/// A tenant: who it is, where it may vend, what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// `None`: the implicit tenant of the single-policy form.
    pub name: Option<String>,
    /// Every secret this tenant owns is named under it.
    pub secret_prefix: String,
    pub workspaces: Vec<WorkspacePolicy>,
    pub actions: Vec<Permission>,
    /// EventBridge `source` values this tenant's events carry.
    pub event_sources: Vec<String>,
}

impl Tenant {
    /// The tenant's name for messages (`(default)` for the implicit one).
    #[must_use]
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("(default)")
    }
}

/// The wire form of one tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    workspaces: Vec<WorkspacePolicy>,
    #[serde(default)]
    secret_prefix: Option<String>,
    #[serde(default)]
    actions: Option<Vec<Permission>>,
    #[serde(default)]
    event_sources: Vec<String>,
}

/// The wire form of the policy (`ORKV_POLICY`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    workspaces: Vec<WorkspacePolicy>,
    #[serde(default)]
    tenants: BTreeMap<String, TenantFile>,
    #[serde(default)]
    admin_alias: Option<String>,
    #[serde(default = "default_min_ttl")]
    min_ttl_seconds: u64,
    #[serde(default = "default_max_ttl")]
    max_ttl_seconds: u64,
    #[serde(default = "default_ttl")]
    default_ttl_seconds: u64,
    #[serde(default = "default_rotate_before")]
    default_rotate_before_seconds: u64,
    #[serde(default)]
    org_max_key_lifetime_seconds: Option<u64>,
}

fn default_min_ttl() -> u64 {
    3_600
}
fn default_max_ttl() -> u64 {
    90 * 86_400
}
fn default_ttl() -> u64 {
    30 * 86_400
}
fn default_rotate_before() -> u64 {
    7 * 86_400
}

/// The managed prefix when `ORKV_SECRET_PREFIX` is unset.
pub const DEFAULT_PREFIX: &str = "openrouter/";

/// What every function enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// One implicit tenant (single-policy form), or the named ones, sorted by name.
    pub tenants: Vec<Tenant>,
    /// Whether tenants are configured (callers must then identify as one).
    pub tenanted: bool,
    /// The alias whose invocations act for any tenant (platform operators).
    pub admin_alias: Option<String>,
    /// The policy-wide lifetime bounds.
    pub bounds: Bounds,
    /// The organisation's maximum key lifetime, an OpenRouter admin setting no API shows:
    /// OpenRouter rejects every request from a key that never expires or outlives it, existing
    /// keys included (its security-settings guide; CONTRACT.md). Set at deploy time; every key
    /// lifetime the policy allows must fit within it.
    pub org_max_key_lifetime_seconds: Option<u64>,
}

/// A tenant name (and the admin alias): a Lambda alias name that can never be a version
/// number: a lowercase letter, then up to 63 of a-z 0-9 - _.
#[must_use]
pub fn valid_tenant_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

impl Policy {
    /// Parses and checks the policy JSON, with the default managed prefix.
    ///
    /// # Errors
    /// A message naming the offending field and the rule.
    pub fn from_json(text: &str) -> Result<Self, String> {
        Self::from_json_with_prefix(text, DEFAULT_PREFIX)
    }

    /// Parses and checks the policy JSON; `prefix` is `ORKV_SECRET_PREFIX`.
    ///
    /// # Errors
    /// A message naming the offending field and the rule.
    pub fn from_json_with_prefix(text: &str, prefix: &str) -> Result<Self, String> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let bounds = Bounds {
            min_ttl_seconds: file.min_ttl_seconds,
            max_ttl_seconds: file.max_ttl_seconds,
            default_ttl_seconds: file.default_ttl_seconds,
            default_rotate_before_seconds: file.default_rotate_before_seconds,
        };
        check_bounds("", &bounds)?;
        check_org_lifetime(&bounds, file.org_max_key_lifetime_seconds)?;
        if bounds.default_rotate_before_seconds == 0 {
            return Err("default_rotate_before_seconds must be at least 1".into());
        }
        let tenanted = !file.tenants.is_empty();
        let tenants = match (file.workspaces.is_empty(), tenanted) {
            (false, true) => {
                return Err(
                    "workspaces: give either workspaces (one implicit tenant) or tenants, not both"
                        .into(),
                );
            }
            (true, false) => {
                return Err(
                    "workspaces: at least one workspace must be known (or configure tenants)"
                        .into(),
                );
            }
            (false, false) => vec![Tenant {
                name: None,
                secret_prefix: prefix.to_owned(),
                workspaces: file.workspaces,
                actions: Permission::ALL.to_vec(),
                event_sources: Vec::new(),
            }],
            (true, true) => file
                .tenants
                .into_iter()
                .map(|(name, t)| tenant(name, t, prefix))
                .collect::<Result<_, _>>()?,
        };
        for t in &tenants {
            check_workspaces(t, &bounds)?;
        }
        if let Some(alias) = &file.admin_alias {
            if !tenanted {
                return Err("admin_alias: only meaningful with tenants".into());
            }
            if !valid_tenant_name(alias) || tenants.iter().any(|t| t.name.as_ref() == Some(alias)) {
                return Err(format!(
                    "admin_alias: {alias:?} must be a lowercase alias name (a-z, then a-z 0-9 - _, at most 64) that no tenant uses"
                ));
            }
        }
        check_disjoint(&tenants)?;
        Ok(Self {
            tenants,
            tenanted,
            admin_alias: file.admin_alias,
            bounds,
            org_max_key_lifetime_seconds: file.org_max_key_lifetime_seconds,
        })
    }

    /// The tenant named `name`.
    #[must_use]
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
    }

    /// Whether any entry names a guardrail.
    #[must_use]
    pub fn has_guardrails(&self) -> bool {
        self.tenants
            .iter()
            .any(|t| t.workspaces.iter().any(|w| w.guardrail_id.is_some()))
    }

    /// The tenant whose prefix `secret_name` is under (prefixes never overlap).
    #[must_use]
    pub fn owner_of_name(&self, secret_name: &str) -> Option<&Tenant> {
        self.tenants
            .iter()
            .find(|t| secret_name.starts_with(t.secret_prefix.as_str()))
    }

    /// The longest lifetime any entry allows (the rotation rules' safety net).
    #[must_use]
    pub fn longest_ttl_seconds(&self) -> u64 {
        self.tenants
            .iter()
            .flat_map(|t| &t.workspaces)
            .map(|w| w.bounds(&self.bounds).max_ttl_seconds)
            .max()
            .unwrap_or(self.bounds.max_ttl_seconds)
    }
}

fn tenant(name: String, t: TenantFile, prefix: &str) -> Result<Tenant, String> {
    if !valid_tenant_name(&name) {
        return Err(format!(
            "tenants.{name}: a tenant name is its Lambda alias: a lowercase letter, then up to 63 of a-z 0-9 - _"
        ));
    }
    let secret_prefix = t
        .secret_prefix
        .unwrap_or_else(|| format!("{prefix}{name}/"));
    if !secret_prefix.starts_with(prefix) || secret_prefix.len() <= prefix.len() {
        return Err(format!(
            "tenants.{name}.secret_prefix: {secret_prefix:?} must start with the managed prefix {prefix:?} and be longer"
        ));
    }
    if !secret_prefix.ends_with('/') {
        return Err(format!(
            "tenants.{name}.secret_prefix: {secret_prefix:?} must end with /"
        ));
    }
    let actions = t.actions.unwrap_or_else(|| Permission::ALL.to_vec());
    if actions.is_empty() {
        return Err(format!(
            "tenants.{name}.actions: at least one action (or leave it out for all)"
        ));
    }
    for s in &t.event_sources {
        if s.is_empty() || s.len() > 256 || s.starts_with("aws.") {
            return Err(format!(
                "tenants.{name}.event_sources: {s:?} must be 1-256 characters and not start with aws."
            ));
        }
    }
    Ok(Tenant {
        name: Some(name),
        secret_prefix,
        workspaces: t.workspaces,
        actions,
        event_sources: t.event_sources,
    })
}

/// Every lifetime the policy allows fits the organisation's maximum key lifetime (each
/// workspace's own bounds lie within the policy's, so the policy's maximum is enough).
fn check_org_lifetime(b: &Bounds, org_max: Option<u64>) -> Result<(), String> {
    match org_max {
        None => Ok(()),
        Some(0) => Err("org_max_key_lifetime_seconds must be at least 1".into()),
        Some(m) if b.max_ttl_seconds > m => Err(format!(
            "max_ttl_seconds ({}) exceeds org_max_key_lifetime_seconds ({m}): OpenRouter rejects every request from a key that outlives the organisation's maximum key lifetime",
            b.max_ttl_seconds
        )),
        Some(_) => Ok(()),
    }
}

fn check_bounds(at: &str, b: &Bounds) -> Result<(), String> {
    if b.min_ttl_seconds == 0 || b.min_ttl_seconds > b.max_ttl_seconds {
        return Err(format!(
            "{at}min_ttl_seconds must be at least 1 and at most max_ttl_seconds"
        ));
    }
    if !(b.min_ttl_seconds..=b.max_ttl_seconds).contains(&b.default_ttl_seconds) {
        return Err(format!(
            "{at}default_ttl_seconds must lie within min_ttl_seconds..=max_ttl_seconds"
        ));
    }
    Ok(())
}

fn check_workspaces(t: &Tenant, base: &Bounds) -> Result<(), String> {
    let at = t
        .name
        .as_ref()
        .map_or_else(String::new, |n| format!("tenants.{n}."));
    if t.workspaces.is_empty() {
        return Err(format!("{at}workspaces: at least one workspace"));
    }
    for (i, w) in t.workspaces.iter().enumerate() {
        let here = format!("{at}workspaces[{i}]");
        if w.workspace.is_empty() || w.workspace.len() > 128 {
            return Err(format!("{here}.workspace must be a UUID or slug"));
        }
        if t.workspaces[..i].iter().any(|o| o.workspace == w.workspace) {
            return Err(format!(
                "{here}.workspace: {:?} is listed twice",
                w.workspace
            ));
        }
        if !(w.max_limit.is_finite() && w.max_limit > 0.0) {
            return Err(format!("{here}.max_limit must be a positive number"));
        }
        if let Some(g) = &w.guardrail_id
            && uuid::Uuid::parse_str(g).is_err()
        {
            return Err(format!("{here}.guardrail_id must be a guardrail's UUID"));
        }
        let b = w.bounds(base);
        check_bounds(&format!("{here}."), &b)?;
        if b.min_ttl_seconds < base.min_ttl_seconds || b.max_ttl_seconds > base.max_ttl_seconds {
            return Err(format!(
                "{here}: its lifetime bounds must lie within the policy's ({}..={} seconds)",
                base.min_ttl_seconds, base.max_ttl_seconds
            ));
        }
    }
    Ok(())
}

/// No tenant's prefix is under another's, and no event source is two tenants'.
fn check_disjoint(tenants: &[Tenant]) -> Result<(), String> {
    for (i, a) in tenants.iter().enumerate() {
        for b in &tenants[i + 1..] {
            if a.secret_prefix.starts_with(&b.secret_prefix)
                || b.secret_prefix.starts_with(&a.secret_prefix)
            {
                return Err(format!(
                    "tenants.{}.secret_prefix: {:?} overlaps tenant {}'s {:?}; prefixes decide ownership and must not nest",
                    a.label(),
                    a.secret_prefix,
                    b.label(),
                    b.secret_prefix
                ));
            }
            if let Some(s) = a.event_sources.iter().find(|s| b.event_sources.contains(s)) {
                return Err(format!(
                    "tenants.{}.event_sources: {s:?} is also tenant {}'s",
                    a.label(),
                    b.label()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Terraform module validates a tenant's `actions` against its own list, and
    /// documents it in the error text: both must name exactly [`Permission::ALL`].
    #[test]
    fn terraform_names_every_permission_and_no_other() {
        let tf = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/variables.tf"
        ))
        .expect("infra/variables.tf");
        let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        let list = format!(
            "contains([{}], a)",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(tf.contains(&list), "infra/variables.tf lacks {list}");
        let (last, rest) = names.split_last().expect("permissions");
        let text = format!("tenants: actions are {} or {last}.", rest.join(", "));
        assert!(tf.contains(&text), "infra/variables.tf lacks {text:?}");
        for p in Permission::ALL {
            let parsed: Permission =
                serde_json::from_value(serde_json::Value::from(p.as_str())).expect("parses");
            assert_eq!(parsed, p);
        }
    }

    #[test]
    fn a_policy_needs_workspaces_and_positive_caps() {
        assert!(Policy::from_json(r#"{"workspaces":[]}"#).is_err());
        let err = Policy::from_json(r#"{"workspaces":[{"workspace":"a","max_limit":0}]}"#)
            .expect_err("zero cap");
        assert!(err.contains("max_limit"), "{err}");
        let err =
            Policy::from_json(r#"{"workspaces":[{"workspace":"a","max_limit":5}],"bogus":1}"#)
                .expect_err("unknown field");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn a_guardrail_id_is_a_uuid_and_named_when_it_is_not() {
        let err = Policy::from_json(
            r#"{"workspaces":[{"workspace":"a","max_limit":5,"guardrail_id":"prod"}]}"#,
        )
        .expect_err("not a UUID");
        assert!(err.contains("workspaces[0].guardrail_id"), "{err}");
        let p = Policy::from_json(
            r#"{"workspaces":[{"workspace":"a","max_limit":5,"guardrail_id":"550e8400-e29b-41d4-a716-446655440000"},{"workspace":"b","max_limit":5}]}"#,
        )
        .expect("policy");
        assert!(p.has_guardrails());
        assert_eq!(p.tenants[0].workspaces[1].guardrail_id, None);
    }

    #[test]
    fn the_single_form_is_one_implicit_tenant_with_every_action() {
        let p = Policy::from_json(r#"{"workspaces":[{"workspace":"checkout","max_limit":5}]}"#)
            .expect("valid");
        assert!(!p.tenanted);
        assert_eq!(p.tenants.len(), 1);
        assert_eq!(p.tenants[0].name, None);
        assert_eq!(p.tenants[0].secret_prefix, "openrouter/");
        assert_eq!(p.tenants[0].actions, Permission::ALL.to_vec());
    }

    const TWO: &str = r#"{"tenants":{
        "checkout":{"workspaces":[{"workspace":"checkout","max_limit":100}],"event_sources":["com.example.checkout"]},
        "search":{"workspaces":[{"workspace":"search","max_limit":20},{"workspace":"checkout","max_limit":5,"max_ttl_seconds":86400}],
                  "actions":["provision","rotate"]}},
        "admin_alias":"platform-admin"}"#;

    #[test]
    fn tenants_get_their_prefixes_actions_and_own_bounds() {
        let p = Policy::from_json(TWO).expect("valid");
        assert!(p.tenanted);
        let search = p.tenant("search").expect("search");
        assert_eq!(search.secret_prefix, "openrouter/search/");
        assert_eq!(
            search.actions,
            vec![Permission::Provision, Permission::Rotate]
        );
        assert_eq!(
            search.workspaces[1].bounds(&p.bounds).max_ttl_seconds,
            86_400
        );
        assert_eq!(
            p.owner_of_name("openrouter/checkout/x")
                .and_then(|t| t.name.as_deref()),
            Some("checkout")
        );
        assert!(p.owner_of_name("openrouter/other/x").is_none());
        assert_eq!(p.longest_ttl_seconds(), 90 * 86_400);
    }

    #[test]
    fn ambiguous_or_overlapping_tenant_policies_are_refused_by_field() {
        for (text, field) in [
            (
                r#"{"workspaces":[{"workspace":"a","max_limit":1}],"tenants":{"t":{"workspaces":[{"workspace":"a","max_limit":1}]}}}"#,
                "workspaces",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1}],"secret_prefix":"openrouter/x/"},
                   "b":{"workspaces":[{"workspace":"w","max_limit":1}],"secret_prefix":"openrouter/x/y/"}}}"#,
                "secret_prefix",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1}],"event_sources":["s"]},
                   "b":{"workspaces":[{"workspace":"w","max_limit":1}],"event_sources":["s"]}}}"#,
                "event_sources",
            ),
            (
                r#"{"tenants":{"Bad":{"workspaces":[{"workspace":"w","max_limit":1}]}}}"#,
                "tenants.Bad",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1}],"secret_prefix":"elsewhere/"}}}"#,
                "secret_prefix",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1},{"workspace":"w","max_limit":2}]}}}"#,
                "workspaces[1]",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1,"max_ttl_seconds":99999999}]}}}"#,
                "workspaces[0]",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1}],"actions":[]}}}"#,
                "actions",
            ),
            (
                r#"{"tenants":{"a":{"workspaces":[{"workspace":"w","max_limit":1}]}},"admin_alias":"a"}"#,
                "admin_alias",
            ),
        ] {
            let err = Policy::from_json(text).expect_err(text);
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn every_lifetime_the_policy_allows_fits_the_organisations_maximum() {
        let base = r#"{"workspaces":[{"workspace":"w","max_limit":1}],"max_ttl_seconds":86400,"default_ttl_seconds":3600"#;
        let fits = Policy::from_json(&format!("{base},\"org_max_key_lifetime_seconds\":86400}}"))
            .expect("fits");
        assert_eq!(fits.org_max_key_lifetime_seconds, Some(86_400));
        let e = Policy::from_json(&format!("{base},\"org_max_key_lifetime_seconds\":3600}}"))
            .expect_err("outlives");
        assert!(
            e.contains("max_ttl_seconds (86400) exceeds org_max_key_lifetime_seconds (3600)"),
            "{e}"
        );
        assert!(
            Policy::from_json(&format!("{base},\"org_max_key_lifetime_seconds\":0}}")).is_err()
        );
    }
}
