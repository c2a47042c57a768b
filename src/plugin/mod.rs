//! `kubectl relman`: the kubectl plugin for relman.
//!
//! kubectl runs `kubectl-relman` for `kubectl relman ...`, passing the arguments that follow.
//! The global flags mean what they mean to kubectl (`--kubeconfig`, `--context`,
//! `-n/--namespace`); each subcommand is a module with its arguments ([`clap::Args`]) and a
//! `run` function that takes a [`Session`] and writes to stdout. To add one: a module here, a
//! variant of [`Command`], and an arm in [`run`].

pub mod abort;
pub mod approve;
pub mod calendar;
mod error;
pub mod incident;
pub mod list;
pub mod notes;
mod session;
pub mod status;
pub mod table;

use std::io::Write;

use clap::{Parser, Subcommand};

pub use error::PluginError;
pub use session::{GlobalArgs, Session, age, get_release, merge_patch_release};

/// `kubectl relman`: releases, calendars and sign-offs from the command line.
#[derive(Debug, Parser)]
#[command(name = "kubectl-relman", bin_name = "kubectl relman", version)]
pub struct Cli {
    /// Flags that every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a ReleaseCalendar: whether releases may go out now, the upcoming releases, and
    /// the deployment windows and freezes, in the calendar's time zone.
    Calendar(calendar::CalendarArgs),
    /// List the releases in the namespace (or every namespace with -A).
    List(list::ListArgs),
    /// Show a release: stages, gates, requirements, checks, failures, incident and timeline.
    Status(status::StatusArgs),
    /// Sign off a gate of a release as the user the API server sees.
    Approve(approve::ApproveArgs),
    /// Reject a gate of a release: relman stops it and reverts what it deployed.
    Reject(approve::RejectArgs),
    /// Abort a release: relman reverts every Deployment it changed.
    Abort(abort::AbortArgs),
    /// Print the release notes (published, or rendered from the spec until they are).
    Notes(notes::NotesArgs),
    /// Record the root cause and action items of a release's incident, which closes it.
    Incident(incident::IncidentArgs),
}

/// Runs the command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<(), PluginError> {
    let session = Session::connect(&cli.global).await?;
    match &cli.command {
        Command::Calendar(args) => calendar::run(&session, args, out).await,
        Command::List(args) => list::run(&session, args, out).await,
        Command::Status(args) => status::run(&session, args, out).await,
        Command::Approve(args) => approve::run_approve(&session, args, out).await,
        Command::Reject(args) => approve::run_reject(&session, args, out).await,
        Command::Abort(args) => abort::run(&session, args, out).await,
        Command::Notes(args) => notes::run(&session, args, out).await,
        Command::Incident(args) => incident::run(&session, args, out).await,
    }
}
