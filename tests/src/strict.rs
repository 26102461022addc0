//! The AWS behaviour layer in front of moto: where AWS documents a behaviour moto lacks, the
//! proxy (`crate::proxy`, with `set_strict(true)`) reproduces it, so a test that passes only
//! because moto is lenient fails here. Each behaviour, its AWS page and its test are listed in
//! `docs/aws-fidelity.md`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// AWS's message when `RotateSecret` meets a rotation that has not finished.
pub const ROTATION_NOT_COMPLETE: &str =
    "A previous rotation isn't complete. That rotation will be reattempted.";
/// Secrets the product's roles may read although they carry no product tag (the management key,
/// which a resource policy opens to them).
pub const IAM_EXEMPT: &[&str] = &[crate::MANAGEMENT_KEY_SECRET];
/// Operations the tag-scoped roles may call on a secret only when it exists and carries
/// `orkv:managed-by` (IAM evaluates `secretsmanager:ResourceTag/...` on the secret).
const TAG_SCOPED: &[&str] = &[
    "DescribeSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "TagResource",
    "UntagResource",
    "RotateSecret",
    "DeleteSecret",
    "ListSecretVersionIds",
    "CancelRotateSecret",
];

/// How long a name stays taken after a forced delete. AWS: "Secrets Manager performs the actual
/// deletion with an asynchronous background process, so there might be a short delay before
/// the secret is permanently deleted. If you delete a secret and then immediately create a
/// secret with the same name, use appropriate back off and retry logic." (API reference,
/// *DeleteSecret*, `ForceDeleteWithoutRecovery`.)
pub const FORCE_DELETE_DELAY: std::time::Duration = std::time::Duration::from_millis(1500);
/// AWS's message for a `CreateSecret` of a name whose deletion has not finished.
pub const SCHEDULED_FOR_DELETION: &str = "You can't create this secret because a secret with this name is already scheduled for deletion.";

/// What the layer remembers between calls: names force-deleted and created, and when.
#[derive(Debug, Default)]
pub struct State {
    force_deleted: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    created: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    list_lag: std::sync::Mutex<std::time::Duration>,
    adoptable: std::sync::Mutex<Option<String>>,
}

impl State {
    /// Before forwarding: a `CreateSecret` of a name still being deleted is refused.
    #[must_use]
    pub fn before(&self, op: &str, body: &Bytes) -> Option<Response> {
        if op != "CreateSecret" {
            return None;
        }
        let req: Value = serde_json::from_slice(body).ok()?;
        let name = req.get("Name")?.as_str()?;
        let map = self.force_deleted.lock().ok()?;
        let at = map.get(name)?;
        (at.elapsed() < FORCE_DELETE_DELAY)
            .then(|| aws_error("InvalidRequestException", SCHEDULED_FOR_DELETION))
    }

    /// See [`crate::proxy::LatencyProxy::set_adoptable_prefix`].
    pub fn set_adoptable_prefix(&self, prefix: Option<String>) {
        if let Ok(mut p) = self.adoptable.lock() {
            *p = prefix;
        }
    }

    /// The prefix under which untagged secrets may be read and tagged for adoption.
    #[must_use]
    pub fn adoptable(&self) -> Option<String> {
        self.adoptable.lock().ok().and_then(|p| p.clone())
    }

    /// See [`crate::proxy::LatencyProxy::set_list_lag`].
    pub fn set_list_lag(&self, lag: std::time::Duration) {
        if let Ok(mut l) = self.list_lag.lock() {
            *l = lag;
        }
    }

    /// A `ListSecrets` reply without the secrets created within the listing lag. AWS: "The
    /// ListSecrets API is eventually consistent, however it might not reflect changes from the
    /// last five minutes." (API reference, *ListSecrets*). moto lists at once.
    #[must_use]
    pub fn listed(&self, op: &str, body: Bytes) -> Bytes {
        let lag = self.list_lag.lock().map(|l| *l).unwrap_or_default();
        if op != "ListSecrets" || lag.is_zero() {
            return body;
        }
        let Ok(mut reply) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        let (Some(list), Ok(created)) = (
            reply.get_mut("SecretList").and_then(Value::as_array_mut),
            self.created.lock(),
        ) else {
            return body;
        };
        list.retain(|s| {
            s.get("Name")
                .and_then(Value::as_str)
                .and_then(|n| created.get(n))
                .is_none_or(|at| at.elapsed() >= lag)
        });
        Bytes::from(reply.to_string())
    }

