//! The production rotation path on a second AWS: the rotate function registered with
//! LocalStack's own Lambda API, so that Secrets Manager's `RotateSecret` finds it and invokes
//! its four steps there. LocalStack's execution layer is replaced for this function only
//! (`tests/localstack/launch.py`): an invocation is POSTed to `bridge_url`, a Lambda Invoke
//! endpoint the test serves in front of the real, packaged rotate binary. Everything else
//! (the Lambda API, `RotateSecret`'s checks, labels and step invocations) is LocalStack's.

use std::time::Duration;

use serde_json::{Value, json};

/// The rotate function's name as the module names it (`infra/main.tf`), so the role policies'
/// `lambda:InvokeFunction` statements cover the ARN the product sends.
pub const ROTATE_FUNCTION: &str = "orkv-rotate";
/// The variable the patched execution layer reads the bridge's address from.
pub const BRIDGE_VAR: &str = "ORKV_BRIDGE_INVOKE_URL";
/// A deployment package with a `bootstrap` that is never run (the function runs outside
/// LocalStack, through the bridge): LocalStack's `CreateFunction` wants a zip.
const PLACEHOLDER_ZIP_BASE64: &str = "UEsDBBQAAAAAAAAAIVxwF3rjYAAAAGAAAAAJAAAAYm9vdHN0cmFwIyEvYmluL3NoCiMgVGhlIGZ1bmN0aW9uIHJ1bnMgb3V0c2lkZSBMb2NhbFN0YWNrOiB0ZXN0cy9sb2NhbHN0YWNrL2xhdW5jaC5weSBicmlkZ2VzIGl0LgpleGl0IDEKUEsBAhQDFAAAAAAAAAAhXHAXeuNgAAAAYAAAAAkAAAAAAAAAAAAAAO0BAAAAAGJvb3RzdHJhcFBLBQYAAAAAAQABADcAAACHAAAAAAA=";

/// A request to the Lambda API, signed in form only (LocalStack reads the region and the
/// service from the credential scope and checks no signature).
fn lambda(http: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    http.request(method, url).header(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
    )
}

/// (Re)creates [`ROTATE_FUNCTION`] in the AWS at `aws_url` (LocalStack), bridged to the
/// Lambda Invoke endpoint at `bridge_url`, and waits until Lambda reports it `Active`.
/// Answers its ARN, which `ORKV_ROTATION_LAMBDA_ARN` names.
///
/// # Panics
/// When the Lambda API refuses or the function never becomes active (LocalStack not started by
/// `tests/localstack/run.sh`, whose launcher patches the execution layer).
pub async fn bridge_rotate_function(aws_url: &str, bridge_url: &str) -> String {
    let http = reqwest::Client::new();
    let function_url = format!("{aws_url}/2015-03-31/functions/{ROTATE_FUNCTION}");
    // A function left by an earlier test points at that test's bridge.
    let _ = lambda(&http, reqwest::Method::DELETE, function_url.clone())
        .send()
        .await;
    let body = json!({
        "FunctionName": ROTATE_FUNCTION,
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Role": format!("arn:aws:iam::{}:role/orkv-rotate", crate::iam::account()),
        "Timeout": 60,
        "Code": {"ZipFile": PLACEHOLDER_ZIP_BASE64},
        "Environment": {"Variables": {BRIDGE_VAR: bridge_url}},
    });
    let resp = lambda(
        &http,
        reqwest::Method::POST,
        format!("{aws_url}/2015-03-31/functions"),
    )
    .json(&body)
    .send()
    .await
    .expect("CreateFunction reaches LocalStack");
    let status = resp.status();
    let created: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "CreateFunction: {status} {created}");
    let arn = created["FunctionArn"]
        .as_str()
        .expect("CreateFunction answers the ARN")
        .to_owned();
    for _ in 0..100 {
        let got: Value = lambda(&http, reqwest::Method::GET, function_url.clone())
            .send()
            .await
            .expect("GetFunction")
            .json()
            .await
            .unwrap_or(Value::Null);
        match got["Configuration"]["State"].as_str() {
            Some("Active") => return arn,
            Some("Failed") => panic!(
                "the rotate function failed to start (is LocalStack running with tests/localstack/launch.py?): {got}"
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the rotate function did not become Active within 10 s");
}

/// Where the packaged (release, no local stand-in) function binaries are: `make package`'s
/// build, which `tests/localstack/run.sh` names in `ORKV_RELEASE_BIN_DIR`.
///
/// # Panics
/// When the variable is unset or a binary is missing.
#[must_use]
pub fn release_bin_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("ORKV_RELEASE_BIN_DIR")
        .map(std::path::PathBuf::from)
        .expect("ORKV_RELEASE_BIN_DIR names the packaged binaries (run through tests/localstack/run.sh)");
    for f in ["provision", "rotate", "sweep"] {
        assert!(
            dir.join(f).exists(),
            "{} is missing: run `make package`",
            dir.join(f).display()
        );
    }
    dir
}
