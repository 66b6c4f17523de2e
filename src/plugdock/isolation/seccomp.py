"""The system calls a plugin process may not make: a seccomp filter bubblewrap loads.

The filter is built by libseccomp (through ``pyseccomp``), never assembled by hand, and
exported as BPF to a memory file that bubblewrap reads from ``--seccomp FD`` and loads
just before it executes the plugin's Python (after it has made the sandbox's namespaces).
Everything not listed is allowed; a listed call fails with ``EPERM`` (``clone3`` with
``ENOSYS``, so the C library falls back to ``clone``, whose flags the filter can read).

What it refuses is what a web backend never needs and what widens the kernel's attack
surface even without capabilities: mounting, tracing other processes or reading their
memory, the kernel keyrings, BPF, perf events, new namespaces (no user namespace inside
the sandbox), kernel modules, kexec, reboot, swap, process accounting, quotas, file
handles, ``userfaultfd``, ``io_uring``, changing the execution domain, and the clock, host
name and kernel log. System calls of another architecture (32-bit ``int 0x80`` on x86-64)
kill the process.
"""

from __future__ import annotations

import errno
import os

# Refused outright (EPERM). Names libseccomp does not know on this architecture are skipped.
DENIED = (
    # mounting and the new mount API
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # the kernel keyrings
    "add_key",
    "request_key",
    "keyctl",
    # BPF and perf events
    "bpf",
    "perf_event_open",
    # namespaces: the sandbox's are made before the filter is loaded
    "unshare",
    "setns",
    # the kernel itself
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "sethostname",
    "setdomainname",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "vhangup",
    "nfsservctl",
    "uselib",
    "_sysctl",
    "fanotify_init",
    # files by handle (a way around the mount namespace), page-fault handling, io_uring
    # (its operations are not seen by seccomp)
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

# clone(2) flags that make a namespace (linux/sched.h): clone with any of them is refused.
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
# personality(2) with this argument only asks for the current one; any other value is refused
# (no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC ...; the domain is PER_LINUX already).
PERSONALITY_QUERY = 0xFFFFFFFF


def bpf_program() -> bytes:
    """The filter as BPF bytes, as ``bwrap --seccomp`` reads it."""
    import pyseccomp as seccomp

    deny = seccomp.ERRNO(errno.EPERM)
    native = seccomp.system_arch()
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # A system call of another architecture (int 0x80 on x86-64) would pass every rule
    # written for this one's numbers: it ends the process instead.
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for name in DENIED:
        number = seccomp.resolve_syscall(native, name)
        if number >= 0:  # a negative number: not a system call of this architecture
            rules.add_rule(deny, number)
    for flag in NAMESPACE_FLAGS:  # several rules on one call: any that matches refuses it
        rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # its flags are behind a pointer
    rules.add_rule(deny, "personality", seccomp.Arg(0, seccomp.NE, PERSONALITY_QUERY))
    with os.fdopen(os.memfd_create("plugdock-seccomp-build", os.MFD_CLOEXEC), "w+b") as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


_PROGRAM: bytes | None = None


def program_fd() -> int:
    """A new descriptor (memory file, position 0) holding the filter, for ``--seccomp``.

    The caller passes it to bubblewrap and closes it. The program is built once.
    """
    global _PROGRAM
    if _PROGRAM is None:
        _PROGRAM = bpf_program()
    fd = os.memfd_create("plugdock-seccomp", os.MFD_CLOEXEC)
    os.write(fd, _PROGRAM)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
