//! Who is calling, and what that caller may reach. No I/O.
//!
//! Identity comes from what AWS vouches for, never from the payload: the qualifier of the
//! invoked function ARN (one Lambda alias per tenant, which only that tenant's roles and its
//! EventBridge rule may invoke), and for events also the `source` (which IAM's
//! `events:source` condition binds to the producer). Every refusal is a
//! `TenantScopeViolation` that names the field and the rule and nothing about secrets the
//! caller does not own.

use std::collections::HashMap;

use orkv_openrouter::Workspace;

use crate::domain::policy::{Permission, Policy, Tenant, WorkspacePolicy};
use crate::error::VendError;

/// The refusal for a caller that is no tenant: the same for no qualifier, a version, and an
/// alias no tenant has.
const NOT_A_TENANT: &str = "invoke the function through your tenant's alias; unqualified, version and unknown-alias invocations are refused when tenants are configured";

/// The qualifier of an invoked function ARN (`arn:aws:lambda:r:a:function:name:qualifier`).
#[must_use]
pub fn qualifier(invoked_function_arn: &str) -> Option<&str> {
    let mut parts = invoked_function_arn.split(':');
    let resource = parts.nth(5)?;
    if resource != "function" {
        return None;
    }
    parts.nth(1).filter(|q| !q.is_empty())
}

/// Who the caller is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Caller<'p> {
    /// A tenant (the implicit one in the single-policy form).
    Tenant(&'p Tenant),
    /// The platform-admin alias: acts for the tenant that owns what it names.
    Admin,
}

/// Identifies the caller from the invoked function ARN and, for EventBridge, the event's
/// `source`.
///
/// # Errors
/// `TenantScopeViolation` for an invocation that is no tenant's, or an event whose source is
/// not its tenant's.
pub fn identify<'p>(
    policy: &'p Policy,
    invoked_function_arn: &str,
    event_source: Option<&str>,
) -> Result<Caller<'p>, VendError> {
    if !policy.tenanted {
        return policy
            .tenants
            .first()
            .map(Caller::Tenant)
            .ok_or_else(|| VendError::Config("the policy has no tenant".into()));
    }
    let q = qualifier(invoked_function_arn);
    if q.is_some() && q == policy.admin_alias.as_deref() {
        return Ok(Caller::Admin);
    }
    let tenant = q
        .and_then(|q| policy.tenant(q))
        .ok_or_else(|| VendError::scope("(invoked function)", NOT_A_TENANT))?;
    if let Some(source) = event_source
        && !tenant.event_sources.iter().any(|s| s == source)
    {
        return Err(VendError::scope(
            "source",
            "is not one of the event sources of the tenant whose rule delivered the event",
        ));
    }
    Ok(Caller::Tenant(tenant))
}

/// What one request may reach: its tenant, and whether the admin alias sent it.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'p> {
    pub tenant: &'p Tenant,
    pub admin: bool,
}

impl<'p> Scope<'p> {
    /// The scope of a request: a tenant caller's own; for the admin alias, the tenant the
    /// request names (`tenant`) or that owns its `secret_name`.
    ///
    /// # Errors
    /// `TenantScopeViolation` naming `tenant` or `secret_name`.
    pub fn of(
        policy: &'p Policy,
        caller: Caller<'p>,
        tenant_field: Option<&str>,
        secret_name: Option<&str>,
    ) -> Result<Self, VendError> {
        match caller {
            Caller::Tenant(t) => {
                if let Some(named) = tenant_field
                    && t.name.as_deref() != Some(named)
                {
                    return Err(VendError::scope(
                        "tenant",
                        "may only name the tenant whose alias was invoked",
                    ));
                }
                Ok(Self {
                    tenant: t,
                    admin: false,
                })
            }
            Caller::Admin => {
                let tenant = match (tenant_field, secret_name) {
                    (Some(named), _) => policy
                        .tenant(named)
                        .ok_or_else(|| VendError::scope("tenant", "is not a configured tenant"))?,
                    (None, Some(name)) => policy.owner_of_name(name).ok_or_else(|| {
                        VendError::scope("secret_name", "is under no tenant's prefix")
                    })?,
                    (None, None) => {
                        return Err(VendError::scope(
                            "tenant",
                            "is required through the platform-admin alias when secret_name is not given",
                        ));
                    }
                };
                Ok(Self {
                    tenant,
                    admin: true,
                })
            }
        }
    }

