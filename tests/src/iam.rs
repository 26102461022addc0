//! The deployed-role oracle: every Secrets Manager call a function makes in the suites is
//! evaluated against the policy the Terraform module renders for that function's role
//! (`tests/infra/rendered-policies.json`, which the infrastructure test regenerates from the
//! applied module and compares), as IAM would evaluate it: an explicit `Deny` wins, otherwise
//! an `Allow` whose action, resource and conditions all match is needed (IAM user guide,
//! "Policy evaluation logic"; "IAM JSON policy elements: Condition operators"). A call no
//! statement allows is answered `AccessDeniedException`, so the test that made it fails as it
//! would on AWS, and every decision is appended to a log the infrastructure test reads to
//! check the other way round: every action a role grants is used by some test.
//!
//! The caller is named by the `x-orkv-caller` header the suites' Secrets Manager client adds
//! ([`crate::roles`]), or by the access key a function binary signs with
//! ([`ROLE_KEY_PREFIX`]); calls without either (the test's own set-up and read-backs, the sweep
//! binary with the local driver) are not evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The region and account the suites' moto answers for.
pub const REGION: &str = "us-east-1";
/// moto's default account; `ORKV_AWS_ACCOUNT` names another (LocalStack answers for
/// `000000000000`).
#[must_use]
pub fn account() -> String {
    std::env::var("ORKV_AWS_ACCOUNT").unwrap_or_else(|_| "123456789012".to_owned())
}
/// The header naming the role a call is made under.
pub const CALLER_HEADER: &str = "x-orkv-caller";
/// The access key id prefix of a function binary signing as its role (`orkv-role-rotate`).
pub const ROLE_KEY_PREFIX: &str = "orkv-role-";

/// The role a request is made under: the `x-orkv-caller` header (in-process suites), or the
/// access key a function binary signs with (`orkv-role-<role>`).
#[must_use]
pub fn caller(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(role) = headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(role.to_owned());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let key = auth.split("Credential=").nth(1)?.split('/').next()?;
    key.strip_prefix(ROLE_KEY_PREFIX).map(str::to_owned)
}

/// What IAM knows about one request: the action, the resource, and the condition keys the
/// request carries (`aws:RequestTag/…`, `aws:TagKeys`, `secretsmanager:ResourceTag/…`, …).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub action: String,
    pub resource: String,
    pub keys: BTreeMap<String, Vec<String>>,
}

/// IAM's answer, with the statement that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed(String),
    ExplicitlyDenied(String),
    ImplicitlyDenied,
}

impl Decision {
    #[must_use]
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }
}

