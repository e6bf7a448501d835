//! Invariant 4: the proposer is sandboxed on every thread.
//!
//! Two kinds of test:
//!
//! * **Live**, in a child process: the filter is never installed in the test
//!   runner itself (it would sandbox the harness). Each live test re-runs this
//!   test binary with `AIRLOCK_SANDBOX_CHILD=<case>` and `child_entry --exact`;
//!   the child builds a tokio multi-thread runtime first — so worker, blocking
//!   and plain threads exist *before* `install()`, the situation in which a
//!   calling-thread-only filter is escaped — then installs the real sandbox
//!   and runs its case. The parent checks the exit status and a marker line,
//!   and shows the child's stdout/stderr when it fails.
//! * **Static**, in this process: the exact BPF programs `install()` loads are
//!   run through a small classic-BPF interpreter, for what safe Rust cannot
//!   attempt live (x32 numbers, `clone` namespace flags, `clone3`, terminal
//!   ioctls, calls without a safe wrapper, a foreign architecture).

// Helpers outside `#[test]` functions fail the test the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use airlock_proposer::sandbox::{self, DENIED};
use nix::libc;
use seccompiler::sock_filter;

const CHILD_ENV: &str = "AIRLOCK_SANDBOX_CHILD";
const CHILD_DIR_ENV: &str = "AIRLOCK_SANDBOX_CHILD_DIR";
const CHILD_TEST: &str = "child_entry";
const PASSED: &str = "AIRLOCK-SANDBOX-CHILD-PASSED";
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Parent side.

