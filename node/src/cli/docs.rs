//! `banmesh completions SHELL` and `banmesh man`: the shell completion
//! scripts and the man pages, both generated from the clap definitions so
//! they never drift from what the binary accepts.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, ValueEnum};

use super::Cli;

/// The shells `banmesh completions` writes a script for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// Source it, or install it as
    /// /usr/share/bash-completion/completions/banmesh.
    Bash,
    /// Install it as _banmesh in a directory on $fpath
    /// (/usr/share/zsh/vendor-completions).
    Zsh,
    /// Install it as /usr/share/fish/vendor_completions.d/banmesh.fish.
    Fish,
}

/// Arguments of `banmesh completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

/// Arguments of `banmesh man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write banmesh.1 and one page per subcommand (banmesh-node.1,
    /// banmesh-keys-init.1, ...) into this directory (default: print
    /// banmesh.1 to stdout).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Prints the completion script for one shell to stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "banmesh", &mut script);
    std::io::stdout().write_all(&script).context("cannot write to stdout")
}

/// Writes the man pages into a directory, or the top page to stdout.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match args.out {
        Some(dir) => write_pages(command, &dir),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page).context("cannot render banmesh.1")?;
            std::io::stdout().write_all(&page).context("cannot write to stdout")
        }
    }
}

/// Writes banmesh.1 and a page for every subcommand, nested ones included.
fn write_pages(command: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))
}
