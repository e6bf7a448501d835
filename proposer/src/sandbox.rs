//! The proposer's sandbox (invariant 4): once start-up is done the process
//! is marked non-dumpable ([`make_non_dumpable`]), confines its file access
//! with Landlock ([`FilePolicy`], [`restrict_files`]), and sets
//! `no_new_privs` and installs a seccomp deny-list on **every** thread
//! ([`install`]).
//!
//! # Files (Landlock)
//!
//! seccomp cannot see paths, so on its own it leaves `open("/proc/<pid>/mem",
//! O_RDWR)` of any same-user process open (the ptrace access check lets a
//! same-uid or root caller through). Landlock closes that: the proposer may
//! only **read** the few paths [`FilePolicy::for_proposer`] lists (its SQLite
//! source's directory, its own `/proc/<pid>`, the name-resolution files,
//! shared libraries for NSS, `/dev/urandom`, `/dev/null`), may write, create,
//! remove, truncate or execute nothing, and is scoped (ABI 6): it cannot
//! signal processes or connect to abstract Unix sockets outside its domain.
//! Landlock's ptrace rule also refuses `/proc/<pid>/mem` and `environ` of any
//! process outside the domain, whatever the path rules say. Landlock (ABI ≤ 8
//! without `all_threads`) restricts the calling thread only, so
//! [`restrict_files`] runs while the process has one thread, before the async
//! runtime starts; every later thread inherits it. Connecting to a pathname
//! Unix socket (the executor's `proposer.sock`) and TCP (databases, the HTTP
//! listener) are not file accesses in ABI 6 and stay allowed.
//!
//! # What is refused
//!
//! [`DENIED`] lists each refused system call with a one-line reason;
//! [`DENIED_WITH_ARGUMENTS`] and [`NOT_IMPLEMENTED`] list the few calls the
//! filter judges by argument or answers with `ENOSYS`. Everything else is
//! allowed: the proposer still opens files, makes TCP connections to its
//! database, connects to the executor's Unix socket, serves HTTP, starts
//! threads and allocates memory. It cannot start a program, trace or read
//! another process, change mounts or namespaces, load kernel code, or change
//! its execution domain.
//!
//! # How
//!
//! * **All threads (TSYNC).** Under tokio the worker and blocking-pool threads
//!   already exist when the sandbox goes on, and a filter installed with
//!   plain `seccomp(SECCOMP_SET_MODE_FILTER)` covers only the calling thread:
//!   a worker could still `execve`. [`install`] uses
//!   [`seccompiler::apply_filter_all_threads`] (`SECCOMP_FILTER_FLAG_TSYNC`),
//!   which also copies `no_new_privs` to every thread, and then reads
//!   `/proc/self/task/*/status` to prove each thread shows `Seccomp: 2` and
//!   `NoNewPrivs: 1` — the sandbox cannot be silently off.
//! * **EPERM, not kill.** A refused call fails with `EPERM`; the process is not
//!   killed. The kernel never runs the call either way, so the refusal is just
//!   as complete, but the proposer stays alive to turn the failure into a tool
//!   error or a log line instead of vanishing in the middle of an MCP session
//!   (which a client sees as a crash and an operator must reconstruct from a
//!   SIGSYS in the journal). A compromised proposer may probe the filter; it
//!   learns only what this public list says. The one kill that remains is
//!   seccompiler's architecture check: a system call made through a foreign
//!   ABI (e.g. i386 `int 0x80` on x86_64, whose numbers differ) kills the
//!   process, because a deny-list keyed on x86_64 numbers means nothing there.
//!   `EPERM` may also come from the kernel itself (a missing capability), so
//!   [`self_check`]'s "refused" means "this call cannot be made", which is what
//!   matters; `/proc` status (see [`thread_status`]) shows the filter is on.
//! * **x32 on x86_64.** The x32 ABI shares the x86_64 audit architecture, so
//!   the arch check lets it through. It reaches the same kernel code with the
//!   number `0x4000_0000 | nr`, and has its own numbers (512–547) for calls
//!   whose arguments differ: `execve` is 520 and `execveat` 545. The filter
//!   refuses every denied number both with and without the x32 bit, plus those
//!   x32-only numbers (see `X32_ONLY`).
//! * **Namespaces through clone.** `unshare` and `setns` are refused outright.
//!   `clone(2)` is refused when any `CLONE_NEW*` flag is set (the flags are in
//!   a register the filter can read; threads and `posix_spawn` use none).
//!   `clone3(2)` passes its flags in memory, which a seccomp filter cannot
//!   read, so it answers `ENOSYS`: glibc (2.34+) then falls back to `clone(2)`
//!   for new threads, exactly as on kernels older than 5.3. This is the same
//!   approach as Docker's and Chromium's default profiles. It needs a second,
//!   stacked filter because a seccompiler filter has one match action.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why the sandbox could not be built, installed or read back.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Only x86_64 and aarch64 have a reviewed policy.
    #[error("no sandbox policy for the {0} architecture (only x86_64 and aarch64 are supported)")]
    UnsupportedArch(&'static str),
    /// A name in the policy has no system call number on this architecture.
    #[error("the sandbox policy names `{0}`, which has no system call number on this architecture")]
    UnknownSyscall(&'static str),
    /// seccompiler rejected the filter (e.g. too many instructions).
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// `prctl(PR_SET_NO_NEW_PRIVS)` or `seccomp(.., TSYNC)` failed.
    #[error("cannot install the seccomp filter on every thread: {0}")]
    Install(#[source] seccompiler::Error),
    /// A `/proc` file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Proc {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A thread's status file lacks a field (kernel older than 4.10?).
    #[error("{} has no readable `{field}:` line", path.display())]
    StatusField { path: PathBuf, field: &'static str },
    /// No thread was listed under `/proc/self/task`.
    #[error("/proc/self/task lists no threads")]
    NoThreads,
    /// After installing, a thread is not under the filter.
    #[error(
        "thread {tid} is not sandboxed after install (Seccomp: {seccomp}, NoNewPrivs: {})",
        u8::from(*no_new_privs)
    )]
    NotApplied {
        tid: i32,
        seccomp: u8,
        no_new_privs: bool,
    },
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot mark the process non-dumpable: {0}")]
    Dumpable(#[source] Errno),
    /// Landlock restricts only the calling thread: it must go on while the
    /// process has one thread, so that every later thread inherits it.
    #[error(
        "the file sandbox must go on while the process has one thread, but it has {0}: something started a thread before it (a preloaded library, or a bug in airlock-proposer's start-up order); threads that exist before Landlock would stay unconfined"
    )]
    NotSingleThreaded(usize),
    /// A path the proposer must read cannot be opened to build its rule.
    #[error("cannot allow reading {} in the file sandbox: {reason}", path.display())]
    ReadPath { path: PathBuf, reason: String },
    /// A SQLite source directly in `/` would need read access to everything.
    #[error(
        "the SQLite source {} lies directly in `/`; the file sandbox allows reading the directory of a SQLite file (for its -journal, -wal and -shm files), which here would be the whole filesystem: move the database into its own directory",
        path.display()
    )]
    SqliteInRoot { path: PathBuf },
    /// The Landlock system calls failed.
    #[error("cannot install the Landlock file sandbox: {0}")]
    Landlock(#[source] landlock::RulesetError),
    /// Landlock is missing or weaker than required, and weaker was not allowed.
    #[error(
        "refusing to start: {detail}. Without it, code running inside the proposer could open other processes' /proc/<pid>/mem and environ and write files. Run on a kernel with Landlock ABI {} or newer (Linux 6.12+, with `landlock` in the lsm= boot list), or pass --allow-weaker-sandbox to start with only the seccomp filter and the other protections (logged as an error)",
        LANDLOCK_ABI as u32
    )]
    WeakerSandbox { detail: String },
}