struct ChildRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl ChildRun {
    fn describe(&self, case: &str) -> String {
        format!(
            "sandbox child `{case}` exited with {:?}\n--- child stdout ---\n{}\n--- child stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Re-runs this test binary as a sandbox child for `case`.
fn run_child(case: &str) -> ChildRun {
    let dir = std::env::temp_dir().join(format!(
        "airlock-sandbox-test-{}-{case}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stdout_path = dir.join("child.stdout");
    let stderr_path = dir.join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .env(CHILD_DIR_ENV, &dir)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = ChildRun {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !timed_out,
        "timed out after {CHILD_TIMEOUT:?}; {}",
        run.describe(case)
    );
    run
}

/// Runs `case` and asserts the child exited 0 after printing its marker (so a
/// child whose test filter matched nothing cannot pass).
fn assert_child_passes(case: &str) -> ChildRun {
    let run = run_child(case);
    assert!(
        run.status.success() && run.stderr.contains(&format!("{PASSED} {case}\n")),
        "{}",
        run.describe(case)
    );
    run
}

#[test]
fn execve_from_the_main_thread_is_refused_with_eperm() {
    assert_child_passes("execve-main");
}

#[test]
fn execve_from_threads_that_existed_before_install_is_refused() {
    assert_child_passes("execve-threads");
}

#[test]
fn every_thread_shows_seccomp_filter_and_no_new_privs() {
    assert_child_passes("thread-status");
}

#[test]
fn self_check_reports_every_forbidden_call_refused() {
    assert_child_passes("self-check");
}

#[test]
fn normal_work_still_succeeds_under_the_sandbox() {
    let run = assert_child_passes("normal-work");
    // The harness itself finished and exited normally under the filter.
    assert!(
        run.stdout.contains("test result: ok. 1 passed"),
        "{}",
        run.describe("normal-work")
    );
}

#[test]
fn control_without_install_execve_works() {
    assert_child_passes("control");
}

// ---------------------------------------------------------------------------
// Child side.

/// The child's entry point; a no-op in an ordinary test run.
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(CHILD_DIR_ENV).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let early = EarlyThreads::start(&rt);

    match case.as_str() {
        "execve-main" => {
            sandbox::install().unwrap();
            assert_refused("main thread", &exec_true());
        }
        "execve-threads" => {
            sandbox::install().unwrap();
            case_execve_threads(&rt, &early);
        }
        "thread-status" => {
            sandbox::install().unwrap();
            case_thread_status(&early);
        }
        "self-check" => {
            sandbox::install().unwrap();
            case_self_check();
        }
        "normal-work" => {
            sandbox::install().unwrap();
            case_normal_work(&rt, &dir);
        }
        "control" => case_control(&rt, &early),
        other => panic!("unknown sandbox child case {other:?}"),
    }
    early.release();
    drop(rt);
    eprintln!("{PASSED} {case}");
}

/// Threads started before `install()`: the tokio workers, an idle
/// blocking-pool thread, and a plain thread parked on a channel.
struct EarlyThreads {
    /// Every thread of the process just before `install()`.
    tids: BTreeSet<i32>,
    go: mpsc::Sender<()>,
    parked_result: mpsc::Receiver<(i32, std::io::Result<ExitStatus>)>,
    parked: std::thread::JoinHandle<()>,
}

impl EarlyThreads {
    fn start(rt: &tokio::runtime::Runtime) -> Self {
        // The workers start with the runtime; run tasks on them anyway, and
        // leave one idle blocking-pool thread behind.
        rt.block_on(async {
            for _ in 0..16 {
                tokio::spawn(async { gettid() }).await.unwrap();
            }
        });
        let blocking_tid = rt.block_on(rt.spawn_blocking(gettid)).unwrap();
        let (go, go_rx) = mpsc::channel::<()>();
        let (result_tx, parked_result) = mpsc::channel();
        let parked = std::thread::spawn(move || {
            if go_rx.recv().is_ok() {
                let _ = result_tx.send((gettid(), exec_true()));
            }
        });
        let tids: BTreeSet<i32> = sandbox::thread_status()
            .unwrap()
            .into_iter()
            .map(|t| t.tid)
            .collect();
        assert!(
            tids.len() >= 5 && tids.contains(&blocking_tid),
            "expected main, 2 workers, a blocking and a parked thread before install: {tids:?}"
        );
        EarlyThreads {
            tids,
            go,
            parked_result,
            parked,
        }
    }

    /// Lets the parked thread run its `execve` and returns what it saw.
    fn run_parked(&self) -> (i32, std::io::Result<ExitStatus>) {
        self.go.send(()).unwrap();
        self.parked_result
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
    }

    fn release(self) {
        drop(self.go);
        self.parked.join().unwrap();
    }
}

fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

fn exec_true() -> std::io::Result<ExitStatus> {
    Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

fn assert_refused(place: &str, result: &std::io::Result<ExitStatus>) {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("execve from {place}: refused ({e})");
        }
        Err(e) => panic!("execve from {place}: failed, but not with EPERM: {e:?}"),
        Ok(status) => panic!("execve from {place}: SANDBOX ESCAPED, /bin/true ran ({status})"),
    }
}

fn case_execve_threads(rt: &tokio::runtime::Runtime, early: &EarlyThreads) {
    // A tokio worker: tasks never run on the `block_on` thread of a
    // multi-thread runtime, and no thread was started since `early.tids`.
    let (tid, result) = rt.block_on(async {
        tokio::spawn(async { (gettid(), exec_true()) })
            .await
            .unwrap()
    });
    assert!(
        early.tids.contains(&tid),
        "task ran on {tid}, not a pre-install thread {:?}",
        early.tids
    );
    assert_refused("a tokio worker started before install", &result);

    // The blocking pool's idle thread (started before install) takes this.
    let (tid, result) = rt
        .block_on(rt.spawn_blocking(|| (gettid(), exec_true())))
        .unwrap();
    assert!(
        early.tids.contains(&tid),
        "spawn_blocking ran on {tid}, not a pre-install thread {:?}",
        early.tids
    );
    assert_refused("a tokio blocking thread started before install", &result);

    // A plain thread parked since before install.
    let (tid, result) = early.run_parked();
    assert!(early.tids.contains(&tid));
    assert_refused("a std thread parked since before install", &result);

    // A thread started after install.
    let result = std::thread::spawn(exec_true).join().unwrap();
    assert_refused("a std thread started after install", &result);
    let result = rt
        .block_on(async { tokio::task::spawn_blocking(exec_true).await })
        .unwrap();
    assert_refused("spawn_blocking after install", &result);
}

fn case_thread_status(early: &EarlyThreads) {
    let threads = sandbox::thread_status().unwrap();
    eprintln!("threads after install: {threads:?}");
    let now: BTreeSet<i32> = threads.iter().map(|t| t.tid).collect();
    assert!(
        early.tids.is_subset(&now),
        "pre-install threads {:?} not all listed: {now:?}",
        early.tids
    );
    for t in &threads {
        assert_eq!(
            t.seccomp, 2,
            "thread {} is not under a seccomp filter",
            t.tid
        );
        assert!(t.no_new_privs, "thread {} lacks no_new_privs", t.tid);
    }
}

fn case_self_check() {
    let results = sandbox::self_check();
    for r in &results {
        eprintln!("{:<18} refused={} {}", r.syscall, r.refused, r.detail);
    }
    let attempted: BTreeSet<&str> = results.iter().map(|r| r.syscall).collect();
    for required in [
        "execve",
        "execveat",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "personality",
        "unshare",
        "setns",
        "init_module",
        "finit_module",
        "delete_module",
        "acct",
        "kill",
    ] {
        assert!(
            attempted.contains(required),
            "self_check does not try {required}"
        );
    }
    let allowed: Vec<_> = results.iter().filter(|r| !r.refused).collect();
    assert!(allowed.is_empty(), "not refused: {allowed:#?}");
}

fn case_normal_work(rt: &tokio::runtime::Runtime, dir: &Path) {
    // Files: create, write, read back, remove; read a /proc file.
    let file = dir.join("data.txt");
    std::fs::write(&file, b"reviewed evidence").unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"reviewed evidence");
    std::fs::remove_file(&file).unwrap();
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .contains("Seccomp:\t2")
    );

    // TCP on loopback (the database connection), blocking std.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    // Unix socket pair.
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.write_all(b"pair").unwrap();
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pair");

    // Memory: a large allocation, touched.
    let big = vec![7u8; 64 << 20];
    assert_eq!(
        big.iter().map(|&x| u64::from(x)).sum::<u64>(),
        7 * (64 << 20)
    );
    drop(big);

    // Randomness (std's HashMap keys come from getrandom).
    let mut map = std::collections::HashMap::new();
    map.insert("k", 1);
    assert_eq!(map.get("k"), Some(&1));

    // Async: tokio TCP (serving HTTP), a Unix socket on a path (the
    // executor's), tasks, spawn_blocking, timers, signal handlers.
    let sock = dir.join("executor.sock");
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        server.await.unwrap();

        let unix = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = unix.accept().await.unwrap();
            s.write_all(b"frame").await.unwrap();
        });
        let mut c = tokio::net::UnixStream::connect(&sock).await.unwrap();
        assert_eq!(
            c.peer_cred().unwrap().pid(),
            Some(nix::unistd::getpid().as_raw())
        );
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"frame");
        server.await.unwrap();

        let n = tokio::task::spawn_blocking(|| 40 + 2).await.unwrap();
        assert_eq!(n, 42);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    });

    // New threads (glibc falls back from clone3 to clone), and a panic in
    // one is caught by join without tripping the filter.
    assert_eq!(std::thread::spawn(|| 1 + 1).join().unwrap(), 2);
    let panicked = std::thread::spawn(|| panic!("deliberate panic under the sandbox")).join();
    assert!(panicked.is_err());
    eprintln!("normal work under the sandbox: ok");
}

