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
            let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
            return Ok(Self::fresh(id, false));
        }
        fields::reject_unknown(
            obj,
            &["execution_id", "scheduled_time", "dry_run"],
            "is not a sweep input field (execution_id, scheduled_time, dry_run)",
        )?;
        let run_id = match obj.get("execution_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
            Some(_) => {
                return Err(VendError::invalid(
                    "execution_id",
                    "must be a string of 1-128 characters",
                ));
            }
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
    }
}