/// Syscalls refused after start-up, each with a one-line reason (a reviewer
/// reads this list). They fail with `EPERM` on every thread.
pub const DENIED: &[(&str, &str)] = &[
    // Starting programs.
    ("execve", "no program may be started"),
    (
        "execveat",
        "no program may be started (by directory fd or by file descriptor)",
    ),
    // Other processes.
    (
        "ptrace",
        "no tracing or reading/writing another process's memory and registers",
    ),
    ("process_vm_readv", "no reading another process's memory"),
    ("process_vm_writev", "no writing another process's memory"),
    (
        "pidfd_getfd",
        "no copying file descriptors out of another process",
    ),
    (
        "pidfd_send_signal",
        "no signalling by pidfd (a filter cannot tell which process the fd names)",
    ),
    // Mounts and the filesystem root.
    ("mount", "no changes to the mount table"),
    ("umount2", "no unmounting"),
    ("fsopen", "new mount API: no creating a filesystem context"),
    (
        "fsconfig",
        "new mount API: no configuring a filesystem context",
    ),
    ("fsmount", "new mount API: no creating a mount"),
    (
        "fspick",
        "new mount API: no reconfiguring an existing mount",
    ),
    (
        "move_mount",
        "new mount API: no attaching or moving a mount",
    ),
    ("open_tree", "new mount API: no cloning a mount tree"),
    (
        "mount_setattr",
        "new mount API: no changing mount attributes",
    ),
    ("pivot_root", "no changing the root filesystem"),
    ("chroot", "no changing the root directory"),
    (
        "open_by_handle_at",
        "no opening files by handle, which skips path permission checks",
    ),
    // Namespaces (clone with CLONE_NEW* flags: see DENIED_WITH_ARGUMENTS).
    (
        "unshare",
        "no new namespaces (a user namespace grants capabilities inside it)",
    ),
    ("setns", "no joining another process's namespaces"),
    // Kernel code and kernel attack surface.
    ("bpf", "no loading eBPF programs or maps"),
    ("kexec_load", "no loading a new kernel"),
    ("kexec_file_load", "no loading a new kernel"),
    ("init_module", "no loading kernel modules"),
    ("finit_module", "no loading kernel modules"),
    ("delete_module", "no unloading kernel modules"),
    (
        "perf_event_open",
        "no performance monitoring: large kernel surface, can observe other processes",
    ),
    (
        "userfaultfd",
        "no userfaultfd, a common kernel-exploit primitive",
    ),
    (
        "io_uring_setup",
        "no io_uring: its operations are not seen by this filter",
    ),
    (
        "io_uring_enter",
        "no io_uring: its operations are not seen by this filter",
    ),
    (
        "io_uring_register",
        "no io_uring: its operations are not seen by this filter",
    ),
    // Execution domain.
    (
        "personality",
        "no execution-domain changes (e.g. ADDR_NO_RANDOMIZE turns off ASLR)",
    ),
    // Keyrings (not namespaced; may hold other software's secrets).
    ("keyctl", "no kernel keyring access"),
    ("add_key", "no kernel keyring access"),
    ("request_key", "no kernel keyring access"),
    // Host administration.
    ("swapon", "no swap management"),
    ("swapoff", "no swap management"),
    ("reboot", "no rebooting or changing Ctrl-Alt-Del handling"),
    ("acct", "no switching process accounting"),
    ("syslog", "no reading or clearing the kernel log"),
];

