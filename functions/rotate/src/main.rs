//! The rotation Lambda: Secrets Manager invokes it once per step (`createSecret`, `setSecret`,
//! `testSecret`, `finishSecret`) for the managed secrets.
//!
//! The logic lives in `orkv-vending`; this binary only picks the function and the starter.

use orkv_vending::lambda::{Function, StarterFactory, serve};

#[cfg(feature = "local-rotation")]
const STARTER: StarterFactory = orkv_local_rotation::starter;
#[cfg(not(feature = "local-rotation"))]
const STARTER: StarterFactory = orkv_vending::deps::production_starter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Function::Rotate, STARTER).await
}