    /// The tenant's name (`None` for the implicit tenant).
    #[must_use]
    pub fn tenant_name(&self) -> Option<&'p str> {
        self.tenant.name.as_deref()
    }

    /// Whether the scope may take `action`.
    #[must_use]
    pub fn allows(&self, action: Permission) -> bool {
        self.admin || self.tenant.actions.contains(&action)
    }

    /// # Errors
    /// `TenantScopeViolation` on `action` when the tenant holds none of `any` (an empty list
    /// requires nothing).
    pub fn require_any(&self, any: &[Permission]) -> Result<(), VendError> {
        if any.is_empty() || any.iter().any(|p| self.allows(*p)) {
            return Ok(());
        }
        let names: Vec<&str> = any.iter().map(|p| p.as_str()).collect();
        Err(VendError::scope(
            "action",
            format!(
                "tenant {} may not {} (its policy's actions)",
                self.tenant.label(),
                names.join(" or ")
            ),
        ))
    }

    /// # Errors
    /// `TenantScopeViolation` on `action` when the tenant may not take it.
    pub fn require(&self, action: Permission) -> Result<(), VendError> {
        if self.allows(action) {
            return Ok(());
        }
        Err(VendError::scope(
            "action",
            format!(
                "tenant {} may not {} (its policy's actions)",
                self.tenant.label(),
                action.as_str()
            ),
        ))
    }

    /// # Errors
    /// `TenantScopeViolation` on `secret_name` when the name is outside the tenant's prefix
    /// (decided from the name alone, before any read).
    pub fn check_name(&self, secret_name: &str) -> Result<(), VendError> {
        self.check_under_prefix(secret_name, "secret_name")
    }

    /// As [`Scope::check_name`], for a bulk adoption's `secret_prefix`: the refusal names
    /// that field.
    ///
    /// # Errors
    /// As [`Scope::check_name`], naming `secret_prefix`.
    pub fn check_prefix(&self, secret_prefix: &str) -> Result<(), VendError> {
        self.check_under_prefix(secret_prefix, "secret_prefix")
    }

    fn check_under_prefix(&self, name: &str, field: &str) -> Result<(), VendError> {
        if name.starts_with(self.tenant.secret_prefix.as_str()) {
            return Ok(());
        }
        if self.tenant.name.is_none() {
            // The single-policy form: the managed prefix, as before tenants.
            return Err(VendError::policy(
                field,
                format!(
                    "must start with the managed prefix {:?}",
                    self.tenant.secret_prefix
                ),
            ));
        }
        Err(VendError::scope(
            field,
            format!(
                "must start with this tenant's prefix {:?}",
                self.tenant.secret_prefix
            ),
        ))
    }

    /// # Errors
    /// `TenantScopeViolation` on `secret_name` when the secret records another tenant
    /// (`recorded`: the record's `tenant` or the `orkv:tenant` tag; a secret made before
    /// tenants records none and is the prefix owner's).
    pub fn check_owner(&self, recorded: Option<&str>) -> Result<(), VendError> {
        owner_matches(self.tenant_name(), recorded)
    }

    /// The tenant's entry for the workspace with UUID `workspace_id`; `resolved` maps each
    /// entry's identifier to the UUID it names.
    #[must_use]
    pub fn entry_for(
        &self,
        resolved: &HashMap<String, Option<String>>,
        workspace_id: &str,
    ) -> Option<&'p WorkspacePolicy> {
        self.tenant.workspaces.iter().find(|w| {
            resolved
                .get(&w.workspace)
                .is_some_and(|id| id.as_deref() == Some(workspace_id))
        })
    }
}

/// # Errors
/// `TenantScopeViolation` on `secret_name` when `mine` is a tenant and the secret records
/// another one.
pub fn owner_matches(mine: Option<&str>, recorded: Option<&str>) -> Result<(), VendError> {
    match (mine, recorded) {
        (Some(mine), Some(theirs)) if mine != theirs => Err(VendError::scope(
            "secret_name",
            "is not this tenant's secret",
        )),
        _ => Ok(()),
    }
}

