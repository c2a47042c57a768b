//! The API calls relman makes on the objects it drives (Deployments, Jobs) and on its own
//! resources' status.

pub mod deployment;
pub mod job;
pub mod scope;
pub mod status;
pub mod watch;
