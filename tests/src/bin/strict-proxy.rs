//! `strict-proxy UPSTREAM`: the AWS behaviour layer (`orkv_tests::strict`) in front of the
//! Secrets Manager at `UPSTREAM` (moto), on a free loopback port whose URL it prints on its
//! first line; it serves until killed. `make demo` puts it between the functions and moto.
//! A local stand-in: never part of a release package.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(upstream) = std::env::args().nth(1) else {
        eprintln!("usage: strict-proxy UPSTREAM_URL");
        std::process::exit(2);
    };
    let proxy = orkv_tests::proxy::LatencyProxy::start(&upstream, std::time::Duration::ZERO).await;
    proxy.set_strict(true);
    println!("{}", proxy.url);
    std::future::pending::<()>().await;
}
