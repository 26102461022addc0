//! The invariants after the chaos, each required to be zero: no live key without a secret
//! referencing it, every current key works, one live key per secret, no superseded key live
//! after grace and a sweep, no plaintext outside Secrets Manager, nothing unfinished, no
//! rotation left pending.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::client::{dangling_pending, secret_name};
use super::pool::Pool;
use super::{Soak, SoakFigures};

/// What the secrets hold at the end.
#[derive(Default)]
struct Seen {
    current_hashes: HashSet<String>,
    existing: HashSet<String>,
    revoked: HashSet<String>,
}

impl Soak {
    pub(super) async fn check(
        &self,
        unfinished: u64,
        resumed: u64,
        final_sweep: &Pool,
    ) -> SoakFigures {
        let mut figures = SoakFigures {
            operations: self.cfg.operations as u64,
            kills: self.kills.load(Ordering::SeqCst),
            faults_openrouter_injected: self.or_faults.load(Ordering::SeqCst),
            unfinished_operations: unfinished,
            rotations_resumed_after_the_chaos: resumed,
            ..SoakFigures::default()
        };
        let revoked = self.revoked.lock().await.clone();
        for i in (0..self.cfg.secrets).filter(|i| !revoked.contains(i)) {
            let secret = secret_name(&self.prefix, i);
            if dangling_pending(&self.sm, &secret).await {
                figures.rotations_left_pending += 1;
                figures
                    .details
                    .push(format!("{secret}: a rotation is left pending"));
            }
        }
        let (throttled, cut) = self.proxy.faults();
        figures.faults_secrets_manager_throttled = throttled;
        figures.faults_secrets_manager_cut_after_call = cut;
        let obs = &self.observations;
        figures.consumer_reads = obs.reads.load(Ordering::Relaxed);
        figures.consumer_reads_of_a_current_record_without_a_working_key =
            obs.broken_current.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        {
            figures.longest_seconds_a_rotation_held_awspending =
                obs.longest_pending_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        }
        figures
            .details
            .extend(obs.details.lock().await.iter().cloned());
        let live = self.live_keys().await;
        self.check_guardrails(&live, &mut figures).await;
        self.check_guardrail_report(final_sweep, &mut figures).await;
        let seen = self.check_secrets(&live, &revoked, &mut figures).await;
        self.check_live_keys(&live, &seen, &mut figures).await;
        let mut everything = self.seen.lock().await.clone();
        for pool in [&*self.provision, &*self.rotate, &*self.sweep, final_sweep] {
            everything.push_str(&pool.all_output().await);
        }
        figures.plaintexts_outside_secrets_manager = everything.matches("sk-or-").count() as u64;
        let c = &self.counters;
        figures.invocations = c.invocations.load(Ordering::Relaxed);
        figures.retried_invocations = c.retried.load(Ordering::Relaxed);
        figures.requests_served = c.served.load(Ordering::Relaxed);
        figures.definitive_refusals = c.refusals.load(Ordering::Relaxed);
        figures.unfinished_operations += c.unfinished.load(Ordering::Relaxed);
        figures
            .details
            .extend(c.last_errors.lock().await.iter().cloned());
        figures
    }

    /// One more sweep, its report read: every key it says lacks the guardrail must really
    /// lack it (the live keys without it, counted by [`Self::check_guardrails`] just before).
    async fn check_guardrail_report(&self, final_sweep: &Pool, figures: &mut SoakFigures) {
        let payload = json!({"execution_id": "final-guardrail-report"});
        let reply = final_sweep
            .invoke(payload, std::time::Duration::from_secs(20))
            .await;
        let Some(Ok(report)) = reply else {
            figures.unfinished_operations += 1;
            figures
                .details
                .push(format!("the guardrail-report sweep failed: {reply:?}"));
            return;
        };
        let reported = report["keys_missing_guardrail"]
            .as_u64()
            .unwrap_or(u64::MAX);
        let false_positives = reported.saturating_sub(figures.keys_without_their_guardrail);
        if false_positives > 0 {
            figures.sweep_reports_of_a_missing_guardrail_that_is_there = false_positives;
            figures.details.push(format!(
                "the sweep reported {reported} keys without their guardrail: {report}"
            ));
        }
    }

