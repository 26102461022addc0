//! The transport under every call: authentication, timeouts, bounded retries of calls safe to
//! repeat (with backoff and `Retry-After`), and errors that carry OpenRouter's message but never
//! a URL with a key in it.

use std::time::Duration;

use rand::RngExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::{Client, ErrorBody, MAX_MESSAGE, Repeat};
use crate::error::Error;

impl Client {
    pub(super) async fn call_managed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        repeat: Repeat,
        what: &'static str,
    ) -> Result<T, Error> {
        let bearer = self.auth.expose_secret();
        self.call(method, path, query, body, repeat, bearer, what)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        repeat: Repeat,
        bearer: &str,
        what: &'static str,
    ) -> Result<T, Error> {
        let mut attempt: u32 = 0;
        loop {
            let result = self
                .send_once(method.clone(), path, query, body, bearer, what)
                .await;
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let retryable =
                repeat == Repeat::Safe && err.is_transient() && attempt < self.cfg.max_retries;
            if !retryable {
                return Err(err);
            }
            let wait = match err.retry_after() {
                Some(after) if after > self.cfg.max_backoff => return Err(err),
                Some(after) => after,
                None => self.backoff(attempt),
            };
            tracing::debug!(call = what, attempt, wait_ms = wait.as_millis() as u64, error = %err.kind().as_str(), "retrying OpenRouter call");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .cfg
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cfg.max_backoff);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        bearer: &str,
        what: &'static str,
    ) -> Result<T, Error> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(bearer)
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let retry_after = parse_retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            // A decode error's text may quote the body (which can hold a plaintext key), so
            // it is never passed on.
            return serde_json::from_slice(&bytes).map_err(|_| Error::Decode { what });
        }
        Err(Error::from_reply(
            status.as_u16(),
            error_message(status, &bytes),
            limit_source(&bytes).as_deref(),
            retry_after,
        ))
    }

    fn transport(&self, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout(self.cfg.timeout)
        } else {
            // Without the URL: the text stays short and stable.
            Error::Connection(
                e.without_url_ref()
                    .map_or_else(|| "request failed".to_owned(), |s| s.to_string()),
            )
        }
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> Option<String>;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> Option<String> {
        let mut text = if self.is_connect() {
            "connection failed".to_owned()
        } else if self.is_body() || self.is_decode() {
            "reply body broken off".to_owned()
        } else if self.is_request() {
            "request could not be sent".to_owned()
        } else {
            "transport error".to_owned()
        };
        let mut source = std::error::Error::source(self);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        Some(text)
    }
}

/// `error.metadata.limit_source` of an error body, if any.
fn limit_source(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(bytes)
        .ok()?
        .error
        .metadata?
        .limit_source
}

pub(super) fn error_message(status: StatusCode, bytes: &[u8]) -> String {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
    let mut message: String = message.chars().take(MAX_MESSAGE).collect();
    if message.is_empty() {
        message = status.as_str().to_owned();
    }
    message
}

/// `Retry-After` as seconds (whole or fractional) or as an HTTP date (RFC 9110, section
/// 10.2.3: `delay-seconds` or `HTTP-date`), at most an hour; a date in the past is no wait.
pub(super) fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = match value.parse::<f64>() {
        Ok(secs) => secs,
        Err(_) => {
            let at =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            (at - time::OffsetDateTime::now_utc())
                .as_seconds_f64()
                .max(0.0)
        }
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_whole_and_fractional_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(reqwest::header::RETRY_AFTER, "0.5".parse().expect("header"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "soon".parse().expect("header"),
        );
        assert_eq!(parse_retry_after(&h), None);
        // An HTTP date: the wait until then; one in the past is no wait.
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let date = soon
            .format(&time::format_description::well_known::Rfc2822)
            .expect("date")
            .replace("+0000", "GMT");
        h.insert(reqwest::header::RETRY_AFTER, date.parse().expect("header"));
        let wait = parse_retry_after(&h).expect("a date is a wait");
        assert!(
            (Duration::from_secs(28)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?} from {date}"
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().expect("header"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn error_messages_come_from_openrouter_error_bodies() {
        let body = br#"{"error":{"code":403,"message":"Only management keys can perform this operation"}}"#;
        assert_eq!(
            error_message(StatusCode::FORBIDDEN, body),
            "Only management keys can perform this operation"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>"),
            "Bad Gateway"
        );
    }
}