/// Syscalls refused (`EPERM`) only with the arguments named here.
pub const DENIED_WITH_ARGUMENTS: &[(&str, &str)] = &[
    (
        "clone",
        "when any CLONE_NEW* flag is set: no new namespaces (threads and process spawns use none)",
    ),
    (
        "ioctl",
        "TIOCSTI and TIOCLINUX only: no typing input into the terminal the proposer runs on",
    ),
];

/// Signal-sending calls: allowed only when the target (first argument) is
/// this process itself; refused (`EPERM`) for any other pid, process group
/// (`0`, `-pgid`) or broadcast (`-1`). `pidfd_send_signal` names its target
/// by file descriptor, which a filter cannot resolve, so it is refused
/// outright (see [`DENIED`]).
pub const SIGNALS_TO_SELF_ONLY: &[(&str, &str)] = &[
    ("kill", "only this process (kill(own pid, sig))"),
    (
        "tkill",
        "only this process's main thread (its tid is the pid)",
    ),
    ("tgkill", "only threads of this process (tgid = own pid)"),
    ("rt_sigqueueinfo", "only this process"),
    ("rt_tgsigqueueinfo", "only threads of this process"),
];

/// Syscalls answered `ENOSYS` (not implemented) rather than refused.
pub const NOT_IMPLEMENTED: &[(&str, &str)] = &[(
    "clone3",
    "its flags are in memory a filter cannot read; ENOSYS makes libc fall back to clone(2), whose flags are checked",
)];

/// x86_64's x32 ABI sets this bit in the system call number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// x32-only numbers (x86 `syscall_64.tbl`, 512–547) of calls the policy
/// refuses. Refused with and without [`X32_SYSCALL_BIT`]: old kernels let
/// 64-bit code reach these entries without the bit.
#[cfg(target_arch = "x86_64")]
const X32_ONLY: &[(&str, i64)] = &[
    ("execve", 520),
    ("ptrace", 521),
    ("kexec_load", 528),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("execveat", 545),
    // x32's own signal-queueing entries: refused whatever the target (no
    // x32 code runs in the proposer).
    ("rt_sigqueueinfo", 524),
    ("rt_tgsigqueueinfo", 536),
];

/// x32's own number for `ioctl`.
#[cfg(target_arch = "x86_64")]
const X32_IOCTL: i64 = 514;

/// Namespace flags `clone(2)` may not carry. (`CLONE_NEWTIME` only exists for
/// `unshare` and `clone3`, both handled elsewhere; for `clone(2)` its bit is
/// part of the exit signal.)
const CLONE_NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// Terminal ioctls that inject input (TIOCSTI) or paste a selection
/// (TIOCLINUX) into a terminal another program reads.
const TERMINAL_INJECTION_IOCTLS: &[libc::c_ulong] = &[libc::TIOCSTI, libc::TIOCLINUX];

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// The host architecture's filter target.
fn target_arch() -> Result<TargetArch, SandboxError> {
    #[cfg(target_arch = "x86_64")]
    {
        Ok(TargetArch::x86_64)
    }
    #[cfg(target_arch = "aarch64")]
    {
        Ok(TargetArch::aarch64)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Err(SandboxError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// The native system call number of `name` on this architecture, for the
/// names the policy uses (`None` for any other name).
pub fn syscall_number(name: &str) -> Option<i64> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let nr: i64 = match name {
            "execve" => libc::SYS_execve,
            "execveat" => libc::SYS_execveat,
            "ptrace" => libc::SYS_ptrace,
            "process_vm_readv" => libc::SYS_process_vm_readv,
            "process_vm_writev" => libc::SYS_process_vm_writev,
            "pidfd_getfd" => libc::SYS_pidfd_getfd,
            "pidfd_send_signal" => libc::SYS_pidfd_send_signal,
            "kill" => libc::SYS_kill,
            "tkill" => libc::SYS_tkill,
            "tgkill" => libc::SYS_tgkill,
            "rt_sigqueueinfo" => libc::SYS_rt_sigqueueinfo,
            "rt_tgsigqueueinfo" => libc::SYS_rt_tgsigqueueinfo,
            "mount" => libc::SYS_mount,
            "umount2" => libc::SYS_umount2,
            "fsopen" => libc::SYS_fsopen,
            "fsconfig" => libc::SYS_fsconfig,
            "fsmount" => libc::SYS_fsmount,
            "fspick" => libc::SYS_fspick,
            "move_mount" => libc::SYS_move_mount,
            "open_tree" => libc::SYS_open_tree,
            "mount_setattr" => libc::SYS_mount_setattr,
            "pivot_root" => libc::SYS_pivot_root,
            "chroot" => libc::SYS_chroot,
            "open_by_handle_at" => libc::SYS_open_by_handle_at,
            "unshare" => libc::SYS_unshare,
            "setns" => libc::SYS_setns,
            "bpf" => libc::SYS_bpf,
            "kexec_load" => libc::SYS_kexec_load,
            "kexec_file_load" => libc::SYS_kexec_file_load,
            "init_module" => libc::SYS_init_module,
            "finit_module" => libc::SYS_finit_module,
            "delete_module" => libc::SYS_delete_module,
            "perf_event_open" => libc::SYS_perf_event_open,
            "userfaultfd" => libc::SYS_userfaultfd,
            "io_uring_setup" => libc::SYS_io_uring_setup,
            "io_uring_enter" => libc::SYS_io_uring_enter,
            "io_uring_register" => libc::SYS_io_uring_register,
            "personality" => libc::SYS_personality,
            "keyctl" => libc::SYS_keyctl,
            "add_key" => libc::SYS_add_key,
            "request_key" => libc::SYS_request_key,
            "swapon" => libc::SYS_swapon,
            "swapoff" => libc::SYS_swapoff,
            "reboot" => libc::SYS_reboot,
            "acct" => libc::SYS_acct,
            "syslog" => libc::SYS_syslog,
            "clone" => libc::SYS_clone,
            "clone3" => libc::SYS_clone3,
            "ioctl" => libc::SYS_ioctl,
            _ => return None,
        };
        Some(nr)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = name;
        None
    }
}

fn number(name: &'static str) -> Result<i64, SandboxError> {
    syscall_number(name).ok_or(SandboxError::UnknownSyscall(name))
}

/// Every number under which the kernel runs native call `nr` on this
/// architecture: the native number, and on x86_64 the x32 one.
fn abi_variants(nr: i64) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![nr, X32_SYSCALL_BIT | nr]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        vec![nr]
    }
}