/// The check every key's terms pass at the moment the product sets them, whatever computed
/// them (a successor's settings may come from tags, which others can write): the secret is
/// under a tenant's prefix (the tenant a record names must be that one), the workspace
/// (`workspace_id`, a UUID; `resolved` as in [`Scope::entry_for`]) is one of that tenant's,
/// and `limit` is at most its `max_limit` there.
///
/// # Errors
/// `PolicyViolation` naming `secret_name`, `workspace` or `limit` and the rule;
/// `TenantScopeViolation` when the record names another tenant.
pub fn check_key_terms(
    policy: &Policy,
    resolved: &HashMap<String, Option<String>>,
    secret_name: &str,
    recorded_tenant: Option<&str>,
    workspace_id: &str,
    limit: f64,
) -> Result<(), VendError> {
    let owner = policy
        .owner_of_name(secret_name)
        .ok_or_else(|| VendError::policy("secret_name", "is under no tenant's prefix"))?;
    owner_matches(owner.name.as_deref(), recorded_tenant)?;
    let scope = Scope {
        tenant: owner,
        admin: false,
    };
    let entry = scope.entry_for(resolved, workspace_id).ok_or_else(|| {
        VendError::policy(
            "workspace",
            format!(
                "workspace {workspace_id} is not one of tenant {}'s workspaces",
                owner.label()
            ),
        )
    })?;
    if limit > entry.max_limit + 1e-9 {
        return Err(VendError::policy(
            "limit",
            format!(
                "{limit} USD exceeds tenant {}'s maximum cap of {} USD in workspace {}",
                owner.label(),
                entry.max_limit,
                entry.workspace
            ),
        ));
    }
    Ok(())
}

/// How an identifier matched the workspace listing.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkspaceMatch<'a> {
    /// Exactly one workspace carries it; `by_name`: only as its display name.
    One {
        workspace: &'a Workspace,
        by_name: bool,
    },
    None,
    /// Several workspaces carry it (as id, slug or name, in any combination).
    Ambiguous(usize),
}

