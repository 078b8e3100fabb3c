#!/usr/bin/env python3
"""HTTP checks against executord running in the replayed image (tests/container/run.sh):
jobs on the image's default backend and on ephemeral and direct, what a sandboxed job sees
(the image's Python, no compiler, /usr read-only), GET /, /metrics, /openapi.yaml.

  probe.py PORT IMAGE_PYTHON_VERSION DEFAULT_BACKEND [--sleeper-out FILE]
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from executord_client import Client  # noqa: E402  (stdlib-only HTTP helper of the integration suite)

SEES = r'''
def main(tag):
    import errno, os, shutil, sys
    print("hello", tag, "from", sys.version.split()[0])
    try:
        open("/usr/executord-write-test", "w").close()
        usr = "writable"
    except OSError as e:
        usr = errno.errorcode.get(e.errno, str(e.errno))
    return {"tag": tag, "version": sys.version, "executable": sys.executable,
            "gcc": shutil.which("gcc") or shutil.which("cc"), "usr": usr,
            "pid": os.getpid(), "uid": os.getuid()}
'''


def fail(msg):
    print(f"probe: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    port, image_version, default_backend = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    c = Client(port)

    r = c.request("GET", "/readyz")
    check(r.status == 200, f"/readyz: {r}")
    backends = {b["name"]: b for b in c.request("GET", "/v1/backends").json()["backends"]}
    for name, b in sorted(backends.items()):
        print(f"probe: backend {name}: available={b['available']}"
              f"{' reason=' + str(b.get('reason')) if b.get('reason') else ''}"
              f"{' note=' + str(b.get('note')) if b.get('note') else ''}")
    # direct hands each job a host work folder (chown): with the documented capabilities
    # (no CHOWN) it must say it is unavailable, and why, rather than fail every job.
    caps = os.environ.get("PROBE_CAPS", "all")
    direct_ok = caps == "all" or "CHOWN" in caps.upper().split(",")
    for name in ("pool", "ephemeral"):
        check(name in backends and backends[name]["available"], f"backend {name} not available: {backends.get(name)}")
    if direct_ok:
        check(backends["direct"]["available"], f"backend direct not available: {backends['direct']}")
    else:
        check(not backends["direct"]["available"] and "CAP_CHOWN" in (backends["direct"].get("reason") or ""),
              f"direct without CAP_CHOWN must be unavailable with the reason: {backends['direct']}")
        r = c.post_job({"script": SEES, "inputs": {"tag": "x"}, "backend": "direct"})
        check(r.status == 422, f"a direct job without CAP_CHOWN: {r}")
        print("probe: direct: unavailable without CAP_CHOWN, as documented; jobs refused with 422")

    for backend in (None, "ephemeral") + (("direct",) if direct_ok else ()):
        label = backend or f"default ({default_backend})"
        body = {"script": SEES, "inputs": {"tag": label}}
        if backend:
            body["backend"] = backend
        doc = c.run(body.pop("script"), timeout=120, **body)
        check(doc["status"] == "succeeded", f"{label}: {json.dumps(doc)[:2000]}")
        check(doc["backend"] == (backend or default_backend), f"{label}: ran on {doc['backend']}")
        res = doc["result"]
        out = c.logs(doc["id"], stream="stdout", offset=0)
        check(out.status == 200 and f"hello {label} from" in out.text, f"{label}: stdout {out}")
        check(res["version"] == image_version,
              f"{label}: job's Python {res['version']!r} is not the image's {image_version!r}")
        check(res["gcc"] is None, f"{label}: a compiler is visible to the job ({res['gcc']}): not the image's /usr")
        if doc["backend"] in ("pool", "ephemeral"):
            check(res["usr"] == "EROFS", f"{label}: /usr is not read-only in the sandbox: {res['usr']}")
            check(res["pid"] < 10, f"{label}: not in a PID namespace of its own: {res}")
        print(f"probe: {label}: succeeded; python {res['version'].split()[0]} ({res['executable']}), "
              f"no compiler, /usr write -> {res['usr']}, pid {res['pid']} uid {res['uid']}")

    r = c.request("GET", "/")
    check(r.status == 200 and "text/html" in r.headers.get("Content-Type", "") and b"<html" in r.body.lower(),
          f"GET /: {r}")
    r = c.request("GET", "/metrics")
    check(r.status == 200 and b"executord_backend_available" in r.body, f"GET /metrics: {r}")
    succeeded = [ln for ln in r.text.splitlines() if ln.startswith("executord_jobs{") and 'status="succeeded"' in ln]
    total = sum(float(ln.rsplit(" ", 1)[1]) for ln in succeeded)
    expected = 3 if direct_ok else 2
    check(total >= expected, f"/metrics counts {total} succeeded jobs, expected {expected}: {succeeded}")
    r = c.request("GET", "/openapi.yaml")
    check(r.status == 200 and r.text.startswith("openapi:"), f"GET /openapi.yaml: {r}")
    print("probe: GET / (dashboard), /metrics, /openapi.yaml: ok")

    # A job still running when the stop signal comes: the grace period lets it finish.
    job = c.submit({"script": "def main():\n    import time\n    time.sleep(2)\n    return 'slept'\n"})
    c.wait_status(job["id"], {"running"}, timeout=30)
    print(f"probe: running job {job['id']} left for the stop signal")
    if len(sys.argv) > 5 and sys.argv[4] == "--sleeper-out":
        Path(sys.argv[5]).write_text(job["id"])


if __name__ == "__main__":
    main()