/// Adds an argument-conditioned entry without weakening an unconditional one.
fn add_conditional(rules: &mut BTreeMap<i64, Vec<SeccompRule>>, nr: i64, chain: &[SeccompRule]) {
    rules.entry(nr).or_insert_with(|| chain.to_vec());
}

/// One rule per value: "argument `arg` (low 32 bits) has all of `mask`'s bits".
/// The kernel reads clone flags and ioctl requests as 32-bit values, so the
/// high half cannot be used to slip past.
fn masked_rules(arg: u8, masks: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    masks
        .iter()
        .map(|&m| {
            let condition =
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(m), m)?;
            Ok(SeccompRule::new(vec![condition])?)
        })
        .collect()
}

fn equal_rules(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    values
        .iter()
        .map(|&v| {
            let condition =
                SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)?;
            Ok(SeccompRule::new(vec![condition])?)
        })
        .collect()
}

/// The `EPERM` filter's rules: [`DENIED`] (with x32 variants),
/// [`DENIED_WITH_ARGUMENTS`] and [`SIGNALS_TO_SELF_ONLY`] for process `pid`.
fn deny_rules(pid: u32) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(name, _) in DENIED {
        for nr in abi_variants(number(name)?) {
            rules.insert(nr, Vec::new());
        }
    }
    #[cfg(target_arch = "x86_64")]
    for &(_, nr) in X32_ONLY {
        rules.insert(nr, Vec::new());
        rules.insert(X32_SYSCALL_BIT | nr, Vec::new());
    }

    let namespace_masks: Vec<u64> = CLONE_NAMESPACE_FLAGS.iter().map(|&f| f as u64).collect();
    let clone = masked_rules(0, &namespace_masks)?;
    for nr in abi_variants(number("clone")?) {
        add_conditional(&mut rules, nr, &clone);
    }

    let requests: Vec<u64> = TERMINAL_INJECTION_IOCTLS
        .iter()
        .map(|&r| u64::from(r as u32))
        .collect();
    let ioctl = equal_rules(1, &requests)?;
    add_conditional(&mut rules, number("ioctl")?, &ioctl);
    #[cfg(target_arch = "x86_64")]
    add_conditional(&mut rules, X32_SYSCALL_BIT | X32_IOCTL, &ioctl);

    // pid_t is an int: the kernel reads the low 32 bits, so compare those.
    let not_self = vec![SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        u64::from(pid),
    )?])?];
    for &(name, _) in SIGNALS_TO_SELF_ONLY {
        for nr in abi_variants(number(name)?) {
            add_conditional(&mut rules, nr, &not_self);
        }
    }

    Ok(rules)
}

/// The `ENOSYS` filter's rules: [`NOT_IMPLEMENTED`].
fn enosys_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    let mut rules = BTreeMap::new();
    for &(name, _) in NOT_IMPLEMENTED {
        for nr in abi_variants(number(name)?) {
            rules.insert(nr, Vec::new());
        }
    }
    Ok(rules)
}

/// The BPF programs [`install`] loads, in order: the `EPERM` deny-list, then
/// the `ENOSYS` filter. Both start with the architecture check (a foreign ABI
/// is killed). Exposed so tests can evaluate the exact programs.
pub fn programs() -> Result<Vec<BpfProgram>, SandboxError> {
    programs_for(std::process::id())
}

/// [`programs`] for process `pid` (the only target signals may have).
pub fn programs_for(pid: u32) -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = target_arch()?;
    let deny = SeccompFilter::new(
        deny_rules(pid)?,
        SeccompAction::Allow,
        SeccompAction::Errno(EPERM),
        arch,
    )?;
    let enosys = SeccompFilter::new(
        enosys_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(ENOSYS),
        arch,
    )?;
    let deny: BpfProgram = deny.try_into()?;
    let enosys: BpfProgram = enosys.try_into()?;
    Ok(vec![deny, enosys])
}

