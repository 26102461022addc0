//! Reading one page of managed secrets: counts, warnings, and the work it holds, from the
//! tags alone. Pure: no I/O, unit-tested below.

use orkv_store::SecretSummary;
use time::OffsetDateTime;
use tracing::warn;

use crate::config::Config;
use crate::domain::budget::{Ledger, period_of};
use crate::domain::lifetime::Lifetime;
use crate::domain::names::rotation_token;
use crate::domain::record::MANAGED_BY;
use crate::domain::tags::{self, retiring};
use crate::ops::inventory::InventoryEntry;

use super::report::{SweepAction, SweepReport};
use super::spend::LogicalKey;
use super::{Listed, Work, h64};

/// The settings a page's plan reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlanLimits {
    /// A fixed expiry closer than this is warned about.
    pub expiry_warning: time::Duration,
    /// Rotations one run may start.
    pub max_rotations: u64,
}

impl PlanLimits {
    pub(super) fn of(cfg: &Config) -> Self {
        Self {
            expiry_warning: time::Duration::try_from(cfg.expiry_warning)
                .unwrap_or(time::Duration::DAY),
            max_rotations: cfg.sweep_max_rotations as u64,
        }
    }
}

fn tag_time(s: &SecretSummary, key: &str) -> Option<OffsetDateTime> {
    s.tag(key).and_then(tags::parse_time)
}

/// The work one page holds; every key name and superseded hash goes into `referenced`,
/// and each secret's current key name into `current` (for the key scan's check that it
/// still works).
pub(super) fn plan_page(
    limits: PlanLimits,
    report: &mut SweepReport,
    page: &[SecretSummary],
    now: OffsetDateTime,
    listed: &mut Listed,
) -> Vec<Work> {
    report.list_calls += 1;
    let mut work = Vec::new();
    for s in page {
        report.secrets_scanned += 1;
        if s.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
            continue;
        }
        report.inventory.count(&InventoryEntry::of(s));
        if s.tag(tags::REVOKED).is_some() {
            continue;
        }
        let mut in_book = false;
        if let Some(n) = s.tag(tags::OPENROUTER_KEY) {
            listed.referenced.insert(h64(n));
            if let Some(ws) = s.tag(tags::WORKSPACE) {
                let cap = s.tag(tags::CAP).and_then(tags::parse_cap_tag);
                listed
                    .current
                    .insert(h64(n), (s.name.clone().into_boxed_str(), h64(ws), cap));
                let carried = cap.map_or(0.0, |c| {
                    Ledger::read(s.tag(tags::BUDGET), &period_of(c.limit_reset, now)).carried
                });
                in_book = true;
                listed.book.secret(LogicalKey {
                    secret: &s.name,
                    current_name_h: h64(n),
                    retiring_h: retiring(&s.tags).iter().map(|(h, _)| h64(h)),
                    cap,
                    carried,
                    tenant: s.tag(tags::TENANT).unwrap_or("(default)"),
                    workspace: s.tag(tags::WORKSPACE_SLUG).unwrap_or(ws),
                });
            }
        }
        let mut due_hashes = Vec::new();
        for (hash, at) in retiring(&s.tags) {
            listed.referenced.insert(h64(&hash));
            if at <= now {
                due_hashes.push(hash);
            }
        }
        if !due_hashes.is_empty() {
            if in_book {
                listed.book.busy();
            }
            report.retirements_due += due_hashes.len() as u64;
            work.push(Work::Retire {
                name: s.name.clone(),
                arn: s.arn.clone(),
                hashes: due_hashes,
            });
        }
        if s.current_version
            .as_deref()
            .is_some_and(|v| !crate::domain::names::is_product_token(v))
        {
            work.push(Work::CheckValue {
                name: s.name.clone(),
            });
        }
        if let Some(version) = &s.pending_version {
            // A rotation under way, or stalled (a due secret's start then meets it).
            work.push(Work::CheckPending {
                name: s.name.clone(),
                version: version.clone(),
            });
        }
        if let Some(rotate) = plan_rotation(limits, report, s, now) {
            if in_book {
                listed.book.busy();
            }
            work.push(rotate);
        } else if let Some(configure) = plan_configuration(limits, report, s) {
            work.push(configure);
        }
    }
    work
}

