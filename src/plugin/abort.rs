//! `kubectl relman abort REL`: sets `spec.abort`, and relman reverts every Deployment the
//! release changed, most recent stage first.

use std::io::Write;

use clap::Args;
use serde_json::json;

use super::error::PluginError;
use super::session::{Session, get_release, merge_patch_release};

/// The arguments of `kubectl relman abort`.
#[derive(Debug, Clone, Args)]
pub struct AbortArgs {
    /// The Release to abort.
    pub release: String,
}

/// Runs `kubectl relman abort`.
pub async fn run(
    session: &Session,
    args: &AbortArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let release = get_release(session, &args.release).await?;
    if release.spec.abort {
        writeln!(out, "Release {} is already aborted.", args.release)?;
        return Ok(());
    }
    merge_patch_release(session, &args.release, &json!({"spec": {"abort": true}})).await?;
    writeln!(
        out,
        "Release {} aborted: relman stops it and reverts every Deployment it changed to the last \
         known-good revision, most recent stage first.\nFollow it with: kubectl relman status {} -n {}",
        args.release, args.release, session.namespace
    )?;
    Ok(())
}
