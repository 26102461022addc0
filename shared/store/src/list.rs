//! Finding secrets: `ListSecrets` pages by tag, tag key or name prefix, each summary with its
//! tags, its current and pending versions and whether rotation is on.

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use crate::{SecretStore, SecretSummary, StoreError};

impl SecretStore {
    /// One page (up to 100) of the secrets carrying tag `key` = `value`: one `ListSecrets`
    /// call. Pass the returned token to get the next page; `None` means the last page.
    ///
    /// # Errors
    /// [`StoreError`]s.
    pub async fn list_tagged_page(
        &self,
        key: &str,
        value: &str,
        next: Option<String>,
    ) -> Result<(Vec<SecretSummary>, Option<String>), StoreError> {
        let filters = vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(key)
                .build(),
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values(value)
                .build(),
        ];
        self.list_page(filters, next).await
    }

    /// One page (up to 100) of the secrets carrying a tag whose key is `key` (`ListSecrets`'
    /// `tag-key` filter matches prefixes, so the page is filtered again for the exact key);
    /// the token of the next page.
    ///
    /// # Errors
    /// [`StoreError`] of `ListSecrets`.
    pub async fn list_tag_key_page(
        &self,
        key: &str,
        next: Option<String>,
    ) -> Result<(Vec<SecretSummary>, Option<String>), StoreError> {
        let filters = vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(key)
                .build(),
        ];
        let (mut page, next) = self.list_page(filters, next).await?;
        page.retain(|s| s.tags.iter().any(|(k, _)| k == key));
        Ok((page, next))
    }

    /// One page of the secrets whose name starts with `prefix` (`ListSecrets` with the `name`
    /// filter, which matches prefixes; the page is filtered again case-sensitively), with their
    /// tags; the token of the next page.
    ///
    /// # Errors
    /// [`StoreError`] of `ListSecrets`.
    pub async fn list_named_page(
        &self,
        prefix: &str,
        next: Option<String>,
    ) -> Result<(Vec<SecretSummary>, Option<String>), StoreError> {
        let filters = vec![
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values(prefix)
                .build(),
        ];
        let (mut page, next) = self.list_page(filters, next).await?;
        page.retain(|s| s.name.starts_with(prefix));
        Ok((page, next))
    }

    async fn list_page(
        &self,
        filters: Vec<Filter>,
        next: Option<String>,
    ) -> Result<(Vec<SecretSummary>, Option<String>), StoreError> {
        let out = self
            .client
            .list_secrets()
            .set_filters(Some(filters))
            .max_results(100)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("ListSecrets", e))?;
        let page: Vec<SecretSummary> = out
            .secret_list
            .unwrap_or_default()
            .into_iter()
            .map(|s| SecretSummary {
                current_version: s.secret_versions_to_stages.as_ref().and_then(|m| {
                    m.iter()
                        .find(|(_, stages)| stages.iter().any(|l| l == "AWSCURRENT"))
                        .map(|(v, _)| v.clone())
                }),
                pending_version: s.secret_versions_to_stages.as_ref().and_then(|m| {
                    m.iter()
                        .find(|(_, stages)| {
                            stages.iter().any(|l| l == "AWSPENDING")
                                && !stages.iter().any(|l| l == "AWSCURRENT")
                        })
                        .map(|(v, _)| v.clone())
                }),
                arn: s.arn.unwrap_or_default(),
                name: s.name.unwrap_or_default(),
                tags: s
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                    .collect(),
                rotation_enabled: s.rotation_enabled.unwrap_or(false),
            })
            .collect();
        Ok((page, out.next_token.filter(|t| !t.is_empty())))
    }

    /// Pages through the secrets carrying tag `key` = `value` (one `ListSecrets` call per
    /// page of up to 100); `visit` sees each page and returns `false` to stop.
    ///
    /// # Errors
    /// [`StoreError`]s from any page.
    pub async fn for_each_tagged<F>(
        &self,
        key: &str,
        value: &str,
        mut visit: F,
    ) -> Result<u32, StoreError>
    where
        F: FnMut(Vec<SecretSummary>) -> bool,
    {
        let mut next: Option<String> = None;
        let mut calls = 0;
        loop {
            let (page, token) = self.list_tagged_page(key, value, next.take()).await?;
            calls += 1;
            if !visit(page) {
                return Ok(calls);
            }
            match token {
                Some(t) => next = Some(t),
                None => return Ok(calls),
            }
        }
    }
}