/// Configuration for an active secret with a key whose rotation is not configured (a rotation
/// being started configures it anyway). Rotation is configured when a secret is created; this
/// finds a crash between the two, and secrets adopted before that. Within the run's rotation
/// budget, counted apart: the first run after an upgrade (every older secret was configured
/// only at its first rotation) must not spend the run's time on it and skip the key scan;
/// later runs configure the rest.
fn plan_configuration(
    limits: PlanLimits,
    report: &mut SweepReport,
    s: &SecretSummary,
) -> Option<Work> {
    if s.rotation_enabled || s.tag(tags::OPENROUTER_KEY).is_none() {
        return None;
    }
    report.rotations_not_configured += 1;
    (report.rotations_not_configured <= limits.max_rotations).then(|| Work::Configure {
        name: s.name.clone(),
    })
}

/// A rotation when the key is due, or a warning when a fixed expiry is near.
fn plan_rotation(
    limits: PlanLimits,
    report: &mut SweepReport,
    s: &SecretSummary,
    now: OffsetDateTime,
) -> Option<Work> {
    let near_expiry =
        tag_time(s, tags::EXPIRES_AT).is_some_and(|e| e <= now + limits.expiry_warning);
    let fixed = s
        .tag(tags::LIFETIME)
        .and_then(Lifetime::from_tag_value)
        .is_some_and(Lifetime::is_fixed);
    if fixed {
        if near_expiry {
            report.keys_near_expiry += 1;
            warn!(event = "KeyNearExpiry", secret = %s.name, expires_at = s.tag(tags::EXPIRES_AT).unwrap_or(""), reason = "fixed expires_at: a rotation cannot extend it", "key close to expiry");
            report.note(
                SweepAction::WarnNearExpiry,
                &s.name,
                "fixed expires_at".into(),
            );
        }
        return None;
    }
    if tag_time(s, tags::ROTATE_AT).is_none_or(|r| r > now) {
        return None;
    }
    let generation = s
        .tag(tags::GENERATION)
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(1);
    report.rotations_due += 1;
    if report.rotations_due - report.rotations_deferred > limits.max_rotations {
        report.rotations_deferred += 1;
        if near_expiry {
            warn!(event = "RotationDeferred", secret = %s.name, "due and near expiry, beyond this run's rotation budget");
        }
        return None;
    }
    Some(Work::Rotate {
        name: s.name.clone(),
        token: rotation_token(&s.name, generation),
        near_expiry,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-07 12:00 UTC);
    const LIMITS: PlanLimits = PlanLimits {
        expiry_warning: time::Duration::DAY,
        max_rotations: 2,
    };

    fn at(offset: time::Duration) -> String {
        tags::time_value(NOW + offset)
    }

    /// A managed secret's listing entry: every tag the product writes for an active key,
    /// overridden or extended by `extra`.
    fn managed(name: &str, extra: &[(&str, String)]) -> SecretSummary {
        let mut tag_list: Vec<(String, String)> = vec![
            (tags::MANAGED_BY.into(), MANAGED_BY.into()),
            (tags::OPENROUTER_KEY.into(), format!("orkv-{name}")),
            (tags::WORKSPACE.into(), "ws-1".into()),
            (tags::GENERATION.into(), "3".into()),
            (tags::LIFETIME.into(), "ttl:2592000".into()),
            (tags::EXPIRES_AT.into(), at(time::Duration::days(20))),
            (tags::ROTATE_AT.into(), at(time::Duration::days(10))),
        ];
        for (k, v) in extra {
            tag_list.retain(|(t, _)| t != k);
            tag_list.push(((*k).to_owned(), v.clone()));
        }
        SecretSummary {
            arn: format!("arn:aws:secretsmanager:us-east-1:1:secret:{name}"),
            name: name.to_owned(),
            tags: tag_list,
            rotation_enabled: true,
            current_version: None,
            pending_version: None,
        }
    }

    struct Planned {
        report: SweepReport,
        work: Vec<Work>,
        referenced: HashSet<u64>,
        current: super::super::Current,
    }

    fn plan(page: &[SecretSummary]) -> Planned {
        plan_with(LIMITS, page)
    }

    fn plan_with(limits: PlanLimits, page: &[SecretSummary]) -> Planned {
        let mut report = SweepReport::default();
        let mut listed = Listed::default();
        let work = plan_page(limits, &mut report, page, NOW, &mut listed);
        Planned {
            report,
            work,
            referenced: listed.referenced,
            current: listed.current,
        }
    }

    #[test]
    fn a_secret_not_due_holds_no_work_but_its_key_is_referenced_and_current() {
        let p = plan(&[managed("a", &[])]);
        assert!(p.work.is_empty());
        assert_eq!((p.report.list_calls, p.report.secrets_scanned), (1, 1));
        assert_eq!(p.report.rotations_due, 0);
        assert!(p.referenced.contains(&h64("orkv-a")));
        assert!(p.current.contains_key(&h64("orkv-a")));
    }

    #[test]
    fn an_active_secret_without_rotation_configured_is_configured_unless_revoked_or_due() {
        let mut off = managed("off", &[]);
        off.rotation_enabled = false;
        let p = plan(&[off.clone()]);
        assert!(
            matches!(p.work.as_slice(), [Work::Configure { name }] if name == "off"),
            "{:?}",
            p.work.len()
        );
        assert_eq!(p.report.rotations_not_configured, 1);
        // A revoked secret keeps rotation off (revoke turned it off).
        let mut revoked = off.clone();
        revoked
            .tags
            .push((tags::REVOKED.into(), at(time::Duration::ZERO)));
        assert!(plan(&[revoked]).work.is_empty());
        // A due one is rotated, which configures it.
        let mut due = off.clone();
        due.tags.retain(|(k, _)| k != tags::ROTATE_AT);
        due.tags
            .push((tags::ROTATE_AT.into(), at(-time::Duration::hours(1))));
        let p = plan(&[due]);
        assert!(
            matches!(p.work.as_slice(), [Work::Rotate { .. }]),
            "{:?}",
            p.work.len()
        );
        assert_eq!(p.report.rotations_not_configured, 0);
        // A secret whose first key is not stored yet has nothing to test a configuration on.
        let mut keyless = off.clone();
        keyless.tags.retain(|(k, _)| k != tags::OPENROUTER_KEY);
        assert!(plan(&[keyless]).work.is_empty());
        // At most the run's rotation budget of them per run; all are counted.
        let page: Vec<SecretSummary> = (0..5)
            .map(|i| {
                let mut s = managed(&format!("off{i}"), &[]);
                s.rotation_enabled = false;
                s
            })
            .collect();
        let p = plan_with(
            PlanLimits {
                max_rotations: 2,
                ..LIMITS
            },
            &page,
        );
        assert_eq!(p.work.len(), 2);
        assert_eq!(p.report.rotations_not_configured, 5);
    }

    #[test]
    fn a_secret_the_product_does_not_manage_is_counted_and_left_alone() {
        let mut s = managed("foreign", &[]);
        s.tags.retain(|(k, _)| k != tags::MANAGED_BY);
        let p = plan(&[s]);
        assert!(p.work.is_empty());
        assert_eq!(p.report.secrets_scanned, 1);
        assert!(p.referenced.is_empty());
    }

    #[test]
    fn a_revoked_secret_is_never_rotated_nor_its_keys_referenced() {
        let p = plan(&[managed(
            "gone",
            &[
                (tags::REVOKED, at(-time::Duration::DAY)),
                (tags::ROTATE_AT, at(-time::Duration::DAY)),
            ],
        )]);
        assert!(p.work.is_empty());
        assert!(p.referenced.is_empty());
    }

    #[test]
    fn a_due_secret_is_rotated_under_the_token_of_its_generation() {
        let p = plan(&[managed(
            "due",
            &[(tags::ROTATE_AT, at(-time::Duration::HOUR))],
        )]);
        assert_eq!(
            p.work,
            [Work::Rotate {
                name: "due".into(),
                token: rotation_token("due", 3),
                near_expiry: false,
            }]
        );
        assert_eq!(p.report.rotations_due, 1);
    }

    #[test]
    fn a_due_secret_close_to_expiry_is_rotated_as_near_expiry() {
        let p = plan(&[managed(
            "late",
            &[
                (tags::ROTATE_AT, at(-time::Duration::DAY)),
                (tags::EXPIRES_AT, at(time::Duration::HOUR)),
            ],
        )]);
        assert!(matches!(
            p.work.as_slice(),
            [Work::Rotate {
                near_expiry: true,
                ..
            }]
        ));
    }

    #[test]
    fn a_fixed_expiry_is_never_rotated_and_warned_about_when_near() {
        let fixed = (tags::LIFETIME, "at:2026-12-07T18:00:00Z".to_owned());
        let p = plan(&[
            managed(
                "near",
                &[
                    fixed.clone(),
                    (tags::ROTATE_AT, at(-time::Duration::DAY)),
                    (tags::EXPIRES_AT, at(time::Duration::hours(6))),
                ],
            ),
            managed(
                "far",
                &[fixed, (tags::EXPIRES_AT, at(time::Duration::days(5)))],
            ),
        ]);
        assert!(p.work.is_empty());
        assert_eq!(p.report.keys_near_expiry, 1);
        assert_eq!(p.report.rotations_due, 0);
    }

    #[test]
    fn rotations_past_the_run_budget_are_deferred_to_the_next_run() {
        let due = (tags::ROTATE_AT, at(-time::Duration::HOUR));
        let page: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| managed(n, std::slice::from_ref(&due)))
            .collect();
        let p = plan(&page);
        let rotated: Vec<_> = p
            .work
            .iter()
            .filter_map(|w| match w {
                Work::Rotate { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rotated, ["a", "b"]);
        assert_eq!(
            (p.report.rotations_due, p.report.rotations_deferred),
            (4, 2)
        );
    }

    #[test]
    fn only_superseded_keys_past_their_grace_are_retired_but_all_are_referenced() {
        let p = plan(&[managed(
            "r",
            &[
                (&tags::retire_tag("dueHash"), at(-time::Duration::MINUTE)),
                (&tags::retire_tag("laterHash"), at(time::Duration::HOUR)),
            ],
        )]);
        assert_eq!(
            p.work,
            [Work::Retire {
                name: "r".into(),
                arn: "arn:aws:secretsmanager:us-east-1:1:secret:r".into(),
                hashes: vec!["dueHash".into()],
            }]
        );
        assert_eq!(p.report.retirements_due, 1);
        assert!(p.referenced.contains(&h64("dueHash")));
        assert!(p.referenced.contains(&h64("laterHash")));
    }

    #[test]
    fn a_current_version_the_product_did_not_write_is_checked() {
        let mut replaced = managed("replaced", &[]);
        replaced.current_version = Some("console-edit-1".into());
        let mut ours = managed("ours", &[]);
        ours.current_version = Some(crate::domain::names::token("v1", "active"));
        let p = plan(&[replaced, ours]);
        assert_eq!(
            p.work,
            [Work::CheckValue {
                name: "replaced".into()
            }]
        );
    }

    #[test]
    fn a_secret_without_a_generation_tag_rotates_as_its_first() {
        let mut s = managed("old", &[(tags::ROTATE_AT, at(-time::Duration::HOUR))]);
        s.tags.retain(|(k, _)| k != tags::GENERATION);
        let p = plan(&[s]);
        assert!(matches!(
            p.work.as_slice(),
            [Work::Rotate { token, .. }] if *token == rotation_token("old", 1)
        ));
    }
}
