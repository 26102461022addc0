//! The emulator answers as OpenRouter's own OpenAPI document says: every management operation
//! the product uses, on success and on each error the emulator produces (400, 401, 403, 404,
//! 429, 500), is recorded and validated against the response schemas of
//! `emulator/openapi/management-openapi.yaml` (a copy of `../shared/openrouter/`'s document) by
//! `tests/contract/check_openapi.py` (JSON Schema 2020-12, the dialect of OpenAPI 3.1). A
//! `null` where the document says string, a missing required field or a status the document
//! does not define for the operation fails the test.

use orkv_tests::{Control, MANAGEMENT_KEY, emulator, workspace_root};
use serde_json::{Value, json};

/// One recorded response: the document's path template, the method and what was answered.
struct Recorder {
    http: reqwest::Client,
    api: String,
    samples: Vec<Value>,
}

impl Recorder {
    async fn call(
        &mut self,
        method: reqwest::Method,
        template: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("emulator answers");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("a JSON body");
        self.samples.push(
            json!({"method": method.as_str(), "path": template, "status": status, "body": body}),
        );
        body
    }
}

#[tokio::test]
async fn every_emulator_response_validates_against_openrouters_openapi_document() {
    let emu = emulator().await;
    let control = Control::new(&emu);
    let mut r = Recorder {
        http: reqwest::Client::new(),
        api: emu.api_url(),
        samples: Vec::new(),
    };
    let ws = "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01";
    let m = MANAGEMENT_KEY;
    use reqwest::Method as M;
    // Successes.
    let created = r
        .call(
            M::POST,
            "/keys",
            "/keys",
            m,
            Some(
                json!({"name": "contract", "limit": 5, "limit_reset": "monthly",
                        "include_byok_in_limit": false, "expires_at": "2030-01-01T00:00:00Z",
                        "workspace_id": ws}),
            ),
        )
        .await;
    let plain = created["key"].as_str().expect("plaintext").to_owned();
    let hash = created["data"]["hash"].as_str().expect("hash").to_owned();
    r.call(
        M::POST,
        "/keys",
        "/keys",
        m,
        Some(json!({"name": "no-limit", "workspace_id": ws})),
    )
    .await;
    r.call(
        M::GET,
        "/keys",
        &format!("/keys?workspace_id={ws}"),
        m,
        None,
    )
    .await;
    r.call(
        M::GET,
        "/keys",
        &format!("/keys?workspace_id={ws}&include_disabled=true&offset=0"),
        m,
        None,
    )
    .await;
    let one = format!("/keys/{hash}");
    r.call(M::GET, "/keys/{hash}", &one, m, None).await;
    r.call(
        M::PATCH,
        "/keys/{hash}",
        &one,
        m,
        Some(json!({"limit": 7, "disabled": false})),
    )
    .await;
    r.call(M::GET, "/key", "/key", &plain, None).await;
    r.call(M::GET, "/workspaces", "/workspaces", m, None).await;
    r.call(
        M::GET,
        "/workspaces/{id}",
        &format!("/workspaces/{ws}"),
        m,
        None,
    )
    .await;
    // Errors the emulator produces itself.
    r.call(M::GET, "/keys", "/keys", "sk-or-v1-not-a-key", None)
        .await;
    r.call(M::GET, "/keys", "/keys?offset=-1", m, None).await;
    r.call(M::POST, "/keys", "/keys", m, Some(json!({"limit": "five"})))
        .await;
    r.call(
        M::POST,
        "/keys",
        "/keys",
        &plain,
        Some(json!({"name": "x"})),
    )
    .await;
    r.call(
        M::PATCH,
        "/keys/{hash}",
        &one,
        m,
        Some(json!({"limit": "lots"})),
    )
    .await;
    r.call(M::GET, "/key", "/key", "sk-or-v1-not-a-key", None)
        .await;
    r.call(
        M::GET,
        "/workspaces/{id}",
        "/workspaces/00000000-0000-0000-0000-000000000000",
        m,
        None,
    )
    .await;
    r.call(M::DELETE, "/keys/{hash}", &one, m, None).await;
    r.call(M::GET, "/keys/{hash}", &one, m, None).await;
    r.call(M::PATCH, "/keys/{hash}", &one, m, Some(json!({"limit": 1})))
        .await;
    r.call(M::DELETE, "/keys/{hash}", &one, m, None).await;
    // Injected faults answer as OpenRouter does.
    control
        .fault(json!({"op": "*", "action": "rate_limit", "retry_after": 1, "times": 1}))
        .await;
    r.call(M::GET, "/keys", "/keys", m, None).await;
    control
        .fault(json!({"op": "*", "action": "status", "status": 500, "times": 1}))
        .await;
    r.call(M::GET, "/keys", "/keys", m, None).await;

    let statuses: Vec<String> = r
        .samples
        .iter()
        .map(|s| format!("{} {} {}", s["method"], s["path"], s["status"]))
        .collect();
    for wanted in ["400", "401", "403", "404", "429", "500"] {
        assert!(
            statuses.iter().any(|s| s.ends_with(wanted)),
            "no {wanted} recorded: {statuses:?}"
        );
    }
    let file = std::env::temp_dir().join(format!(
        "orkv-emulator-contract-{}.json",
        uuid::Uuid::new_v4()
    ));
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&r.samples).expect("json"),
    )
    .expect("samples written");
    let root = workspace_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/contract/check_openapi.py"))
        .arg(root.join("emulator/openapi/management-openapi.yaml"))
        .arg(&file)
        .output()
        .expect("the checker runs (make venv installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "responses that do not match the document:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
