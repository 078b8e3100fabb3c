"""The job cannot change its egress policy, on ephemeral and pool: `nft flush ruleset`
(the host's nft, visible in the sandbox) and a raw nfnetlink NFT_MSG_DELTABLE batch both
fail, and 10.9.0.1 stays refused afterwards. The same netlink probe run as root in a
scratch namespace deletes the table, so its refusal in the job means something."""

import json
import os
import subprocess

from conftest import tcp
from topology import FAR_PORT, PRIVATE, PUBLIC, run

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = "executord_egress"
NFT = "/usr/sbin/nft"


def test_netlink_probe_works_with_the_capability():
    ns = f"exd-t-nl-{os.getpid()}"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "netns", "exec", ns, NFT, f"add table inet {TABLE}")
        p = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c",
                            "import json, runpy, sys; m = runpy.run_path(sys.argv[1], run_name='probe');"
                            "print(json.dumps(m['main'](json.loads(sys.argv[2]))))",
                            os.path.join(HERE, "probe_job.py"),
                            json.dumps([{"op": "nft_deltable", "table": TABLE, "family": "inet"}])],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == ["ok"]
        assert TABLE not in run("ip", "netns", "exec", ns, NFT, "list tables")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_job_cannot_change_the_policy(service, backend):
    results = service.probe([
        {"op": "run", "argv": [NFT, "--version"]},
        {"op": "run", "argv": [NFT, "flush", "ruleset"]},
        {"op": "run", "argv": [NFT, f"delete table inet {TABLE}"]},
        {"op": "nft_deltable", "table": TABLE, "family": "inet"},
        tcp(PRIVATE, FAR_PORT),
        tcp(PUBLIC, FAR_PORT),
    ], backend)
    version, flush, delete, netlink, private, public = results
    # nft runs in the sandbox, so its failures below are refusals, not a missing tool.
    assert isinstance(version, dict) and version["rc"] == 0, version
    assert flush["rc"] != 0, f"nft flush ruleset succeeded as the job: {flush}"
    assert delete["rc"] != 0, f"nft delete table succeeded as the job: {delete}"
    assert netlink != "ok", "a raw NFT_MSG_DELTABLE succeeded as the job"
    assert netlink in ("EPERM", "EACCES", "EAFNOSUPPORT", "EPROTONOSUPPORT", "ENOSYS"), netlink
    assert not private.startswith("ok"), f"{PRIVATE} reachable after the attempts: {private}"
    assert public == f"ok:far@{PUBLIC}"
