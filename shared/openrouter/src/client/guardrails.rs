//! Guardrails: the one read the product needs of a guardrail (its workspace and budget), and
//! the key assignments. Assigning and unassigning are idempotent (a key holds at most one
//! guardrail; assigning again changes nothing), so both are retried like any safe call.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;

use super::{Client, Data, Repeat, path_segment};
use crate::error::Error;
use crate::types::Guardrail;

/// The assignment listings' largest page.
const ASSIGNMENTS_PAGE: usize = 100;

#[derive(Deserialize)]
struct Assigned {
    assigned_count: u64,
}

#[derive(Deserialize)]
struct Unassigned {
    unassigned_count: u64,
}

#[derive(Deserialize)]
struct AssignmentPage {
    data: Vec<Assignment>,
    /// Required by OpenRouter's OpenAPI document (`ListKeyAssignmentsResponse`), and the only
    /// way to know the listing ended: pages can be short or empty before the end.
    total_count: usize,
}

#[derive(Deserialize)]
struct Assignment {
    key_hash: String,
}

impl Client {
    /// `GET /guardrails/{id}`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown guardrail.
    pub async fn get_guardrail(&self, id: &str) -> Result<Guardrail, Error> {
        let path = format!("/guardrails/{}", path_segment(id)?);
        let data: Data<Guardrail> = self
            .call_managed(
                Method::GET,
                &path,
                &[],
                None,
                Repeat::Safe,
                "GET /guardrails/{id}",
            )
            .await?;
        Ok(data.data)
    }

    /// `POST /guardrails/{id}/assignments/keys` for the keys `hashes`: how many OpenRouter
    /// says it assigned.
    ///
    /// # Errors
    /// 400 for a key outside the guardrail's workspace, 404 for an unknown guardrail or key.
    pub async fn assign_keys(&self, id: &str, hashes: &[&str]) -> Result<u64, Error> {
        let r: Assigned = self
            .post_key_hashes(id, "", hashes, "POST /guardrails/{id}/assignments/keys")
            .await?;
        Ok(r.assigned_count)
    }

    /// `POST /guardrails/{id}/assignments/keys/remove` for the keys `hashes`: how many were
    /// unassigned.
    ///
    /// # Errors
    /// Typed [`Error`]s; 404 for an unknown guardrail.
    pub async fn unassign_keys(&self, id: &str, hashes: &[&str]) -> Result<u64, Error> {
        let r: Unassigned = self
            .post_key_hashes(
                id,
                "/remove",
                hashes,
                "POST /guardrails/{id}/assignments/keys/remove",
            )
            .await?;
        Ok(r.unassigned_count)
    }

    /// `POST /guardrails/{id}/assignments/keys<suffix>` with `{"key_hashes": hashes}`.
    async fn post_key_hashes<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        suffix: &str,
        hashes: &[&str],
        what: &'static str,
    ) -> Result<T, Error> {
        let path = format!("/guardrails/{}/assignments/keys{suffix}", path_segment(id)?);
        let body = serde_json::json!({ "key_hashes": hashes });
        self.call_managed(Method::POST, &path, &[], Some(&body), Repeat::Safe, what)
            .await
    }

    /// Every key hash assigned to guardrail `id`: `GET /guardrails/{id}/assignments/keys`,
    /// pages of 100 until `total_count` (one call per hundred assignment rows).
    ///
    /// OpenRouter keeps the rows of deleted keys and drops them after it cuts each page, so a
    /// page can come back short, or empty, before the end, while `total_count` counts every
    /// row. As OpenRouter's own Terraform provider does (`guardrailkeyassignment_resource.go`,
    /// `keyAssigned`), `offset` steps by the page size asked for, never by the rows returned,
    /// and only `offset >= total_count` ends the listing.
    ///
    /// # Errors
    /// Typed [`Error`]s; 404 for an unknown guardrail.
    pub async fn guardrail_key_hashes(&self, id: &str) -> Result<HashSet<String>, Error> {
        let path = format!("/guardrails/{}/assignments/keys", path_segment(id)?);
        let mut all = HashSet::new();
        let mut offset = 0;
        loop {
            let query = [
                ("offset", offset.to_string()),
                ("limit", ASSIGNMENTS_PAGE.to_string()),
            ];
            let page: AssignmentPage = self
                .call_managed(
                    Method::GET,
                    &path,
                    &query,
                    None,
                    Repeat::Safe,
                    "GET /guardrails/{id}/assignments/keys",
                )
                .await?;
            all.extend(page.data.into_iter().map(|a| a.key_hash));
            offset += ASSIGNMENTS_PAGE;
            if offset >= page.total_count {
                return Ok(all);
            }
        }
    }
}
