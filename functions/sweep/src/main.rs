//! The sweep Lambda, run by an EventBridge Scheduler schedule: starts due rotations, retires
//! superseded keys after their grace period, finds orphans and warns (logs plus CloudWatch
//! Embedded Metric Format).
//!
//! The logic lives in `orkv-vending`; this binary only names its function
//! (`orkv_vending::function_main!`).

orkv_vending::function_main!(sweep);
