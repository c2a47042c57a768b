//! `kubectl relman list [-A]`: the releases in the namespace, or in every namespace.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::Args;
use kube::api::{Api, ListParams};

use crate::api::Release;

use super::error::PluginError;
use super::session::{Session, age};
use super::table::Table;

/// The arguments of `kubectl relman list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// List the releases of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// Runs `kubectl relman list`.
pub async fn run(
    session: &Session,
    args: &ListArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let api: Api<Release> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), &session.namespace)
    };
    let mut releases = api.list(&ListParams::default()).await?.items;
    releases.sort_by_key(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()));
    if releases.is_empty() {
        let scope = if args.all_namespaces {
            "any namespace".to_owned()
        } else {
            format!("namespace {}", session.namespace)
        };
        writeln!(out, "No releases in {scope}.")?;
        return Ok(());
    }
    out.write_all(render_list(&releases, args.all_namespaces, Utc::now()).as_bytes())?;
    Ok(())
}

/// One line per release; with `namespaces`, a NAMESPACE column first.
pub fn render_list(releases: &[Release], namespaces: bool, now: DateTime<Utc>) -> String {
    let headers = [
        "NAME",
        "APPLICATION",
        "VERSION",
        "TYPE",
        "PHASE",
        "READY",
        "STAGE",
        "AGE",
    ];
    let mut table = if namespaces {
        Table::new([
            "NAMESPACE",
            "NAME",
            "APPLICATION",
            "VERSION",
            "TYPE",
            "PHASE",
            "READY",
            "STAGE",
            "AGE",
        ])
    } else {
        Table::new(headers)
    };
    for release in releases {
        let mut row = Vec::new();
        if namespaces {
            row.push(release.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend(release_cells(release, now));
        table.row(row);
    }
    table.render()
}

/// The cells of one release, NAME to AGE.
fn release_cells(release: &Release, now: DateTime<Utc>) -> Vec<String> {
    let status = release.status.clone().unwrap_or_default();
    vec![
        release.metadata.name.clone().unwrap_or_default(),
        release.spec.application.clone(),
        release.spec.version.clone(),
        format!("{:?}", release.spec.release_type),
        status
            .phase
            .map_or_else(|| "-".into(), |p| format!("{p:?}")),
        condition_status(release, "Ready"),
        status.stage.unwrap_or_else(|| "-".into()),
        age(release.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// The status of the release's condition `type_`, or `-` when it has none.
pub fn condition_status(release: &Release, type_: &str) -> String {
    release
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map_or_else(|| "-".into(), |c| c.status.clone())
}