/// Set no_new_privs and install the deny-list filter on every thread of the
/// process (TSYNC), then check through `/proc` that every thread shows
/// `Seccomp: 2` and `NoNewPrivs: 1`.
///
/// Denied calls fail with `EPERM`: the process stays alive and reports the
/// error rather than dying mid-MCP-session (see the module documentation).
/// Call it once start-up is done; it cannot be undone. Threads started later
/// inherit the filter.
pub fn install() -> Result<(), SandboxError> {
    // Build both before installing either, so a build error leaves nothing
    // half-installed.
    let programs = programs()?;
    for program in &programs {
        seccompiler::apply_filter_all_threads(program).map_err(SandboxError::Install)?;
    }
    let threads = thread_status()?;
    if threads.is_empty() {
        return Err(SandboxError::NoThreads);
    }
    match threads
        .into_iter()
        .find(|t| t.seccomp != 2 || !t.no_new_privs)
    {
        Some(t) => Err(SandboxError::NotApplied {
            tid: t.tid,
            seccomp: t.seccomp,
            no_new_privs: t.no_new_privs,
        }),
        None => Ok(()),
    }
}

/// One thread's sandbox state as `/proc/self/task/<tid>/status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSandboxStatus {
    /// Thread id.
    pub tid: i32,
    /// `Seccomp:` — 0 off, 1 strict, 2 filter.
    pub seccomp: u8,
    /// `NoNewPrivs:` is 1.
    pub no_new_privs: bool,
}

/// Read /proc/self/task/*/status and report, per thread, the Seccomp and
/// NoNewPrivs values (sorted by thread id). A thread that exits while being
/// read is skipped.
pub fn thread_status() -> Result<Vec<ThreadSandboxStatus>, SandboxError> {
    let task_dir = Path::new("/proc/self/task");
    let proc_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Proc { path, source }
    };
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(task_dir).map_err(proc_error(task_dir))? {
        let entry = entry.map_err(proc_error(task_dir))?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("status");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // The thread exited between the listing and the read.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                continue;
            }
            Err(source) => return Err(SandboxError::Proc { path, source }),
        };
        let seccomp = status_field(&text, "Seccomp").ok_or_else(|| SandboxError::StatusField {
            path: path.clone(),
            field: "Seccomp",
        })?;
        let no_new_privs =
            status_field(&text, "NoNewPrivs").ok_or_else(|| SandboxError::StatusField {
                path: path.clone(),
                field: "NoNewPrivs",
            })?;
        threads.push(ThreadSandboxStatus {
            tid,
            seccomp,
            no_new_privs: no_new_privs == 1,
        });
    }
    threads.sort_by_key(|t| t.tid);
    Ok(threads)
}

/// The small number on a `Name:\tvalue` line of a status file.
fn status_field(text: &str, name: &str) -> Option<u8> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key == name {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// The outcome of one attempted forbidden call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The system call attempted.
    pub syscall: &'static str,
    /// It failed with `EPERM` (or, for a spawn, could not start the program).
    pub refused: bool,
    /// How it was attempted and what happened.
    pub detail: String,
}

/// After [`install`]: try each forbidden operation that safe Rust can attempt
/// and report whether it was refused. Used by `airlock-proposer
/// sandbox-check`.
///
/// Every attempt is harmless even without the sandbox (empty paths, a pid
/// that cannot exist, zero-length copies, a query-only `personality`, an
/// `unshare` with no flags), so running it unsandboxed — as the tests'
/// control case does — changes nothing: an allowed call fails with its
/// ordinary error (`ENOENT`, `ESRCH`, …) or is a no-op. The one exception is
/// the `std::process::Command` probe, which, unsandboxed, runs `/bin/true`.
/// Calls with no safe wrapper (`bpf`, `kexec_*`, `keyctl`, `perf_event_open`,
/// `userfaultfd`, `io_uring_*`, swap, `reboot`, `syslog`, the new mount API)
/// are not attempted; the filter's own tests cover them.
pub fn self_check() -> Vec<CheckResult> {
    use nix::fcntl::{AT_FDCWD, AtFlags};
    use nix::kmod::{DeleteModuleFlags, ModuleInitFlags};
    use nix::mount::{MntFlags, MsFlags};
    use nix::sched::CloneFlags;
    use nix::unistd::Pid;

    const ARGV: [&CStr; 1] = [c"airlock-sandbox-check"];
    const ENVP: [&CStr; 0] = [];

    let mut results = vec![spawn_check(), execve_in_new_thread()];
    results.push(judge(
        "execveat",
        "execveat(AT_FDCWD, \"\", no AT_EMPTY_PATH)",
        nix::unistd::execveat(AT_FDCWD, c"", &ARGV, &ENVP, AtFlags::empty()),
    ));
    results.push(judge(
        "ptrace",
        "PTRACE_ATTACH to a pid above pid_max",
        nix::sys::ptrace::attach(Pid::from_raw(i32::MAX)),
    ));
    results.push(judge(
        "process_vm_readv",
        "zero-length read of this process",
        nix::sys::uio::process_vm_readv(Pid::this(), &mut [], &[]),
    ));
    results.push(judge(
        "process_vm_writev",
        "zero-length write to this process",
        nix::sys::uio::process_vm_writev(Pid::this(), &[], &[]),
    ));
    results.push(judge(
        "mount",
        "mount onto an empty path",
        nix::mount::mount(
            None::<&str>,
            "",
            None::<&str>,
            MsFlags::empty(),
            None::<&str>,
        ),
    ));
    results.push(judge(
        "umount2",
        "umount2 of an empty path",
        nix::mount::umount2("", MntFlags::empty()),
    ));
    results.push(judge(
        "pivot_root",
        "pivot_root to empty paths",
        nix::unistd::pivot_root("", ""),
    ));
    results.push(judge(
        "chroot",
        "chroot to an empty path",
        nix::unistd::chroot(""),
    ));
    results.push(judge(
        "personality",
        "query only (0xffffffff)",
        nix::sys::personality::get(),
    ));
    results.push(judge(
        "unshare",
        "no flags (a no-op if allowed)",
        nix::sched::unshare(CloneFlags::empty()),
    ));
    results.push(judge(
        "init_module",
        "an empty module image",
        nix::kmod::init_module(&[], c""),
    ));
    results.push(judge(
        "delete_module",
        "a module that does not exist",
        nix::kmod::delete_module(
            c"airlock_sandbox_check_absent",
            DeleteModuleFlags::O_NONBLOCK,
        ),
    ));
    results.push(judge(
        "acct",
        "accounting to an empty path",
        nix::unistd::acct::enable(""),
    ));
    results.push(judge(
        "kill",
        "signal 0 (existence check only) to the parent process",
        nix::sys::signal::kill(nix::unistd::getppid(), None),
    ));
    match std::io::pipe() {
        Ok((reader, _writer)) => {
            results.push(judge(
                "setns",
                "on a pipe (not a namespace)",
                nix::sched::setns(&reader, CloneFlags::empty()),
            ));
            results.push(judge(
                "finit_module",
                "from a pipe (not a module file)",
                nix::kmod::finit_module(&reader, c"", ModuleInitFlags::empty()),
            ));
        }
        Err(e) => {
            for syscall in ["setns", "finit_module"] {
                results.push(CheckResult {
                    syscall,
                    refused: false,
                    detail: format!("not attempted: cannot create a pipe: {e}"),
                });
            }
        }
    }
    results
}

