"""The system-call allow-list of every sandboxed process: a seccomp-bpf program built with libseccomp.

    fd = program_fd()          # a pipe holding the compiled BPF program, for bwrap's ``--seccomp FD``

bwrap loads the program after it has built the sandbox (mounts, namespaces, capabilities) and
just before it executes the job's interpreter, so the filter never has to allow bwrap's own
set-up, and nothing the job starts can shed it (filters are inherited and cannot be removed).

**Default action: kill the process** (``SECCOMP_RET_KILL_PROCESS``, the job ends with SIGSYS).
Everything a data job, NumPy, pandas, PyTorch and the platform's DP trainer do is in
:data:`FAMILIES` (checked by running them under the filter, see ``tests/isolation``); a call
outside it is an attack or a bug, and either way the run should stop rather than go on with an
error path the job's author chose. Two answers are softer, each for a reason:

- ``clone3`` answers ``ENOSYS``: its flags live in memory, which a filter cannot read, so it
  cannot be checked for namespace flags; glibc then falls back to ``clone``, whose flags are a
  register and are checked (no ``CLONE_NEW*``).
- the identity calls (``setuid`` … ``setgroups``) answer ``EPERM``, what the kernel answers an
  unprivileged process anyway: CPython's ``os.setuid``/``subprocess(user=...)`` and libraries
  that drop privileges defensively then fail as ordinary Python errors.

Only the native architecture's calling convention is allowed: a 64-bit x86 process can still
enter the kernel through the i386 (``int 0x80``) and x32 conventions, with other system-call
numbers, and every such entry kills the process (libseccomp's bad-architecture action, and its
x32 check on x86-64).

Built once per process and kept in memory (:func:`bpf_program`); each run gets a fresh pipe
holding the bytes. A cached copy on disk would be one more file whose tampering disables the
filter, and building costs a few milliseconds once per process.

Errors: :class:`~sandbox.errors.SandboxError` when libseccomp or ``pyseccomp`` is missing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import tempfile
import threading
from dataclasses import dataclass

from ..errors import SandboxError

__all__ = ["DENIED_EXAMPLES", "FAMILIES", "Family", "bpf_program", "policy_sha256", "program_fd"]


@dataclass(frozen=True)
class Family:
    """A group of system calls allowed for one reason."""

    name: str
    why: str
    syscalls: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family("memory", "the allocator, the interpreter, NumPy and PyTorch map, grow and protect memory", (
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "membarrier",
        "get_mempolicy", "set_mempolicy", "mbind")),
    Family("file I/O", "reading the job's files and the Python install, writing /out and /tmp", (
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
        "lseek", "close", "close_range", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fsync",
        "fdatasync", "sync", "syncfs", "sync_file_range", "ftruncate", "truncate", "fallocate", "sendfile",
        "copy_file_range", "splice", "tee", "fadvise64", "readahead")),
    Family("file names", "opening, listing and managing files; the mount namespace decides what exists", (
        "open", "openat", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
        "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
        "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "unlink",
        "unlinkat", "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat", "chmod", "fchmod",
        "fchmodat", "chown", "fchown", "fchownat", "lchown", "utime", "utimes", "utimensat", "futimesat",
        "umask", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr",
        "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr")),
    Family("waiting", "select/poll/epoll for the broker socket and pipes; event, timer and inotify "
           "descriptors (inotify sees only the sandbox's own tree)", (
        "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
        "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
        "timerfd_settime", "timerfd_gettime", "inotify_init", "inotify_init1", "inotify_add_watch",
        "inotify_rm_watch")),
    Family("time", "clocks, sleeps and interval timers", (
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "times",
        "getitimer", "setitimer", "alarm", "timer_create", "timer_settime", "timer_gettime",
        "timer_getoverrun", "timer_delete")),
    Family("signals", "Python's signal handling, thread wake-ups and killing the job's own children", (
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend",
        "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill", "tgkill", "tkill", "pause")),
    Family("processes and threads", "threads (OpenMP, BLAS, PyTorch), subprocess and multiprocessing; "
           "clone is allowed only without namespace flags (see the conditional rules)", (
        "fork", "vfork", "execve", "exit", "exit_group", "wait4", "waitid", "set_tid_address",
        "set_robust_list", "get_robust_list", "futex", "futex_waitv", "rseq", "arch_prctl", "sched_yield",
        "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler", "sched_setscheduler",
        "sched_setparam", "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
        "sched_getattr", "getpriority", "setpriority", "setsid", "setpgid", "getpgid", "getpgrp", "getsid",
        "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
        "getresgid", "capget", "uname", "sysinfo", "getrlimit", "setrlimit", "prlimit64", "getrusage",
        "getcpu", "pidfd_open", "pidfd_send_signal", "restart_syscall")),
    Family("sockets", "the broker socket (fd 3) and local sockets; the network namespace has only an "
           "empty loopback, and socket() is limited to the families in the conditional rules", (
        "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg",
        "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername", "getsockopt", "setsockopt")),
    Family("shared memory", "multiprocessing and PyTorch share memory between the job's own processes; "
           "System V IPC is private to the sandbox's IPC namespace", (
        "memfd_create", "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl")),
    Family("randomness", "os.urandom, secrets, hash seeds", ("getrandom",)),
)

# Flags of clone() that create namespaces; clone3's flags cannot be read by a filter (see above).
_CLONE_NEW_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                    | 0x40000000)  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK = 1, 2, 10, 16
_NETLINK_ROUTE = 0
_LOW32 = 0xFFFFFFFF  # int/unsigned int arguments: the kernel reads only the low 32 bits of the register

#: ioctl requests a job needs: isatty/terminal size (Python's stdio set-up), non-blocking and
#: close-on-exec flags (socket.setblocking, os.set_inheritable), bytes waiting (FIONREAD).
#: TIOCSTI and everything else that acts on a terminal or a device is absent.
IOCTL_REQUESTS = {"TCGETS": 0x5401, "TIOCGWINSZ": 0x5413, "TIOCGPGRP": 0x540F, "FIONREAD": 0x541B,
                  "FIONBIO": 0x5421, "FIONCLEX": 0x5450, "FIOCLEX": 0x5451}
#: prctl options: thread names (PyTorch, OpenMP), the parent-death signal (multiprocessing) and
#: reading the process's own security state. Not PR_SET_MM, PR_SET_PTRACER, PR_SET_SECCOMP...
PRCTL_OPTIONS = {"PR_SET_PDEATHSIG": 1, "PR_GET_PDEATHSIG": 2, "PR_GET_DUMPABLE": 3, "PR_SET_NAME": 15,
                 "PR_GET_NAME": 16, "PR_GET_SECCOMP": 21, "PR_CAPBSET_READ": 23, "PR_GET_TIMERSLACK": 30,
                 "PR_GET_NO_NEW_PRIVS": 39, "PR_GET_THP_DISABLE": 42, "PR_SET_VMA": 0x53564D41}

#: System calls that are NOT allowed (the default action kills), named here because jobs are
#: known to try them: key rings, tracing, namespaces and mounts, BPF, perf, io_uring,
#: userfaultfd, modules and kexec, reading other processes' memory, execution domains.
DENIED_EXAMPLES: tuple[str, ...] = (
    "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsmount", "fspick",
    "mount_setattr", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "iopl", "ioperm", "modify_ldt", "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl",
    "name_to_handle_at", "open_by_handle_at", "pidfd_getfd", "kcmp", "seccomp", "execveat", "uselib",
    "lookup_dcookie", "fanotify_init", "mq_open", "vmsplice", "landlock_create_ruleset",
)

_IDENTITY = ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid",
             "setfsgid")


@dataclass(frozen=True)
class _Rule:
    action: str  # "allow" | "ENOSYS" | "EPERM"
    syscall: str
    args: tuple[tuple[int, int, int], ...] = ()  # (argument, mask, value): (arg & mask) == value


def _conditional() -> tuple[_Rule, ...]:
    rules = [
        _Rule("allow", "clone", ((0, _CLONE_NEW_FLAGS, 0),)),
        _Rule("ENOSYS", "clone3"),
        _Rule("allow", "socket", ((0, _LOW32, _AF_UNIX),)),
        _Rule("allow", "socket", ((0, _LOW32, _AF_INET),)),
        _Rule("allow", "socket", ((0, _LOW32, _AF_INET6),)),
        _Rule("allow", "socket", ((0, _LOW32, _AF_NETLINK), (2, _LOW32, _NETLINK_ROUTE))),
        _Rule("allow", "socketpair", ((0, _LOW32, _AF_UNIX),)),
        # the current persona (query) and plain Linux only: no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...
        _Rule("allow", "personality", ((0, _LOW32, 0xFFFFFFFF),)),
        _Rule("allow", "personality", ((0, _LOW32, 0),)),
    ]
    rules += [_Rule("allow", "ioctl", ((1, _LOW32, req),)) for req in IOCTL_REQUESTS.values()]
    rules += [_Rule("allow", "prctl", ((0, _LOW32, opt),)) for opt in PRCTL_OPTIONS.values()]
    rules += [_Rule("EPERM", name) for name in _IDENTITY]
    return tuple(rules)


CONDITIONAL: tuple[_Rule, ...] = _conditional()


def policy_sha256() -> str:
    """A digest of the whole policy (what the tests and the benchmark name it by)."""
    text = repr((FAMILIES, CONDITIONAL, platform.machine()))
    return hashlib.sha256(text.encode()).hexdigest()


_lock = threading.Lock()
_program: bytes | None = None


def _compile() -> bytes:
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: pyseccomp found no libseccomp
        raise SandboxError("seccomp is unavailable: apt-get install libseccomp2 and pip install pyseccomp "
                           f"({type(exc).__name__})") from exc
    actions = {"allow": sc.ALLOW, "ENOSYS": sc.ERRNO(errno.ENOSYS), "EPERM": sc.ERRNO(errno.EPERM)}
    flt = sc.SyscallFilter(sc.KILL_PROCESS)
    # Any other calling convention (i386 int 0x80, x32 on x86-64) kills the process as well.
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    try:
        flt.set_attr(sc.Attr.CTL_OPTIMIZE, 2)  # a binary tree of syscall numbers, not a linear scan
    except OSError:
        pass  # older libseccomp: a linear filter is as correct, only slower to evaluate
    arch = sc.system_arch()
    for family in FAMILIES:
        for name in family.syscalls:
            nr = sc.resolve_syscall(arch, name)
            if nr >= 0:  # negative: the architecture has no such call (e.g. `open` on aarch64)
                flt.add_rule(sc.ALLOW, nr)
    for rule in CONDITIONAL:
        nr = sc.resolve_syscall(arch, rule.syscall)
        if nr < 0:
            continue
        flt.add_rule(actions[rule.action], nr, *(sc.Arg(a, sc.MASKED_EQ, mask, value) for a, mask, value in rule.args))
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        program = f.read()
    if not program or len(program) % 8:
        raise SandboxError("libseccomp produced no usable filter program")
    return program


def bpf_program() -> bytes:
    """The compiled filter (struct sock_filter[]), built on the first call of this process."""
    global _program
    with _lock:
        if _program is None:
            _program = _compile()
        return _program


def program_fd() -> int:
    """A fresh pipe's read end holding the program (bwrap reads it to EOF); the caller closes it."""
    program = bpf_program()
    r, w = os.pipe()
    try:
        if len(program) > 65536:  # the pipe's buffer: beyond it this write would block
            raise SandboxError("the seccomp program is larger than a pipe can hold")
        os.write(w, program)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r
