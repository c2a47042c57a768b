//! `kubectl relman`: the kubectl plugin for relman.
//!
//! kubectl runs `kubectl-relman` for `kubectl relman ...`, passing the arguments that follow.
//! The global flags mean what they mean to kubectl (`--kubeconfig`, `--context`,
//! `-n/--namespace`); each subcommand is a module with its arguments ([`clap::Args`]) and a
//! `run` function that takes a [`Session`] and writes to stdout. To add one: a module here, a
//! variant of [`Command`], and an arm in [`run`].

pub mod calendar;
mod error;
pub mod table;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use error::PluginError;

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

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a ReleaseCalendar: whether releases may go out now, the upcoming releases, and
    /// the deployment windows and freezes, in the calendar's time zone.
    Calendar(calendar::CalendarArgs),
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

/// Runs the command line, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<(), PluginError> {
    let session = Session::connect(&cli.global).await?;
    match &cli.command {
        Command::Calendar(args) => calendar::run(&session, args, out).await,
    }
}
