//! One control plane per test process.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};

/// The process's control plane, or the error that kept it from starting.
static SHARED: OnceCell<Result<ControlPlane, Arc<Error>>> = OnceCell::const_new();

/// The shared control plane, started on first use.
pub(crate) async fn get() -> Result<&'static ControlPlane> {
    let started = SHARED
        .get_or_init(|| async { start_on_own_thread().await.map_err(Arc::new) })
        .await;
    started.as_ref().map_err(|e| Error::Shared(Arc::clone(e)))
}

/// Starts a control plane on a thread of its own, with a runtime of its own, so that nothing
/// it needs belongs to the runtime of the test that happened to ask first.
async fn start_on_own_thread() -> Result<ControlPlane> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("relman-testenv-start".to_owned())
        .spawn(move || {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::io("build a runtime to start the control plane"))
                .and_then(|runtime| runtime.block_on(ControlPlane::start()));
            // Should the asking test be gone, dropping the control plane here stops it.
            let _ = sender.send(started);
        })
        .map_err(Error::io("spawn the control-plane start-up thread"))?;
    receiver
        .await
        .map_err(|_| Error::StartThread("it ended without a result (it panicked)".to_owned()))?
}
