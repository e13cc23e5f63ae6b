//! `kwokctl completion` flags.

use clap::Args;

/// `completion SHELL`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  source <(kwokctl completion bash)
  kwokctl completion zsh > \"${fpath[1]}/_kwokctl\"
  kwokctl completion fish > ~/.config/fish/completions/kwokctl.fish")]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
