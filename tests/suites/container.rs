//! deploy/container: the image definition, its build context, and the image's
//! filesystem running Airlock read-only as non-root users.
//!
//! The build context is made by `deploy/container/make-context.sh` from the
//! binaries this test build uses. The image's filesystem — a minimal base
//! made of the binaries' shared libraries (`--base-rootfs`) with the
//! context's `rootfs/` copied over it, exactly what the Dockerfile's one COPY
//! does — then runs without Docker: mounted read-only in a private mount
//! namespace, with the same writable mounts `docker run` gives it, and
//! entered with `chroot` as the image's users. The executor serves, a
//! proposer (another uid) answers MCP and files a proposal, and `airlock`
//! (a third uid) sees it.
//!
//! Where a Docker daemon answers, the suite also builds the image on that
//! locally made base (`docker import`: no registry needed) and runs it with
//! `--read-only --user 10001:10001`. Where Docker is not installed, or no
//! daemon is configured (no `DOCKER_HOST`, no /var/run/docker.sock), that
//! part says so on stderr and is not run; a daemon that is configured but
//! does not answer fails the suite. Runs as root (mounts, chroot, uids).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::databases::{reference_config_for, sqlite_reference};
use airlock_tests::{bin, workspace_root};
use serde_json::{Value, json};

const EXECUTOR: (u32, u32) = (10001, 10001);
const AGENT: u32 = 10002;
const APPROVER: u32 = 10003;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Context {
    _dir: tempfile::TempDir,
    context: PathBuf,
    base: PathBuf,
}

/// The build context and the minimal base, from this build's binaries.
fn make_context() -> Context {
    assert_eq!(
        nix_uid(),
        0,
        "the container suite runs as root (mounts, chroot, other uids)"
    );
    let dir = tempfile::Builder::new()
        .prefix("airlock-container-")
        .tempdir()
        .unwrap();
    chmod(dir.path(), 0o755);
    let bins = bin("airlock").parent().unwrap().to_owned();
    let context = dir.path().join("context");
    let base = dir.path().join("base");
    run(Command::new("bash")
        .arg(workspace_root().join("deploy/container/make-context.sh"))
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--base-rootfs")
        .arg(&base)
        .arg(&context));
    Context {
        _dir: dir,
        context,
        base,
    }
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

#[test]
fn the_dockerfile_and_its_context_make_a_non_root_read_only_image() {
    let ctx = make_context();
    let dockerfile = std::fs::read_to_string(ctx.context.join("Dockerfile")).unwrap();
    assert_eq!(
        dockerfile,
        std::fs::read_to_string(workspace_root().join("deploy/container/Dockerfile")).unwrap()
    );
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        instructions,
        [
            "ARG BASE=debian:bookworm-slim",
            "FROM ${BASE}",
            "COPY rootfs/ /",
            "USER 10001:10001",
            "WORKDIR /var/lib/airlock",
            "VOLUME [\"/var/lib/airlock\"]",
            "ENTRYPOINT [\"/usr/local/bin/airlock-executor\"]",
            "CMD [\"serve\", \"--config\", \"/etc/airlock/config.json\", \"--store\", \"/var/lib/airlock/ledger.db\", \"--socket-dir\", \"/run/airlock\"]",
        ],
        "no RUN (it builds on any base, offline); non-root; the executor serves"
    );
    let root = ctx.context.join("rootfs");
    for program in ["airlock", "airlock-executor", "airlock-proposer"] {
        let p = root.join("usr/local/bin").join(program);
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(bin(program)).unwrap(),
            "{program}"
        );
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o755);
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    for line in [
        "airlock:x:10001:10001:",
        "agent:x:10002:10002:",
        "approver:x:10003:10003:",
    ] {
        assert!(passwd.contains(line), "{passwd}");
    }
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.contains("airlock:x:10001:agent,approver"), "{group}");
    for (dir, mode) in [("var/lib/airlock", 0o700), ("run/airlock", 0o750)] {
        let m = std::fs::metadata(root.join(dir)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (10001, 10001, mode),
            "{dir}"
        );
    }
    // The base holds the loader and every library the programs load.
    for program in ["airlock", "airlock-executor", "airlock-proposer"] {
        let ldd = run(Command::new("ldd").arg(bin(program)));
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            assert!(
                ctx.base.join(lib.trim_start_matches('/')).is_file(),
                "{lib} missing from the base"
            );
        }
    }
}

/// The image's filesystem (base + the context's rootfs) with a config and a
/// database, and the host directories its writable mounts use.
struct Image {
    ctx: Context,
    root: PathBuf,
    state: PathBuf,
    run: PathBuf,
    data: PathBuf,
}

