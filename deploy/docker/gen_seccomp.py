#!/usr/bin/env python3
"""Writes seccomp.json: Docker's default profile (moby profiles/seccomp/default.json, commit
00f3d189e420) plus the system calls executord's sandboxes need, minus the entries they
supersede. Run it again after editing EXECUTORD below; the test suite checks the result."""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
# Derived from the code (sandbox/*.c, pool_zygote.py) and confirmed with `strace -f -c` of
# ephemeral, pool and allow_network jobs: the only calls the service makes that Docker's
# default profile refuses without CAP_SYS_ADMIN.
EXECUTORD = {
    "names": ["clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "mount_setattr",
              "sethostname", "setdomainname"],
    "action": "SCMP_ACT_ALLOW",
    "comment": "executord: user/PID/mount/IPC/UTS/net/cgroup namespaces (clone, clone3 with "
               "CLONE_PIDFD/CLONE_INTO_CGROUP, unshare(CLONE_NEWCGROUP)), the sandbox root "
               "(mount, mount_setattr, pivot_root, umount2 of the old root), its hostname",
}

def main():
    base = json.loads((HERE / "moby-default.json").read_text())
    out = []
    for e in base["syscalls"]:
        # Superseded by the unconditional allow above: clone filtered on namespace flags,
        # clone3 answered ENOSYS when CAP_SYS_ADMIN is absent.
        if e["names"] == ["clone"] and "args" in e:
            continue
        if e["names"] == ["clone3"] and e["action"] == "SCMP_ACT_ERRNO":
            continue
        out.append(e)
    out.append(EXECUTORD)
    base["syscalls"] = out
    (HERE / "seccomp.json").write_text(json.dumps(base, indent="\t") + "\n")

if __name__ == "__main__":
    main()
