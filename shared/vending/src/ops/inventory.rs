//! The inventory: every managed secret the caller owns, from `ListSecrets` alone (names, ARNs
//! and tags; no secret is read, no key is called). A tenant sees its own secrets (its
//! `orkv:tenant` tag, or for a secret made before tenants, its prefix); the platform-admin
//! alias sees every tenant's, or one tenant's when the request names it.

use std::time::{Duration, Instant};

use orkv_store::SecretSummary;
use serde::Serialize;

use crate::deps::Deps;
use crate::domain::record::MANAGED_BY;
use crate::domain::tags;
use crate::error::VendError;
use crate::input::action::InventoryRequest;
use crate::input::invocation::Action;

/// A page holds at least this many entries unless the listing ends first.
pub const PAGE_ENTRIES: usize = 100;
/// At most this many `ListSecrets` calls per invocation (a tenant among many may own few
/// secrets per listed page): the reply's `next_token` resumes.
pub const MAX_LIST_CALLS: u32 = 10;
/// Stop listing this long before the deadline.
const MARGIN: Duration = Duration::from_secs(2);

/// Whose secrets an inventory shows.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// Every tenant's (the platform-admin alias, no tenant named).
    All,
    /// One tenant's: its name (`None`: the implicit tenant of the single form) and prefix.
    Tenant {
        name: Option<&'a str>,
        prefix: &'a str,
    },
}

impl Viewer<'_> {
    fn sees(&self, s: &SecretSummary) -> bool {
        match *self {
            Self::All => true,
            Self::Tenant { name: None, prefix } => s.name.starts_with(prefix),
            // The prefix decides, as for every action (anyone who may tag a secret can write
            // `orkv:tenant`); a tag naming another tenant is a record of another tenant's.
            // Made before tenants (no tag): its prefix owner's.
            Self::Tenant {
                name: Some(me),
                prefix,
            } => s.name.starts_with(prefix) && s.tag(tags::TENANT).is_none_or(|t| t == me),
        }
    }
}

/// The cap as the `orkv:cap` tag shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryCap {
    pub limit: f64,
    pub limit_reset: Option<orkv_openrouter::LimitReset>,
    pub include_byok_in_limit: bool,
}

/// One managed secret, from its tags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryEntry {
    pub secret_name: String,
    pub secret_arn: String,
    pub tenant: Option<String>,
    pub key_name: Option<String>,
    pub workspace_id: Option<String>,
    pub workspace: Option<String>,
    pub generation: Option<u64>,
    pub expires_at: Option<String>,
    pub rotate_at: Option<String>,
    /// `None` for a secret whose tags were last written before the cap tag existed (its next
    /// rotation or cap update writes it).
    pub cap: Option<InventoryCap>,
    /// Superseded keys waiting for retirement after their grace period.
    pub keys_waiting_for_retirement: usize,
    pub rotation_enabled: bool,
    /// `active`, `rotation_requested` (an on-demand rotation not finished yet) or `revoked`.
    pub state: &'static str,
}

impl InventoryEntry {
    /// The entry of one listed secret, from its tags alone.
    #[must_use]
    pub fn of(s: &SecretSummary) -> Self {
        let owned = |k: &str| s.tag(k).map(str::to_owned);
        let state = if s.tag(tags::REVOKED).is_some() {
            "revoked"
        } else if s.tag(tags::ROTATION_REQUEST).is_some() {
            "rotation_requested"
        } else {
            "active"
        };
        Self {
            secret_name: s.name.clone(),
            secret_arn: s.arn.clone(),
            tenant: owned(tags::TENANT),
            key_name: owned(tags::KEY_NAME),
            workspace_id: owned(tags::WORKSPACE),
            workspace: owned(tags::WORKSPACE_SLUG),
            generation: s.tag(tags::GENERATION).and_then(|g| g.parse().ok()),
            expires_at: owned(tags::EXPIRES_AT),
            rotate_at: owned(tags::ROTATE_AT),
            cap: s
                .tag(tags::CAP)
                .and_then(tags::parse_cap_tag)
                .map(|c| InventoryCap {
                    limit: c.limit,
                    limit_reset: c.limit_reset,
                    include_byok_in_limit: c.include_byok_in_limit,
                }),
            keys_waiting_for_retirement: tags::retiring(&s.tags).len(),
            rotation_enabled: s.rotation_enabled,
            state,
        }
    }
}

