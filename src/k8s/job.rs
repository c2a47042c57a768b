//! Creating check Jobs.

use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, PostParams};

use super::FIELD_MANAGER;
use crate::error::Result;

/// Creates `job` in `namespace`. A Job of that name already existing counts as success: names
/// are deterministic, so it is the Job an earlier reconcile created.
pub async fn create_job(client: &Client, namespace: &str, job: &Job) -> Result<()> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
