//! `kubectl relman notes REL`: the release notes relman published in the ConfigMap
//! `<release>-notes`, or, before they are published, the notes rendered from the spec.

use std::io::Write;

use chrono::Utc;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::notes;

use super::error::PluginError;
use super::session::{Session, get_release};

/// The arguments of `kubectl relman notes`.
#[derive(Debug, Clone, Args)]
pub struct NotesArgs {
    /// The Release whose notes to print.
    pub release: String,
}

/// Runs `kubectl relman notes`.
pub async fn run(
    session: &Session,
    args: &NotesArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), &session.namespace);
    let published = api
        .get_opt(&notes::config_map_name(&args.release))
        .await?
        .and_then(|cm| cm.data)
        .and_then(|mut data| data.remove(notes::NOTES_KEY));
    let text = match published {
        Some(text) => text,
        None => {
            let release = get_release(session, &args.release).await?;
            let date = notes::notes_date(&release, Utc::now().date_naive());
            notes::render(&release, &date)
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
