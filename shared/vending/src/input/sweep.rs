//! The sweep's input: EventBridge Scheduler's (`execution_id`, `scheduled_time`, `dry_run`),
//! nothing at all, or an EventBridge `Scheduled Event` envelope.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::VendError;
use crate::input::fields;

/// The scheduler's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepInput {
    pub run_id: String,
    pub dry_run: bool,
}

impl SweepInput {
    /// Parses `{"execution_id"?, "scheduled_time"?, "dry_run"?}` (or nothing), or an
    /// EventBridge `Scheduled Event` envelope.
    ///
    /// # Errors
    /// [`VendError::Invalid`] naming the field and the rule.
    pub fn parse(v: &Value) -> Result<Self, VendError> {
        let obj = match v {
            Value::Null => return Ok(Self::fresh(None, false)),
            Value::Object(o) => o,
            _ => {
                return Err(VendError::invalid(
                    "(input)",
                    "must be a JSON object (execution_id, scheduled_time, dry_run) or empty",
                ));
            }
        };
        if let Some(t) = obj.get("detail-type") {
            if t.as_str() != Some("Scheduled Event") {
                return Err(VendError::UnsupportedEvent {
                    detail_type: t.as_str().unwrap_or("").chars().take(128).collect(),
                });
            }
            let id = match obj.get("id") {
                None | Some(Value::Null) => None,
                Some(v) => Some(run_id(v, "id")?),
            };
            // A rule's input may carry `dry_run` in the detail, as the scheduler's does.
            let detail = obj.get("detail").cloned().unwrap_or(Value::Null);
            let dry_run = match &detail {
                Value::Object(_) => fields::opt_bool(&detail, "dry_run", "must be true or false")
                    .map_err(|_| {
                    VendError::invalid("detail.dry_run", "must be true or false")
                })?,
                _ => None,
            };
            return Ok(Self::fresh(id, dry_run.unwrap_or(false)));
        }
        fields::reject_unknown(
            obj,
            &["execution_id", "scheduled_time", "dry_run"],
            "is not a sweep input field (execution_id, scheduled_time, dry_run)",
        )?;
        let run_id = match obj.get("execution_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(run_id(v, "execution_id")?),
        };
        match obj.get("scheduled_time") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => {}
            Some(_) => {
                return Err(VendError::invalid(
                    "scheduled_time",
                    "must be an RFC 3339 timestamp",
                ));
            }
        }
        let dry_run = fields::opt_bool(v, "dry_run", "must be true or false")?.unwrap_or(false);
        Ok(Self::fresh(run_id, dry_run))
    }

    fn fresh(run_id: Option<String>, dry_run: bool) -> Self {
        Self {
            run_id: run_id.unwrap_or_else(|| format!("run-{}", uuid::Uuid::new_v4())),
            dry_run,
        }
    }
}

/// A run's identity, as logged on every line of the run: 1-128 characters, none of them a
/// control character (a newline in it would forge a log line).
fn run_id(v: &Value, field: &str) -> Result<String, VendError> {
    match v {
        Value::String(s)
            if !s.is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        _ => Err(VendError::invalid(
            field,
            "must be a string of 1-128 characters, none of them a control character",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduler_input_is_checked_field_by_field() {
        let ok = SweepInput::parse(&json!({"execution_id": "e-1", "scheduled_time": "2026-11-22T10:00:00Z", "dry_run": true})).expect("valid");
        assert_eq!(ok.run_id, "e-1");
        assert!(ok.dry_run);
        assert!(
            SweepInput::parse(&Value::Null)
                .expect("empty")
                .run_id
                .starts_with("run-")
        );
        for (v, field) in [
            (json!({"dry_run": "yes"}), "dry_run"),
            (json!({"execution_id": 3}), "execution_id"),
            (json!({"scheduled_time": "tomorrow"}), "scheduled_time"),
            (json!({"dryrun": true}), "dryrun"),
            (json!([1]), "(input)"),
        ] {
            let err = SweepInput::parse(&v).expect_err("refused");
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let env = SweepInput::parse(&json!({"id": "ev-9", "detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}})).expect("envelope");
        assert_eq!(env.run_id, "ev-9");
        assert!(!env.dry_run);
        let dry = SweepInput::parse(
            &json!({"id": "ev-10", "detail-type": "Scheduled Event", "detail": {"dry_run": true}}),
        )
        .expect("envelope");
        assert!(dry.dry_run, "an envelope's dry_run is honoured");
        for (v, field) in [
            (
                json!({"execution_id": "run\n2026-12-07 INFO forged line"}),
                "execution_id",
            ),
            (json!({"execution_id": "a\u{0}b"}), "execution_id"),
            (
                json!({"id": "ev\r1", "detail-type": "Scheduled Event", "detail": {}}),
                "id",
            ),
            (
                json!({"id": "ev-1", "detail-type": "Scheduled Event", "detail": {"dry_run": "yes"}}),
                "detail.dry_run",
            ),
        ] {
            let err = SweepInput::parse(&v).expect_err("refused");
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
    }
}
