//! Names the product derives. Each has exactly one writer and one parser here:
//! - version tokens (`ClientRequestToken`s): UUID v5 in [`TOKEN_NAMESPACE`], so every retry of
//!   one step writes the same version (see `docs/adr/0004-token-derivation.md`);
//! - OpenRouter key names: `orkv:<secret name>:<attempt>`, where the attempt is a provision
//!   claim nonce or `r` + 12 hex digits of the rotation token, so a retry or the sweep can find
//!   what an attempt minted (see `docs/adr/0003-openrouter-key-names.md`);
//! - Secrets Manager secret names and their limits.

use uuid::Uuid;

/// Namespace of the deterministic version tokens this product writes.
pub const TOKEN_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6b76_0000_4000_8000_7661_6e64_6e67);
/// Whether `version_id` is one of the product's version tokens (UUID v5, [`token`] and
/// [`rotation_token`]): every version the product makes current has one. Secrets Manager's own
/// tokens, and a console or CLI write's, are random (v4).
#[must_use]
pub fn is_product_token(version_id: &str) -> bool {
    Uuid::parse_str(version_id).is_ok_and(|u| u.get_version_num() == 5)
}

/// The prefix of every OpenRouter key name this product writes.
pub const KEY_NAME_PREFIX: &str = "orkv:";
/// Secrets Manager's limit on a secret name, as this product accepts them.
pub const MAX_SECRET_NAME: usize = 256;
/// The longest OpenRouter key name the product may write (the emulator enforces it).
pub const MAX_KEY_NAME: usize = 256;
/// The longest name of a secret this product creates: every generation's key name,
/// `orkv:<secret name>:r<12 hex digits>` (the longest form), must fit [`MAX_KEY_NAME`].
pub const MAX_MANAGED_SECRET_NAME: usize = MAX_KEY_NAME - KEY_NAME_PREFIX.len() - ":r".len() - 12;

/// The token of the version a step writes on top of `version_id` for `purpose`.
#[must_use]
pub fn token(version_id: &str, purpose: &str) -> String {
    Uuid::new_v5(
        &TOKEN_NAMESPACE,
        format!("{version_id}/{purpose}").as_bytes(),
    )
    .to_string()
}

/// The `ClientRequestToken` every starter (sweep, on-demand action, provision) uses for the
/// rotation of `secret_name` away from `generation`: two starters for the same generation
/// share one rotation.
#[must_use]
pub fn rotation_token(secret_name: &str, generation: u64) -> String {
    Uuid::new_v5(
        &TOKEN_NAMESPACE,
        format!("{secret_name}/rotate/{generation}").as_bytes(),
    )
    .to_string()
}

/// The token of attempt `attempt` at the rotation away from `generation`: attempt 0 is
/// [`rotation_token`]; a later attempt replaces a rotation whose version was abandoned (a
/// version written while it ran makes Secrets Manager remove its `AWSPENDING`, and a token
/// names a version for good).
#[must_use]
pub fn rotation_attempt_token(secret_name: &str, generation: u64, attempt: u32) -> String {
    if attempt == 0 {
        return rotation_token(secret_name, generation);
    }
    Uuid::new_v5(
        &TOKEN_NAMESPACE,
        format!("{secret_name}/rotate/{generation}/{attempt}").as_bytes(),
    )
    .to_string()
}

/// The token a start of the rotation away from `generation` uses, given the secret's versions
/// and their labels: the first attempt whose version does not exist yet or still carries a
/// label (running, or done). A version left with no label was abandoned: the next attempt.
#[must_use]
pub fn live_rotation_token(
    secret_name: &str,
    generation: u64,
    versions: &std::collections::BTreeMap<String, Vec<String>>,
) -> String {
    let mut attempt = 0;
    loop {
        let token = rotation_attempt_token(secret_name, generation, attempt);
        match versions.get(&token) {
            Some(labels) if labels.is_empty() && attempt < 64 => attempt += 1,
            _ => return token,
        }
    }
}

/// A fresh claim nonce: 12 hex digits that make each provision attempt's key name unique.
#[must_use]
pub fn claim_nonce() -> String {
    Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(12)
        .collect()
}

