//! The rotation Lambda: Secrets Manager invokes it once per step (`createSecret`, `setSecret`,
//! `testSecret`, `finishSecret`) for the managed secrets.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use orkv_vending::{Config, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    orkv_vending::exit_on_shutdown_signal();
    let cfg = Config::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("--check-config") {
        // Operators and the infrastructure test: is this environment a valid configuration?
        println!("configuration ok");
        return Ok(());
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = orkv_store::SecretStore::from_shared_config(&aws);
    let deps = Deps::new(cfg, store);
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            orkv_vending::rotate::handle_lambda(deps, event).await
        },
    ))
    .await
}
