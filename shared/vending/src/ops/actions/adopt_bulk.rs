//! Bulk adoption: every unmanaged secret under a name prefix (and carrying a tag, when the
//! request names one), planned with `dry_run` (what would be adopted, what refused and why:
//! the same checks as a single adoption, no write) or adopted, `sweep_concurrency` at a time.
//! An invocation stops before its deadline and answers `next_token`: the same request with it
//! resumes at the first page not finished. Each secret's adoption has its own request id
//! (`<request id>/<secret name>`), so a resumed or repeated run answers `unchanged` for what
//! it adopted before, and each adopted secret announces itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orkv_store::SecretSummary;
use serde::Serialize;

use crate::deps::Deps;
use crate::domain::policy::Permission;
use crate::domain::record::MANAGED_BY;
use crate::domain::scope::Scope;
use crate::domain::tags;
use crate::error::VendError;
use crate::input::adopt::{AdoptRequest, BulkAdoptRequest, key_name_of};
use crate::input::invocation::{Action, Trigger};
use crate::ops::announce::ErrorDetail;

use super::ActionStatus;
use crate::ops::announce::{self, Origin, ResultDetail};

/// Time kept back from the deadline: no secret is started after it.
const MARGIN: Duration = Duration::from_secs(3);

/// One secret's line in the plan or the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkEntry {
    pub secret_name: String,
    /// `would_adopt`, `adopted`, `unchanged` (adopted by this request before), `already_managed`,
    /// `refused` or `failed` (a transient error: the next run retries it).
    pub outcome: &'static str,
    pub key_hash: Option<String>,
    /// The key's expiry is within the policy (else a successor replaces it).
    pub conforming: Option<bool>,
    pub error: Option<ErrorDetail>,
}

/// What a bulk adoption planned or did in this invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkReply {
    pub action: Action,
    /// `planned` (dry run), `adopted` (every secret seen), or `partial` (send the request again
    /// with `next_token`; `null` means from the start).
    pub status: &'static str,
    pub dry_run: bool,
    pub secret_prefix: String,
    /// Entries by outcome.
    pub counts: BTreeMap<&'static str, u64>,
    pub secrets: Vec<BulkEntry>,
    pub next_token: Option<String>,
    pub list_calls: u32,
    pub request_id: String,
}

enum Done {
    Entry(BulkEntry),
    /// The deadline came first: the page is redone by the next run.
    NotStarted,
}

fn entry(name: &str, outcome: &'static str) -> BulkEntry {
    BulkEntry {
        secret_name: name.to_owned(),
        outcome,
        key_hash: None,
        conforming: None,
        error: None,
    }
}

fn failed(name: &str, e: &VendError) -> BulkEntry {
    let refused = matches!(
        e.kind(),
        "AdoptionRefused" | "PolicyViolation" | "TenantScopeViolation" | "InvalidRequest"
    );
    BulkEntry {
        error: Some(ErrorDetail {
            kind: e.kind().to_owned(),
            message: e.to_string(),
        }),
        ..entry(name, if refused { "refused" } else { "failed" })
    }
}

/// The listed secret carries the request's tag filter (every secret when it names none).
fn carries(tag: Option<&(String, String)>, s: &SecretSummary) -> bool {
    tag.is_none_or(|(k, v)| s.tag(k) == Some(v.as_str()))
}

/// What the listing alone settles for one secret (no call, no event); `None`: it takes a
/// look (dry run) or an adoption.
/// - `unchanged`: this very request adopted it in an earlier run (a resumed page), and
///   that adoption finished;
/// - `already_managed`: a dry run over a secret the product manages.
fn settled_by_listing(dry_run: bool, s: &SecretSummary, own_id: &str) -> Option<&'static str> {
    if dry_run {
        return (s.tag(tags::MANAGED_BY) == Some(MANAGED_BY)).then_some("already_managed");
    }
    let adopted_here = s.tag(tags::ADOPTED)
        == Some(crate::input::invocation::request_digest(own_id).as_str())
        && s.tag(tags::ADOPTING).is_none();
    adopted_here.then_some("unchanged")
}

