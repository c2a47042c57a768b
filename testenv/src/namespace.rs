//! Namespaces created for one test each.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::conditions::is_created;

use crate::error::{Error, Result};

/// The label on every namespace the harness creates.
pub const TEST_NAMESPACE_LABEL: &str = "relman.io/testenv";

/// How long the service-account controller may take to create the `default` ServiceAccount.
const SERVICE_ACCOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Kubernetes names are at most 63 characters; the server appends 5 random ones.
const MAX_PREFIX_LEN: usize = 63 - 5 - 1;

/// A namespace created for one test, with a unique name (`<prefix>-<random>`).
///
/// The namespace is not deleted on drop (that would need a runtime in `Drop`); call
/// [`TestNamespace::delete`] to clean up early. A test control plane is thrown away as a whole.
#[derive(Debug, Clone)]
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates the namespace and waits until pods can be created in it (its `default`
    /// ServiceAccount exists).
    pub(crate) async fn create(client: &kube::Client, prefix: &str) -> Result<Self> {
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", sanitize(prefix))),
                labels: Some(BTreeMap::from([(
                    TEST_NAMESPACE_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(Error::kube(format!("create a namespace named {prefix}-*")))?;
        let name = created.metadata.name.unwrap_or_default();
        crate::wait::until(
            Api::<ServiceAccount>::namespaced(client.clone(), &name),
            "default",
            is_created(),
            SERVICE_ACCOUNT_TIMEOUT,
            format!("the default ServiceAccount of namespace {name}"),
        )
        .await?;
        Ok(Self { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace (without waiting for its contents to go).
    pub async fn delete(self, client: &kube::Client) -> Result<()> {
        Api::<Namespace>::all(client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
            .map_err(Error::kube(format!("delete namespace {}", self.name)))?;
        Ok(())
    }
}

impl fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for TestNamespace {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// A valid name prefix: lower case alphanumerics and '-', starting with a letter.
fn sanitize(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "test-");
    }
    name.truncate(MAX_PREFIX_LEN);
    name.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_valid_names() {
        assert_eq!(sanitize("deployment_rollout"), "deployment-rollout");
        assert_eq!(sanitize("Job::Fails"), "job--fails");
        assert_eq!(sanitize("1st"), "test-1st");
        assert_eq!(sanitize(""), "test");
        assert_eq!(sanitize(&"x".repeat(100)).len(), MAX_PREFIX_LEN);
    }
}
