//! The sweep Lambda, run by an EventBridge Scheduler schedule: starts due rotations, retires
//! superseded keys after their grace period, finds orphans and warns (logs plus CloudWatch
//! Embedded Metric Format).
//!
//! The logic lives in `orkv-vending`; this binary only picks the function and the starter.

use orkv_vending::lambda::{Function, StarterFactory, serve};

#[cfg(feature = "local-rotation")]
const STARTER: StarterFactory = orkv_local_rotation::starter;
#[cfg(not(feature = "local-rotation"))]
const STARTER: StarterFactory = orkv_vending::deps::production_starter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Function::Sweep, STARTER).await
}