fn case_control(rt: &tokio::runtime::Runtime, early: &EarlyThreads) {
    // Without install() the same probes succeed, so the live tests above
    // would fail if install() did nothing.
    let status = exec_true().unwrap();
    assert!(status.success());
    let status = rt
        .block_on(async { tokio::spawn(async { exec_true() }).await })
        .unwrap()
        .unwrap();
    assert!(status.success());
    let (_, parked) = early.run_parked();
    assert!(parked.unwrap().success());

    let results = sandbox::self_check();
    for r in &results {
        eprintln!("{:<18} refused={} {}", r.syscall, r.refused, r.detail);
    }
    // These need no privilege, so without the filter they are never EPERM.
    // (mount, chroot, module calls... are EPERM anyway for a non-root user.)
    for name in [
        "execve",
        "execveat",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "personality",
        "unshare",
        "kill",
    ] {
        let entries: Vec<_> = results.iter().filter(|r| r.syscall == name).collect();
        assert!(!entries.is_empty(), "self_check does not try {name}");
        for r in entries {
            assert!(!r.refused, "{name} refused without a sandbox: {}", r.detail);
        }
    }
}

// ---------------------------------------------------------------------------
// Static: the exact programs, through a classic-BPF interpreter.

const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "x86_64")]
const FOREIGN_ARCH: u32 = 0x4000_0003; // AUDIT_ARCH_I386
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
#[cfg(target_arch = "aarch64")]
const FOREIGN_ARCH: u32 = 0x4000_0028; // AUDIT_ARCH_ARM

