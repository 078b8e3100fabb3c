#!/usr/bin/env python3
"""HTTP checks against executord running in the replayed image (tests/container/run.sh).

The image passes no --api-token-file: executord generates its token in the volume at first
start (<EXECUTORD_DATA_DIR>/api-token), and the probe reads it from the host's side of the
volume (--token-file) like an operator would with `docker exec … cat`.

  probe.py PORT IMAGE_PYTHON_VERSION DEFAULT_BACKEND --token-file FILE [--sleeper-out FILE]
      the image as it is: authentication (what answers without the token), direct refused
      (not in the default --backends), jobs on the default backend and on ephemeral, what a
      sandboxed job sees (the image's Python, no compiler, /usr read-only), GET /,
      /metrics, /openapi.yaml; leaves a running job for the stop signal.
  probe.py PORT IMAGE_PYTHON_VERSION DEFAULT_BACKEND --token-file FILE --direct
      started again with EXECUTORD_BACKENDS=pool,ephemeral,direct: direct is enabled, and
      runs jobs when the container keeps CAP_CHOWN (PROBE_CAPS), else is unavailable with
      that reason and its jobs are refused with 422.
"""
import argparse
import json
import os
import stat
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


def read_token(path):
    p = Path(path)
    check(p.is_file() and not p.is_symlink(), f"no token file {p} in the volume")
    mode = stat.S_IMODE(p.stat().st_mode)
    check(mode == 0o600, f"{p}: mode {mode:o}, expected 600")
    token = p.read_text().strip()
    check(len(token) == 64 and all(ch in "0123456789abcdef" for ch in token), f"{p}: not a 64-hex token")
    return token


def show_backends(c):
    backends = {b["name"]: b for b in c.request("GET", "/v1/backends").json()["backends"]}
    for name, b in sorted(backends.items()):
        print(f"probe: backend {name}: enabled={b['enabled']} available={b['available']}"
              f"{' reason=' + str(b.get('reason')) if b.get('reason') else ''}"
              f"{' note=' + str(b.get('note')) if b.get('note') else ''}")
    return backends


def run_and_check(c, backend, default_backend, image_version):
    label = backend or f"default ({default_backend})"
    body = {"inputs": {"tag": label}}
    if backend:
        body["backend"] = backend
    doc = c.run(SEES, timeout=120, **body)
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


def check_authentication(port, token):
    """What the image answers without its token (README "API"): /readyz says only ready or
    not; /v1 and /metrics want the token; a form post, a foreign Host or Origin is refused
    even with it."""
    anon = Client(port)
    r = anon.request("GET", "/readyz")
    check(r.status == 200 and r.json() == {"status": "ready"}, f"/readyz without the token: {r}")
    for method, path in (("GET", "/v1/backends"), ("GET", "/v1/jobs"), ("GET", "/metrics")):
        r = anon.request(method, path)
        check(r.status == 401, f"{method} {path} without the token: {r}")
    r = anon.post_job({"script": "def main():\n    return 1\n"})
    check(r.status == 401, f"POST /v1/jobs without the token: {r}")
    r = Client(port, token="0" * 64).request("GET", "/v1/jobs")
    check(r.status == 401, f"a wrong token: {r}")
    c = Client(port, token=token)
    r = c.post_job("script=def+main%28%29%3A+return+1",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 415, f"a form-urlencoded submission: {r}")
    r = c.request("GET", "/v1/jobs", headers={"Host": "attacker.example"})
    check(r.status == 421, f"Host: attacker.example: {r}")
    r = c.request("GET", "/v1/jobs", headers={"Origin": "http://attacker.example"})
    check(r.status == 403, f"Origin: http://attacker.example: {r}")
    print("probe: without the token: /readyz {\"status\":\"ready\"}, /v1 and /metrics 401; "
          "form post 415, foreign Host 421, foreign Origin 403")


