//! `kubectl relman incident REL --root-cause TEXT [--action ITEM]...`: records what people
//! learned about a production revert, which closes the release's incident.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::error::PluginError;
use super::session::{Session, merge_patch_release};

/// The arguments of `kubectl relman incident`.
#[derive(Debug, Clone, Args)]
pub struct IncidentArgs {
    /// The Release whose incident this is.
    pub release: String,
    /// What caused the incident.
    #[arg(long, value_name = "TEXT")]
    pub root_cause: String,
    /// A follow-up action (repeat for several); replaces the recorded list.
    #[arg(long = "action", value_name = "ITEM")]
    pub actions: Vec<String>,
}

/// Runs `kubectl relman incident`.
pub async fn run(
    session: &Session,
    args: &IncidentArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let patch = json!({"spec": {"incident": {
        "rootCause": args.root_cause,
        "actionItems": args.actions,
    }}});
    let release = merge_patch_release(session, &args.release, &patch).await?;
    let open = release
        .status
        .as_ref()
        .and_then(|s| s.incident.as_ref())
        .is_some_and(|i| i.closed_at.is_none());
    writeln!(
        out,
        "Recorded the root cause and {} action item(s) of release {}.",
        args.actions.len(),
        args.release
    )?;
    if open {
        writeln!(
            out,
            "relman closes the open incident at its next reconcile."
        )?;
    }
    Ok(())
}
