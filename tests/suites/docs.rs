//! Keeps the documentation honest:
//!
//! * every `airlock …` subcommand and every long flag that the real binaries'
//!   `--help` lists (recursively; `airlock-executor serve` and
//!   `airlock-proposer serve` too) appears in `docs/*.md` or `README.md`;
//!   hidden flags and subcommands are not in `--help`, so they are not
//!   required;
//! * every relative link in `docs/*.md` and `README.md` points to a file or
//!   directory that exists, and a `#fragment` into a Markdown file names one
//!   of its headings (GitHub's anchor rules);
//! * the getting-started guide's laptop config and its two-tenant `airlock`
//!   section load and validate with the real config loader, and its
//!   `airlock writeback grants --config` step prints what the guide shows.
//!
//! Each test fails with the complete list of what is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_tests::{bin, workspace_root};

/// `README.md` and every `docs/*.md`, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let root = workspace_root();
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// The `--help` text of `program args… --help`.
fn help(program: &str, args: &[String]) -> String {
    let out = Command::new(bin(program))
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {} --help` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of one clap help section (`Commands:`, `Options:`), up to the
/// next blank line or section heading.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = help.lines();
    let mut out = Vec::new();
    if lines.by_ref().any(|l| l.trim_end() == heading) {
        for line in lines {
            let heading_line = !line.starts_with(' ') && line.trim_end().ends_with(':');
            if heading_line {
                break;
            }
            out.push(line);
        }
    }
    out
}

/// Subcommand names listed by a help text (`help` itself excluded).
fn subcommands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .into_iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Long flags listed by a help text (`--help` and `--version` excluded).
/// Only the first `--flag` of an option line counts: descriptions may
/// mention other flags, and clap's long layout puts them on lines of
/// their own that do not start with `-`.
fn long_flags(help: &str) -> Vec<String> {
    section(help, "Options:")
        .into_iter()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
                .find(|w| w.starts_with("--"))
        })
        .filter(|f| *f != "--help" && *f != "--version")
        .map(str::to_owned)
        .collect()
}

/// One command of the CLI surface and its long flags.
#[derive(Debug)]
struct CommandHelp {
    /// `airlock proposals approve`, `airlock-executor serve`, …
    name: String,
    flags: Vec<String>,
}

/// Walk `program`'s help recursively, starting at `path`.
fn walk(program: &str, path: Vec<String>, out: &mut Vec<CommandHelp>) {
    let text = help(program, &path);
    let name = std::iter::once(program.to_owned())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    out.push(CommandHelp {
        name,
        flags: long_flags(&text),
    });
    for sub in subcommands(&text) {
        let mut next = path.clone();
        next.push(sub);
        walk(program, next, out);
    }
}

fn cli_surface() -> Vec<CommandHelp> {
    let mut out = Vec::new();
    walk("airlock", Vec::new(), &mut out);
    walk("airlock-executor", vec!["serve".to_owned()], &mut out);
    walk("airlock-proposer", vec!["serve".to_owned()], &mut out);
    out
}

/// Whether `needle` occurs in `hay` not followed by a name character, so
/// `--config` is not satisfied by `--config-file` and `airlock apply` not by
/// `airlock applying`.
fn mentions(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(at, _)| {
        hay[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

#[test]
fn every_command_and_flag_in_help_is_documented() {
    let surface = cli_surface();
    // The walk itself must have found the surface, or the parser is broken.
    assert!(
        surface
            .iter()
            .any(|c| c.name == "airlock proposals approve"),
        "the help walk found no `airlock proposals approve`: {surface:?}"
    );
    assert!(
        surface
            .iter()
            .any(|c| c.name == "airlock-proposer serve" && c.flags.contains(&"--listen".into())),
        "the help walk found no `airlock-proposer serve --listen`: {surface:?}"
    );
    let docs = documents();
    let all: String = docs
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");

    let mut missing: BTreeSet<String> = BTreeSet::new();
    for cmd in &surface {
        if !mentions(&all, &cmd.name) {
            missing.insert(format!(
                "command `{}` is not named in any document",
                cmd.name
            ));
            continue;
        }
        // A flag must appear in a document that also names its command.
        let naming: Vec<&(PathBuf, String)> = docs
            .iter()
            .filter(|(_, t)| mentions(t, &cmd.name))
            .collect();
        for flag in &cmd.flags {
            if !naming.iter().any(|(_, t)| mentions(t, flag)) {
                missing.insert(format!(
                    "flag `{flag}` of `{}` is in no document that names the command",
                    cmd.name
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented CLI surface ({} items) — document these in docs/*.md or README.md:\n  {}",
        missing.len(),
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// Relative link targets of one Markdown text, outside fenced code blocks
/// and inline code spans.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans: `[a](b)` inside backticks is not a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            let target = target.split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            let external =
                target.is_empty() || target.contains("://") || target.starts_with("mailto:");
            if !external {
                links.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    links
}

/// The anchors GitHub gives the headings of a Markdown text: lowercase,
/// spaces to `-`, everything but letters, digits, `-` and `_` dropped, and
/// `-1`, `-2`… appended to repeated headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .trim_end_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn every_relative_link_points_to_an_existing_file() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        let dir = path.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            let (file, fragment) = link.split_once('#').unwrap_or((link.as_str(), ""));
            let target = if file.is_empty() {
                path.clone()
            } else {
                dir.join(file)
            };
            let shown = path
                .strip_prefix(workspace_root())
                .unwrap_or(&path)
                .display()
                .to_string();
            checked += 1;
            if !target.exists() {
                broken.push(format!(
                    "{shown}: ({link}) → {} does not exist",
                    target.display()
                ));
                continue;
            }
            let markdown = target.extension().is_some_and(|x| x == "md");
            if !fragment.is_empty() && markdown {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).contains(fragment) {
                    broken.push(format!(
                        "{shown}: ({link}) → {} has no heading with the anchor #{fragment}",
                        target.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no relative links found: the link parser is broken"
    );
    assert!(
        broken.is_empty(),
        "{} broken relative link(s):\n  {}",
        broken.len(),
        broken.join("\n  ")
    );
}

#[test]
fn the_help_parser_reads_clap_layouts() {
    let short = "Usage: x\n\nCommands:\n  list     List\n  help     Print\n\nOptions:\n      --status <STATUS>  Only this, not --json\n  -h, --help  Print help\n";
    assert_eq!(subcommands(short), ["list"]);
    assert_eq!(long_flags(short), ["--status"]);
    let long = "Usage: x\n\nOptions:\n      --config <CONFIG>\n          The reviewed config file\n      --no-sandbox\n          DEBUGGING ONLY: see --help\n  -h, --help\n          Print help\n";
    assert_eq!(long_flags(long), ["--config", "--no-sandbox"]);
    assert!(mentions("use --config F", "--config"));
    assert!(!mentions("use --config-file F", "--config"));
    assert_eq!(
        relative_links(
            "see [a](a.md#x) and [b](https://x) `[c](c.md)`\n```\n[d](d.md)\n```\n[e](../e/ \"t\") [f](#top)"
        ),
        ["a.md#x", "../e/", "#top"]
    );
    let a = anchors("# Top\n## 1. The `apply`: checks\n```\n# not\n```\n### `x`\n### `x`\n");
    assert!(
        a.contains("top") && a.contains("1-the-apply-checks"),
        "{a:?}"
    );
    assert!(
        a.contains("x") && a.contains("x-1") && !a.contains("not"),
        "{a:?}"
    );
}

