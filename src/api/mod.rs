//! relman's custom resources (group `relman.io`, version `v1alpha1`). Types only: no I/O.

// Repeated `printcolumn(type_ = ...)` arguments of `#[kube(...)]` are distinct columns, not
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod approval;
pub mod calendar;
mod compact;
pub mod conditions;
pub mod duration;
pub mod labels;
pub mod policy;
pub mod reason;
pub mod release;
mod rules;
mod schema;
pub mod time;

pub use approval::{Decision, ReleaseApproval, ReleaseApprovalSpec};
pub use calendar::{ReleaseCalendar, ReleaseCalendarSpec, ReleaseCalendarStatus};
pub use compact::Compact;
pub use policy::{ReleasePolicy, ReleasePolicySpec};
pub use release::{Release, ReleaseSpec, ReleaseStatus, ReleaseType};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every relman resource.
pub const GROUP: &str = "relman.io";

/// Every CustomResourceDefinition relman serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Release::crd(),
        ReleaseApproval::crd(),
        ReleaseCalendar::crd(),
        ReleasePolicy::crd(),
    ]
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests;