#[cfg(target_arch = "x86_64")]
const X32: i64 = 0x4000_0000;

/// `struct seccomp_data` as the kernel lays it out (little-endian).
fn seccomp_data(arch: u32, nr: i64, args: [u64; 6]) -> [u8; 64] {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&i32::try_from(nr).unwrap().to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    data
}

/// Runs one classic-BPF program (the subset seccompiler emits).
fn run_bpf(program: &[sock_filter], data: &[u8; 64]) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = program
            .get(pc)
            .unwrap_or_else(|| panic!("BPF ran off the end at {pc}"));
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { ins.jt } else { ins.jf });
        match ins.code {
            0x20 => {
                // BPF_LD | BPF_W | BPF_ABS
                let at = ins.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            0x54 => acc &= ins.k,                 // BPF_ALU | BPF_AND | BPF_K
            0x05 => pc += ins.k as usize,         // BPF_JMP | BPF_JA
            0x15 => pc += jump(acc == ins.k),     // BPF_JMP | BPF_JEQ | BPF_K
            0x25 => pc += jump(acc > ins.k),      // BPF_JMP | BPF_JGT | BPF_K
            0x35 => pc += jump(acc >= ins.k),     // BPF_JMP | BPF_JGE | BPF_K
            0x45 => pc += jump(acc & ins.k != 0), // BPF_JMP | BPF_JSET | BPF_K
            0x06 => return ins.k,                 // BPF_RET | BPF_K
            code => panic!("unexpected BPF opcode {code:#x} at {}", pc - 1),
        }
    }
}

/// What the kernel does with a call under all installed programs: the most
/// restrictive action wins; on a tie, the most recently installed program.
fn verdict_for(arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    let programs = sandbox::programs().unwrap();
    let data = seccomp_data(arch, nr, args);
    let mut verdict = RET_ALLOW;
    for program in programs.iter().rev() {
        let ret = run_bpf(program, &data);
        if ((ret & RET_ACTION_FULL) as i32) < ((verdict & RET_ACTION_FULL) as i32) {
            verdict = ret;
        }
    }
    verdict
}

fn verdict(nr: i64, args: [u64; 6]) -> u32 {
    verdict_for(NATIVE_ARCH, nr, args)
}

fn show(v: u32) -> String {
    match v {
        RET_ALLOW => "ALLOW".into(),
        RET_EPERM => "ERRNO(EPERM)".into(),
        RET_ENOSYS => "ERRNO(ENOSYS)".into(),
        RET_KILL_PROCESS => "KILL_PROCESS".into(),
        other => format!("{other:#x}"),
    }
}

fn assert_verdict(what: &str, nr: i64, args: [u64; 6], want: u32) {
    let got = verdict(nr, args);
    assert!(
        got == want,
        "{what} (nr {nr:#x}, args {args:x?}): got {}, want {}",
        show(got),
        show(want)
    );
}

