//! The OpenRouter client against the emulator: shapes, pagination, errors, retries and the
//! never-retried create.

use orkv_openrouter::{
    Cap, Client, ClientConfig, CreateKeyRequest, ErrorKind, KeyPatch, LimitReset, ManagementKey,
    key_hash,
};
use orkv_tests::{Control, MANAGEMENT_KEY, emulator};
use serde_json::json;

const CHECKOUT: &str = "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01";

fn client_for(url: String, key: &str) -> Client {
    let cfg = ClientConfig {
        base_url: url,
        timeout: std::time::Duration::from_secs(2),
        backoff_base: std::time::Duration::from_millis(5),
        ..ClientConfig::default()
    };
    Client::new(cfg, ManagementKey::new(key.to_owned())).expect("client")
}

fn create(name: &str) -> CreateKeyRequest {
    CreateKeyRequest {
        name: name.to_owned(),
        limit: Some(25.0),
        limit_reset: Some(LimitReset::Monthly),
        include_byok_in_limit: Some(false),
        expires_at: Some("2099-12-31T23:59:59Z".to_owned()),
        workspace_id: Some(CHECKOUT.to_owned()),
    }
}

#[tokio::test]
async fn create_returns_the_plaintext_once_and_its_hash_is_the_sha256() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    let created = client
        .create_key_once(&create("svc-a"))
        .await
        .expect("created");
    assert_eq!(created.data.hash, key_hash(created.key.expose_secret()));
    assert_eq!(created.data.workspace_id, CHECKOUT);
    assert_eq!(created.data.limit, Some(25.0));
    let fetched = client.get_key(&created.data.hash).await.expect("get");
    assert_eq!(fetched.name, "svc-a");
    // The key works on GET /key, and describes itself.
    let me = client
        .current_key_with(&created.key)
        .await
        .expect("GET /key");
    assert!(!me.is_management_key);
    assert_eq!(me.limit, Some(25.0));
    assert!(client.current_key().await.expect("mgmt").is_management_key);
}

#[tokio::test]
async fn listing_pages_by_100_per_workspace_and_hides_disabled_keys() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    for i in 0..205 {
        client
            .create_key_once(&create(&format!("k{i}")))
            .await
            .expect("create");
    }
    let other = CreateKeyRequest {
        workspace_id: None,
        ..create("default-ws")
    };
    client
        .create_key_once(&other)
        .await
        .expect("create default");
    let control = Control::new(&emu);
    control.reset_calls().await;
    let all = client.list_keys(Some(CHECKOUT), false).await.expect("list");
    assert_eq!(all.len(), 205);
    assert_eq!(control.calls().await["calls"]["list_keys"], json!(3));
    // Without a workspace: only the default workspace.
    let default = client.list_keys(None, false).await.expect("list default");
    assert_eq!(default.len(), 1);
    let first = all.first().expect("a key").hash.clone();
    let patch = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    assert!(
        client
            .update_key(&first, &patch)
            .await
            .expect("disable")
            .disabled
    );
    assert_eq!(
        client
            .list_keys(Some(CHECKOUT), false)
            .await
            .expect("list")
            .len(),
        204
    );
    assert_eq!(
        client
            .list_keys(Some(CHECKOUT), true)
            .await
            .expect("list")
            .len(),
        205
    );
}

