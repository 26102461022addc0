//! Every sample in `events/` is a real wire shape that parses and validates.

use orkv_tests::{POLICY, workspace_root};
use orkv_vending::domain::policy::Policy;
use orkv_vending::input::action::InventoryRequest;
use orkv_vending::input::adopt::AdoptRequest;
use orkv_vending::input::invocation::{self, Action, Trigger};
use orkv_vending::input::provision::ProvisionRequest;
use orkv_vending::input::rotation::RotationEvent;
use orkv_vending::input::sweep::SweepInput;

#[test]
fn every_sample_event_parses_and_validates() {
    let policy = Policy::from_json(POLICY).expect("policy");
    let now = time::macros::datetime!(2026-11-22 12:00:00 UTC);
    let mut seen = 0;
    let dir = workspace_root().join("events");
    for entry in std::fs::read_dir(&dir).expect("events/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let payload: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.starts_with("rotation-") {
            RotationEvent::parse(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
            continue;
        }
        if name.starts_with("sweep-") {
            SweepInput::parse(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
            continue;
        }
        let mut inv = invocation::parse(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Only the platform-admin alias may name a tenant (`pipeline-admin-*`).
        let tenant = invocation::take_tenant(&mut inv.request, true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            tenant.is_some(),
            name.starts_with("pipeline-admin"),
            "{name}"
        );
        let expected = if name.starts_with("eventbridge") {
            Trigger::EventBridge
        } else {
            Trigger::Direct
        };
        assert_eq!(inv.trigger, expected, "{name}");
        assert!(!inv.request_id.is_empty());
        match inv.action {
            Action::Provision => {
                ProvisionRequest::parse(&inv.request, &policy, now)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Action::Rotate | Action::Revoke => {
                assert!(inv.request["secret_name"].is_string(), "{name}");
            }
            Action::Inventory => {
                InventoryRequest::parse(&inv.request).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Action::Adopt => {
                AdoptRequest::parse(&inv.request, "openrouter/")
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        seen += 1;
    }
    assert!(seen >= 16, "one sample per trigger and action: {seen}");
}
