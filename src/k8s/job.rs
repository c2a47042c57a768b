//! Creating check Jobs.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::api::labels::{FIELD_MANAGER, LABEL_RELEASE_UID};
use crate::error::{Error, Result};

/// Creates `job` in `namespace`. A Job of that name that exists already counts as created
/// only when it carries the same `relman.io/release-uid` label: names are deterministic, so
/// it is the Job an earlier reconcile of the same Release object created. Any other Job of
/// that name is never counted: [`Error::JobNameTaken`].
pub async fn create_job(client: &Client, namespace: &str, job: &Job) -> Result<()> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let name = job.name_any();
            let owner = |job: &Job| job.labels().get(LABEL_RELEASE_UID).cloned();
            match api.get_opt(&name).await? {
                Some(existing) if owner(&existing) == owner(job) => Ok(()),
                Some(existing) => Err(Error::JobNameTaken {
                    namespace: namespace.to_owned(),
                    name,
                    owner: owner(&existing),
                }),
                // Gone again in between: the next reconcile creates it.
                None => Err(kube::Error::Api(status).into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