/// Judges a nix call: `EPERM` is a refusal; any other outcome reached the
/// kernel's implementation.
fn judge<T>(syscall: &'static str, how: &str, result: nix::Result<T>) -> CheckResult {
    let (refused, outcome) = match result {
        Err(Errno::EPERM) => (true, "refused with EPERM".to_string()),
        Err(errno) => (false, format!("reached the kernel: {errno}")),
        Ok(_) => (false, "succeeded".to_string()),
    };
    CheckResult {
        syscall,
        refused,
        detail: format!("{how}: {outcome}"),
    }
}

/// `execve` the way the standard library starts programs.
// The proposer's clippy.toml may ban `Command`; starting one is the point here.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
fn spawn_check() -> CheckResult {
    use std::process::{Command, Stdio};
    let how = "std::process::Command(\"/bin/true\")";
    let (refused, outcome) = match Command::new("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => (true, "refused with EPERM".to_string()),
        // Landlock (no execute right anywhere) refuses it before seccomp sees it.
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => (
            true,
            "refused with EACCES (the file sandbox allows no execution)".to_string(),
        ),
        Err(e) => (false, format!("failed, but not with EPERM: {e}")),
        Ok(status) => (false, format!("ran the program ({status})")),
    };
    CheckResult {
        syscall: "execve",
        refused,
        detail: format!("{how}: {outcome}"),
    }
}

/// `execve` from a thread started after the filter went on (which also
/// shows that new threads can still be started).
fn execve_in_new_thread() -> CheckResult {
    let how = "execve(\"\") from a newly started thread";
    let spawned = std::thread::Builder::new()
        .name("sandbox-check".to_string())
        .spawn(|| {
            let argv: [&CStr; 1] = [c"airlock-sandbox-check"];
            let envp: [&CStr; 0] = [];
            nix::unistd::execve(c"", &argv, &envp)
        });
    let failure = |detail: String| CheckResult {
        syscall: "execve",
        refused: false,
        detail,
    };
    match spawned {
        Err(e) => failure(format!("{how}: cannot start a thread: {e}")),
        Ok(handle) => match handle.join() {
            Ok(result) => judge("execve", how, result),
            Err(_) => failure(format!("{how}: the thread panicked")),
        },
    }
}

// ---------------------------------------------------------------------------
// Non-dumpable

/// Clear the dumpable flag (as the executor does): no core dumps, and a
/// same-user process can no longer ptrace the proposer or open its
/// `/proc/<pid>/mem` or `environ`, where the read credential lives.
pub fn make_non_dumpable() -> Result<(), SandboxError> {
    nix::sys::prctl::set_dumpable(false).map_err(SandboxError::Dumpable)
}

/// Whether the dumpable flag is clear.
pub fn is_non_dumpable() -> bool {
    matches!(nix::sys::prctl::get_dumpable(), Ok(false))
}

// ---------------------------------------------------------------------------
// Landlock

/// The Landlock ABI whose file rights and scopes the proposer handles
/// (Linux 6.12+). It was tested on a kernel with ABI 7; rights of later ABIs
/// are not requested until they are tested (the crate's advice).
pub const LANDLOCK_ABI: landlock::ABI = landlock::ABI::V6;

/// One path the proposer may still read after start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRule {
    /// The path as resolved when the sandbox goes on (rules bind to the
    /// file or directory it names then).
    pub path: PathBuf,
    /// A directory: every file beneath it may be read (`beneath`), and with
    /// `list` its entries may be listed too. Otherwise one file.
    pub beneath: bool,
    pub list: bool,
    /// Why the proposer reads it.
    pub why: &'static str,
}

