//! The provision Lambda: wires configuration, one Secrets Manager client and the vending
//! core, then serves events (EventBridge `OpenRouter Key Requested`, or a direct invocation).
//!
//! The logic lives in `orkv-vending`; this binary only picks the function and the starter.

use orkv_vending::lambda::{Function, StarterFactory, serve};

#[cfg(feature = "local-rotation")]
const STARTER: StarterFactory = orkv_local_rotation::starter;
#[cfg(not(feature = "local-rotation"))]
const STARTER: StarterFactory = orkv_vending::deps::production_starter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Function::Provision, STARTER).await
}