def first_start(args, c):
    check_authentication(args.port, c.token)
    r = c.request("GET", "/readyz")
    check(r.status == 200 and r.json().get("default_backend") == args.default_backend, f"/readyz: {r}")
    backends = show_backends(c)
    for name in ("pool", "ephemeral"):
        check(name in backends and backends[name]["enabled"] and backends[name]["available"],
              f"backend {name} not enabled and available: {backends.get(name)}")
    # The image does not set EXECUTORD_BACKENDS: direct (no filesystem or network
    # isolation) is not enabled, and a job naming it is refused before it is stored.
    d = backends["direct"]
    check(d["enabled"] is False and d["available"] is False and "--backends" in (d.get("reason") or ""),
          f"direct must be not enabled by default: {d}")
    r = c.post_job({"script": SEES, "inputs": {"tag": "x"}, "backend": "direct"})
    check(r.status == 422 and r.error.get("field") == "backend", f"a direct job by default: {r}")
    print("probe: direct: not enabled by default (--backends); its jobs refused with 422")

    for backend in (None, "ephemeral"):
        run_and_check(c, backend, args.default_backend, args.image_python)

    r = c.request("GET", "/")
    check(r.status == 200 and "text/html" in r.headers.get("Content-Type", "") and b"<html" in r.body.lower(),
          f"GET /: {r}")
    r = c.request("GET", "/metrics")
    check(r.status == 200 and b"executord_backend_available" in r.body, f"GET /metrics: {r}")
    succeeded = [ln for ln in r.text.splitlines() if ln.startswith("executord_jobs{") and 'status="succeeded"' in ln]
    total = sum(float(ln.rsplit(" ", 1)[1]) for ln in succeeded)
    check(total >= 2, f"/metrics counts {total} succeeded jobs, expected 2: {succeeded}")
    r = c.request("GET", "/openapi.yaml")
    check(r.status == 200 and r.text.startswith("openapi:"), f"GET /openapi.yaml: {r}")
    print("probe: GET / (dashboard), /metrics, /openapi.yaml: ok")

    # A job still running when the stop signal comes: the grace period lets it finish.
    job = c.submit({"script": "def main():\n    import time\n    time.sleep(2)\n    return 'slept'\n"})
    c.wait_status(job["id"], {"running"}, timeout=30)
    print(f"probe: running job {job['id']} left for the stop signal")
    if args.sleeper_out:
        Path(args.sleeper_out).write_text(job["id"])


def direct_start(args, c):
    """EXECUTORD_BACKENDS=pool,ephemeral,direct. direct hands each job a host work folder
    (chown): with the documented capabilities (no CHOWN) it must say it is unavailable, and
    why, rather than fail every job."""
    backends = show_backends(c)
    d = backends["direct"]
    check(d["enabled"] is True, f"EXECUTORD_BACKENDS did not enable direct: {d}")
    caps = os.environ.get("PROBE_CAPS", "all")
    if caps == "all" or "CHOWN" in caps.upper().split(","):
        check(d["available"], f"backend direct not available: {d}")
        run_and_check(c, "direct", args.default_backend, args.image_python)
    else:
        check(not d["available"] and "CAP_CHOWN" in (d.get("reason") or ""),
              f"direct without CAP_CHOWN must be unavailable with the reason: {d}")
        r = c.post_job({"script": SEES, "inputs": {"tag": "x"}, "backend": "direct"})
        check(r.status == 422, f"a direct job without CAP_CHOWN: {r}")
        print("probe: direct: enabled, unavailable without CAP_CHOWN, as documented; jobs refused with 422")
    run_and_check(c, None, args.default_backend, args.image_python)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("image_python")
    ap.add_argument("default_backend")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--sleeper-out")
    ap.add_argument("--direct", action="store_true")
    args = ap.parse_args()
    c = Client(args.port, token=read_token(args.token_file))
    (direct_start if args.direct else first_start)(args, c)


if __name__ == "__main__":
    main()