const ZERO: [u64; 6] = [0; 6];
const ONES: [u64; 6] = [u64::MAX; 6];

#[test]
fn policy_lists_resolve_and_cover_the_invariant() {
    let mut seen = BTreeSet::new();
    for &(name, reason) in DENIED
        .iter()
        .chain(sandbox::DENIED_WITH_ARGUMENTS)
        .chain(sandbox::NOT_IMPLEMENTED)
    {
        assert!(seen.insert(name), "{name} listed twice");
        assert!(!reason.trim().is_empty(), "{name} has no reason");
        assert!(
            sandbox::syscall_number(name).is_some(),
            "{name} has no number here"
        );
    }
    let denied: BTreeSet<&str> = DENIED.iter().map(|&(n, _)| n).collect();
    for required in [
        "execve",
        "execveat",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "bpf",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "personality",
        "setns",
        "unshare",
        "userfaultfd",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "swapon",
        "swapoff",
        "reboot",
        "acct",
        "open_by_handle_at",
    ] {
        assert!(denied.contains(required), "DENIED lacks {required}");
    }
}

#[test]
fn every_denied_call_is_refused_whatever_its_arguments() {
    for &(name, _) in DENIED {
        let nr = sandbox::syscall_number(name).unwrap();
        assert_verdict(name, nr, ZERO, RET_EPERM);
        assert_verdict(name, nr, ONES, RET_EPERM);
    }
}

