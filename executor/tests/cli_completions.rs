//! `airlock completions SHELL`: a completion script a real shell loads and
//! completes with, for every supported shell; never a panic on a closed pipe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

fn completions(shell: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["completions", shell])
        .output()
        .unwrap()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    let out = completions("bash");
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airlock.bash");
    std::fs::write(&file, &script).unwrap();
    // What bash does on `airlock pro<TAB>` and `airlock proposals approve --<TAB>`.
    let probe = format!(
        r#"source {file}
complete -p airlock
COMP_WORDS=(airlock pro); COMP_CWORD=1; _airlock airlock pro airlock
echo "first: ${{COMPREPLY[*]}}"
COMP_WORDS=(airlock proposals approve --); COMP_CWORD=3; _airlock airlock -- approve
echo "flags: ${{COMPREPLY[*]}}""#,
        file = file.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _airlock"), "{stdout}");
    let first = stdout.lines().find(|l| l.starts_with("first: ")).unwrap();
    assert_eq!(first, "first: proposals", "{stdout}");
    let flags = stdout.lines().find(|l| l.starts_with("flags: ")).unwrap();
    for flag in ["--hash", "--note", "--yes", "--json", "--socket-dir"] {
        assert!(flags.split(' ').any(|f| f == flag), "{flag} in {flags}");
    }
}

#[test]
fn every_shell_gets_its_own_script() {
    for (shell, marker) in [
        ("zsh", "#compdef airlock"),
        ("fish", "complete -c airlock"),
        ("elvish", "edit:completion:arg-completer[airlock]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = completions(shell);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {marker} missing");
        assert!(script.contains("proposals"), "{shell}: no subcommands");
    }
    let out = completions("tcsh");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end before reading anything, as `| head -1` does early.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
