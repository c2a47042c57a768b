//! A real local Kubernetes control plane for relman's tests and demo.
//!
//! [`ControlPlane::start`] runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler
//! and [kwok](https://kwok.sigs.k8s.io) (which plays the kubelet for one fake node) as child
//! processes on loopback ports, authenticated with client certificates from a throw-away CA.
//! The binaries are built once by `testenv/build.sh` into a cache outside the repository.
//!
//! Pods behave as on a healthy node: they are scheduled, become Running and Ready, and pods of
//! Jobs complete. Labels on a pod (template) change their fate: [`FAIL_LABEL`] makes them fail,
//! [`NEVER_READY_LABEL`] keeps them unready.
//!
//! ```no_run
//! # async fn example() -> Result<(), relman_testenv::Error> {
//! use relman_testenv::ControlPlane;
//!
//! let cp = ControlPlane::shared().await?; // one per test process
//! let client = cp.client().await?; // one per test
//! let ns = cp.test_namespace("rollout").await?;
//! # let _ = (client, ns);
//! # Ok(())
//! # }
//! ```
//!
//! Processes never outlive the process that started them: see the `process` module.

mod binaries;
mod components;
mod control_plane;
mod crds;
mod error;
mod fs;
mod kubeconfig;
mod kwok;
mod namespace;
mod pki;
mod policies;
mod process;
mod shared;
mod wait;

pub use binaries::BIN_DIR_ENV;
pub use control_plane::{ADMIN_USER, ControlPlane, Options};
pub use crds::{CRD_DIR_ENV, FIELD_MANAGER};
pub use error::{Error, Result};
pub use kubeconfig::CLUSTER_NAME;
pub use kwok::{CRASH_LABEL, FAIL_LABEL, NEVER_READY_IMAGE_SUFFIX, NEVER_READY_LABEL, NODE_NAME};
pub use namespace::{TEST_NAMESPACE_LABEL, TestNamespace};
pub use policies::{IDENTITY_BINDING, UNBOUND_LABEL};
