//! End-to-end tests of the generated documentation: the real `banmesh`
//! binary printing shell completion scripts and writing man pages.

use assert_cmd::Command;

/// Runs `banmesh ARGS`, expects success and returns stdout.
fn ok(args: &[&str]) -> String {
    let output = Command::cargo_bin("banmesh").expect("binary").args(args).output().expect("run");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A page's first request that is not a string definition (clap_mangen
/// opens with `.ie`/`.el` defining `\*(Aq`): it must be the `.TH` title.
fn title(page: &str) -> &str {
    page.lines().find(|line| !line.starts_with(".ie") && !line.starts_with(".el")).unwrap_or("")
}

#[test]
fn completions_name_the_function_and_the_subcommands() {
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("_banmesh"), "{bash}");
    for name in ["node", "status", "import-seed", "import"] {
        assert!(bash.contains(name), "bash script lacks {name}");
    }
    let zsh = ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef banmesh"), "{zsh}");
    let fish = ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c banmesh"), "{fish}");
}

#[test]
fn an_unknown_shell_is_refused() {
    let output =
        Command::cargo_bin("banmesh").expect("binary").args(["completions", "tcsh"]).output();
    let output = output.expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("bash"));
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    ok(&["man", "--out", out.to_str().expect("utf-8 path")]);
    let top = std::fs::read_to_string(out.join("banmesh.1")).expect("banmesh.1");
    assert!(title(&top).starts_with(".TH banmesh 1 "), "{top}");
    let node = std::fs::read_to_string(out.join("banmesh-node.1")).expect("banmesh-node.1");
    assert!(title(&node).starts_with(".TH banmesh-node 1 "), "{node}");
    // roff escapes each hyphen as `\-`.
    assert!(node.replace('\\', "").contains("--config"), "{node}");
    assert!(node.contains("Examples:"), "the node page lacks its examples: {node}");
    for page in ["banmesh-status.1", "banmesh-ban.1", "banmesh-keys-init.1"] {
        assert!(out.join(page).is_file(), "{page} missing");
    }
}

#[test]
fn man_without_out_prints_the_top_page() {
    let page = ok(&["man"]);
    assert!(title(&page).starts_with(".TH banmesh 1 "), "{page}");
    assert!(page.contains("completions"), "{page}");
}

#[test]
fn help_of_the_main_commands_ends_with_examples() {
    for command in ["node", "ban", "status"] {
        let help = ok(&[command, "--help"]);
        let examples = help.find("Examples:").unwrap_or_else(|| panic!("{command}: {help}"));
        assert!(help[examples..].contains(&format!("banmesh {command}")), "{command}: {help}");
    }
}
