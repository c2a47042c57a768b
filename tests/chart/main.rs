//! The Helm chart in `charts/relman`: it renders, it installs on the local control plane, and its
//! RBAC is enough for relman and no more — a controller running with the chart's ServiceAccount
//! token takes one release to Ready and reverts another, and the ServiceAccount holds exactly the
//! rules `grants.rs` lists. Its sign-off admission policies are those of `config/` and are
//! enforced.
//!
//! The policy bindings are cluster-wide and other test binaries share the API server, so every
//! test here that applies the chart binds them to its own namespace or switches them off.
//!
//! helm comes from the same cache as the control plane (`testenv/build.sh` builds it).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod denials;
mod grants;
mod harness;
mod helm;
mod installing;
mod rbac;
mod rendering;