/// Plans or runs a bulk adoption until the listing ends or the deadline nears.
///
/// # Errors
/// Scope and policy refusals of the request itself (before any read), and `ListSecrets`
/// errors; each secret's own refusal or failure is an entry of the reply.
pub async fn adopt_bulk(
    deps: &Deps,
    req: &BulkAdoptRequest,
    scope: &Scope<'_>,
    request_id: &str,
    trigger: Trigger,
    deadline: Instant,
) -> Result<BulkReply, VendError> {
    scope.require(Permission::Adopt)?;
    scope.check_prefix(&req.secret_prefix)?;
    // The terms are checked on a placeholder name under the prefix: a refusal of it is one of
    // `secret_prefix`.
    super::adopt::adoption_terms(deps, &req.terms, scope)
        .await
        .map_err(|e| e.with_field_renamed("secret_name", "secret_prefix"))?;
    let mut reply = BulkReply {
        action: Action::Adopt,
        status: if req.dry_run { "planned" } else { "adopted" },
        dry_run: req.dry_run,
        secret_prefix: req.secret_prefix.clone(),
        counts: BTreeMap::new(),
        secrets: Vec::new(),
        next_token: None,
        list_calls: 0,
        request_id: request_id.to_owned(),
    };
    let mut page_token = req.next_token.clone();
    let mut complete = false;
    loop {
        if Instant::now() + MARGIN >= deadline {
            reply.next_token = page_token;
            break;
        }
        let (page, next) = deps
            .store
            .list_named_page(&req.secret_prefix, page_token.clone())
            .await?;
        reply.list_calls += 1;
        let wanted = page.into_iter().filter(|s| carries(req.tag.as_ref(), s));
        let done: Vec<Done> = futures_util::stream::iter(wanted)
            .map(|s| adopt_listed(deps, req, s, scope, request_id, trigger, deadline))
            .buffer_unordered(deps.cfg.sweep_concurrency)
            .collect()
            .await;
        let unfinished = done.iter().any(|d| matches!(d, Done::NotStarted));
        // A plan's unfinished page is planned again, whole, by the next run: its entries here
        // would be listed twice. An adoption's entries stay (they happened; the next run
        // answers them `unchanged`).
        if !(unfinished && req.dry_run) {
            for d in done {
                if let Done::Entry(e) = d {
                    *reply.counts.entry(e.outcome).or_default() += 1;
                    reply.secrets.push(e);
                }
            }
        }
        if unfinished {
            reply.next_token = page_token;
            break;
        }
        if req
            .max_secrets
            .is_some_and(|m| reply.secrets.len() as u64 >= m)
            && next.is_some()
        {
            reply.next_token = next;
            break;
        }
        match next {
            Some(t) => page_token = Some(t),
            None => {
                complete = true;
                break;
            }
        }
    }
    if !complete {
        // `next_token` null: from the start again.
        reply.status = "partial";
    }
    reply
        .secrets
        .sort_by(|a, b| a.secret_name.cmp(&b.secret_name));
    Ok(reply)
}

