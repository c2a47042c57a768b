//! What every subcommand shares: the global flags, the connection they choose, and the
//! Release reads and writes the subcommands make.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::error::PluginError;
use crate::api::Release;

/// The flags kubectl users expect, anywhere on the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace of namespaced resources (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// A connection to the cluster, as the global flags chose it.
pub struct Session {
    /// The client.
    pub client: Client,
    /// The namespace for namespaced resources.
    pub namespace: String,
}

impl Session {
    /// Connects as kubectl would with these flags.
    pub async fn connect(global: &GlobalArgs) -> Result<Self, PluginError> {
        let config = load_config(global).await?;
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)?;
        Ok(Self { client, namespace })
    }
}

/// The client configuration: the kubeconfig given, else `$KUBECONFIG` or `~/.kube/config`,
/// else the in-cluster configuration.
async fn load_config(global: &GlobalArgs) -> Result<Config, PluginError> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    Ok(match (&global.kubeconfig, &global.context) {
        (Some(path), _) => {
            Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
        (None, None) => Config::infer().await?,
    })
}

/// The Release `name` in the session's namespace, or [`PluginError::ReleaseNotFound`].
pub async fn get_release(session: &Session, name: &str) -> Result<Release, PluginError> {
    let api: Api<Release> = Api::namespaced(session.client.clone(), &session.namespace);
    api.get_opt(name)
        .await?
        .ok_or_else(|| PluginError::ReleaseNotFound {
            name: name.to_owned(),
            namespace: session.namespace.clone(),
        })
}

/// Applies a JSON merge patch to the Release `name` in the session's namespace.
pub async fn merge_patch_release(
    session: &Session,
    name: &str,
    patch: &serde_json::Value,
) -> Result<Release, PluginError> {
    get_release(session, name).await?;
    let api: Api<Release> = Api::namespaced(session.client.clone(), &session.namespace);
    Ok(api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?)
}

/// How long ago `time` was, as kubectl prints ages: `45s`, `12m`, `5h`, `3d`.
pub fn age(time: Option<&Time>, now: DateTime<Utc>) -> String {
    let Some(time) = time else {
        return "-".into();
    };
    let seconds = (now.timestamp() - time.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
