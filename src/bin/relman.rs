//! The relman controller.

use std::net::SocketAddr;

use relman::telemetry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init()?;
    let addr: SocketAddr = std::env::var("RELMAN_HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".to_owned())
        .parse()
        .map_err(|e| {
            format!("RELMAN_HTTP_ADDR must be a socket address such as 0.0.0.0:8080: {e}")
        })?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, "relman starting");
    relman::http::serve(addr, relman::http::shutdown_signal()).await?;
    tracing::info!("relman stopped");
    Ok(())
}
