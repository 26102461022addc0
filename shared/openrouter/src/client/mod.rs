//! The HTTP client: one constructor with timeouts, user agent and no redirects; reads and
//! idempotent writes retried with backoff and `Retry-After`; key creation never retried.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

mod guardrails;
mod http;

use crate::error::Error;
use crate::secret::{ApiKey, ManagementKey};
use crate::types::{CreateKeyRequest, CreatedKey, CurrentKey, Key, KeyPatch, Workspace};

/// OpenRouter's production API root.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// `/keys` pages are fixed at this size; a shorter page is the last.
const KEYS_PAGE: usize = 100;
/// The largest page `/workspaces` serves.
const WORKSPACES_PAGE: usize = 100;
/// Error messages from the server are cut to this length.
const MAX_MESSAGE: usize = 300;

/// How the client talks to OpenRouter.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API root, e.g. `https://openrouter.ai/api/v1` (no trailing slash needed).
    pub base_url: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Attempts after the first, for calls that are safe to repeat.
    pub max_retries: u32,
    /// First backoff step (doubled each attempt, full jitter).
    pub backoff_base: Duration,
    /// The longest single wait, including a server's `Retry-After`; longer ones are not waited.
    pub max_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A management-API client holding the management key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: ManagementKey,
    cfg: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// One page of `GET /keys`: the keys that decoded, how many rows the page held, and how
/// many of them were skipped.
#[derive(Debug, Clone)]
pub struct KeyPage {
    pub keys: Vec<Key>,
    pub rows: usize,
    pub skipped: usize,
}

#[derive(Deserialize)]
struct WorkspacePage {
    data: Vec<Workspace>,
    #[serde(default)]
    total_count: Option<usize>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    metadata: Option<ErrorMetadata>,
}

/// The part of `error.metadata` the client reads: which limit refused a spend.
#[derive(Deserialize)]
struct ErrorMetadata {
    #[serde(default)]
    limit_source: Option<String>,
}

/// Whether a call may be sent again after a failure whose outcome is unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Safe,
    Never,
}