/// Matches `ident` against every workspace's UUID, slug and name. An identifier that is one
/// workspace's slug and another's name is ambiguous, never resolved by list order.
#[must_use]
pub fn match_workspace<'a>(all: &'a [Workspace], ident: &str) -> WorkspaceMatch<'a> {
    let mut found: Vec<&Workspace> = all
        .iter()
        .filter(|w| w.id == ident || w.slug == ident || w.name == ident)
        .collect();
    found.dedup_by(|a, b| a.id == b.id);
    match found.as_slice() {
        [] => WorkspaceMatch::None,
        [w] => WorkspaceMatch::One {
            workspace: w,
            by_name: w.id != ident && w.slug != ident,
        },
        many => WorkspaceMatch::Ambiguous(many.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(id: &str, slug: &str, name: &str) -> Workspace {
        serde_json::from_value(serde_json::json!({"id": id, "slug": slug, "name": name}))
            .expect("workspace")
    }

    const TWO: &str = r#"{"tenants":{
        "checkout":{"workspaces":[{"workspace":"checkout","max_limit":100}],"event_sources":["com.example.checkout"]},
        "search":{"workspaces":[{"workspace":"search","max_limit":20}],"actions":["provision"]}},
        "admin_alias":"platform-admin"}"#;

    #[test]
    fn a_key_s_terms_are_its_prefix_owner_s_workspace_and_cap() {
        let p = Policy::from_json(TWO).expect("policy");
        let resolved: HashMap<String, Option<String>> = [
            ("checkout".to_owned(), Some("ws-c".to_owned())),
            ("search".to_owned(), Some("ws-s".to_owned())),
        ]
        .into();
        let ok = check_key_terms(&p, &resolved, "openrouter/checkout/a", None, "ws-c", 100.0);
        assert!(ok.is_ok(), "{ok:?}");
        let field = |r: Result<(), VendError>| match r {
            Err(VendError::Policy { field, .. }) => field,
            other => panic!("expected a policy refusal, got {other:?}"),
        };
        // Another tenant's workspace, and a cap above the owner's maximum.
        let other = check_key_terms(&p, &resolved, "openrouter/checkout/a", None, "ws-s", 1.0);
        assert_eq!(field(other), "workspace");
        let above = check_key_terms(&p, &resolved, "openrouter/search/a", None, "ws-s", 99_990.0);
        assert_eq!(field(above), "limit");
        let nowhere = check_key_terms(&p, &resolved, "elsewhere/a", None, "ws-s", 1.0);
        assert_eq!(field(nowhere), "secret_name");
        // A record naming another tenant than the prefix's owner.
        let forged = check_key_terms(
            &p,
            &resolved,
            "openrouter/search/a",
            Some("checkout"),
            "ws-s",
            1.0,
        );
        assert!(
            matches!(forged, Err(VendError::TenantScope { .. })),
            "{forged:?}"
        );
    }

    #[test]
    fn the_qualifier_is_the_alias_of_the_invoked_arn() {
        assert_eq!(
            qualifier("arn:aws:lambda:eu-west-1:123456789012:function:orkv-provision:checkout"),
            Some("checkout")
        );
        assert_eq!(
            qualifier("arn:aws:lambda:eu-west-1:123456789012:function:orkv-provision"),
            None
        );
        assert_eq!(qualifier("not an arn"), None);
    }

    #[test]
    fn callers_are_their_alias_and_nothing_else_identifies_a_tenant() {
        let p = Policy::from_json(TWO).expect("policy");
        let arn = |q: &str| format!("arn:aws:lambda:eu-west-1:1:function:orkv-provision{q}");
        let Ok(Caller::Tenant(t)) = identify(&p, &arn(":search"), None) else {
            panic!("search");
        };
        assert_eq!(t.name.as_deref(), Some("search"));
        assert_eq!(
            identify(&p, &arn(":platform-admin"), None).expect("admin"),
            Caller::Admin
        );
        for q in ["", ":$LATEST", ":7", ":nobody"] {
            let err = identify(&p, &arn(q), None).expect_err(q);
            assert_eq!(err.kind(), "TenantScopeViolation");
            assert!(err.to_string().contains("(invoked function)"), "{err}");
        }
        let err = identify(&p, &arn(":checkout"), Some("com.example.search")).expect_err("src");
        assert!(err.to_string().contains("`source`"), "{err}");
        assert!(identify(&p, &arn(":checkout"), Some("com.example.checkout")).is_ok());
    }

    #[test]
    fn a_scope_checks_actions_prefixes_and_recorded_owners() {
        let p = Policy::from_json(TWO).expect("policy");
        let search = p.tenant("search").expect("search");
        let s = Scope::of(&p, Caller::Tenant(search), None, None).expect("scope");
        assert!(s.require(Permission::Provision).is_ok());
        assert!(s.require(Permission::Revoke).is_err());
        assert!(s.check_name("openrouter/search/x").is_ok());
        assert!(s.check_name("openrouter/checkout/x").is_err());
        assert!(s.check_owner(Some("checkout")).is_err());
        assert!(s.check_owner(None).is_ok());
        assert!(Scope::of(&p, Caller::Tenant(search), Some("checkout"), None).is_err());
        let admin =
            Scope::of(&p, Caller::Admin, None, Some("openrouter/checkout/x")).expect("admin");
        assert_eq!(admin.tenant_name(), Some("checkout"));
        assert!(admin.require(Permission::Revoke).is_ok());
        assert!(Scope::of(&p, Caller::Admin, None, None).is_err());
    }

    #[test]
    fn an_action_is_open_to_a_tenant_holding_any_of_its_permissions() {
        let p = Policy::from_json(TWO).expect("policy");
        let search = p.tenant("search").expect("search");
        let s = Scope::of(&p, Caller::Tenant(search), None, None).expect("scope");
        assert!(s.require_any(&[]).is_ok());
        assert!(
            s.require_any(&[Permission::Revoke, Permission::Provision])
                .is_ok()
        );
        let refused = s
            .require_any(&[Permission::Rotate, Permission::LeakRotate])
            .expect_err("search may only provision");
        assert_eq!(refused.kind(), "TenantScopeViolation");
        assert!(
            refused
                .to_string()
                .contains("may not rotate or leak_rotate"),
            "{refused}"
        );
    }

    #[test]
    fn workspaces_match_exactly_or_not_at_all() {
        let all = vec![
            ws("u1", "checkout", "Checkout Team"),
            ws("u2", "shadow", "checkout"),
            ws("u3", "search", "Shared"),
            ws("u4", "other", "Shared"),
        ];
        assert_eq!(
            match_workspace(&all, "checkout"),
            WorkspaceMatch::Ambiguous(2)
        );
        assert_eq!(
            match_workspace(&all, "Shared"),
            WorkspaceMatch::Ambiguous(2)
        );
        assert_eq!(match_workspace(&all, "nope"), WorkspaceMatch::None);
        assert!(matches!(
            match_workspace(&all, "u1"),
            WorkspaceMatch::One { by_name: false, .. }
        ));
        assert!(matches!(
            match_workspace(&all, "Checkout Team"),
            WorkspaceMatch::One { by_name: true, .. }
        ));
    }
}