/// The rendered policies, by role, with the region and account substituted.
///
/// # Panics
/// When the snapshot is missing or not JSON (the infrastructure test writes it).
#[must_use]
pub fn policies() -> &'static BTreeMap<String, Value> {
    static POLICIES: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let path = crate::workspace_root().join("tests/infra/rendered-policies.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .replace("${Region}", REGION)
            .replace("${Account}", &account());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
#[must_use]
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One condition operator over one key: `values` from the policy, `present` from the request.
///
/// # Panics
/// On an operator this evaluator does not know (a policy change the oracle must learn).
fn operator(op: &str, values: &[String], present: Option<&Vec<String>>) -> bool {
    let (set, base) = match op.split_once(':') {
        Some((set, base)) => (Some(set), base),
        None => (None, op),
    };
    let base_no_null = base.strip_suffix("IfExists");
    if let Some(b) = base_no_null {
        if present.is_none() {
            return true;
        }
        return operator(
            &set.map_or(b.to_owned(), |s| format!("{s}:{b}")),
            values,
            present,
        );
    }
    if base == "Null" {
        let want_absent = values.iter().any(|v| v == "true");
        return want_absent == present.is_none_or(Vec::is_empty);
    }
    // (pattern match, negated)
    let (like, negated) = match base {
        "StringEquals" | "ArnEquals" | "Bool" => (false, false),
        "StringNotEquals" | "ArnNotEquals" => (false, true),
        "StringLike" | "ArnLike" => (true, false),
        "StringNotLike" | "ArnNotLike" => (true, true),
        other => panic!("IAM oracle: condition operator {other} is not evaluated here"),
    };
    let matches_one = |r: &str| {
        values
            .iter()
            .any(|v| if like { wildcard(v, r) } else { v == r })
    };
    match (set, present) {
        (Some("ForAnyValue"), None) => false,
        (Some("ForAllValues"), None) => true,
        (Some("ForAnyValue"), Some(rs)) => rs.iter().any(|r| matches_one(r) != negated),
        (Some("ForAllValues"), Some(rs)) => rs.iter().all(|r| matches_one(r) != negated),
        (Some(other), _) => panic!("IAM oracle: set operator {other} is not evaluated here"),
        // A single-valued operator on a missing key: no match, so a negated one holds.
        (None, None) => negated,
        (None, Some(rs)) => rs.iter().any(|r| matches_one(r)) != negated,
    }
}

fn statement_matches(st: &Value, ctx: &RequestContext) -> bool {
    let action = ctx.action.to_ascii_lowercase();
    let actions_match = list(st.get("Action"))
        .iter()
        .any(|a| wildcard(&a.to_ascii_lowercase(), &action));
    let resources_match = list(st.get("Resource"))
        .iter()
        .any(|r| wildcard(r, &ctx.resource));
    if !actions_match || !resources_match {
        return false;
    }
    let Some(conditions) = st.get("Condition").and_then(Value::as_object) else {
        return true;
    };
    conditions.iter().all(|(op, keys)| {
        keys.as_object().is_some_and(|keys| {
            keys.iter().all(|(key, values)| {
                operator(
                    op,
                    &list(Some(values)),
                    ctx.keys.get(&key.to_ascii_lowercase()),
                )
            })
        })
    })
}

/// IAM's decision for `role` (a key of the rendered policies) on `ctx`.
#[must_use]
pub fn evaluate(role: &str, ctx: &RequestContext) -> Decision {
    let Some(doc) = policies().get(role) else {
        return Decision::ImplicitlyDenied;
    };
    let statements = doc
        .get("Statement")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let sid = |st: &Value| {
        st.get("Sid")
            .and_then(Value::as_str)
            .unwrap_or("(no Sid)")
            .to_owned()
    };
    let effect = |st: &Value| st.get("Effect").and_then(Value::as_str).unwrap_or("Allow") == "Deny";
    if let Some(deny) = statements
        .iter()
        .find(|st| effect(st) && statement_matches(st, ctx))
    {
        return Decision::ExplicitlyDenied(sid(deny));
    }
    statements
        .iter()
        .find(|st| !effect(st) && statement_matches(st, ctx))
        .map_or(Decision::ImplicitlyDenied, |st| Decision::Allowed(sid(st)))
}

/// The ARN IAM evaluates for a secret named or identified by `id` (`described`: its ARN
/// when the secret exists).
#[must_use]
pub fn secret_arn(id: &str, described: Option<&str>) -> String {
    if let Some(arn) = described {
        return arn.to_owned();
    }
    if id.starts_with("arn:") {
        return id.to_owned();
    }
    format!("arn:aws:secretsmanager:{REGION}:{}:secret:{id}", account())
}

/// The condition keys of a Secrets Manager request `req` on a secret described by `desc`.
#[must_use]
pub fn secrets_manager_context(op: &str, req: &Value, desc: Option<&Value>) -> RequestContext {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let tags: Vec<(String, String)> = req
        .get("Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("Key")?.as_str()?.to_owned(),
                        t.get("Value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &tags {
        keys.insert(
            format!("aws:requesttag/{}", k.to_ascii_lowercase()),
            vec![v.clone()],
        );
    }
    let mut tag_keys: Vec<String> = tags.iter().map(|(k, _)| k.clone()).collect();
    tag_keys.extend(list(req.get("TagKeys")));
    if !tag_keys.is_empty() {
        keys.insert("aws:tagkeys".into(), tag_keys);
    }
    if let Some(d) = desc {
        for t in d
            .get("Tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(k), Some(v)) = (
                t.get("Key").and_then(Value::as_str),
                t.get("Value").and_then(Value::as_str),
            ) {
                keys.insert(
                    format!("secretsmanager:resourcetag/{}", k.to_ascii_lowercase()),
                    vec![v.to_owned()],
                );
            }
        }
    }
    let resource = match op {
        "ListSecrets" | "GetRandomPassword" | "BatchGetSecretValue" => "*".to_owned(),
        // The ARN a new secret gets: its name and six random characters.
        "CreateSecret" => secret_arn(
            &format!(
                "{}-AbCdEf",
                req.get("Name").and_then(Value::as_str).unwrap_or("")
            ),
            None,
        ),
        _ => secret_arn(
            req.get("SecretId").and_then(Value::as_str).unwrap_or(""),
            desc.and_then(|d| d.get("ARN")).and_then(Value::as_str),
        ),
    };
    RequestContext {
        action: format!("secretsmanager:{op}"),
        resource,
        keys,
    }
}

/// One decision, as the log holds it.
fn record(role: &str, ctx: &RequestContext, decision: &Decision) {
    static SEEN: Mutex<BTreeSet<(String, String, bool)>> = Mutex::new(BTreeSet::new());
    let key = (role.to_owned(), ctx.action.clone(), decision.allowed());
    let first = SEEN.lock().is_ok_and(|mut s| s.insert(key));
    if !decision.allowed() {
        eprintln!(
            "IAM oracle: the {role} role may not call {} on {} ({decision:?}; keys {:?})",
            ctx.action, ctx.resource, ctx.keys
        );
    }
    if !first && decision.allowed() {
        return;
    }
    let Some(dir) = log_dir() else { return };
    let line = serde_json::json!({
        "role": role, "action": ctx.action, "resource": ctx.resource,
        "allowed": decision.allowed(), "decision": format!("{decision:?}"),
        "test": std::thread::current().name().unwrap_or("").to_owned(),
    });
    let path = dir.join(format!("calls-{}.jsonl", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line, under a lock: `writeln!` may split a line into several writes,
        // and two threads appending at once then interleave them (a torn line).
        static LOG: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _held = LOG.lock();
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// Where decisions are logged: `ORKV_IAM_LOG_DIR`, or `<CARGO_TARGET_DIR>/orkv-iam`.
fn log_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("ORKV_IAM_LOG_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|t| std::path::PathBuf::from(t).join("orkv-iam"))
        })?;
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Evaluates and logs one call; `Some(message)` when IAM would refuse it.
#[must_use]
pub fn authorize(role: &str, ctx: &RequestContext) -> Option<String> {
    let decision = evaluate(role, ctx);
    record(role, ctx, &decision);
    (!decision.allowed()).then(|| {
        format!(
            "User: arn:aws:sts::{}:assumed-role/orkv-{role}/orkv-{role} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
            account(),
            ctx.action,
            ctx.resource,
            ctx.action
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_as_iam_documents() {
        assert!(wildcard(
            "arn:aws:secretsmanager:*:secret:openrouter/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:openrouter/a-b"
        ));
        assert!(wildcard(
            "openrouter/management-key-??????",
            "openrouter/management-key-AbCdEf"
        ));
        assert!(!wildcard(
            "openrouter/management-key-??????",
            "openrouter/management-key-AbCdE"
        ));
        assert!(!wildcard("openrouter/*", "other/x"));
    }

    #[test]
    fn a_negated_operator_holds_on_a_missing_key_and_null_tests_absence() {
        assert!(operator("StringNotEquals", &["a".into()], None));
        assert!(!operator("StringEquals", &["a".into()], None));
        assert!(operator("Null", &["true".into()], None));
        assert!(!operator("Null", &["true".into()], Some(&vec!["x".into()])));
        assert!(!operator("ForAnyValue:StringEquals", &["k".into()], None));
        assert!(operator(
            "ForAnyValue:StringEquals",
            &["k".into()],
            Some(&vec!["j".into(), "k".into()])
        ));
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow() {
        let ctx = secrets_manager_context(
            "UntagResource",
            &json!({"SecretId": "openrouter/x", "TagKeys": ["orkv:tenant"]}),
            Some(
                &json!({"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:openrouter/x-AbCdEf",
                          "Tags": [{"Key": "orkv:managed-by", "Value": "openrouter-key-vending"}]}),
            ),
        );
        assert!(matches!(
            evaluate("sweep", &ctx),
            Decision::ExplicitlyDenied(_)
        ));
    }
}