impl Client {
    /// Builds the client (one per container; reuse it).
    ///
    /// # Errors
    /// [`Error::Config`] when the base URL is not http(s) or the TLS stack cannot start.
    pub fn new(cfg: ClientConfig, auth: ManagementKey) -> Result<Self, Error> {
        let base = cfg.base_url.trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&base)
            .map_err(|e| Error::Config(format!("OPENROUTER_BASE_URL {base:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "OPENROUTER_BASE_URL {base:?}: scheme must be http or https"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "openrouter-key-vending/",
                env!("CARGO_PKG_VERSION")
            ))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            auth,
            cfg,
        })
    }

    /// The API root this client calls.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /key` with the management key: describes the management key itself.
    ///
    /// # Errors
    /// Typed [`Error`]s; 401 for an unknown key.
    pub async fn current_key(&self) -> Result<CurrentKey, Error> {
        let bearer = self.auth.expose_secret().to_owned();
        self.current_key_as(&bearer).await
    }

    /// `GET /key` authenticated with `key` itself: proves a minted key works.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] when the key is unknown, disabled or expired.
    pub async fn current_key_with(&self, key: &ApiKey) -> Result<CurrentKey, Error> {
        self.current_key_as(key.expose_secret()).await
    }

    async fn current_key_as(&self, bearer: &str) -> Result<CurrentKey, Error> {
        let data: Data<CurrentKey> = self
            .call(
                Method::GET,
                "/key",
                &[],
                None,
                Repeat::Safe,
                bearer,
                "GET /key",
            )
            .await?;
        Ok(data.data)
    }

    /// One page of `GET /keys` for a workspace (the default workspace when `None`), with
    /// `include_inactive` its disabled and expired keys too (OpenRouter hides both unless
    /// asked: `include_disabled`, `include_expired`; CONTRACT.md, "Listing keys"). A row
    /// that does not decode as a key is skipped and reported (a warning with its hash, when
    /// it has one), so one odd key never fails the page.
    ///
    /// # Errors
    /// Typed [`Error`]s.
    pub async fn list_keys_page(
        &self,
        workspace_id: Option<&str>,
        offset: usize,
        include_inactive: bool,
    ) -> Result<KeyPage, Error> {
        let mut query = vec![
            ("offset", offset.to_string()),
            ("include_disabled", include_inactive.to_string()),
            ("include_expired", include_inactive.to_string()),
        ];
        if let Some(ws) = workspace_id {
            query.push(("workspace_id", ws.to_owned()));
        }
        let page: Data<Vec<serde_json::Value>> = self
            .call_managed(
                Method::GET,
                "/keys",
                &query,
                None,
                Repeat::Safe,
                "GET /keys",
            )
            .await?;
        let rows = page.data.len();
        let mut keys = Vec::with_capacity(rows);
        let mut skipped = 0;
        for row in page.data {
            let hash = row
                .get("hash")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            match serde_json::from_value::<Key>(row) {
                Ok(k) => keys.push(k),
                Err(_) => {
                    skipped += 1;
                    tracing::warn!(
                        event = "UndecodableKey",
                        key_hash = hash.as_deref().unwrap_or("(none)"),
                        "a listed key does not decode; skipped"
                    );
                }
            }
        }
        Ok(KeyPage {
            keys,
            rows,
            skipped,
        })
    }

    /// Every key of a workspace, page by page (100 rows each) until a short page.
    /// `visit` sees each page's keys; return `false` from it to stop early.
    ///
    /// # Errors
    /// Typed [`Error`]s from any page.
    pub async fn for_each_key_page<F>(
        &self,
        workspace_id: Option<&str>,
        include_inactive: bool,
        mut visit: F,
    ) -> Result<(), Error>
    where
        F: FnMut(Vec<Key>) -> bool,
    {
        let mut offset = 0;
        loop {
            let page = self
                .list_keys_page(workspace_id, offset, include_inactive)
                .await?;
            if !visit(page.keys) || page.rows < KEYS_PAGE {
                return Ok(());
            }
            offset += page.rows;
        }
    }

    /// Every key of a workspace in one vector.
    ///
    /// # Errors
    /// Typed [`Error`]s from any page.
    pub async fn list_keys(
        &self,
        workspace_id: Option<&str>,
        include_inactive: bool,
    ) -> Result<Vec<Key>, Error> {
        let mut all = Vec::new();
        self.for_each_key_page(workspace_id, include_inactive, |page| {
            all.extend(page);
            true
        })
        .await?;
        Ok(all)
    }

    /// `GET /keys/{hash}`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no such key exists (or it was deleted).
    pub async fn get_key(&self, hash: &str) -> Result<Key, Error> {
        let path = format!("/keys/{}", path_segment(hash)?);
        let data: Data<Key> = self
            .call_managed(
                Method::GET,
                &path,
                &[],
                None,
                Repeat::Safe,
                "GET /keys/{hash}",
            )
            .await?;
        Ok(data.data)
    }

    /// `POST /keys`, sent exactly once: never retried, because OpenRouter has no idempotency
    /// key and returns the plaintext only in this reply. Any failure after the request may have
    /// reached the server (timeout, dropped connection, 5xx, unreadable reply) becomes
    /// [`Error::CreateOutcomeUnknown`]: the caller must reconcile by listing for `req.name`.
    ///
    /// # Errors
    /// Definite refusals (400, 401, 403, 404, and a 429 still refused after its waits) mean
    /// nothing was created.
    pub async fn create_key_once(&self, req: &CreateKeyRequest) -> Result<CreatedKey, Error> {
        let body = serde_json::to_value(req).map_err(|_| Error::Decode {
            what: "create key request",
        })?;
        let unknown = |cause: String| Error::CreateOutcomeUnknown {
            name: req.name.clone(),
            cause,
        };
        let mut attempt = 0;
        let result: Result<CreatedKey, Error> = loop {
            let result = self
                .call_managed(
                    Method::POST,
                    "/keys",
                    &[],
                    Some(&body),
                    Repeat::Never,
                    "POST /keys",
                )
                .await;
            // A 429 is a definite refusal (nothing was created), so it is sent again after
            // the wait OpenRouter asks for, when that wait fits ([`ClientConfig::max_backoff`]).
            match &result {
                Err(e @ Error::RateLimited { .. }) if attempt < self.cfg.max_retries => {
                    match e.retry_after() {
                        Some(after) if after > self.cfg.max_backoff => break result,
                        Some(after) => tokio::time::sleep(after).await,
                        None => tokio::time::sleep(self.backoff(attempt)).await,
                    }
                    attempt += 1;
                }
                _ => break result,
            }
        };
        match result {
            Ok(created) => Ok(created),
            Err(e @ (Error::Timeout(_) | Error::Connection(_) | Error::Decode { .. })) => {
                Err(unknown(e.to_string()))
            }
            Err(e @ Error::Server { .. }) | Err(e @ Error::UnexpectedStatus { .. }) => {
                Err(unknown(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// `PATCH /keys/{hash}` (idempotent, so retried).
    ///
    /// # Errors
    /// Typed [`Error`]s; 400 for an immutable field.
    pub async fn update_key(&self, hash: &str, patch: &KeyPatch) -> Result<Key, Error> {
        let path = format!("/keys/{}", path_segment(hash)?);
        let body = patch.to_json();
        let data: Data<Key> = self
            .call_managed(
                Method::PATCH,
                &path,
                &[],
                Some(&body),
                Repeat::Safe,
                "PATCH /keys/{hash}",
            )
            .await?;
        Ok(data.data)
    }

    /// `DELETE /keys/{hash}`. Returns `false` when the key was already gone (404), which a
    /// retried delete sees after the first attempt succeeded.
    ///
    /// # Errors
    /// Typed [`Error`]s other than 404.
    pub async fn delete_key(&self, hash: &str) -> Result<bool, Error> {
        let path = format!("/keys/{}", path_segment(hash)?);
        let result: Result<serde_json::Value, Error> = self
            .call_managed(
                Method::DELETE,
                &path,
                &[],
                None,
                Repeat::Safe,
                "DELETE /keys/{hash}",
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every workspace (pages of 100 until `total_count`).
    ///
    /// # Errors
    /// Typed [`Error`]s.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, Error> {
        let mut all: Vec<Workspace> = Vec::new();
        loop {
            let query = [
                ("offset", all.len().to_string()),
                ("limit", WORKSPACES_PAGE.to_string()),
            ];
            let page: WorkspacePage = self
                .call_managed(
                    Method::GET,
                    "/workspaces",
                    &query,
                    None,
                    Repeat::Safe,
                    "GET /workspaces",
                )
                .await?;
            let len = page.data.len();
            all.extend(page.data);
            let done = match page.total_count {
                Some(total) => all.len() >= total,
                None => len < WORKSPACES_PAGE,
            };
            if done || len == 0 {
                return Ok(all);
            }
        }
    }

    /// `GET /workspaces/{id}` by UUID or slug.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown workspace.
    pub async fn get_workspace(&self, id_or_slug: &str) -> Result<Workspace, Error> {
        let path = format!("/workspaces/{}", path_segment(id_or_slug)?);
        let data: Data<Workspace> = self
            .call_managed(
                Method::GET,
                &path,
                &[],
                None,
                Repeat::Safe,
                "GET /workspaces/{id}",
            )
            .await?;
        Ok(data.data)
    }
}
/// A path segment must be a plain id: no slashes, dots-only or control characters.
fn path_segment(id: &str) -> Result<&str, Error> {
    // A key's plaintext is never sent as an identifier (paths reach access logs); the
    // message does not repeat it.
    if id.starts_with("sk-or-") {
        return Err(Error::BadRequest {
            message: "a key's plaintext (sk-or-...) was given where its hash belongs".to_owned(),
        });
    }
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(Error::BadRequest {
            message: "identifier must be 1-128 characters of [A-Za-z0-9_-]".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_refuse_traversal() {
        assert!(path_segment("../admin").is_err());
        assert!(path_segment("").is_err());
        assert!(path_segment("f01d5260").is_ok());
    }

    #[test]
    fn a_plaintext_key_is_never_a_path_segment() {
        let err = path_segment("sk-or-v1-0123456789abcdef").expect_err("refused");
        assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
    }

    #[test]
    fn base_url_must_be_http() {
        let cfg = ClientConfig {
            base_url: "ftp://example".into(),
            ..ClientConfig::default()
        };
        let err = Client::new(cfg, ManagementKey::new("k".into())).expect_err("refused");
        assert!(err.to_string().contains("OPENROUTER_BASE_URL"));
    }
}