/// Checked against libc's numbers directly, so a wrong entry in the
/// sandbox's own name → number table cannot hide a gap.
#[test]
fn invariant_calls_are_refused_by_their_libc_numbers() {
    for (name, nr) in [
        ("execve", libc::SYS_execve),
        ("execveat", libc::SYS_execveat),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("mount", libc::SYS_mount),
        ("bpf", libc::SYS_bpf),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("personality", libc::SYS_personality),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
    ] {
        assert_verdict(name, nr, ZERO, RET_EPERM);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_numbers_are_refused_too() {
    for &(name, _) in DENIED {
        let nr = sandbox::syscall_number(name).unwrap();
        assert_verdict(&format!("x32 {name}"), X32 | nr, ZERO, RET_EPERM);
    }
    // x32-only entries (syscall_64.tbl 512..=547), with and without the bit.
    for (name, nr) in [
        ("execve", 520),
        ("ptrace", 521),
        ("kexec_load", 528),
        ("process_vm_readv", 539),
        ("process_vm_writev", 540),
        ("execveat", 545),
        ("rt_sigqueueinfo", 524),
        ("rt_tgsigqueueinfo", 536),
    ] {
        assert_verdict(&format!("x32-only {name}"), X32 | nr, ZERO, RET_EPERM);
        assert_verdict(&format!("bare x32-only {name}"), nr, ZERO, RET_EPERM);
    }
    assert_verdict(
        "x32 clone with CLONE_NEWUSER",
        X32 | libc::SYS_clone,
        [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
        RET_EPERM,
    );
    assert_verdict("x32 clone3", X32 | libc::SYS_clone3, ZERO, RET_ENOSYS);
    assert_verdict(
        "x32 ioctl TIOCSTI",
        X32 | 514,
        [0, libc::TIOCSTI, 0, 0, 0, 0],
        RET_EPERM,
    );
}

/// Nothing the proposer needs at run time — tokio, sqlx's TCP and TLS,
/// the executor's Unix socket, axum's HTTP server, threads, memory — is on
/// the list.
#[test]
fn calls_the_proposer_needs_are_allowed() {
    let needed = [
        ("read", libc::SYS_read),
        ("write", libc::SYS_write),
        ("readv", libc::SYS_readv),
        ("writev", libc::SYS_writev),
        ("pread64", libc::SYS_pread64),
        ("openat", libc::SYS_openat),
        ("close", libc::SYS_close),
        ("statx", libc::SYS_statx),
        ("newfstatat", libc::SYS_newfstatat),
        ("lseek", libc::SYS_lseek),
        ("getdents64", libc::SYS_getdents64),
        ("fcntl", libc::SYS_fcntl),
        ("unlinkat", libc::SYS_unlinkat),
        ("socket", libc::SYS_socket),
        ("socketpair", libc::SYS_socketpair),
        ("connect", libc::SYS_connect),
        ("bind", libc::SYS_bind),
        ("listen", libc::SYS_listen),
        ("accept4", libc::SYS_accept4),
        ("sendto", libc::SYS_sendto),
        ("recvfrom", libc::SYS_recvfrom),
        ("sendmsg", libc::SYS_sendmsg),
        ("recvmsg", libc::SYS_recvmsg),
        ("getsockopt", libc::SYS_getsockopt),
        ("setsockopt", libc::SYS_setsockopt),
        ("getsockname", libc::SYS_getsockname),
        ("getpeername", libc::SYS_getpeername),
        ("shutdown", libc::SYS_shutdown),
        ("epoll_create1", libc::SYS_epoll_create1),
        ("epoll_ctl", libc::SYS_epoll_ctl),
        ("epoll_pwait", libc::SYS_epoll_pwait),
        ("eventfd2", libc::SYS_eventfd2),
        ("pipe2", libc::SYS_pipe2),
        ("dup3", libc::SYS_dup3),
        ("futex", libc::SYS_futex),
        ("mmap", libc::SYS_mmap),
        ("munmap", libc::SYS_munmap),
        ("mprotect", libc::SYS_mprotect),
        ("mremap", libc::SYS_mremap),
        ("madvise", libc::SYS_madvise),
        ("brk", libc::SYS_brk),
        ("getrandom", libc::SYS_getrandom),
        ("clock_gettime", libc::SYS_clock_gettime),
        ("clock_nanosleep", libc::SYS_clock_nanosleep),
        ("rt_sigaction", libc::SYS_rt_sigaction),
        ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
        ("rt_sigreturn", libc::SYS_rt_sigreturn),
        ("sigaltstack", libc::SYS_sigaltstack),
        ("sched_getaffinity", libc::SYS_sched_getaffinity),
        ("sched_yield", libc::SYS_sched_yield),
        ("set_robust_list", libc::SYS_set_robust_list),
        ("rseq", libc::SYS_rseq),
        ("prctl", libc::SYS_prctl),
        ("getpid", libc::SYS_getpid),
        ("gettid", libc::SYS_gettid),
        ("getuid", libc::SYS_getuid),
        ("wait4", libc::SYS_wait4),
        ("exit", libc::SYS_exit),
        ("exit_group", libc::SYS_exit_group),
        ("seccomp", libc::SYS_seccomp),
    ];
    for (name, nr) in needed {
        assert_verdict(name, nr, ZERO, RET_ALLOW);
        assert_verdict(name, nr, ONES, RET_ALLOW);
    }
    // Terminal ioctls other than the injecting ones: FIONBIO, TCGETS, TIOCGWINSZ.
    for request in [libc::FIONBIO, libc::TCGETS, libc::TIOCGWINSZ] {
        assert_verdict(
            &format!("ioctl {request:#x}"),
            libc::SYS_ioctl,
            [1, request, 0, 0, 0, 0],
            RET_ALLOW,
        );
    }
}

/// Signals may target this process only (issue 12 item 1): the filter
/// compares the first argument with the pid the programs were built for.
#[test]
fn signals_reach_only_this_process() {
    let me = u64::from(std::process::id());
    let other = me + 1;
    let sig = libc::SIGTERM as u64;
    for (name, nr) in [
        ("kill", libc::SYS_kill),
        ("tkill", libc::SYS_tkill),
        ("tgkill", libc::SYS_tgkill),
        ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
        ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    ] {
        // To itself (kill/raise, tgkill from pthread_kill and abort).
        assert_verdict(
            &format!("{name} to self"),
            nr,
            [me, me, sig, 0, 0, 0],
            RET_ALLOW,
        );
        // Another process, the process group (0), another group (-pgid),
        // every process (-1), and a pid hidden in the high half.
        for (what, target) in [
            ("another pid", other),
            ("the process group", 0),
            ("every process", u64::from(u32::MAX)),
            ("a negative pgid", u64::from((-(me as i64)) as u32)),
            ("high bits set", (1u64 << 32) | other),
            ("parent", u64::from(std::os::unix::process::parent_id())),
        ] {
            assert_verdict(
                &format!("{name} to {what}"),
                nr,
                [target, me, sig, 0, 0, 0],
                RET_EPERM,
            );
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert_verdict(
                &format!("x32 {name} to self"),
                X32 | nr,
                [me, me, sig, 0, 0, 0],
                RET_ALLOW,
            );
            assert_verdict(
                &format!("x32 {name} to another pid"),
                X32 | nr,
                [other, me, sig, 0, 0, 0],
                RET_EPERM,
            );
        }
    }
    // A pidfd names its process by file descriptor: refused outright.
    assert_verdict(
        "pidfd_send_signal",
        libc::SYS_pidfd_send_signal,
        ZERO,
        RET_EPERM,
    );
    assert_verdict(
        "pidfd_send_signal",
        libc::SYS_pidfd_send_signal,
        ONES,
        RET_EPERM,
    );
    // The programs are built for the pid they are given.
    let programs = sandbox::programs_for(4242).unwrap();
    assert_eq!(programs.len(), 2);
    for &(name, _) in sandbox::SIGNALS_TO_SELF_ONLY {
        assert!(
            sandbox::syscall_number(name).is_some(),
            "{name} has no number"
        );
    }
}

#[test]
fn clone_with_a_namespace_flag_is_refused_threads_and_forks_are_not() {
    let sigchld = libc::SIGCHLD as u64;
    for flag in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        let flags = flag as u64 | sigchld;
        assert_verdict(
            &format!("clone {flags:#x}"),
            libc::SYS_clone,
            [flags, 0, 0, 0, 0, 0],
            RET_EPERM,
        );
        // Junk in the high half (ignored by the kernel) changes nothing.
        assert_verdict(
            &format!("clone {flags:#x} + high bits"),
            libc::SYS_clone,
            [flags | 0xffff_ffff_0000_0000, 0, 0, 0, 0, 0],
            RET_EPERM,
        );
    }
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | sigchld;
    let vfork = (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | sigchld;
    for (what, flags) in [("thread", thread), ("fork", fork), ("vfork", vfork)] {
        assert_verdict(what, libc::SYS_clone, [flags, 0, 0, 0, 0, 0], RET_ALLOW);
    }
}

#[test]
fn clone3_answers_enosys_so_libc_falls_back_to_clone() {
    assert_verdict("clone3", libc::SYS_clone3, ZERO, RET_ENOSYS);
    assert_verdict("clone3", libc::SYS_clone3, ONES, RET_ENOSYS);
}

#[test]
fn terminal_injection_ioctls_are_refused() {
    for request in [libc::TIOCSTI, libc::TIOCLINUX] {
        assert_verdict(
            &format!("ioctl {request:#x}"),
            libc::SYS_ioctl,
            [0, request, 0, 0, 0, 0],
            RET_EPERM,
        );
        assert_verdict(
            &format!("ioctl {request:#x} + high bits"),
            libc::SYS_ioctl,
            [0, request | 0xffff_ffff_0000_0000, 0, 0, 0, 0],
            RET_EPERM,
        );
    }
}

#[test]
fn a_foreign_architecture_is_killed() {
    // i386 execve is 11, read is 3: whatever the number, the process dies.
    for nr in [0, 3, 11, libc::SYS_read, libc::SYS_execve] {
        let got = verdict_for(FOREIGN_ARCH, nr, ZERO);
        assert_eq!(got, RET_KILL_PROCESS, "foreign-arch nr {nr}: {}", show(got));
    }
}

#[test]
fn thread_status_reads_this_process_without_installing() {
    let threads = sandbox::thread_status().unwrap();
    assert!(threads.iter().any(|t| t.tid == gettid()), "{threads:?}");
}