    /// After a successful call: a forced `DeleteSecret` starts its asynchronous deletion; a
    /// `CreateSecret` starts its listing lag.
    pub fn after(&self, op: &str, body: &Bytes) {
        if op == "CreateSecret" {
            let name = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|r| r.get("Name").and_then(Value::as_str).map(str::to_owned));
            if let (Some(name), Ok(mut map)) = (name, self.created.lock()) {
                map.insert(name, std::time::Instant::now());
            }
            return;
        }
        if op != "DeleteSecret" {
            return;
        }
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        if req
            .get("ForceDeleteWithoutRecovery")
            .and_then(Value::as_bool)
            != Some(true)
        {
            return;
        }
        let Some(id) = req.get("SecretId").and_then(Value::as_str) else {
            return;
        };
        if let Ok(mut map) = self.force_deleted.lock() {
            map.insert(id.to_owned(), std::time::Instant::now());
        }
    }
}

/// AWS's message for `ResourceExistsException`.
pub const RESOURCE_EXISTS: &str = "A resource with the ID you requested already exists.";

/// Whether a `VersionIdsToStages` entry's labels hold `l`.
fn labelled(labels: &Value, l: &str) -> bool {
    labels
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(l)))
}

/// An AWS JSON error reply.
fn aws_error(code: &str, message: &str) -> Response {
    let body = json!({"__type": code, "message": message}).to_string();
    let mut resp = (StatusCode::BAD_REQUEST, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-amzn-errortype", v);
    }
    resp
}