    /// Every live key carries the guardrail, and every key a consumer read as current had
    /// carried it (the emulator remembers every assignment ever made).
    async fn check_guardrails(&self, live: &[Value], figures: &mut SoakFigures) {
        let state = self.control.state().await;
        for k in live {
            let hash = k["hash"].as_str().unwrap_or_default();
            if state["assignments"][hash] != json!(self.guardrail) {
                figures.keys_without_their_guardrail += 1;
                figures.details.push(format!(
                    "live key without its guardrail: {} ({hash})",
                    k["name"]
                ));
            }
        }
        let ever: HashSet<&str> = state["ever_assigned"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for h in self.observations.current_hashes.lock().await.iter() {
            if !ever.contains(h.as_str()) {
                figures.keys_without_their_guardrail += 1;
                figures.details.push(format!(
                    "a consumer read key {h} as current before it carried its guardrail"
                ));
            }
        }
    }

    /// The run's keys that are neither disabled nor expired.
    async fn live_keys(&self) -> Vec<Value> {
        let state = self.control.state().await;
        state["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k["disabled"] == json!(false) && k["expired"] == json!(false))
            .filter(|k| k["name"].as_str().is_some_and(|n| n.contains(&self.prefix)))
            .collect()
    }

    /// Every active secret's current key works and is its secret's only live key.
    async fn check_secrets(
        &self,
        live: &[Value],
        revoked: &std::collections::BTreeSet<usize>,
        figures: &mut SoakFigures,
    ) -> Seen {
        let mut seen = Seen::default();
        for i in 0..self.cfg.secrets {
            let secret = secret_name(&self.prefix, i);
            let value = self
                .sm
                .get_secret_value()
                .secret_id(&secret)
                .version_stage("AWSCURRENT")
                .send()
                .await;
            let Ok(value) = value else { continue };
            seen.existing.insert(secret.clone());
            let record: Value =
                serde_json::from_str(value.secret_string().unwrap_or("{}")).unwrap_or(Value::Null);
            if revoked.contains(&i) {
                seen.revoked.insert(secret.clone());
                continue;
            }
            if record["state"] != json!("active") {
                continue;
            }
            if let Some(h) = record["key_hash"].as_str() {
                seen.current_hashes.insert(h.to_owned());
            }
            if !self
                .works(record["api_key"].as_str().unwrap_or_default())
                .await
            {
                figures.secrets_whose_current_key_does_not_work += 1;
                figures.details.push(format!(
                    "current key of {secret} does not work: generation {}, hash {}",
                    record["generation"], record["key_hash"]
                ));
            }
            let theirs: Vec<&Value> = live
                .iter()
                .filter(|k| {
                    k["name"]
                        .as_str()
                        .is_some_and(|n| n.contains(&format!("{secret}:")))
                })
                .collect();
            let may: f64 = theirs
                .iter()
                .map(|k| k["limit_remaining"].as_f64().unwrap_or(f64::INFINITY))
                .sum();
            let cap = record["limit"].as_f64().unwrap_or_default();
            if may > cap + 0.01 {
                figures.secrets_whose_live_keys_may_spend_past_their_cap += 1;
                figures.details.push(format!(
                    "{secret}: its live keys may spend {may} USD, the cap is {cap}"
                ));
            }
            let mine = theirs.len() as u64;
            figures.duplicate_live_keys_for_one_secret += mine.saturating_sub(1);
            if mine > 1 {
                let versions = self.versions(&secret).await;
                figures.details.push(format!(
                    "{secret}: {mine} live keys; AWSCURRENT names {} (gen {}, state {}); versions {versions}",
                    record["openrouter_key_name"], record["generation"], record["state"]
                ));
            }
        }
        seen
    }

    /// A live key that is not current: superseded when its secret exists, else an orphan.
    /// And no live key has a limit above the policy's maximum for its workspace.
    async fn check_live_keys(&self, live: &[Value], seen: &Seen, figures: &mut SoakFigures) {
        let policy: Value = serde_json::from_str(crate::POLICY).unwrap_or_default();
        let max_limit = policy["workspaces"][0]["max_limit"]
            .as_f64()
            .unwrap_or_default();
        for k in live {
            if k["limit"].as_f64().is_none_or(|l| l > max_limit + 1e-9) {
                figures.live_keys_above_the_tenants_max_limit += 1;
                figures.details.push(format!(
                    "live key {} with limit {} above the policy's {max_limit}",
                    k["name"], k["limit"]
                ));
            }
        }
        for k in live {
            let hash = k["hash"].as_str().unwrap_or_default();
            if seen.current_hashes.contains(hash) {
                continue;
            }
            let name = k["name"].as_str().unwrap_or_default();
            let secret =
                orkv_vending::domain::names::KeyName::parse(name).map_or("", |n| n.secret());
            if !seen.existing.contains(secret) {
                figures.live_keys_without_a_referencing_secret += 1;
                continue;
            }
            if seen.revoked.contains(secret) {
                figures.keys_live_after_a_revoke_answered += 1;
                figures.details.push(format!(
                    "key live after its secret's revoke: {name} ({hash})"
                ));
                continue;
            }
            figures.superseded_keys_live_after_grace_and_a_sweep += 1;
            if figures.details.len() < 40 {
                let tags = self.retire_tags(secret).await;
                figures.details.push(format!(
                    "superseded key still live: {name} ({hash}); secret tags: {tags}"
                ));
            }
        }
    }

    async fn works(&self, key: &str) -> bool {
        reqwest::Client::new()
            .get(format!("{}/api/v1/key", self.emulator.url()))
            .bearer_auth(key)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Diagnostics: the secret's versions and their labels.
    async fn versions(&self, secret: &str) -> String {
        self.sm
            .list_secret_version_ids()
            .secret_id(secret)
            .send()
            .await
            .map(|v| {
                v.versions()
                    .iter()
                    .map(|x| {
                        format!(
                            "{}:{:?}",
                            x.version_id().unwrap_or("").get(..8).unwrap_or(""),
                            x.version_stages()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    /// Diagnostics: the tags that say what the sweep should retire.
    async fn retire_tags(&self, secret: &str) -> String {
        self.sm
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .map(|d| {
                d.tags()
                    .iter()
                    .filter(|t| {
                        t.key().is_some_and(|k| {
                            k.starts_with("orkv:retire")
                                || k == "orkv:openrouter-key-name"
                                || k == "orkv:revoked"
                        })
                    })
                    .map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }
}