fn image() -> Image {
    let ctx = make_context();
    let work = ctx.context.parent().unwrap().to_owned();
    let root = work.join("image");
    run(Command::new("cp").arg("-a").arg(&ctx.base).arg(&root));
    run(Command::new("cp")
        .arg("-a")
        .arg(ctx.context.join("rootfs/."))
        .arg(&root));
    std::fs::create_dir(root.join("data")).unwrap();
    // The volumes and the tmpfs `docker run` would mount.
    let state = work.join("state");
    let run_dir = work.join("run");
    let data = work.join("data");
    for (d, mode) in [(&state, 0o700), (&run_dir, 0o750), (&data, 0o770)] {
        std::fs::create_dir(d).unwrap();
        chown(d, EXECUTOR.0, EXECUTOR.1);
        chmod(d, mode);
    }
    // The application database: written by the executor, read by the
    // proposer (group airlock).
    let db = sqlite_reference(&data, "app");
    for f in std::fs::read_dir(&data).unwrap() {
        let f = f.unwrap().path();
        chown(&f, EXECUTOR.0, EXECUTOR.1);
        chmod(&f, 0o660);
    }
    // The reviewed config, as a read-only bind mount would show it.
    let mut config = reference_config_for(&db);
    let roles: Vec<Value> = config["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["approval"]["required_role"].as_str())
        .map(|r| json!(r))
        .collect();
    config["storage"] = json!({"sqlite_path": "/var/lib/airlock/ledger.db"});
    config["airlock"] = json!({
        "socket_dir": "/run/airlock",
        "socket_group": "airlock",
        "proposers": [{"user": "agent", "tenants": ["acme"]}],
        "approvers": [{"user": "approver", "roles": roles}],
    });
    std::fs::write(
        root.join("etc/airlock/config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    Image {
        ctx,
        root,
        state,
        run: run_dir,
        data,
    }
}

impl Image {
    /// `program args` inside the image as `uid` (groups: airlock), in a
    /// private mount namespace: the root read-only, the volumes writable.
    fn command(&self, uid: u32, env: &[(&str, &str)], program: &str, args: &[&str]) -> Command {
        let r = self.root.display();
        let script = format!(
            "set -e; mount --bind {r} {r}; mount -o remount,bind,ro {r} {r}; \
             mount --bind {s} {r}/var/lib/airlock; mount --bind {run} {r}/run/airlock; \
             mount --bind {d} {r}/data; mount -t proc proc {r}/proc; mount --rbind /dev {r}/dev; \
             exec chroot --userspec={uid}:{uid} --groups=10001 {r} \"$@\"",
            s = self.state.display(),
            run = self.run.display(),
            d = self.data.display(),
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(format!("/usr/local/bin/{program}"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .envs(env.iter().copied());
        cmd
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, what: &str, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One JSON-RPC exchange over the proposer's stdio.
fn rpc(stdin: &mut impl Write, stdout: &mut impl BufRead, msg: Value) -> Value {
    writeln!(stdin, "{msg}").unwrap();
    stdin.flush().unwrap();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the proposer closed stdout"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == msg["id"] {
            return v;
        }
    }
}

#[test]
fn the_image_runs_read_only_as_its_non_root_users() {
    let img = image();
    let write_url = "sqlite:///data/app.db";
    let log = std::fs::File::create(img.root.parent().unwrap().join("executor.log")).unwrap();
    let mut executor = Killed(
        img.command(
            EXECUTOR.0,
            &[("APP_WRITE_URL", write_url), ("APP_TENANT_ID", "acme")],
            "airlock-executor",
            &[
                "serve",
                "--config",
                "/etc/airlock/config.json",
                "--store",
                "/var/lib/airlock/ledger.db",
                "--socket-dir",
                "/run/airlock",
            ],
        )
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap(),
    );
    wait_for(
        &img.run.join("operator.sock"),
        "the executor",
        &mut executor.0,
    );
    assert!(img.state.join("ledger.db").is_file());

    // The proposer, as the agent's uid, over stdio.
    let mut proposer = Killed(
        img.command(
            AGENT,
            &[
                ("APP_READ_URL", "sqlite:///data/app.db"),
                ("APP_TENANT_ID", "acme"),
                ("APP_PRINCIPAL", "agent_17"),
            ],
            "airlock-proposer",
            &["serve", "--config", "/etc/airlock/config.json"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap(),
    );
    let mut stdin = proposer.0.stdin.take().unwrap();
    let mut stdout = BufReader::new(proposer.0.stdout.take().unwrap());
    let init = rpc(
        &mut stdin,
        &mut stdout,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "container-suite", "version": "1"}}}),
    );
    assert!(init["result"]["serverInfo"]["name"].is_string(), "{init}");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();
    let tools = rpc(
        &mut stdin,
        &mut stdout,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{tools}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"billing__propose_late_fee_waiver"),
        "{names:?}"
    );
    let call = rpc(
        &mut stdin,
        &mut stdout,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "billing__propose_late_fee_waiver",
            "arguments": {"invoice_id": "INV-3001", "reason": "first late payment"}}}),
    );
    let envelope: Value = serde_json::from_str(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{call}")),
    )
    .unwrap();
    assert_eq!(envelope["ok"], true, "{envelope}");
    let proposal_id = envelope["proposal"]["id"].as_str().unwrap().to_owned();
    drop(stdin);
    drop(proposer);

    // The operator CLI, as the approver's uid, sees it pending.
    let out = img
        .command(
            APPROVER,
            &[],
            "airlock",
            &[
                "proposals",
                "list",
                "--json",
                "--config",
                "/etc/airlock/config.json",
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.to_string().contains(&proposal_id), "{list}");
    // And doctor, as the approver, finds the executor answering it.
    let out = img
        .command(
            APPROVER,
            &[("APP_WRITE_URL", write_url)],
            "airlock",
            &["doctor", "--json", "--config", "/etc/airlock/config.json"],
        )
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let executor_check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "executor")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(executor_check["status"], "ok", "{report}");
    assert!(
        executor.0.try_wait().unwrap().is_none(),
        "the executor is still serving"
    );
    docker_image(&img);
}