/// One listed secret: planned, or adopted (and announced) under its own request id.
async fn adopt_listed(
    deps: &Deps,
    bulk: &BulkAdoptRequest,
    s: SecretSummary,
    scope: &Scope<'_>,
    request_id: &str,
    trigger: Trigger,
    deadline: Instant,
) -> Done {
    if Instant::now() + MARGIN >= deadline {
        return Done::NotStarted;
    }
    let name = s.name.as_str();
    let key_name = match key_name_of(name) {
        Ok(k) => k,
        Err(e) => return Done::Entry(failed(name, &e)),
    };
    let req = AdoptRequest {
        secret_name: name.to_owned(),
        key_name,
        ..bulk.terms.clone()
    };
    let own_id = format!("{request_id}/{name}");
    if let Some(outcome) = settled_by_listing(bulk.dry_run, &s, &own_id) {
        return Done::Entry(entry(name, outcome));
    }
    if bulk.dry_run {
        return Done::Entry(
            match super::adopt::inspect_adoption(deps, &req, scope).await {
                Ok((hash, conforming)) => BulkEntry {
                    key_hash: Some(hash),
                    conforming: Some(conforming),
                    ..entry(name, "would_adopt")
                },
                Err(e) => failed(name, &e),
            },
        );
    }
    match Box::pin(super::adopt::adopt_request(
        deps, &req, scope, &own_id, trigger,
    ))
    .await
    {
        Ok(r) => {
            announce::announce(deps, r.announcement(scope.tenant_name())).await;
            let outcome = if r.status == ActionStatus::Unchanged {
                "unchanged"
            } else {
                "adopted"
            };
            Done::Entry(BulkEntry {
                key_hash: r.key_hash,
                ..entry(name, outcome)
            })
        }
        Err(e) if s.tag(tags::MANAGED_BY) == Some(MANAGED_BY) && e.kind() == "AdoptionRefused" => {
            Done::Entry(entry(name, "already_managed"))
        }
        Err(e) => {
            let mut failure = ResultDetail::failure(Origin::Request(Action::Adopt), &e)
                .for_request(Some(&own_id), trigger, scope.tenant_name());
            failure.secret_name = Some(name.to_owned());
            announce::announce(deps, failure).await;
            Done::Entry(failed(name, &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::invocation::request_digest;

    fn listed(tag_list: &[(&str, &str)]) -> SecretSummary {
        SecretSummary {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:team/a".into(),
            name: "team/a".into(),
            tags: tag_list
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            rotation_enabled: false,
            current_version: None,
            pending_version: None,
        }
    }

    #[test]
    fn the_tag_filter_keeps_only_secrets_carrying_that_exact_value() {
        let filter = ("team".to_owned(), "checkout".to_owned());
        assert!(carries(Some(&filter), &listed(&[("team", "checkout")])));
        assert!(!carries(Some(&filter), &listed(&[("team", "search")])));
        assert!(!carries(Some(&filter), &listed(&[])));
        assert!(carries(None, &listed(&[])));
    }

    #[test]
    fn a_secret_this_request_adopted_in_an_earlier_run_is_unchanged_from_the_listing() {
        let digest = request_digest("bulk-1/team/a");
        let s = listed(&[(tags::ADOPTED, &digest), (tags::MANAGED_BY, MANAGED_BY)]);
        assert_eq!(
            settled_by_listing(false, &s, "bulk-1/team/a"),
            Some("unchanged")
        );
        // Another request's adoption is not this one's: it goes through adopt (which answers).
        assert_eq!(settled_by_listing(false, &s, "bulk-2/team/a"), None);
    }

    #[test]
    fn an_adoption_cut_off_midway_is_finished_not_skipped() {
        let digest = request_digest("bulk-1/team/a");
        let s = listed(&[(tags::ADOPTED, &digest), (tags::ADOPTING, "x")]);
        assert_eq!(settled_by_listing(false, &s, "bulk-1/team/a"), None);
    }

    #[test]
    fn a_dry_run_settles_only_what_the_product_already_manages() {
        let managed = listed(&[(tags::MANAGED_BY, MANAGED_BY)]);
        assert_eq!(
            settled_by_listing(true, &managed, "r/team/a"),
            Some("already_managed")
        );
        assert_eq!(settled_by_listing(true, &listed(&[]), "r/team/a"), None);
        assert_eq!(settled_by_listing(false, &managed, "r/team/a"), None);
    }

    #[test]
    fn a_refusal_is_refused_and_anything_else_failed_for_a_later_run() {
        let refused = failed("team/a", &VendError::invalid("secret_name", "too long"));
        assert_eq!(refused.outcome, "refused");
        assert_eq!(
            refused.error.as_ref().map(|e| e.kind.as_str()),
            Some("InvalidRequest")
        );
        let transient = failed("team/a", &VendError::Config("throttled".into()));
        assert_eq!(transient.outcome, "failed");
    }
}
