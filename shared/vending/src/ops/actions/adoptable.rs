//! What a secret and its key must be for an adoption to start clean, checked before any
//! write (issue 29: tags are trusted by nothing, so an adoption must not inherit any):
//!
//! - the secret carries no `orkv:` tag the adoption did not write itself ([`starts_clean`]),
//!   room for the product's tags, no rotation function but the product's, and a KMS key the
//!   roles may use ([`keepable`]);
//! - its name is one provision could have created (`crate::input::adopt::adoptable_name`);
//! - the key is not expired, not named by the product for a secret (a key the product
//!   minted is that secret's), and held by no other managed secret, as current key or in
//!   grace (`crate::ops::owned::held_elsewhere`: found by tags, answered without naming the
//!   other secret).

use orkv_openrouter::Key;
use orkv_store::SecretDescription;
use time::OffsetDateTime;

use crate::domain::names::is_product_key_name;
use crate::domain::tags;
use crate::error::VendError;

/// Tags of its own a secret may carry to be adopted: AWS allows 50, and the product may write
/// up to [`tags::PRODUCT_MAX_TAGS`] (29) of its own.
pub const MAX_FOREIGN_TAGS: usize = tags::OTHER_TAGS_ROOM;

/// Whether the product can keep rotating a secret it adopts, from its description alone,
/// before any write: no rotation function but the product's (another one, on its schedule,
/// would overwrite the adopted record), room for the product's tags, and a KMS key the roles
/// may use (Secrets Manager's own
/// key, which `DescribeSecret` leaves out, or the deployment's `kms_key_arn`; the roles may use
/// no other, so every later write of the secret would fail).
///
/// # Errors
/// `AdoptionRefused` naming `secret_name` and the rule.
pub(super) fn keepable(
    desc: &SecretDescription,
    product_rotation: Option<&str>,
    product_kms: Option<&str>,
) -> Result<(), VendError> {
    let foreign = desc
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with(tags::RESERVED_PREFIX) && !k.starts_with("aws:"))
        .count();
    if foreign > MAX_FOREIGN_TAGS {
        return Err(VendError::adoption(
            "secret_name",
            format!(
                "the secret carries {foreign} tags of its own: at most {MAX_FOREIGN_TAGS}, as the product needs up to {} of the {} a secret may carry",
                tags::PRODUCT_MAX_TAGS,
                tags::AWS_MAX_TAGS
            ),
        ));
    }
    if let Some(function) = desc
        .rotation_lambda_arn
        .as_deref()
        .filter(|f| !f.is_empty())
    {
        let ours = product_rotation
            .is_some_and(|p| function == p || function.starts_with(&format!("{p}:")));
        if !ours {
            return Err(VendError::adoption(
                "secret_name",
                format!(
                    "the secret is rotated by another function ({function}), whose rotations would overwrite the adopted record: turn its rotation off (CancelRotateSecret) or remove the function first"
                ),
            ));
        }
    }
    if let Some(key) = desc.kms_key_id.as_deref().filter(|k| !k.is_empty()) {
        let same = |a: &str, b: &str| a == b || a.ends_with(&format!("/{b}"));
        let usable = key == "alias/aws/secretsmanager"
            || product_kms.is_some_and(|p| same(p, key) || same(key, p));
        if !usable {
            return Err(VendError::adoption(
                "secret_name",
                format!(
                    "the secret is encrypted with KMS key {key}, which the product's roles may not use (only Secrets Manager's own key or the deployment's kms_key_arn): re-encrypt it (UpdateSecret KmsKeyId) first"
                ),
            ));
        }
    }
    Ok(())
}

/// The `orkv:` tags an adoption writes itself (a retry of the same adoption finds them).
const ADOPTION_WRITES: [&str; 13] = [
    tags::MANAGED_BY,
    tags::WORKSPACE,
    tags::WORKSPACE_SLUG,
    tags::KEY_NAME,
    tags::TENANT,
    tags::OPENROUTER_KEY,
    tags::EXPIRES_AT,
    tags::ROTATE_AT,
    tags::GENERATION,
    tags::LIFETIME,
    tags::CAP,
    tags::ADOPTING,
    tags::ADOPTED,
];

