//! `kubectl relman`: the kubectl plugin for relman (see [`relman::plugin`]). Put this binary on
//! the PATH and kubectl finds it.

use std::process::ExitCode;

use clap::Parser;
use relman::plugin::{self, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match plugin::run(cli, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.one_line());
            ExitCode::FAILURE
        }
    }
}