/// A call the layer makes to moto itself (not counted, not faulted).
async fn call_upstream(
    http: &reqwest::Client,
    upstream: &str,
    headers: &HeaderMap,
    target: &str,
    body: &Value,
) -> Option<Value> {
    let mut h = headers.clone();
    h.remove("content-length");
    h.remove("host");
    h.insert("x-amz-target", HeaderValue::from_str(target).ok()?);
    let resp = http
        .post(format!("{upstream}/"))
        .headers(h)
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Before forwarding `op`: an answer AWS would give instead of moto's, if any.
pub async fn before(
    http: &reqwest::Client,
    upstream: &str,
    op: &str,
    headers: &HeaderMap,
    body: &Bytes,
    adoptable: Option<&str>,
) -> Option<Response> {
    // Secrets Manager's calls only: the result events go through this proxy too.
    let secrets_manager = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("secretsmanager."));
    let caller = crate::iam::caller(headers).filter(|_| secrets_manager);
    let caller = caller.as_deref();
    let req: Value = serde_json::from_slice(body).ok()?;
    let id = req.get("SecretId").and_then(Value::as_str);
    let desc = match id {
        Some(id) if caller.is_some() || TAG_SCOPED.contains(&op) => {
            call_upstream(
                http,
                upstream,
                headers,
                "secretsmanager.DescribeSecret",
                &json!({ "SecretId": id }),
            )
            .await
        }
        _ => None,
    };
    // A function's call: IAM evaluates it against the policy the module renders for its role.
    if let Some(role) = caller {
        let ctx = crate::iam::secrets_manager_context(op, &req, desc.as_ref());
        if let Some(message) = crate::iam::authorize(role, &ctx) {
            return Some(aws_error("AccessDeniedException", &message));
        }
    }
    if op == "CreateSecret" {
        return tag_limits(&req, &[]);
    }
    if op == "ListSecrets" {
        return filter_values(&req);
    }
    if !TAG_SCOPED.contains(&op) {
        return None;
    }
    let id = id?;
    // The roles' policies allow these calls only on secrets tagged as the product's: for a
    // secret that is missing or not tagged, AWS answers AccessDenied, never "not found"
    // (IAM user guide, "Policy evaluation logic"; Secrets Manager user guide, "Control access
    // to secrets using tags").
    let tagged = desc.as_ref().is_some_and(|d| {
        d.get("Tags").and_then(Value::as_array).is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("Key").and_then(Value::as_str) == Some("orkv:managed-by")
                    && t.get("Value").and_then(Value::as_str) == Some("openrouter-key-vending")
            })
        })
    });
    let exempt = IAM_EXEMPT
        .iter()
        .any(|e| id == *e || id.contains(&format!(":secret:{e}-")));
    // The provision role's adoption statements (`infra/iam.tf`): it may describe and read a
    // secret under the managed prefix that does not carry the managed-by tag yet
    // (`ReadSecretsToAdopt`, condition `Null`), and tag one with `orkv:managed-by` as the
    // request tag (`CreateManagedSecrets`).
    let under = adoptable.is_some_and(|p| {
        let name = desc
            .as_ref()
            .and_then(|d| d.get("Name").and_then(Value::as_str))
            .unwrap_or(id);
        name.starts_with(p)
    });
    let adopting = under
        && !tagged
        && match op {
            "DescribeSecret" | "GetSecretValue" => true,
            "TagResource" => req
                .get("Tags")
                .and_then(Value::as_array)
                .is_some_and(|tags| {
                    tags.iter().any(|t| {
                        t.get("Key").and_then(Value::as_str) == Some("orkv:managed-by")
                            && t.get("Value").and_then(Value::as_str)
                                == Some("openrouter-key-vending")
                    })
                }),
            _ => false,
        };
    // The test's own calls (no role named): the product's tag scoping, as every role has it.
    if caller.is_none() && !tagged && !exempt && !adopting {
        return Some(aws_error(
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::123456789012:assumed-role/orkv-function/orkv-function is not authorized to perform: secretsmanager:{op} on resource: {id} because no identity-based policy allows the secretsmanager:{op} action"
            ),
        ));
    }
    if op == "TagResource" {
        let existing: Vec<String> = desc
            .as_ref()
            .and_then(|d| d.get("Tags").and_then(Value::as_array))
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.get("Key").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return tag_limits(&req, &existing);
    }
    if op != "RotateSecret" {
        return None;
    }
    let desc = desc?;
    let token = req.get("ClientRequestToken").and_then(Value::as_str);
    let stages = desc.get("VersionIdsToStages")?.as_object()?;
    // RotateSecret: "If the AWSPENDING staging label is present but not attached to the same
    // version as AWSCURRENT, then any later invocation of RotateSecret assumes that a previous
    // rotation request is still in progress and returns an error." Any later invocation: the
    // same ClientRequestToken too (moto refuses the opposite case and lets this one through).
    let unfinished = stages
        .values()
        .any(|labels| labelled(labels, "AWSPENDING") && !labelled(labels, "AWSCURRENT"));
    if unfinished {
        return Some(aws_error("InvalidRequestException", ROTATION_NOT_COMPLETE));
    }
    // A token that already names a version of the secret: AWS uses it "to prevent the
    // accidental creation of duplicate versions if there are failures and retries" and never
    // changes a version once made (API reference, RotateSecret and PutSecretValue,
    // ClientRequestToken): a retried request whose rotation has ended makes nothing new.
    // moto and LocalStack relabel that version `AWSPENDING` (LocalStack also drops its value),
    // which would take `AWSCURRENT`'s key away from a rotation that has finished.
    if let Some(t) = token.filter(|t| stages.contains_key(*t)) {
        let reply = json!({"ARN": desc.get("ARN"), "Name": desc.get("Name"), "VersionId": t});
        let mut resp = (StatusCode::OK, reply.to_string()).into_response();
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        return Some(resp);
    }
    // AWSPENDING on the current version (a finishSecret that died after promoting): AWS
    // proceeds and moves the label to the new version; moto refuses. The label goes first.
    for (v, labels) in stages {
        if labelled(labels, "AWSPENDING")
            && labelled(labels, "AWSCURRENT")
            && Some(v.as_str()) != token
        {
            call_upstream(
                http,
                upstream,
                headers,
                "secretsmanager.UpdateSecretVersionStage",
                &json!({"SecretId": id, "VersionStage": "AWSPENDING", "RemoveFromVersionId": v}),
            )
            .await;
        }
    }
    None
}

/// After a refused `RotateSecret` that only configures rotation (`RotateImmediately=false`):
/// AWS's configuration test creates a temporary `AWSPENDING` version and removes it (API
/// reference, RotateSecret, `RotateImmediately`), and [`before`] refuses a call while a rotation
/// is unfinished, so any `AWSPENDING` on a version that is not current now is the refused
/// call's own. moto labels that version and only then looks the function up and answers not
/// found (its `rotate_secret`), leaving it. The label comes off again. (A refused immediate
/// rotation keeps moto's label: the local driver relies on it to stand in for Secrets
/// Manager's, `orkv-local-rotation`.)
pub async fn undo_refused_rotation(
    http: &reqwest::Client,
    upstream: &str,
    headers: &HeaderMap,
    body: &Bytes,
) {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if req.get("RotateImmediately").and_then(Value::as_bool) != Some(false) {
        return;
    }
    let Some(id) = req
        .get("SecretId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let Some(desc) = call_upstream(
        http,
        upstream,
        headers,
        "secretsmanager.DescribeSecret",
        &json!({ "SecretId": id }),
    )
    .await
    else {
        return;
    };
    let stages = desc.get("VersionIdsToStages").and_then(Value::as_object);
    for (v, labels) in stages.into_iter().flatten() {
        if labelled(labels, "AWSPENDING") && !labelled(labels, "AWSCURRENT") {
            call_upstream(
                http,
                upstream,
                headers,
                "secretsmanager.UpdateSecretVersionStage",
                &json!({"SecretId": id, "VersionStage": "AWSPENDING", "RemoveFromVersionId": v}),
            )
            .await;
        }
    }
}

