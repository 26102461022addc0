//! The one vocabulary of what a caller asks the provision function for. The parser, the
//! dispatch, the result event, the error texts and the failure template all derive from
//! [`Action`], each through an exhaustive match: a new variant that is not handled everywhere
//! does not compile.

use serde::Serialize;

use crate::domain::policy::Permission;

/// The `detail-type` of a key request.
pub const KEY_REQUESTED: &str = "OpenRouter Key Requested";
/// The `detail-type` of an on-demand rotation ("rotate now").
pub const ROTATION_REQUESTED: &str = "OpenRouter Key Rotation Requested";
/// The `detail-type` of a revocation.
pub const REVOCATION_REQUESTED: &str = "OpenRouter Key Revocation Requested";
/// The `detail-type` of an adoption (a key the product did not mint, already in a secret).
pub const ADOPTION_REQUESTED: &str = "OpenRouter Key Adoption Requested";

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Vend a key into a secret, or converge an existing one.
    Provision,
    /// Rotate now (manual or leak).
    Rotate,
    /// Disable and delete every key of a secret.
    Revoke,
    /// Take over a key already stored in a secret.
    Adopt,
    /// List the caller's managed secrets from their tags (direct invocation only).
    Inventory,
}

impl Action {
    /// Every action, in the order the error texts list them.
    pub const ALL: [Self; 5] = [
        Self::Provision,
        Self::Rotate,
        Self::Revoke,
        Self::Adopt,
        Self::Inventory,
    ];

    /// The name of a direct invocation's `action` field, and of the result event's `action`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Rotate => "rotate",
            Self::Revoke => "revoke",
            Self::Adopt => "adopt",
            Self::Inventory => "inventory",
        }
    }

    /// The `detail-type` of an EventBridge request for this action; `None`: direct
    /// invocation only.
    #[must_use]
    pub const fn requested_detail_type(self) -> Option<&'static str> {
        match self {
            Self::Provision => Some(KEY_REQUESTED),
            Self::Rotate => Some(ROTATION_REQUESTED),
            Self::Revoke => Some(REVOCATION_REQUESTED),
            Self::Adopt => Some(ADOPTION_REQUESTED),
            Self::Inventory => None,
        }
    }

    /// The tenant permissions of which a caller needs at least one to ask for this action at
    /// all, checked before the request is read (the use case checks the exact one: a leak
    /// rotation needs `leak_rotate`, a changed cap `update`). Empty: every caller may ask, and
    /// sees only what it owns.
    #[must_use]
    pub const fn permissions(self) -> &'static [Permission] {
        match self {
            Self::Provision => &[Permission::Provision],
            Self::Rotate => &[Permission::Rotate, Permission::LeakRotate],
            Self::Revoke => &[Permission::Revoke],
            Self::Adopt => &[Permission::Adopt],
            Self::Inventory => &[],
        }
    }

    /// Whether the outcome is put on the event bus. An inventory changes nothing and its
    /// caller has the answer.
    #[must_use]
    pub const fn announced(self) -> bool {
        match self {
            Self::Provision | Self::Rotate | Self::Revoke | Self::Adopt => true,
            Self::Inventory => false,
        }
    }

    /// The action a direct invocation's `action` names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The action an EventBridge `detail-type` requests.
    #[must_use]
    pub fn from_detail_type(detail_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.requested_detail_type() == Some(detail_type))
    }

    /// The rule of the `action` field: `must be "provision", "rotate", ... or "inventory"`.
    #[must_use]
    pub fn names_rule() -> String {
        format!(
            "must be {}",
            either(Self::ALL.iter().map(|a| a.name()).collect())
        )
    }

    /// The `detail-type`s this function handles, quoted: `"A", "B" or "C"`.
    #[must_use]
    pub fn detail_types_text() -> String {
        either(
            Self::ALL
                .iter()
                .filter_map(|a| a.requested_detail_type())
                .collect(),
        )
    }
}

/// `"a", "b" or "c"`.
fn either(items: Vec<&str>) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_action() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("suspend"), None);
        assert_eq!(Action::from_name("Provision"), None);
    }

    #[test]
    fn every_detail_type_parses_back_and_inventory_has_none() {
        for a in Action::ALL {
            match a.requested_detail_type() {
                Some(t) => assert_eq!(Action::from_detail_type(t), Some(a)),
                None => assert_eq!(a, Action::Inventory),
            }
        }
        assert_eq!(Action::from_detail_type("OpenRouter Key Rotated"), None);
    }

    #[test]
    fn the_names_match_serde() {
        for a in Action::ALL {
            assert_eq!(serde_json::to_value(a).ok(), Some(a.name().into()));
        }
    }

    #[test]
    fn the_error_texts_list_every_action() {
        assert_eq!(
            Action::names_rule(),
            r#"must be "provision", "rotate", "revoke", "adopt" or "inventory""#
        );
        assert_eq!(
            Action::detail_types_text(),
            r#""OpenRouter Key Requested", "OpenRouter Key Rotation Requested", "OpenRouter Key Revocation Requested" or "OpenRouter Key Adoption Requested""#
        );
    }

    #[test]
    fn every_permission_opens_some_action_but_update_which_only_refines_provision() {
        for p in Permission::ALL {
            let opens = Action::ALL.iter().any(|a| a.permissions().contains(&p));
            assert_eq!(opens, p != Permission::Update, "{p:?}");
        }
    }

    #[test]
    fn only_the_inventory_goes_unannounced() {
        let silent: Vec<_> = Action::ALL.into_iter().filter(|a| !a.announced()).collect();
        assert_eq!(silent, [Action::Inventory]);
    }
}