/// The secret carries no tag of the product's (`orkv:`) that this adoption did not write:
/// none at all before it starts (`mine`: false), only [`ADOPTION_WRITES`] on its retry.
/// Every path that acts on keys reads tags, so an adopted secret must not bring its own.
///
/// # Errors
/// `AdoptionRefused` naming `secret_name` and the tags.
pub(super) fn starts_clean(desc: &SecretDescription, mine: bool) -> Result<(), VendError> {
    let mut reserved: Vec<&str> = desc
        .tags
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with(tags::RESERVED_PREFIX))
        .filter(|k| !(mine && ADOPTION_WRITES.contains(k)))
        .collect();
    if reserved.is_empty() {
        return Ok(());
    }
    reserved.sort_unstable();
    Err(VendError::adoption(
        "secret_name",
        format!(
            "the secret carries tags reserved for the product ({}): only the product writes orkv: tags; remove them (UntagResource) first",
            reserved.join(", ")
        ),
    ))
}

/// The key itself, as OpenRouter lists it, before any write: not expired (an expired key
/// cannot be served), within the organisation's maximum key lifetime `org_max` (seconds) when
/// one is set (OpenRouter rejects every request from a key without an expiry or outliving it),
/// and not one the product minted (named `orkv:<secret>:…`: it belongs to the secret it was
/// minted for).
///
/// # Errors
/// `AdoptionRefused` naming `secret_name`.
pub(super) fn key_adoptable(
    key: &Key,
    now: OffsetDateTime,
    org_max: Option<u64>,
) -> Result<(), VendError> {
    if let Some(max) = org_max {
        let lifetime = key
            .expires_at
            .map(|at| (at - key.created_at).whole_seconds());
        let within = lifetime.is_some_and(|l| u64::try_from(l).is_ok_and(|l| l <= max));
        if !within {
            return Err(VendError::adoption(
                "secret_name",
                format!(
                    "the secret's key {}, beyond the organisation's maximum key lifetime of {max} seconds (org_max_key_lifetime_seconds): OpenRouter rejects every request from it",
                    lifetime.map_or_else(
                        || "never expires".to_owned(),
                        |l| format!("lives {l} seconds")
                    )
                ),
            ));
        }
    }
    if let Some(at) = key.expires_at.filter(|at| *at <= now) {
        return Err(VendError::adoption(
            "secret_name",
            format!(
                "the secret's key expired at {}: an expired key cannot be adopted; store a working key first",
                tags::time_value(at)
            ),
        ));
    }
    if is_product_key_name(&key.name) {
        return Err(VendError::adoption(
            "secret_name",
            "the secret's key was minted by this product for a managed secret, which holds it: a key belongs to one secret",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::MANAGED_BY;

    fn desc(rotation: Option<&str>, kms: Option<&str>) -> SecretDescription {
        SecretDescription {
            arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:openrouter/a-AbCdEf".into(),
            name: "openrouter/a".into(),
            rotation_enabled: rotation.is_some(),
            rotation_lambda_arn: rotation.map(str::to_owned),
            kms_key_id: kms.map(str::to_owned),
            deleted: false,
            tags: Vec::new(),
            versions: std::collections::BTreeMap::new(),
        }
    }

    const OURS: &str = "arn:aws:lambda:eu-west-1:123456789012:function:orkv-rotate";
    const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn an_adoption_inherits_no_tag_of_the_products() {
        let mut d = desc(None, None);
        d.tags = vec![("team".into(), "payments".into())];
        assert!(starts_clean(&d, false).is_ok());
        d.tags.push((
            "orkv:retire:victimhash".into(),
            "2026-01-01T00:00:00Z".into(),
        ));
        d.tags.push(("orkv:next".into(), "workspace=ws-9".into()));
        let e = starts_clean(&d, false).expect_err("forged tags");
        assert_eq!(e.kind(), "AdoptionRefused");
        assert!(
            e.to_string().contains("orkv:next, orkv:retire:victimhash"),
            "{e}"
        );
        // Its own retry finds the tags it wrote, and nothing else passes.
        let mut retry = desc(None, None);
        retry.tags = vec![
            (tags::MANAGED_BY.into(), MANAGED_BY.into()),
            (tags::ADOPTING.into(), "digest".into()),
            (tags::CAP.into(), "5".into()),
        ];
        assert!(starts_clean(&retry, true).is_ok());
        assert!(starts_clean(&retry, false).is_err());
        retry.tags.push((tags::BUDGET.into(), "x".into()));
        assert!(starts_clean(&retry, true).is_err());
    }

    #[test]
    fn an_expired_key_or_one_the_product_minted_is_not_adoptable() {
        let now = time::macros::datetime!(2026-12-07 12:00 UTC);
        let key = |name: &str, expires: &str| -> Key {
            serde_json::from_value(serde_json::json!({
                "hash": "h", "name": name, "limit": 5.0, "workspace_id": "ws",
                "created_at": "2026-12-01T00:00:00Z", "expires_at": expires
            }))
            .expect("key")
        };
        assert!(key_adoptable(&key("prod", "2026-12-08T00:00:00Z"), now, None).is_ok());
        let expired = key_adoptable(&key("prod", "2026-12-07T11:59:59Z"), now, None);
        assert!(expired.is_err_and(|e| e.to_string().contains("expired at 2026-12-07T11:59:59Z")));
        let minted = key_adoptable(
            &key("orkv:openrouter/b/x:r0123456789ab", "2027-01-01T00:00:00Z"),
            now,
            None,
        );
        assert!(minted.is_err_and(|e| e.to_string().contains("minted by this product")));
    }

    /// OpenRouter's security settings: with a maximum key lifetime set, a key without an
    /// expiry, or one outliving it, is rejected on every request (CONTRACT.md).
    #[test]
    fn a_key_outliving_the_organisations_maximum_lifetime_is_not_adoptable() {
        let now = time::macros::datetime!(2026-12-07 12:00 UTC);
        let key = |expires: serde_json::Value| -> Key {
            serde_json::from_value(serde_json::json!({
                "hash": "h", "name": "prod", "limit": 5.0, "workspace_id": "ws",
                "created_at": "2026-12-01T00:00:00Z", "expires_at": expires
            }))
            .expect("key")
        };
        let week = Some(7 * 86_400);
        assert!(key_adoptable(&key("2026-12-08T00:00:00Z".into()), now, week).is_ok());
        let long = key_adoptable(&key("2026-12-09T00:00:00Z".into()), now, week);
        assert!(long.is_err_and(|e| e.to_string().contains("lives 691200 seconds")));
        let never = key_adoptable(&key(serde_json::Value::Null), now, week);
        assert!(never.is_err_and(|e| e.to_string().contains("never expires")));
        assert!(key_adoptable(&key(serde_json::Value::Null), now, None).is_ok());
    }

    #[test]
    fn a_secret_another_function_rotates_is_refused_and_the_products_own_is_kept() {
        let other = desc(
            Some("arn:aws:lambda:eu-west-1:123456789012:function:team-rotator"),
            None,
        );
        let e = keepable(&other, Some(OURS), None).expect_err("foreign rotation");
        assert_eq!(e.kind(), "AdoptionRefused");
        assert!(e.to_string().contains("team-rotator"), "{e}");
        assert!(keepable(&desc(Some(OURS), None), Some(OURS), None).is_ok());
        assert!(keepable(&desc(Some(&format!("{OURS}:live")), None), Some(OURS), None).is_ok());
        assert!(keepable(&desc(None, None), Some(OURS), None).is_ok());
        // Without the product's function configured, any function is foreign.
        assert!(keepable(&desc(Some(OURS), None), None, None).is_err());
    }

    #[test]
    fn a_kms_key_the_roles_cannot_use_is_refused() {
        let team = desc(
            None,
            Some("arn:aws:kms:eu-west-1:123456789012:key/team-key"),
        );
        let e = keepable(&team, Some(OURS), Some(KEY)).expect_err("team key");
        assert!(e.to_string().contains("team-key"), "{e}");
        assert!(keepable(&team, Some(OURS), None).is_err());
        assert!(keepable(&desc(None, Some(KEY)), Some(OURS), Some(KEY)).is_ok());
        assert!(
            keepable(
                &desc(None, Some("1234abcd-12ab-34cd-56ef-1234567890ab")),
                Some(OURS),
                Some(KEY)
            )
            .is_ok(),
            "the key id of the deployment's key"
        );
        assert!(
            keepable(
                &desc(None, Some("alias/aws/secretsmanager")),
                Some(OURS),
                None
            )
            .is_ok()
        );
    }
}