/// Before forwarding a `PutSecretValue`: the rotation it abandons, if any, as (secret, the
/// version holding `AWSPENDING`). AWS abandons a rotation when a new version of the secret is
/// created while it runs: it removes `AWSPENDING` and logs `RotationAbandoned` (user guide,
/// "Logging AWS Secrets Manager events with AWS CloudTrail"). A write under the pending
/// version's own token (the rotation's `createSecret`) or under an existing version's token (a
/// repeat) creates no new version. moto keeps the rotation going.
pub async fn abandoned_by(
    http: &reqwest::Client,
    upstream: &str,
    op: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<(String, String)> {
    if op != "PutSecretValue" {
        return None;
    }
    let req: Value = serde_json::from_slice(body).ok()?;
    let id = req.get("SecretId")?.as_str()?;
    let token = req.get("ClientRequestToken").and_then(Value::as_str);
    let desc = call_upstream(
        http,
        upstream,
        headers,
        "secretsmanager.DescribeSecret",
        &json!({ "SecretId": id }),
    )
    .await?;
    let stages = desc.get("VersionIdsToStages")?.as_object()?;
    if token.is_some_and(|t| stages.contains_key(t)) {
        return None;
    }
    stages
        .iter()
        .find(|(_, labels)| labelled(labels, "AWSPENDING") && !labelled(labels, "AWSCURRENT"))
        .map(|(v, _)| (id.to_owned(), v.clone()))
}

/// Abandons the rotation [`abandoned_by`] found, once the new version was written.
pub async fn abandon(
    http: &reqwest::Client,
    upstream: &str,
    headers: &HeaderMap,
    (id, pending): &(String, String),
) {
    call_upstream(
        http,
        upstream,
        headers,
        "secretsmanager.UpdateSecretVersionStage",
        &json!({"SecretId": id, "VersionStage": "AWSPENDING", "RemoveFromVersionId": pending}),
    )
    .await;
}

/// The request as moto must see it to answer as AWS would.
///
/// `GetSecretValue` without `VersionId` or `VersionStage` returns the version labelled
/// `AWSCURRENT` (API reference, *GetSecretValue*: "If you don't specify either a VersionStage
/// or VersionId, Secrets Manager returns the AWSCURRENT version"). moto 5.2.5 returns the
/// version it last made current by a write instead, which after a label move
/// (`UpdateSecretVersionStage`) is a superseded one: the layer asks for `AWSCURRENT`.
#[must_use]
pub fn rewrite(op: &str, body: Bytes) -> Bytes {
    if op != "GetSecretValue" {
        return body;
    }
    let Ok(mut req) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(obj) = req.as_object_mut() else {
        return body;
    };
    if obj.contains_key("VersionId") || obj.contains_key("VersionStage") {
        return body;
    }
    obj.insert("VersionStage".into(), Value::from("AWSCURRENT"));
    Bytes::from(req.to_string())
}

/// After `op` (sent with `request`) came back from moto: the reply as AWS words it.
#[must_use]
pub fn after(op: &str, status: StatusCode, request: &Bytes, body: Bytes) -> Bytes {
    if status.is_success() {
        return match op {
            "DescribeSecret" => without_deprecated_in_describe(body),
            "ListSecretVersionIds" => without_deprecated_in_listing(request, body),
            _ => body,
        };
    }
    if op != "PutSecretValue" || status != StatusCode::BAD_REQUEST {
        return body;
    }
    let Ok(err) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if err.get("__type").and_then(Value::as_str) == Some("ResourceExistsException") {
        // A version with this ClientRequestToken holds another value: AWS answers with its
        // generic ResourceExistsException text, which names no token.
        return Bytes::from(
            json!({"__type": "ResourceExistsException", "message": RESOURCE_EXISTS}).to_string(),
        );
    }
    body
}

/// `DescribeSecret` lists only versions that carry a label (API reference, *DescribeSecret*,
/// `VersionIdsToStages`: "A list of the versions of the secret that have staging labels
/// attached. Versions that don't have staging labels are considered deprecated and Secrets
/// Manager can delete them."). moto lists every version.
fn without_deprecated_in_describe(body: Bytes) -> Bytes {
    let Ok(mut reply) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(map) = reply
        .get_mut("VersionIdsToStages")
        .and_then(Value::as_object_mut)
    else {
        return body;
    };
    map.retain(|_, stages| stages.as_array().is_some_and(|a| !a.is_empty()));
    Bytes::from(reply.to_string())
}

/// `ListSecretVersionIds` leaves deprecated versions out unless `IncludeDeprecated` is true
/// (API reference, *ListSecretVersionIds*: "Specifies whether to include versions of secrets
/// that don't have any staging labels attached to them. Versions without staging labels are
/// considered deprecated and are subject to deletion by Secrets Manager. By default, versions
/// without staging labels aren't included."). moto ignores the parameter and lists all.
fn without_deprecated_in_listing(request: &Bytes, body: Bytes) -> Bytes {
    let include = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|r| r.get("IncludeDeprecated").and_then(Value::as_bool))
        .unwrap_or(false);
    if include {
        return body;
    }
    let Ok(mut reply) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(list) = reply.get_mut("Versions").and_then(Value::as_array_mut) else {
        return body;
    };
    list.retain(|v| {
        v.get("VersionStages")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    });
    Bytes::from(reply.to_string())
}

