//! The one set of JSON field helpers every parser uses. Each error names the field and the
//! rule; anything key-shaped in a quoted name is redacted by [`VendError::invalid`].

use serde_json::{Map, Value};

use crate::error::VendError;

/// Field names quoted in errors are cut to this many characters.
const MAX_QUOTED_NAME: usize = 64;

/// The value as an object, or an error on `what` (such as `(request)`) with `rule`.
pub(crate) fn object<'a>(
    v: &'a Value,
    what: &str,
    rule: &str,
) -> Result<&'a Map<String, Value>, VendError> {
    v.as_object().ok_or_else(|| VendError::invalid(what, rule))
}

/// Refuses the first field not in `allowed`, with `rule`.
pub(crate) fn reject_unknown(
    map: &Map<String, Value>,
    allowed: &[&str],
    rule: &str,
) -> Result<(), VendError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(VendError::invalid(
            k.chars().take(MAX_QUOTED_NAME).collect::<String>(),
            rule,
        )),
        None => Ok(()),
    }
}

/// An optional string (`null` counts as absent).
pub(crate) fn opt_str<'a>(v: &'a Value, name: &str) -> Result<Option<&'a str>, VendError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VendError::invalid(name, "must be a string")),
    }
}

/// An optional boolean (`null` counts as absent), else `rule`.
pub(crate) fn opt_bool(v: &Value, name: &str, rule: &str) -> Result<Option<bool>, VendError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(VendError::invalid(name, rule)),
    }
}

/// A non-empty string of at most `max` characters without control characters.
pub(crate) fn bounded_string(
    map: &Map<String, Value>,
    field: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, VendError> {
    match map.get(field) {
        None | Some(Value::Null) if required => Err(VendError::invalid(field, "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(VendError::invalid(field, "must not be empty"))
        }
        Some(Value::String(s)) if s.chars().count() > max => Err(VendError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(VendError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VendError::invalid(field, "must be a string")),
    }
}

/// A whole number of seconds greater than 0.
pub(crate) fn positive_seconds(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<u64>, VendError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().filter(|v| *v > 0).map(Some).ok_or_else(|| {
            VendError::invalid(field, "must be a whole number of seconds greater than 0")
        }),
        Some(_) => Err(VendError::invalid(field, "must be a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_helper_names_the_field_and_the_rule() {
        let v = json!({"s": 1, "b": "x", "n": -1, "e": " ", "long": "abcdef"});
        let map = v.as_object().expect("object");
        let msg = |e: VendError| e.to_string();
        assert!(msg(opt_str(&v, "s").expect_err("not a string")).contains("`s`: must be a string"));
        assert!(
            msg(opt_bool(&v, "b", "must be true or false").expect_err("not a bool"))
                .contains("`b`: must be true or false")
        );
        assert!(msg(positive_seconds(map, "n").expect_err("negative")).contains("`n`"));
        assert!(
            msg(bounded_string(map, "e", 5, false).expect_err("empty"))
                .contains("must not be empty")
        );
        assert!(
            msg(bounded_string(map, "long", 5, false).expect_err("long")).contains("at most 5")
        );
        assert!(
            msg(bounded_string(map, "missing", 5, true).expect_err("required"))
                .contains("is required")
        );
        assert!(
            msg(reject_unknown(map, &["s"], "is not a known field").expect_err("unknown"))
                .contains("is not a known field")
        );
        assert_eq!(opt_str(&v, "absent").expect("absent"), None);
    }
}
