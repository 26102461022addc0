//! The provision Lambda: wires configuration, one Secrets Manager client and the vending
//! core, then serves events (EventBridge `OpenRouter Key Requested`, or a direct invocation).
//!
//! The logic lives in `orkv-vending`; this binary only names its function
//! (`orkv_vending::function_main!`).

orkv_vending::function_main!(provision);
