//! Installable like its peers: `cargo install --path executor` and
//! `cargo install --path proposer` each install all three programs, built
//! from the same entry functions, and every manifest carries real metadata.
//!
//! A full `cargo install` into a fresh target directory rebuilds the whole
//! dependency tree (minutes on a small machine), so the suite checks what
//! decides its outcome instead: the packages' bin targets as Cargo resolves
//! them (`cargo metadata`), and the `airlock-proposer` package's three
//! programs built for real and compared, program by program, with the
//! `airlock-executor` package's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_tests::{bin, workspace_root};
use serde_json::Value;

const PROGRAMS: [&str; 3] = ["airlock", "airlock-executor", "airlock-proposer"];
/// The packages `cargo install --path` is documented for.
const INSTALL_PACKAGES: [(&str, &str); 2] = [
    ("executor", "airlock-executor"),
    ("proposer", "airlock-proposer"),
];

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn metadata() -> Value {
    let out = cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn package<'a>(meta: &'a Value, name: &str) -> &'a Value {
    meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no package {name} in the workspace"))
}

/// name → source file of each bin target of a package.
fn bins(pkg: &Value) -> BTreeMap<String, PathBuf> {
    pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                std::fs::canonicalize(t["src_path"].as_str().unwrap_or_default())
                    .expect("a bin's main file exists"),
            )
        })
        .collect()
}

#[test]
fn each_install_package_has_all_three_programs_from_the_same_main_files() {
    let meta = metadata();
    let root = workspace_root();
    let mut mains: Vec<BTreeMap<String, PathBuf>> = Vec::new();
    for (dir, name) in INSTALL_PACKAGES {
        let pkg = package(&meta, name);
        let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
        assert_eq!(
            manifest,
            root.join(dir).join("Cargo.toml"),
            "`cargo install --path {dir}` installs the package at {dir}/"
        );
        let b = bins(pkg);
        assert_eq!(
            b.keys().map(String::as_str).collect::<Vec<_>>(),
            PROGRAMS.to_vec(),
            "package {name} ({dir}/) must build exactly the three programs"
        );
        mains.push(b);
    }
    // The same main file for each program in both packages: the same program.
    assert_eq!(mains[0], mains[1]);
    // Each main only calls its program's one entry function, in a library.
    let entry = [
        ("airlock", "airlock_executor::cli::main()"),
        ("airlock-executor", "airlock_executor::daemon_cli::main()"),
        ("airlock-proposer", "airlock_proposer::cli::main()"),
    ];
    for (program, call) in entry {
        let src = std::fs::read_to_string(&mains[0][program]).expect("read main");
        let code: Vec<&str> = src
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .collect();
        assert_eq!(
            code,
            ["fn main() -> std::process::ExitCode {", call, "}"],
            "{program}: {}",
            mains[0][program].display()
        );
    }
    // The extra package is no default member: a plain `cargo build` never
    // builds the same file names twice.
    let defaults: Vec<&str> = meta["workspace_default_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let proposer_id = package(&meta, "airlock-proposer")["id"].clone();
    let executor_id = package(&meta, "airlock-executor")["id"].clone();
    assert!(defaults.iter().any(|d| *d == executor_id));
    assert!(!defaults.iter().any(|d| *d == proposer_id), "{defaults:?}");
}

#[test]
fn every_manifest_carries_real_metadata() {
    let meta = metadata();
    let members: Vec<&Value> = meta["packages"].as_array().into_iter().flatten().collect();
    assert_eq!(
        members.len(),
        7,
        "policy, ipc, identity, proposer core, proposer, executor, tests"
    );
    for pkg in members {
        let name = pkg["name"].as_str().unwrap_or_default();
        let description = pkg["description"].as_str().unwrap_or_default();
        assert!(
            description.len() > 20,
            "{name}: description {description:?}"
        );
        assert_eq!(pkg["license"], "Apache-2.0", "{name}");
        assert_eq!(pkg["rust_version"], "1.94", "{name}");
        let manifest_dir = Path::new(pkg["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .unwrap_or(Path::new("/"))
            .to_owned();
        let readme = pkg["readme"].as_str().unwrap_or_default();
        assert!(
            !readme.is_empty() && manifest_dir.join(readme).is_file(),
            "{name}: readme {readme:?}"
        );
        let keywords: Vec<&str> = pkg["keywords"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            (1..=5).contains(&keywords.len())
                && keywords.iter().all(|k| k.len() <= 20 && k.is_ascii()),
            "{name}: keywords {keywords:?} (crates.io: at most 5, 20 ASCII characters each)"
        );
        let categories = pkg["categories"].as_array().map_or(0, Vec::len);
        assert!(categories >= 1, "{name}: categories");
        // No invented address: `repository` is left out until there is one.
        for field in ["repository", "homepage", "documentation"] {
            assert!(pkg[field].is_null(), "{name}: {field} {}", pkg[field]);
        }
    }
}

/// The `--version` and help texts of a program: what a person sees of it.
fn faces(path: &Path, program: &str) -> Vec<String> {
    let mut args: Vec<Vec<&str>> = vec![vec!["--version"], vec!["--help"]];
    match program {
        "airlock" => args.extend([
            vec!["proposals", "approve", "--help"],
            vec!["doctor", "--help"],
        ]),
        _ => args.push(vec!["serve", "--help"]),
    }
    args.iter()
        .map(|a| {
            let out = Command::new(path).args(a).output().expect("run program");
            assert!(out.status.success(), "{program} {a:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

#[test]
fn the_proposer_package_builds_the_same_three_programs() {
    // The executor package's programs (what every other suite runs).
    let from_executor: Vec<(String, Vec<String>)> = PROGRAMS
        .iter()
        .map(|p| (p.to_string(), faces(&bin(p), p)))
        .collect();
    let profile_dir = bin("airlock").parent().expect("profile dir").to_owned();
    // Build the proposer package's programs with the features the test build
    // unifies (only their one-line mains are compiled). They land at the
    // same paths: afterwards every suite runs these, which must not matter.
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--offline",
        "--message-format",
        "json",
        "-p",
        "airlock-proposer",
        "--bins",
        "--features",
        "airlock-executor/fault-injection",
    ])
    .env(
        "CARGO_TARGET_DIR",
        profile_dir.parent().expect("target dir"),
    );
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "building the airlock-proposer package failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("collision"), "{stderr}");
    let mut built = BTreeMap::new();
    for line in out.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("/proposer#"))
            && let Some(exe) = msg["executable"].as_str()
        {
            built.insert(
                msg["target"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                PathBuf::from(exe),
            );
        }
    }
    assert_eq!(
        built.keys().map(String::as_str).collect::<Vec<_>>(),
        PROGRAMS.to_vec(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (program, seen) in from_executor {
        let exe = &built[&program];
        assert_eq!(exe, &profile_dir.join(&program));
        assert_eq!(
            faces(exe, &program),
            seen,
            "{program} from the airlock-proposer package differs"
        );
    }
    // The proposer built by the other package is still the sandboxed one.
    let check = Command::new(&built["airlock-proposer"])
        .arg("sandbox-check")
        .output()
        .expect("run sandbox-check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!String::from_utf8_lossy(&check.stderr).contains("ALLOWED"));
}