/// What an OpenRouter key name says about the attempt that minted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName<'a> {
    /// A provision attempt, with its claim nonce.
    Attempt { secret: &'a str, claim: &'a str },
    /// A rotation attempt, with the short form of its token.
    Successor { secret: &'a str, token: &'a str },
}

impl<'a> KeyName<'a> {
    /// The key name of a provision attempt of `secret` with claim `claim`.
    #[must_use]
    pub fn attempt(secret: &str, claim: &str) -> String {
        format!("{KEY_NAME_PREFIX}{secret}:{claim}")
    }

    /// The key name a rotation of `secret` under `token` mints: derived from the token, so a
    /// retry finds what an earlier attempt minted.
    #[must_use]
    pub fn successor(secret: &str, token: &str) -> String {
        let short: String = token.chars().filter(|c| *c != '-').take(12).collect();
        format!("{KEY_NAME_PREFIX}{secret}:r{short}")
    }

    /// Parses a key name this product wrote; `None` for any other name.
    #[must_use]
    pub fn parse(name: &'a str) -> Option<Self> {
        let (secret, attempt) = name.strip_prefix(KEY_NAME_PREFIX)?.rsplit_once(':')?;
        Some(match attempt.strip_prefix('r') {
            Some(token) if token.len() == 12 && token.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Self::Successor { secret, token }
            }
            _ => Self::Attempt {
                secret,
                claim: attempt,
            },
        })
    }

    /// The secret the key was minted for.
    #[must_use]
    pub fn secret(&self) -> &'a str {
        match self {
            Self::Attempt { secret, .. } | Self::Successor { secret, .. } => secret,
        }
    }
}

/// Whether a key name is one this product writes.
#[must_use]
pub fn is_product_key_name(name: &str) -> bool {
    name.starts_with(KEY_NAME_PREFIX)
}

/// Secret names: 1-256 of `A-Z a-z 0-9 / _ + = . @ -`, as Secrets Manager allows.
#[must_use]
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_shared_per_generation() {
        assert_eq!(rotation_token("a", 1), rotation_token("a", 1));
        assert_ne!(rotation_token("a", 1), rotation_token("a", 2));
        assert_ne!(rotation_token("a", 1), rotation_token("b", 1));
        let name = KeyName::successor("openrouter/x", &rotation_token("a", 1));
        assert!(name.starts_with("orkv:openrouter/x:r"));
    }

    #[test]
    fn every_written_key_name_parses_back_to_its_secret() {
        let token = rotation_token("openrouter/a/b", 3);
        let successor = KeyName::successor("openrouter/a/b", &token);
        assert!(matches!(
            KeyName::parse(&successor),
            Some(KeyName::Successor {
                secret: "openrouter/a/b",
                ..
            })
        ));
        let claim = claim_nonce();
        let attempt = KeyName::attempt("openrouter/a/b", &claim);
        assert_eq!(
            KeyName::parse(&attempt),
            Some(KeyName::Attempt {
                secret: "openrouter/a/b",
                claim: &claim
            })
        );
        assert!(is_product_key_name(&attempt));
        assert_eq!(KeyName::parse("someone-else's key"), None);
        assert_eq!(KeyName::parse("orkv:"), None);
    }

    #[test]
    fn every_generations_key_name_of_the_longest_managed_secret_fits() {
        let secret = "s".repeat(MAX_MANAGED_SECRET_NAME);
        assert_eq!(MAX_MANAGED_SECRET_NAME, 237);
        let token = rotation_token(&secret, 1_000_000);
        assert_eq!(KeyName::successor(&secret, &token).len(), MAX_KEY_NAME);
        assert!(KeyName::attempt(&secret, &claim_nonce()).len() < MAX_KEY_NAME);
    }

    #[test]
    fn secret_names_follow_secrets_manager_rules() {
        assert!(valid_secret_name("openrouter/checkout/api"));
        assert!(!valid_secret_name(""));
        assert!(!valid_secret_name("has space"));
        assert!(!valid_secret_name(&"a".repeat(MAX_SECRET_NAME + 1)));
    }
}
