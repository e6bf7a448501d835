//! The deployment files: the systemd unit verifies and carries the promised
//! hardening, the example config is valid, and the executor really takes its
//! write credential from systemd's `$CREDENTIALS_DIRECTORY`.

use std::process::Command;

use airlock_tests::databases::{reference_config_for, sqlite_reference};
use airlock_tests::executor::ExecutorProcess;
use airlock_tests::mcp::{call, stdio_client};
use airlock_tests::{airlock, bin, workspace_root};
use serde_json::{Value, json};

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = workspace_root().join("deploy/systemd/airlock-executor.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for directive in [
        "User=airlock",
        "RuntimeDirectory=airlock",
        "LoadCredential=APP_WRITE_URL:",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "\nCapabilityBoundingSet=\n",
        "ReadWritePaths=/var/lib/airlock\n",
        "Type=notify",
    ] {
        assert!(text.contains(directive), "the unit lacks {directive:?}");
    }
    assert!(
        !text.contains("Environment=APP_WRITE_URL"),
        "secrets are credentials, never Environment= lines"
    );
    // systemd-analyze checks ExecStart exists: verify a copy that points at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("airlock-executor.service");
    std::fs::write(
        &copy,
        text.replace(
            "/usr/local/bin/airlock-executor",
            bin("airlock-executor").to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (tests/run.sh installs systemd if absent)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "verify printed warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "deploy/sysusers/airlock.conf",
        "deploy/tmpfiles/airlock.conf",
    ] {
        assert!(workspace_root().join(f).is_file(), "{f}");
    }
}

#[test]
fn the_example_config_is_valid() {
    let out = airlock(&[
        "config",
        "validate",
        "--json",
        "--config",
        workspace_root()
            .join("deploy/examples/config.json")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_executor_reads_its_write_credential_from_the_credentials_directory() {
    let data = tempfile::tempdir().unwrap();
    let db = sqlite_reference(data.path(), "creds");
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("APP_WRITE_URL"),
        format!("{}\n", db.write_url),
    )
    .unwrap();
    let config = reference_config_for(&db);
    // No APP_WRITE_URL in the environment: only the credential file.
    let exec = ExecutorProcess::start(
        &config,
        &[
            ("APP_TENANT_ID", "acme"),
            ("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap()),
        ],
    );
    let env = [
        ("APP_READ_URL", db.read_url.as_str()),
        ("APP_TENANT_ID", "acme"),
        ("APP_PRINCIPAL", "agent"),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let client = stdio_client(&exec.config_path, &exec.socket_dir, &env, &[]).await;
        let (_, e) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3001", "reason": "via credentials"}),
        )
        .await;
        client.cancel().await.unwrap();
        e["proposal"]["id"].as_str().unwrap().to_owned()
    });
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--apply", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["writeback"]["status"], "applied", "{v}");

    // Without the credential anywhere, the apply fails clearly and changes nothing.
    let exec = ExecutorProcess::start(&config, &[("APP_TENANT_ID", "acme")]);
    let id = rt.block_on(async {
        let client = stdio_client(&exec.config_path, &exec.socket_dir, &env, &[]).await;
        let (_, e) = call(
            &client,
            "billing__propose_late_fee_waiver",
            json!({"invoice_id": "INV-3002", "reason": "no creds"}),
        )
        .await;
        client.cancel().await.unwrap();
        e["proposal"]["id"].as_str().unwrap().to_owned()
    });
    let out = exec.cli(&["proposals", "approve", &id, "--yes", "--apply", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["writeback"]["status"], "failed", "{v}");
    assert_eq!(
        v["writeback"]["receipt"]["safe_error_code"],
        "WRITE_CREDENTIAL_MISSING"
    );
    assert!(
        v["writeback"]["detail"]
            .as_str()
            .unwrap()
            .contains("APP_WRITE_URL"),
        "{v}"
    );
}
