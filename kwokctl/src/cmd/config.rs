//! `kwokctl config view|tidy|reset`: the configuration `create cluster` would use.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};
use clap::Parser;

use crate::{
    flags::{Cli, Command, ConfigCommand, CreateCommand},
    paths::Workdir,
    settings::effective_options,
    userconfig::UserConfig,
};

pub(super) fn run(workdir: &Workdir, files: &[PathBuf], what: ConfigCommand, dry_run: bool) -> Result<()> {
    let default = workdir.default_config();
    match what {
        ConfigCommand::View => {
            let mut user = UserConfig::load(files, &default)?;
            user.options = effective_options(&env_args()?, &user);
            print!("{}", user.to_yaml());
        }
        ConfigCommand::Tidy => {
            let user = UserConfig::load(files, &default)?;
            if dry_run {
                let yaml = user.to_yaml();
                let end = if yaml.ends_with('\n') { "" } else { "\n" };
                print!("cat <<'EOF' >{}\n{yaml}{end}EOF\n", crate::shell::path(&default));
                return Ok(());
            }
            if let Some(parent) = default.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create {}", parent.display()))?;
            }
            fs::write(&default, user.to_yaml())
                .with_context(|| format!("failed to write {}", default.display()))?;
            println!("Wrote {}", default.display());
        }
        ConfigCommand::Reset if dry_run => println!("rm -f {}", crate::shell::path(&default)),
        ConfigCommand::Reset => match fs::remove_file(&default) {
            Ok(()) => println!("Removed {}", default.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("Nothing to reset: {} does not exist", default.display())
            }
            Err(e) => return Err(e).with_context(|| format!("failed to remove {}", default.display())),
        },
    }
    Ok(())
}

/// `create cluster` arguments from the environment alone (the `KWOK_*` variables).
fn env_args() -> Result<crate::flags::CreateClusterArgs> {
    let cli = Cli::try_parse_from(["kwokctl", "create", "cluster"])
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or_default().to_owned()))?;
    match cli.command {
        Command::Create(CreateCommand::Cluster(args)) => Ok(args),
        _ => unreachable!("parsed create cluster"),
    }
}
