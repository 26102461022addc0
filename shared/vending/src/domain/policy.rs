//! The deploy-time policy: known workspaces, their maximum caps, and lifetime bounds.

use serde::Deserialize;

/// One workspace keys may be vended in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePolicy {
    /// Slug, UUID or name.
    pub workspace: String,
    /// The largest `limit` (USD) a key in this workspace may have.
    pub max_limit: f64,
}

/// What the provision function enforces on every request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub workspaces: Vec<WorkspacePolicy>,
    #[serde(default = "default_min_ttl")]
    pub min_ttl_seconds: u64,
    #[serde(default = "default_max_ttl")]
    pub max_ttl_seconds: u64,
    #[serde(default = "default_ttl")]
    pub default_ttl_seconds: u64,
    #[serde(default = "default_rotate_before")]
    pub default_rotate_before_seconds: u64,
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

impl Policy {
    /// Parses and checks the policy JSON.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let policy: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if policy.workspaces.is_empty() {
            return Err("workspaces: at least one workspace must be known".into());
        }
        for w in &policy.workspaces {
            if !(w.max_limit.is_finite() && w.max_limit > 0.0) {
                return Err(format!(
                    "workspaces[{}].max_limit must be a positive number",
                    w.workspace
                ));
            }
        }
        if policy.min_ttl_seconds == 0 || policy.min_ttl_seconds > policy.max_ttl_seconds {
            return Err("min_ttl_seconds must be at least 1 and at most max_ttl_seconds".into());
        }
        if !(policy.min_ttl_seconds..=policy.max_ttl_seconds).contains(&policy.default_ttl_seconds)
        {
            return Err(
                "default_ttl_seconds must lie within min_ttl_seconds..=max_ttl_seconds".into(),
            );
        }
        if policy.default_rotate_before_seconds == 0 {
            return Err("default_rotate_before_seconds must be at least 1".into());
        }
        Ok(policy)
    }

    /// The entry naming `id`, `slug` or `name` of a resolved workspace.
    #[must_use]
    pub fn entry_for(&self, id: &str, slug: &str, name: &str) -> Option<&WorkspacePolicy> {
        self.workspaces
            .iter()
            .find(|w| w.workspace == id || w.workspace == slug || w.workspace == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn entries_match_by_id_slug_or_name() {
        let p = Policy::from_json(r#"{"workspaces":[{"workspace":"checkout","max_limit":5}]}"#)
            .expect("valid");
        assert!(p.entry_for("uuid", "checkout", "Checkout Team").is_some());
        assert!(p.entry_for("uuid", "search", "Search").is_none());
    }
}