/// Whether a Docker daemon is configured on this machine at all.
fn docker_configured() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists()
}

/// Build and run the real image where a Docker daemon answers.
fn docker_image(img: &Image) {
    let docker_cli = Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_cli || !docker_configured() {
        eprintln!(
            "container suite: {} — the image build with Docker was not exercised; the image's filesystem ran above without it",
            if docker_cli {
                "Docker is installed but no daemon is configured (no DOCKER_HOST, no /var/run/docker.sock)"
            } else {
                "Docker is not installed"
            }
        );
        return;
    }
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "a Docker daemon is configured but does not answer (fix it or unset DOCKER_HOST):\n{}",
        text(&info)
    );
    let tag = format!("airlock-test-{}", std::process::id());
    let base = format!("{tag}-base");
    let tarball = img.ctx.context.parent().unwrap().join("base.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&img.ctx.base)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let name = format!("{tag}-run");
    // Removed in this order when the test ends, however it ends.
    let _cleanup = Cleanup(vec![base.clone(), tag.clone(), name.clone()]);
    run(Command::new("docker")
        .arg("import")
        .arg(&tarball)
        .arg(&base));
    run(Command::new("docker")
        .args(["build", "-q", "--build-arg"])
        .arg(format!("BASE={base}"))
        .args(["-t", &tag])
        .arg(&img.ctx.context));
    let config = img.root.join("etc/airlock/config.json");
    run(Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &name,
            "--read-only",
            "--user",
            "10001:10001",
        ])
        .args([
            "--tmpfs",
            "/run/airlock:uid=10001,gid=10001,mode=0750",
            "--tmpfs",
            "/tmp",
        ])
        .arg("-v")
        .arg(format!("{}:/etc/airlock/config.json:ro", config.display()))
        .arg("-v")
        .arg(format!("{}:/data", img.data.display()))
        .args([
            "-e",
            "APP_WRITE_URL=sqlite:///data/app.db",
            "-e",
            "APP_TENANT_ID=acme",
            &tag,
        ]));
    let start = Instant::now();
    loop {
        let out = Command::new("docker")
            .args([
                "exec",
                "--user",
                "10001:10001",
                &name,
                "airlock",
                "doctor",
                "--json",
            ])
            .args(["--config", "/etc/airlock/config.json"])
            .output()
            .unwrap();
        let ok = serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|r| {
            r["checks"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["check"] == "executor" && c["status"] == "ok")
            })
        });
        if ok {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = run(Command::new("docker").args([
        "exec",
        "--user",
        "10002:10001",
        &name,
        "airlock-proposer",
        "--version",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("airlock-proposer "));
}

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in self.0.iter().rev() {
            let _ = Command::new("docker").args(["rm", "-f", n]).output();
            let _ = Command::new("docker").args(["rmi", "-f", n]).output();
        }
    }
}