/// Everything the proposer may read after start-up; it may write nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilePolicy {
    pub rules: Vec<ReadRule>,
}

/// Files read by name resolution (getaddrinfo) when a source's host is a
/// name rather than an address.
const NAME_RESOLUTION_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ld.so.cache",
];

/// Where the system's trusted certificate authorities live: read when the
/// proposer fetches an issuer's keys over https (`session_auth`).
const TLS_ROOT_DIRS: &[&str] = &[
    "/etc/ssl",
    "/etc/pki",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
];

/// Where the C library loads name-service modules (`libnss_*.so`) from.
const LIBRARY_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"];

impl FilePolicy {
    /// The proposer's read list: the directory of each SQLite source file
    /// (SQLite opens `<db>-journal`, `<db>-wal` and `<db>-shm` next to it,
    /// files that come and go, and Landlock can only name what exists), its
    /// own `/proc/<pid>` (the seccomp install reads its threads' status),
    /// name-resolution files and library directories (for NSS modules), and
    /// `/dev/urandom` and `/dev/null`. Paths that do not exist are left out.
    pub fn for_proposer(sqlite_files: &[PathBuf]) -> Result<FilePolicy, SandboxError> {
        let mut policy = FilePolicy::default();
        for file in sqlite_files {
            // SQLite resolves symbolic links and puts its side files next to
            // the real file: allow the real file's directory.
            let real = std::fs::canonicalize(file).or_else(|_| {
                let parent = match file.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                std::fs::canonicalize(parent)
                    .map(|dir| dir.join(file.file_name().unwrap_or_default()))
            });
            let Ok(real) = real else {
                // Neither the file nor its directory exists: nothing to
                // allow; reads fail with SQLite's own "unable to open".
                continue;
            };
            match real.parent() {
                Some(dir) if dir != Path::new("/") => policy.push(
                    dir.to_path_buf(),
                    true,
                    false,
                    "a SQLite source's directory (the database and its -journal, -wal, -shm files)",
                ),
                _ => return Err(SandboxError::SqliteInRoot { path: file.clone() }),
            }
        }
        let own_proc = std::fs::canonicalize("/proc/self").map_err(|e| SandboxError::Proc {
            path: PathBuf::from("/proc/self"),
            source: e,
        })?;
        policy.push(
            own_proc,
            true,
            true,
            "this process's own /proc entries (thread status for the seccomp check)",
        );
        for file in NAME_RESOLUTION_FILES {
            let path = Path::new(file);
            if !path.exists() {
                continue;
            }
            policy.push(path.to_path_buf(), false, false, "name resolution");
            // A symbolic link (e.g. resolv.conf managed by systemd-resolved)
            // whose target is replaced by a rename: allow its directory.
            if path.is_symlink()
                && let Ok(target) = std::fs::canonicalize(path)
                && let Some(dir) = target.parent()
                && dir != Path::new("/")
                && !dir.starts_with("/proc")
            {
                policy.push(
                    dir.to_path_buf(),
                    true,
                    false,
                    "name resolution (link target)",
                );
            }
        }
        for dir in LIBRARY_DIRS {
            if let Ok(real) = std::fs::canonicalize(dir) {
                policy.push(real, true, false, "shared libraries (name-service modules)");
            }
        }
        for device in ["/dev/urandom", "/dev/null"] {
            if Path::new(device).exists() {
                policy.push(
                    PathBuf::from(device),
                    false,
                    false,
                    "randomness and the null device",
                );
            }
        }
        Ok(policy)
    }

    /// Add the certificate-authority directories (for the JWKS fetch of
    /// `session_auth`; without it the proposer makes no https request).
    pub fn with_tls_roots(mut self) -> FilePolicy {
        for dir in TLS_ROOT_DIRS {
            if let Ok(real) = std::fs::canonicalize(dir) {
                self.push(
                    real,
                    true,
                    false,
                    "certificate authorities (the issuer's JWKS over https)",
                );
            }
        }
        self
    }

    fn push(&mut self, path: PathBuf, beneath: bool, list: bool, why: &'static str) {
        if !self.rules.iter().any(|r| r.path == path) {
            self.rules.push(ReadRule {
                path,
                beneath,
                list,
                why,
            });
        }
    }
}

/// How much of the Landlock sandbox the kernel enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSandbox {
    /// Every requested right and scope is enforced.
    Full,
    /// Landlock is on, but the kernel lacks some of [`LANDLOCK_ABI`]'s rights
    /// or scopes.
    Partial { kernel: String },
    /// Landlock is not available (not built in, or not enabled at boot).
    Absent { kernel: String },
}

impl FileSandbox {
    fn describe(&self) -> String {
        match self {
            FileSandbox::Full => "the Landlock file sandbox is fully enforced".to_owned(),
            FileSandbox::Partial { kernel } => format!(
                "the kernel enforces the Landlock file sandbox only in part ({kernel}; the proposer needs ABI {})",
                LANDLOCK_ABI as u32
            ),
            FileSandbox::Absent { kernel } => {
                format!("the kernel has no usable Landlock ({kernel})")
            }
        }
    }
}

