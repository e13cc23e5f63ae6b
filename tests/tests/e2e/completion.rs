//! `kwokctl completion`: scripts for each shell that know the subcommands.

use crate::util::Kwokctl;

#[test]
fn completion_should_print_a_script_that_knows_the_subcommands() {
    let kwokctl = Kwokctl::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = kwokctl.ok(&["completion", shell]);
        for word in ["kwokctl", "create", "snapshot", "scale", "replicas"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let err = kwokctl.err(&["completion", "tcsh"]);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}