/// What one tenant owns, summed over its entries: the sweep logs it once per run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantSummary {
    pub secrets: u64,
    pub active: u64,
    pub rotation_requested: u64,
    pub revoked: u64,
    pub keys_waiting_for_retirement: u64,
    /// Sum of the caps of the secrets not revoked (USD), from their cap tags.
    pub capped_usd: f64,
    /// Secrets not revoked whose tags predate the cap tag.
    pub without_cap_tag: u64,
    /// The earliest expiry among the secrets not revoked.
    pub next_expiry: Option<String>,
    /// Secrets per workspace (slug, else id).
    pub workspaces: std::collections::BTreeMap<String, u64>,
}

/// The sweep's inventory summary: per tenant (`(default)` for the single form and for
/// secrets made before tenants).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct InventorySummary(pub std::collections::BTreeMap<String, TenantSummary>);

impl InventorySummary {
    /// Adds one entry.
    pub fn count(&mut self, e: &InventoryEntry) {
        let tenant = e.tenant.clone().unwrap_or_else(|| "(default)".to_owned());
        let t = self.0.entry(tenant).or_default();
        t.secrets += 1;
        match e.state {
            "revoked" => t.revoked += 1,
            "rotation_requested" => t.rotation_requested += 1,
            _ => t.active += 1,
        }
        t.keys_waiting_for_retirement += e.keys_waiting_for_retirement as u64;
        if let Some(ws) = e.workspace.as_ref().or(e.workspace_id.as_ref()) {
            *t.workspaces.entry(ws.clone()).or_default() += 1;
        }
        if e.state == "revoked" {
            return;
        }
        match &e.cap {
            Some(cap) => t.capped_usd += cap.limit,
            None => t.without_cap_tag += 1,
        }
        // RFC 3339 in UTC with one format: text order is time order.
        if let Some(at) = &e.expires_at
            && t.next_expiry.as_ref().is_none_or(|n| at < n)
        {
            t.next_expiry = Some(at.clone());
        }
    }
}

/// One page of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryReply {
    pub action: Action,
    pub status: &'static str,
    /// The tenant whose secrets these are; `None`: every tenant's (or the single form's).
    pub tenant: Option<String>,
    pub secrets: Vec<InventoryEntry>,
    pub count: usize,
    /// Pass it back as `next_token` for the next page; `None`: this was the last.
    pub next_token: Option<String>,
    /// The `ListSecrets` calls this page made (no other call is made).
    pub list_calls: u32,
}

/// One page of `viewer`'s managed secrets: `ListSecrets` pages (tag `orkv:managed-by`)
/// until at least [`PAGE_ENTRIES`] entries, the end of the listing, [`MAX_LIST_CALLS`]
/// calls or the deadline's margin.
///
/// # Errors
/// Store errors (an invalid `next_token` among them).
pub async fn inventory(
    deps: &Deps,
    req: &InventoryRequest,
    viewer: Viewer<'_>,
    deadline: Instant,
) -> Result<InventoryReply, VendError> {
    let mut next = req.next_token.clone();
    let mut secrets = Vec::new();
    let mut list_calls = 0;
    loop {
        let (page, token) = deps
            .store
            .list_tagged_page(tags::MANAGED_BY, MANAGED_BY, next)
            .await?;
        list_calls += 1;
        secrets.extend(
            page.iter()
                .filter(|s| viewer.sees(s))
                .map(InventoryEntry::of),
        );
        next = token;
        if next.is_none()
            || secrets.len() >= PAGE_ENTRIES
            || list_calls >= MAX_LIST_CALLS
            || Instant::now() + MARGIN >= deadline
        {
            break;
        }
    }
    let tenant = match viewer {
        Viewer::All => None,
        Viewer::Tenant { name, .. } => name.map(str::to_owned),
    };
    Ok(InventoryReply {
        action: Action::Inventory,
        status: "listed",
        tenant,
        count: secrets.len(),
        secrets,
        next_token: next,
        list_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, tenant: Option<&str>) -> SecretSummary {
        SecretSummary {
            arn: format!("arn:{name}"),
            name: name.to_owned(),
            tags: tenant
                .map(|t| vec![(tags::TENANT.to_owned(), t.to_owned())])
                .unwrap_or_default(),
            current_version: None,
            pending_version: None,
            rotation_enabled: false,
        }
    }

    #[test]
    fn a_tenant_sees_what_is_under_its_prefix_whatever_a_tag_says() {
        let me = Viewer::Tenant {
            name: Some("checkout"),
            prefix: "openrouter/checkout/",
        };
        assert!(me.sees(&summary("openrouter/checkout/a", Some("checkout"))));
        assert!(me.sees(&summary("openrouter/checkout/old", None)));
        // Another tenant's secret tagged with this tenant's name by hand.
        assert!(!me.sees(&summary("openrouter/search/a", Some("checkout"))));
        assert!(!me.sees(&summary("openrouter/checkout/b", Some("search"))));
    }
}
