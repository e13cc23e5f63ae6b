//! `kwokctl completion SHELL`: the shell completion script, generated from the flags.

use std::io::Write as _;

use anyhow::Result;
use clap::CommandFactory as _;

use crate::flags::Cli;

pub(super) fn run(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kwokctl", &mut script);
    match std::io::stdout().write_all(&script) {
        // `kwokctl completion bash | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
