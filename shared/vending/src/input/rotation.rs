//! The rotation event Secrets Manager sends: one of the four steps, for a secret, under a
//! `ClientRequestToken` (and a `RotationToken`, which `aws_lambda_events`' struct drops).

use serde::Serialize;
use serde_json::Value;

use crate::error::{VendError, redact_keys};
use crate::input::fields;

/// One of the four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    /// The four steps, in the order Secrets Manager invokes them.
    pub const ALL: [Self; 4] = [
        Self::CreateSecret,
        Self::SetSecret,
        Self::TestSecret,
        Self::FinishSecret,
    ];

    /// Accepts `createSecret` and `create_secret` spellings.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "createSecret" | "create_secret" => Some(Self::CreateSecret),
            "setSecret" | "set_secret" => Some(Self::SetSecret),
            "testSecret" | "test_secret" => Some(Self::TestSecret),
            "finishSecret" | "finish_secret" => Some(Self::FinishSecret),
            _ => None,
        }
    }

    /// The protocol's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSecret => "createSecret",
            Self::SetSecret => "setSecret",
            Self::TestSecret => "testSecret",
            Self::FinishSecret => "finishSecret",
        }
    }
}

/// The rotation event Secrets Manager sends (`RotationToken` included, which
/// `aws_lambda_events`' struct drops).
#[derive(Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    pub token: String,
    pub rotation_token: Option<String>,
}

impl std::fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("token", &self.token)
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// An optional string field of the event, as [`VendError::InvalidRotation`] on failure.
fn field<'a>(v: &'a Value, name: &str) -> Result<Option<&'a str>, VendError> {
    fields::opt_str(v, name).map_err(|_| rotation_error(name, "must be a string"))
}

fn rotation_error(field: &str, rule: &str) -> VendError {
    VendError::InvalidRotation {
        field: field.to_owned(),
        rule: rule.to_owned(),
    }
}

impl RotationEvent {
    /// Validates a raw rotation event field by field.
    ///
    /// # Errors
    /// [`VendError::InvalidRotation`] naming the field and the rule.
    pub fn parse(v: &Value) -> Result<Self, VendError> {
        if !v.is_object() {
            return Err(rotation_error(
                "(event)",
                "must be a JSON object with Step, SecretId and ClientRequestToken",
            ));
        }
        let step_text = field(v, "Step")?.ok_or_else(|| rotation_error("Step", "is required"))?;
        let step = Step::parse(step_text).ok_or_else(|| {
            rotation_error(
                "Step",
                &redact_keys(&format!(
                    "{:?} is not one of createSecret, setSecret, testSecret, finishSecret",
                    step_text.chars().take(64).collect::<String>()
                )),
            )
        })?;
        let secret_id = field(v, "SecretId")?.unwrap_or("");
        if secret_id.is_empty() || secret_id.len() > 2048 {
            return Err(rotation_error(
                "SecretId",
                "is required (1-2048 characters)",
            ));
        }
        let token = field(v, "ClientRequestToken")?.unwrap_or("");
        if !(32..=64).contains(&token.len())
            || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(rotation_error(
                "ClientRequestToken",
                "is required: 32-64 characters of letters, digits and hyphens",
            ));
        }
        let rotation_token = field(v, "RotationToken")?.map(str::to_owned);
        if rotation_token.as_ref().is_some_and(|t| t.len() > 4096) {
            return Err(rotation_error(
                "RotationToken",
                "must be at most 4096 characters",
            ));
        }
        Ok(Self {
            step,
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
            rotation_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "0b5e4f4e-7d3c-4c1a-9b7e-2f0a8c6d5e41";

    #[test]
    fn both_step_spellings_parse() {
        for (s, step) in [
            ("createSecret", Step::CreateSecret),
            ("create_secret", Step::CreateSecret),
            ("testSecret", Step::TestSecret),
            ("finish_secret", Step::FinishSecret),
        ] {
            let e = RotationEvent::parse(
                &json!({"Step": s, "SecretId": "arn:x", "ClientRequestToken": TOKEN}),
            )
            .expect("parses");
            assert_eq!(e.step, step);
        }
    }

    #[test]
    fn bad_events_name_the_field() {
        let cases = [
            (
                json!({"SecretId": "s", "ClientRequestToken": TOKEN}),
                "Step",
            ),
            (
                json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": TOKEN}),
                "Step",
            ),
            (
                json!({"Step": "setSecret", "ClientRequestToken": TOKEN}),
                "SecretId",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "short"}),
                "ClientRequestToken",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": TOKEN, "RotationToken": 5}),
                "RotationToken",
            ),
            (json!([1, 2]), "(event)"),
        ];
        for (v, f) in cases {
            let err = RotationEvent::parse(&v).expect_err("refused");
            assert_eq!(err.kind(), "InvalidRotationEvent");
            assert!(err.to_string().contains(&format!("`{f}`")), "{err}");
        }
    }

    #[test]
    fn the_rotation_token_never_shows_in_debug() {
        let e = RotationEvent::parse(&json!({"Step": "setSecret", "SecretId": "s",
            "ClientRequestToken": TOKEN, "RotationToken": "rt-sentinel"}))
        .expect("parses");
        assert!(!format!("{e:?}").contains("sentinel"));
    }
}
