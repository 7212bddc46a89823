"""The operating-system walls of the grader's sandboxed child (Linux): namespaces, mounts, a syscall filter, limits.

Used by :mod:`course_lib.grading.child` before any student code runs, in this order: new network, mount and IPC
namespaces; the hidden paths covered (folders by an empty mode-000 tmpfs, files by an empty mode-000 file); every
mount read-only; fresh private ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (they vanish with the namespace); the run's
own folder bound at ``/tmp/work``, the one writable place; resource limits; ``PR_SET_NO_NEW_PRIVS`` and a seccomp
filter that refuses to create sockets (so no Unix socket or network address can be reached, with or without root);
then the drop to the run's unprivileged uid. Each step that fails raises :class:`ConfineError`: the child then stops
before running anything (it fails closed).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import struct

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
WORK = "/tmp/work"
"""Where the run's folder appears inside the sandbox (root mode)."""


class ConfineError(RuntimeError):
    """A wall could not be put up; the child must not run student code."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise ConfineError(f"{what}: {os.strerror(code)} (errno {code})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None, what: str) -> None:
    enc = (lambda s: None if s is None else s.encode())
    _check(_libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), what)


def new_namespaces() -> None:
    """New network (no interface but a down loopback), mount and System V IPC namespaces, mounts private."""
    _check(_libc().unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC), "unshare(network, mount, IPC)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None, "making mounts private")


def hide(paths: list[str], empty_file: str) -> None:
    """Cover each existing path: a folder by an empty, unreadable tmpfs, a file by ``empty_file`` (mode 000)."""
    for path in paths:
        if not os.path.lexists(path) or os.path.islink(path):
            continue  # a mount would follow a link; its target is hidden (or not) on its own
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=000",
                   f"hiding {path}")
        else:
            _mount(empty_file, path, None, MS_BIND, None, f"hiding {path}")


def _mount_points() -> list[tuple[str, int]]:
    """(mount point, per-mount flags to keep) of every mount this namespace sees, outermost first."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space, etc.
            flags = 0
            for option in fields[5].split(","):
                flags |= _MOUNT_FLAGS.get(option, 0)
            points.append((point, flags))
    return sorted(points, key=lambda p: p[0].count("/"))


def read_only_everything() -> None:
    """Remount every mount read-only in this namespace (a bind remount: other namespaces keep theirs)."""
    for point, flags in _mount_points():
        result = _libc().mount(None, point.encode(), None,
                               ctypes.c_ulong(MS_REMOUNT | MS_BIND | MS_RDONLY | flags), None)
        if result != 0:
            code = ctypes.get_errno()
            if point.startswith(("/proc/", "/sys/")) or code in (errno.ENOENT, errno.EACCES):
                continue  # kernel-internal subtrees (already guarded) or a point hidden under another mount
            raise ConfineError(f"making {point} read-only: {os.strerror(code)}")


def private_tmp(work_fd: int, uid: int, size_mb: int) -> str:
    """Fresh tmpfs over /tmp, /var/tmp and /dev/shm; the run's folder (open as ``work_fd``) bound at :data:`WORK`."""
    for path in PRIVATE_TMP:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=1777", f"private {path}")
    os.mkdir(WORK, 0o700)
    os.chown(WORK, uid, uid)
    _mount(f"/proc/self/fd/{work_fd}", WORK, None, MS_BIND, None, "binding the run's folder")
    _mount(None, WORK, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, None,  # a bind copies read-only: undo
           "making the run's folder writable")
    return WORK


def set_limits(cpu_s: int, memory_bytes: int, file_bytes: int, open_files: int, processes: int) -> None:
    """Per-process limits: CPU seconds, address space, file size, open files, processes (per uid), no core dumps."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


# ---- seccomp: no sockets -------------------------------------------------------------------------------------

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
_ARCH = {  # machine -> (AUDIT_ARCH, socket, io_uring_setup)
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}
_RET_ALLOW, _RET_KILL, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def deny_sockets() -> None:
    """Set ``PR_SET_NO_NEW_PRIVS`` (no setuid program can raise privileges again) and install a seccomp filter:
    ``socket()`` and ``io_uring_setup()`` fail with EACCES (no network, no Unix socket, however reached), and a
    system call of another architecture (x32, 32-bit) kills the process. Works without root."""
    arch = _ARCH.get(platform.machine())
    if arch is None:
        raise ConfineError(f"no socket filter for the {platform.machine()} architecture")
    audit_arch, nr_socket, nr_uring = arch
    deny = _RET_ERRNO | errno.EACCES
    program = b"".join([
        _bpf(_LD_W_ABS, 0, 0, 4),                 # 0: arch
        _bpf(_JEQ_K, 1, 0, audit_arch),            # 1: native? skip the kill
        _bpf(_RET_K, 0, 0, _RET_KILL),             # 2
        _bpf(_LD_W_ABS, 0, 0, 0),                  # 3: syscall number
        _bpf(_JGE_K, 0, 1, 0x40000000),            # 4: x32 ABI numbers
        _bpf(_RET_K, 0, 0, _RET_KILL),             # 5
        _bpf(_JEQ_K, 0, 1, nr_socket),             # 6
        _bpf(_RET_K, 0, 0, deny),                  # 7
        _bpf(_JEQ_K, 0, 1, nr_uring),              # 8
        _bpf(_RET_K, 0, 0, deny),                  # 9
        _bpf(_RET_K, 0, 0, _RET_ALLOW),            # 10
    ])
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = _libc()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp filter")


def drop_capabilities() -> None:
    """Give up every capability this process holds (without root: e.g. an ambient ``CAP_DAC_READ_SEARCH`` that let
    the grader read its interpreter's folder); any process can do this for itself."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = _libc()
    _check(libc.prctl(47, 4, 0, 0, 0), "clearing ambient capabilities")  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "dropping capabilities")


def drop(uid: int) -> None:
    """Become ``uid`` (and gid ``uid``, no supplementary groups) for good; checked."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:
        raise ConfineError("the privilege drop did not hold")
