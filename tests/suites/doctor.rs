//! `airlock doctor` on a healthy setup and on broken ones: every problem is
//! named with a fix, and no secret is ever printed.

use std::process::Command;

use airlock_tests::bin;
use airlock_tests::databases::{postgres_reference, reference_config_for};
use airlock_tests::executor::ExecutorProcess;
use serde_json::Value;

fn doctor(config: &std::path::Path, env: &[(&str, &str)]) -> (i32, Value, String) {
    let out = Command::new(bin("airlock"))
        .args(["doctor", "--json", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let human = Command::new(bin("airlock"))
        .args(["doctor", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

fn status<'a>(report: &'a Value, check: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no check {check}: {report}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn a_healthy_setup_passes_and_a_broken_one_gets_fixes() {
    let db = postgres_reference("airlock_doctor");
    let exec = ExecutorProcess::start(
        &reference_config_for(&db),
        &[("APP_TENANT_ID", "acme"), ("APP_WRITE_URL", &db.write_url)],
    );
    let socket_dir = exec.socket_dir.to_str().unwrap().to_owned();
    let good = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_WRITE_URL", db.write_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent"),
        ("AIRLOCK_SOCKET_DIR", socket_dir.as_str()),
    ];
    let (code, report, _) = doctor(&exec.config_path, &good);
    assert_eq!(code, 0, "{report}");
    for check in [
        "config",
        "read app",
        "write app",
        "credential split app",
        "socket directory",
        "executor",
    ] {
        assert_ne!(status(&report, check), "fail", "{check}: {report}");
    }

    // Broken: a read URL naming no database (loopback Postgres trusts local users,
    // so the password alone would not break it), the write URL as the read URL, no executor.
    let bad_read = db
        .read_url
        .replace("synapsor_reader_password", "wrong-password-PLANTED")
        .replace("/airlock_doctor", "/airlock_doctor_missing");
    let (code, report, human) = doctor(
        &exec.config_path,
        &[
            ("APP_READ_URL", &bad_read),
            ("APP_TENANT_ID", "acme"),
            ("AIRLOCK_SOCKET_DIR", "/nonexistent/airlock"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&report, "read app"), "fail", "{report}");
    assert_eq!(status(&report, "executor"), "fail");
    assert_eq!(status(&report, "env APP_PRINCIPAL"), "warn");
    assert!(
        human.contains("fix: start it: `airlock-executor serve"),
        "{human}"
    );
    let (code, report, human) = doctor(
        &exec.config_path,
        &[
            ("APP_READ_URL", &db.write_url),
            ("APP_WRITE_URL", &db.write_url),
            ("APP_TENANT_ID", "acme"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&report, "credential split app"), "fail", "{report}");
    for text in [report.to_string(), human] {
        assert!(
            !text.contains("PLANTED")
                && !text.contains("synapsor_writer_password")
                && !text.contains("synapsor_reader_password"),
            "a secret leaked: {text}"
        );
    }
}