/// Whether the proposer may serve with the file sandbox it got: `Ok(None)`
/// when fully enforced; `Ok(Some(warning))` when weaker but
/// `--allow-weaker-sandbox` was given (the caller logs it as an error);
/// otherwise the refusal.
pub fn judge_file_sandbox(
    got: &FileSandbox,
    allow_weaker: bool,
) -> Result<Option<String>, SandboxError> {
    match (got, allow_weaker) {
        (FileSandbox::Full, _) => Ok(None),
        (weaker, true) => Ok(Some(format!(
            "WEAKER SANDBOX (--allow-weaker-sandbox): {}; code running inside this proposer may be able to open other processes' /proc/<pid>/mem and environ and to write files. Use a kernel with Landlock ABI {} or newer",
            weaker.describe(),
            LANDLOCK_ABI as u32
        ))),
        (weaker, false) => Err(SandboxError::WeakerSandbox {
            detail: weaker.describe(),
        }),
    }
}

/// Restrict the process's file access to `policy` (reads only) and scope
/// its signals and abstract Unix sockets, with Landlock. Must be called while
/// the process has a single thread: Landlock restricts the calling thread
/// and the threads it starts later, nothing else. Irreversible.
pub fn restrict_files(policy: &FilePolicy) -> Result<FileSandbox, SandboxError> {
    use landlock::{
        Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, Scope,
    };

    let threads = thread_status()?.len();
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded(threads));
    }
    let abi = LANDLOCK_ABI;
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(SandboxError::Landlock)?;
    for rule in &policy.rules {
        let access: BitFlags<AccessFs> = if rule.list {
            AccessFs::ReadFile | AccessFs::ReadDir
        } else {
            AccessFs::ReadFile.into()
        };
        let fd = PathFd::new(&rule.path).map_err(|e| SandboxError::ReadPath {
            path: rule.path.clone(),
            reason: e.to_string(),
        })?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(SandboxError::Landlock)?;
    }
    let status = ruleset.restrict_self().map_err(SandboxError::Landlock)?;
    let kernel = match status.landlock {
        landlock::LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => format!(
            "kernel Landlock ABI {}",
            kernel_abi.map_or_else(|| effective_abi.to_string(), |k| k.to_string())
        ),
        landlock::LandlockStatus::NotEnabled => {
            "Landlock is built in but not enabled: add `landlock` to the lsm= boot parameter"
                .to_owned()
        }
        landlock::LandlockStatus::NotImplemented => {
            "the kernel is built without Landlock".to_owned()
        }
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => FileSandbox::Full,
        RulesetStatus::PartiallyEnforced => FileSandbox::Partial { kernel },
        RulesetStatus::NotEnforced => FileSandbox::Absent { kernel },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fully_enforced_file_sandbox_starts_with_or_without_the_flag() {
        assert_eq!(judge_file_sandbox(&FileSandbox::Full, false).unwrap(), None);
        assert_eq!(judge_file_sandbox(&FileSandbox::Full, true).unwrap(), None);
    }

    #[test]
    fn a_weaker_or_missing_file_sandbox_refuses_to_start_unless_allowed() {
        let cases = [
            FileSandbox::Partial {
                kernel: "kernel Landlock ABI 3".to_owned(),
            },
            FileSandbox::Absent {
                kernel: "the kernel is built without Landlock".to_owned(),
            },
        ];
        for got in cases {
            let refusal = judge_file_sandbox(&got, false).unwrap_err().to_string();
            assert!(refusal.starts_with("refusing to start: "), "{refusal}");
            assert!(refusal.contains("--allow-weaker-sandbox"), "{refusal}");
            assert!(refusal.contains("/proc/<pid>/mem"), "{refusal}");
            assert!(refusal.contains("ABI 6"), "{refusal}");
            let kernel = match &got {
                FileSandbox::Partial { kernel } | FileSandbox::Absent { kernel } => kernel,
                FileSandbox::Full => unreachable!(),
            };
            assert!(refusal.contains(kernel.as_str()), "{refusal}");

            let warning = judge_file_sandbox(&got, true).unwrap().unwrap();
            assert!(warning.starts_with("WEAKER SANDBOX"), "{warning}");
            assert!(warning.contains(kernel.as_str()), "{warning}");
        }
    }

    #[test]
    fn the_read_list_names_the_sqlite_directory_and_nothing_writable() {
        let dir = tempfile_dir();
        let db = dir.join("source.db");
        std::fs::write(&db, b"").unwrap();
        let policy = FilePolicy::for_proposer(std::slice::from_ref(&db)).unwrap();
        let real_dir = std::fs::canonicalize(&dir).unwrap();
        let rule = policy
            .rules
            .iter()
            .find(|r| r.path == real_dir)
            .expect("the SQLite directory is readable");
        assert!(rule.beneath && !rule.list);
        // Its own /proc/<pid>, not /proc.
        let own = PathBuf::from(format!("/proc/{}", std::process::id()));
        assert!(policy.rules.iter().any(|r| r.path == own));
        assert!(!policy.rules.iter().any(|r| r.path == Path::new("/proc")));
        assert!(!policy.rules.iter().any(|r| r.path == Path::new("/")));
        // A file that does not exist yet still allows its directory.
        let later = FilePolicy::for_proposer(&[dir.join("later.db")]).unwrap();
        assert!(later.rules.iter().any(|r| r.path == real_dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sqlite_file_directly_in_the_root_is_refused() {
        let err = FilePolicy::for_proposer(&[PathBuf::from("/airlock-test-absent.db")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lies directly in `/`"), "{err}");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "airlock-sandbox-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
