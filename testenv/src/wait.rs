//! Waiting for an object to reach a condition, with a deadline.

use std::fmt::Debug;
use std::time::Duration;

use kube::Resource;
use kube::api::Api;
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Waits until the object `name` in `api` satisfies `condition`, for at most `timeout`;
/// `what` describes the wait in the error message.
pub(crate) async fn until<K>(
    api: Api<K>,
    name: &str,
    condition: impl Condition<K>,
    timeout: Duration,
    what: impl Into<String>,
) -> Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    let detail = match tokio::time::timeout(timeout, await_condition(api, name, condition)).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => None,
    };
    Err(Error::Wait {
        what: what.into(),
        timeout,
        detail,
    })
}