#[tokio::test]
async fn caps_update_in_place_and_fixed_fields_are_refused() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    let created = client
        .create_key_once(&create("svc-b"))
        .await
        .expect("created");
    let patch = KeyPatch {
        cap: Some(Cap {
            limit: 40.0,
            limit_reset: None,
            include_byok_in_limit: true,
        }),
        ..KeyPatch::default()
    };
    let updated = client
        .update_key(&created.data.hash, &patch)
        .await
        .expect("patched");
    assert_eq!(updated.limit, Some(40.0));
    assert_eq!(updated.limit_reset, None);
    assert!(updated.include_byok_in_limit);
    // expires_at is immutable: the raw API refuses it with 400.
    let raw = reqwest::Client::new()
        .patch(format!("{}/keys/{}", emu.api_url(), created.data.hash))
        .bearer_auth(MANAGEMENT_KEY)
        .json(&json!({"expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.expect("json");
    assert_eq!(body["error"]["code"], json!(400));
}

#[tokio::test]
async fn delete_is_confirmed_by_reading_back_and_repeats_see_not_found() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    let created = client
        .create_key_once(&create("svc-c"))
        .await
        .expect("created");
    assert!(
        client
            .delete_key(&created.data.hash)
            .await
            .expect("deleted")
    );
    let err = client.get_key(&created.data.hash).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        !client
            .delete_key(&created.data.hash)
            .await
            .expect("repeat is fine")
    );
    let err = client
        .current_key_with(&created.key)
        .await
        .expect_err("deleted key");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn unknown_keys_get_401_and_inference_keys_get_403_on_admin_paths() {
    let emu = emulator().await;
    let control = Control::new(&emu);
    let unknown = client_for(emu.api_url(), "sk-or-v1-nobody");
    let err = unknown.list_keys(None, false).await.expect_err("401");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let (inference, _) = control.add_key(json!({"name": "inference"})).await;
    let as_inference = client_for(emu.api_url(), &inference);
    let err = as_inference
        .create_key_once(&create("x"))
        .await
        .expect_err("403");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(err.to_string().contains("Only management keys"), "{err}");
    // Nothing was created by the refused calls.
    assert!(control.live_keys("x").await.is_empty());
}

#[tokio::test]
async fn expired_keys_get_401_on_get_key() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    let mut req = create("short");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    req.expires_at = Some(orkv_openrouter::format_expires_at(soon));
    let created = client.create_key_once(&req).await.expect("created");
    client
        .current_key_with(&created.key)
        .await
        .expect("works now");
    Control::new(&emu).advance_clock(3 * 3600).await;
    let err = client
        .current_key_with(&created.key)
        .await
        .expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn reads_are_retried_after_429_with_retry_after_and_5xx() {
    let emu = emulator().await;
    let control = Control::new(&emu);
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    control
        .fault(
            json!([{"op": "list_keys", "action": "rate_limit", "retry_after": 0.05},
                      {"op": "list_keys", "action": "status", "status": 503}]),
        )
        .await;
    control.reset_calls().await;
    client
        .list_keys(None, false)
        .await
        .expect("third attempt succeeds");
    assert_eq!(control.calls().await["calls"]["list_keys"], json!(3));
    // Past the retry budget the typed error surfaces.
    control
        .fault(json!({"op": "get_workspace", "action": "status", "status": 500, "times": 10}))
        .await;
    let err = client.get_workspace("checkout").await.expect_err("500s");
    assert_eq!(err.kind(), ErrorKind::Server);
    // A Retry-After longer than the client's longest wait is returned at once, not slept.
    control
        .fault(json!({"op": "get_key", "action": "rate_limit", "retry_after": 600}))
        .await;
    control.reset_calls().await;
    let err = client.get_key("abc").await.expect_err("429");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(control.calls().await["calls"]["get_key"], json!(1));
}

#[tokio::test]
async fn a_create_is_never_retried_and_failures_after_sending_are_ambiguous() {
    let emu = emulator().await;
    let control = Control::new(&emu);
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    for (fault, committed) in [
        (
            json!({"op": "create_key", "action": "status", "status": 500}),
            false,
        ),
        (
            json!({"op": "create_key", "action": "drop_after_commit"}),
            true,
        ),
        (
            json!({"op": "create_key", "action": "error_after_commit"}),
            true,
        ),
        (json!({"op": "create_key", "action": "hang"}), false),
    ] {
        control.fault(fault.clone()).await;
        control.reset_calls().await;
        let name = format!("ambiguous-{}", fault["action"].as_str().unwrap_or("x"));
        let err = client
            .create_key_once(&create(&name))
            .await
            .expect_err("fails");
        assert_eq!(
            err.kind(),
            ErrorKind::CreateOutcomeUnknown,
            "{fault}: {err}"
        );
        assert_eq!(
            control.calls().await["calls"]["create_key"],
            json!(1),
            "{fault}"
        );
        assert_eq!(
            control.live_keys(&name).await.len(),
            usize::from(committed),
            "{fault}"
        );
    }
    // 429 on create is definite: nothing was created, and it is typed with its Retry-After.
    control
        .fault(json!({"op": "create_key", "action": "rate_limit", "retry_after": 7}))
        .await;
    let err = client
        .create_key_once(&create("limited"))
        .await
        .expect_err("429");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
}

#[tokio::test]
async fn workspaces_resolve_by_uuid_or_slug() {
    let emu = emulator().await;
    let client = client_for(emu.api_url(), MANAGEMENT_KEY);
    let all = client.list_workspaces().await.expect("list");
    assert!(all.iter().any(|w| w.slug == "checkout"));
    assert_eq!(
        client.get_workspace("checkout").await.expect("slug").id,
        CHECKOUT
    );
    assert_eq!(
        client.get_workspace(CHECKOUT).await.expect("uuid").slug,
        "checkout"
    );
    let err = client.get_workspace("nope").await.expect_err("404");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn the_emulator_validates_bodies_like_the_service() {
    let emu = emulator().await;
    let http = reqwest::Client::new();
    let url = format!("{}/keys", emu.api_url());
    let cases = [
        ("{not json", "Invalid JSON"),
        (r#"{"limit": 5}"#, "name is required"),
        (r#"{"name": ""}"#, "name must not be empty"),
        (r#"{"name": "a", "limit": "5"}"#, "limit must be a number"),
        (r#"{"name": "a", "limit_reset": "hourly"}"#, "limit_reset"),
        (
            r#"{"name": "a", "expires_at": "2099-12-31T23:59Z"}"#,
            "UTC timestamp with seconds",
        ),
        (
            r#"{"name": "a", "expires_at": "2099-12-31T23:59:59+02:00"}"#,
            "other timezones",
        ),
        (
            r#"{"name": "a", "expires_at": "2001-01-01T00:00:00Z"}"#,
            "in the future",
        ),
        (
            r#"{"name": "a", "disabled": true}"#,
            "disabled cannot be set",
        ),
        (
            r#"{"name": "a", "workspace_id": "not-a-uuid"}"#,
            "workspace_id must be a UUID",
        ),
    ];
    for (body, expected) in cases {
        let resp = http
            .post(&url)
            .bearer_auth(MANAGEMENT_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 400, "{body}");
        let err: serde_json::Value = resp.json().await.expect("error body");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert!(Control::new(&emu).live_keys("").await.is_empty());
    let resp = http
        .get(format!("{url}?include_disabled=yes"))
        .bearer_auth(MANAGEMENT_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    let resp = http.get(&url).send().await.expect("sent");
    assert_eq!(resp.status(), 401);
}