/// The fenced ```json blocks of a Markdown text.
fn json_blocks(text: &str) -> Vec<serde_json::Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                let parsed = serde_json::from_str(block)
                    .unwrap_or_else(|e| panic!("a ```json block is not JSON ({e}):\n{block}"));
                blocks.push(parsed);
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_getting_started_configs_load_and_validate() {
    let guide = std::fs::read_to_string(workspace_root().join("docs/getting-started.md"))
        .expect("docs/getting-started.md");
    let blocks = json_blocks(&guide);
    let configs: Vec<&serde_json::Value> = blocks
        .iter()
        .filter(|b| b.get("capabilities").is_some())
        .collect();
    assert_eq!(
        configs.len(),
        1,
        "one full config in the guide (the laptop one)"
    );
    let laptop = configs[0].clone();
    let text = serde_json::to_string(&laptop).expect("serialize");
    let loaded = airlock_policy::load_config_str(&text);
    let errors: Vec<String> = loaded
        .report
        .errors()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert!(
        errors.is_empty(),
        "the laptop config is invalid: {errors:?}"
    );
    assert_eq!(loaded.report.warnings().count(), 0);
    let config = loaded.config.expect("a config");
    // A laptop config: no airlock section, no system paths.
    assert!(config.airlock.proposers.is_none() && config.airlock.socket_dir.is_none());
    assert!(
        !text.contains("/var/lib") && !text.contains("/run/"),
        "{text}"
    );
    assert_eq!(
        config.storage.sqlite_path.as_deref(),
        Some("./airlock-ledger.db")
    );

    // The two-tenant section, added to it, validates and allows both tenants.
    let sections: Vec<&serde_json::Value> = blocks
        .iter()
        .filter(|b| b.get("airlock").is_some())
        .collect();
    assert_eq!(sections.len(), 1, "one two-tenant airlock section");
    let mut two = laptop.clone();
    two["airlock"] = sections[0]["airlock"].clone();
    let loaded = airlock_policy::load_config_str(&two.to_string());
    let config = loaded.config.unwrap_or_else(|| {
        panic!(
            "the two-tenant config is invalid: {:?}",
            loaded
                .report
                .errors()
                .map(|d| &d.message)
                .collect::<Vec<_>>()
        )
    });
    let proposers = config.airlock.proposers.expect("proposers");
    assert_eq!(proposers.len(), 1);
    let tenants = serde_json::to_value(&proposers[0]).expect("serialize")["tenants"].clone();
    assert_eq!(tenants, serde_json::json!({"only": ["acme", "globex"]}));

    // Step 4's command, run for real on that config: the receipt table in
    // the target's schema, and the grants the guide shows.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("airlock.json");
    std::fs::write(&path, &text).expect("write config");
    let out = Command::new(bin("airlock"))
        .args([
            "writeback",
            "grants",
            "--engine",
            "postgres",
            "--writer-role",
            "app_writer",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("run airlock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = String::from_utf8_lossy(&out.stdout);
    for line in [
        "GRANT SELECT ON \"public\".\"invoices\" TO \"app_writer\";",
        "GRANT UPDATE (\"late_fee_cents\", \"updated_at\", \"waiver_reason\") ON \"public\".\"invoices\" TO \"app_writer\";",
        "CREATE TABLE IF NOT EXISTS \"public\".\"synapsor_writeback_receipts\" (",
        "GRANT SELECT, INSERT ON \"public\".\"synapsor_writeback_receipts\" TO \"app_writer\";",
    ] {
        assert!(sql.contains(line), "missing {line}\n{sql}");
        assert!(
            guide.contains(line.trim_end_matches('(')),
            "the guide does not show {line}"
        );
    }
    // And validate/preview accept it through the real CLI.
    for args in [&["config", "validate"][..], &["tools", "preview"]] {
        let out = Command::new(bin("airlock"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run airlock");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No review UI is promised before one exists.
    for word in ["review UI", "web UI", "dashboard", "browser"] {
        assert!(!guide.contains(word), "getting-started mentions {word:?}");
    }
}