/// `ListSecrets` filter values (API reference, *Filter*: `Values` holds 1-10 strings of at
/// most 512 characters matching `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$`). moto accepts any
/// value, so a tag value with a letter outside ASCII would pass here and fail on AWS.
fn filter_values(req: &Value) -> Option<Response> {
    let allowed = |i: usize, c: char| {
        c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c) || (i == 0 && c == '!')
    };
    for f in req.get("Filters").and_then(Value::as_array)? {
        let values = f.get("Values").and_then(Value::as_array);
        let count = values.map_or(0, Vec::len);
        let bad = values.into_iter().flatten().any(|v| {
            let v = v.as_str().unwrap_or_default();
            v.chars().count() > 512 || !v.chars().enumerate().all(|(i, c)| allowed(i, c))
        });
        if bad || !(1..=10).contains(&count) {
            return Some(aws_error(
                "ValidationException",
                "1 validation error detected: Value at 'filters.member.values' failed to satisfy constraint: Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$",
            ));
        }
    }
    None
}

/// The most tags a secret may carry (`aws:` tags do not count).
pub const MAX_TAGS: usize = 50;

/// Tag limits (API reference, *TagResource*: "Maximum number of tags per secret: 50"; *Tag*:
/// `Key` length 1-128, `Value` length 0-256). `existing`: the keys the secret carries. moto
/// accepts any number and length.
fn tag_limits(req: &Value, existing: &[String]) -> Option<Response> {
    let tags = req.get("Tags").and_then(Value::as_array)?;
    let mut keys: std::collections::BTreeSet<&str> = existing
        .iter()
        .map(String::as_str)
        .filter(|k| !k.starts_with("aws:"))
        .collect();
    for t in tags {
        let key = t.get("Key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("Value").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Some(aws_error(
                "ValidationException",
                "1 validation error detected: a tag key must be 1-128 characters and a tag value at most 256",
            ));
        }
        // "The following basic restrictions apply to tags: ... Tag keys and values ... can
        // contain letters, numbers, and spaces representable in UTF-8, and the following
        // characters: + - = . _ : / @" (Secrets Manager user guide, "Tagging secrets").
        let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c);
        if !key.chars().all(allowed) || !value.chars().all(allowed) {
            return Some(aws_error(
                "ValidationException",
                "1 validation error detected: a tag key or value may hold only letters, numbers, spaces and + - = . _ : / @",
            ));
        }
        if !key.starts_with("aws:") {
            keys.insert(key);
        }
    }
    (keys.len() > MAX_TAGS).then(|| {
        aws_error(
            "InvalidParameterException",
            &format!(
                "The secret would carry {} tags; a secret may carry at most {MAX_TAGS}.",
                keys.len()
            ),
        )
    })
}
