"""GET /metrics against the real binary: the Prometheus text exposition (0.0.4) parsed by a
strict parser below, and its numbers checked against what the test did — jobs by status
and backend, queue depth and running jobs, the histograms, the HTTP request counters,
sandbox set-up failures (vs scripts that fail), the pool's ready/busy, and the token."""

import math
import re
import time
import uuid

import pytest

from executord_client import DEFAULT_BACKEND

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("queued", "running", "succeeded", "failed", "timed_out", "cancelled")
BACKENDS = ("direct", "ephemeral", "pool")
TOKEN = "metrics-t0ken"

# --- a strict parser for the text exposition format -------------------------------------

NAME_RE = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME_RE = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE_RE = r"(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
SAMPLE_RE = re.compile(rf"^({NAME_RE})(?:\{{(.*)\}})? ({VALUE_RE})$")
HELP_RE = re.compile(rf"^# HELP ({NAME_RE}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME_RE}) (counter|gauge|histogram|summary|untyped)$")
TYPES_WITH_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class Family:
    def __init__(self, name):
        self.name, self.type, self.help, self.samples = name, None, None, []

    def get(self, sample_name=None, **labels):
        """The value of the one sample with exactly these labels (None when absent)."""
        sample_name = sample_name or self.name
        for name, lbls, value in self.samples:
            if name == sample_name and lbls == labels:
                return value
        return None

    def total(self, sample_name=None, **labels):
        """Sum over samples whose labels include these."""
        sample_name = sample_name or self.name
        return sum(v for n, l, v in self.samples
                   if n == sample_name and all(l.get(k) == w for k, w in labels.items()))


def parse_labels(text, line):
    """'a="x",b="y\\"z"' -> {"a": "x", "b": 'y"z'}; only \\\\, \\" and \\n escapes."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(rf"({LABEL_NAME_RE})=\"").match(text, i)
        assert m, f"bad label at {text[i:]!r} in {line!r}"
        name, i, value = m.group(1), m.end(), []
        while True:
            assert i < len(text), f"unterminated label value in {line!r}"
            c = text[i]
            if c == "\\":
                esc = text[i + 1:i + 2]
                assert esc in ("\\", '"', "n"), f"bad escape \\{esc} in {line!r}"
                value.append("\n" if esc == "n" else esc)
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                assert c != "\n"
                value.append(c)
                i += 1
        assert name not in labels, f"label {name} twice in {line!r}"
        labels[name] = "".join(value)
        if i < len(text):
            assert text[i] == ",", f"expected ',' at {text[i:]!r} in {line!r}"
            i += 1
            assert i < len(text), f"trailing comma in {line!r}"
    return labels


def family_of(sample_name, families):
    if sample_name in families:
        return families[sample_name]
    for fam in families.values():
        for suffix in TYPES_WITH_SUFFIXES.get(fam.type, ()):
            if sample_name == fam.name + suffix:
                return fam
    return None


def parse_exposition(text):
    """Families by name. Fails on anything the format (as executord promises it) forbids:
    a sample before its TYPE, families interleaved, duplicate series, bad names, escapes
    or values, and histograms whose buckets are not cumulative up to +Inf == _count."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families, closed, current, seen = {}, set(), None, set()
    for line in text[:-1].split("\n"):
        assert line, "no blank lines"
        if line.startswith("#"):
            m = HELP_RE.match(line) or TYPE_RE.match(line)
            assert m, f"bad comment line {line!r}"
            name = m.group(1)
            assert name not in closed, f"{name} declared again after other families"
            fam = families.setdefault(name, Family(name))
            if current is not None and current is not fam:
                closed.add(current.name)
            current = fam
            assert not fam.samples, f"HELP/TYPE of {name} after its samples"
            if line.startswith("# HELP"):
                assert fam.help is None, f"two HELP lines for {name}"
                fam.help = m.group(2)
                assert re.fullmatch(r"(?:[^\\\n]|\\\\|\\n)*", fam.help), f"bad HELP escape: {line!r}"
            else:
                assert fam.type is None, f"two TYPE lines for {name}"
                fam.type = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"bad sample line {line!r}"
        name, labels = m.group(1), parse_labels(m.group(2) or "", line)
        value = float(m.group(3).replace("Inf", "inf"))
        fam = family_of(name, families)
        assert fam is not None and fam.type is not None, f"sample {name} has no TYPE before it"
        assert fam is current, f"sample {name} outside its family's block"
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen, f"duplicate series {line!r}"
        seen.add(key)
        fam.samples.append((name, labels, value))
    for fam in families.values():
        assert fam.name.startswith("executord_"), fam.name
        assert fam.type and fam.help, f"{fam.name} lacks TYPE or HELP"
        if fam.type == "counter":
            assert all(v >= 0 for _, _, v in fam.samples), fam.name
        if fam.type == "histogram":
            check_histogram(fam)
    return families


def check_histogram(fam):
    series = {}
    for name, labels, value in fam.samples:
        base = {k: v for k, v in labels.items() if k != "le"}
        key = tuple(sorted(base.items()))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name == fam.name + "_bucket":
            assert "le" in labels, f"bucket without le: {labels}"
            s["buckets"].append((float(labels["le"].replace("Inf", "inf")), value))
        elif name == fam.name + "_sum":
            s["sum"] = value
        elif name == fam.name + "_count":
            s["count"] = value
        else:
            raise AssertionError(f"{name} in histogram {fam.name}")
    for key, s in series.items():
        bounds = [b for b, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), f"{fam.name}{key}: le order"
        assert bounds and math.isinf(bounds[-1]), f"{fam.name}{key}: no +Inf bucket"
        assert counts == sorted(counts), f"{fam.name}{key}: buckets not cumulative: {counts}"
        assert s["count"] == counts[-1], f"{fam.name}{key}: +Inf {counts[-1]} != _count {s['count']}"
        assert s["sum"] is not None and s["sum"] >= 0, f"{fam.name}{key}: _sum"


def bucket(fam, le, **labels):
    return fam.get(fam.name + "_bucket", le=le, **labels)


# --- helpers -------------------------------------------------------------------------------

def scrape(client):
    r = client.request("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == CONTENT_TYPE
    return parse_exposition(r.text)


def http_counts(fams):
    return {(l["method"], l["route"], l["code"]): v
            for _, l, v in fams["executord_http_requests_total"].samples}


def token_server(make_server, tmp_path, *args):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return make_server("--api-token-file", str(token_file), *args, token=TOKEN)


def backend_state(client, name):
    for b in client.request("GET", "/v1/backends").json()["backends"]:
        if b["name"] == name:
            return b
    return None


def test_parser_rejects_what_the_format_forbids():
    """The parser is the oracle of the other tests: it must be able to say no."""
    good = "# HELP executord_x_total x\n# TYPE executord_x_total counter\nexecutord_x_total{a=\"1\"} 2\n"
    parse_exposition(good)
    bad = [
        good.replace("# TYPE executord_x_total counter\n", ""),                   # no TYPE
        good + "executord_x_total{a=\"1\"} 3\n",                                   # duplicate series
        good.replace('a="1"', 'a="\\t"'),                                          # bad escape
        good.replace('a="1"', '1a="1"'),                                           # bad label name
        good.replace("} 2", "} two"),                                              # bad value
        good + "# HELP executord_y y\n# TYPE executord_y gauge\nexecutord_y 1\nexecutord_x_total{a=\"2\"} 1\n",
        "# HELP executord_h h\n# TYPE executord_h histogram\n"                     # not cumulative
        'executord_h_bucket{le="1"} 2\nexecutord_h_bucket{le="+Inf"} 1\nexecutord_h_sum 1\nexecutord_h_count 1\n',
        "# HELP executord_h h\n# TYPE executord_h histogram\n"                     # +Inf != _count
        'executord_h_bucket{le="1"} 1\nexecutord_h_bucket{le="+Inf"} 1\nexecutord_h_sum 1\nexecutord_h_count 2\n',
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_exposition(text)


# --- the tests -------------------------------------------------------------------------------

def test_token_required_and_content(make_server, tmp_path):
    srv = token_server(make_server, tmp_path, "--workers", "2")
    anon, wrong = srv.client(token=None), srv.client(token="wrong")
    for c in (anon, wrong):
        r = c.request("GET", "/metrics")
        assert r.status == 401, r
        assert r.headers.get("WWW-Authenticate") == "Bearer"
        assert r.error["code"] == "unauthorized"
        assert "executord_" not in r.text
    r = srv.client().request("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers.get("Content-Type") == CONTENT_TYPE
    fams = parse_exposition(r.text)
    assert fams["executord_build_info"].type == "gauge"
    (_, labels, value), = fams["executord_build_info"].samples
    assert value == 1 and re.fullmatch(r"\d+\.\d+\.\d+", labels["version"]), labels
    start = fams["executord_start_time_seconds"].get()
    assert time.time() - 120 < start <= time.time() + 1
    for b in BACKENDS:
        assert fams["executord_sandbox_setup_failures_total"].get(backend=b) == 0
        for st in STATUSES:
            assert fams["executord_jobs"].get(status=st, backend=b) == 0
    assert fams["executord_queue_depth"].get() == 0
    assert fams["executord_jobs_running"].get() == 0
    assert fams["executord_workers"].get() == 2
    assert fams["executord_store_up"].get() == 1
    # Only the two refusals came before this scrape (each counted with its route pattern).
    assert http_counts(fams) == {("GET", "/metrics", "401"): 2}
    r = srv.client().request("DELETE", "/metrics")
    assert r.status == 405 and r.headers.get("Allow") == "GET", r


def test_jobs_histograms_and_http_counters(make_server, tmp_path):
    srv = token_server(make_server, tmp_path, "--workers", "2")
    c = srv.client()
    b = DEFAULT_BACKEND
    jobs = [
        c.run("def main():\n    return 1\n"),
        c.run("def main(x):\n    return x * 2\n", inputs={"x": 3}),
        c.run("def main():\n    raise ValueError('boom')\n"),
        c.run("import time\ndef main():\n    time.sleep(30)\n", timeout_seconds=1),
    ]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed", "timed_out"]
    assert all(j["backend"] == b for j in jobs), jobs

    fams = scrape(c)
    expected = {"succeeded": 2, "failed": 1, "timed_out": 1}
    for st in STATUSES:
        assert fams["executord_jobs"].get(status=st, backend=b) == expected.get(st, 0), st
        finished = fams["executord_jobs_finished_total"].get(backend=b, status=st)
        assert (finished or 0) == expected.get(st, 0), st
    assert fams["executord_jobs"].total() == 4
    assert fams["executord_sandbox_setup_failures_total"].get(backend=b) == 0

    run, wait = fams["executord_job_run_seconds"], fams["executord_job_queue_wait_seconds"]
    assert run.type == wait.type == "histogram"
    assert run.get(run.name + "_count", backend=b) == 4
    assert wait.get(wait.name + "_count", backend=b) == 4
    # The timed-out job ran for at least its 1 s timeout; the others well under 300 s.
    assert bucket(run, "0.5", backend=b) <= 3
    assert bucket(run, "300", backend=b) == 4
    assert run.get(run.name + "_sum", backend=b) >= 1.0
    assert [le for _, l, _ in run.samples if (le := l.get("le")) and l["backend"] == b][:3] == \
        ["0.005", "0.01", "0.025"]
    # Each job was submitted once.
    assert http_counts(fams)[("POST", "/v1/jobs", "201")] == 4

    # Between two scrapes: exactly these requests (and the first scrape itself).
    before = http_counts(fams)
    missing = str(uuid.uuid4())
    anon = srv.client(token=None)
    done = [
        (c.request("GET", "/nope"), ("GET", "other", "404")),
        (c.request("GET", "/v1/jobs/not-a-job-id"), ("GET", "other", "404")),
        (c.request("GET", f"/v1/jobs/{missing}"), ("GET", "/v1/jobs/{id}", "404")),
        (c.request("GET", f"/v1/jobs/{missing}/logs"), ("GET", "/v1/jobs/{id}/logs", "404")),
        (c.request("GET", f"/v1/jobs/{jobs[0]['id']}"), ("GET", "/v1/jobs/{id}", "200")),
        (c.request("PUT", "/v1/jobs"), ("PUT", "/v1/jobs", "405")),
        (anon.request("GET", "/v1/jobs"), ("GET", "/v1/jobs", "401")),
        (anon.request("GET", "/metrics"), ("GET", "/metrics", "401")),
        (anon.request("GET", "/healthz"), ("GET", "/healthz", "200")),
        (c.request("GET", "/ui/no-such-file.js"), ("GET", "/ui/{file}", "404")),
    ]
    want = {("GET", "/metrics", "200"): 1}
    for r, key in done:
        assert str(r.status) == key[2], (key, r)
        want[key] = want.get(key, 0) + 1
    after = http_counts(scrape(c))
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    assert {k: v for k, v in delta.items() if v} == want
    routes = {k[1] for k in after}
    assert not any(missing in r or "nope" in r for r in routes), routes


def test_queue_depth_and_running_under_a_long_job(make_server, tmp_path):
    srv = token_server(make_server, tmp_path, "--workers", "1")
    c = srv.client()
    b = DEFAULT_BACKEND
    long_job = c.submit({"script": "import time\ndef main():\n    time.sleep(60)\n", "timeout_seconds": 120})
    c.wait_status(long_job["id"], {"running"})
    queued = [c.submit({"script": "def main():\n    return 1\n"}) for _ in range(2)]
    fams = scrape(c)
    assert fams["executord_queue_depth"].get() == 2
    assert fams["executord_jobs_running"].get() == 1
    assert fams["executord_jobs"].get(status="running", backend=b) == 1
    assert fams["executord_jobs"].get(status="queued", backend=b) == 2

    for j in queued + [long_job]:
        assert c.cancel(j["id"]).status == 200
    for j in queued + [long_job]:
        assert c.wait_final(j["id"])["status"] == "cancelled"
    fams = scrape(c)
    assert fams["executord_queue_depth"].get() == 0
    assert fams["executord_jobs_running"].get() == 0
    assert fams["executord_jobs"].get(status="cancelled", backend=b) == 3
    # Only the job a worker ran is observed; the two never left the queue.
    assert fams["executord_jobs_finished_total"].get(backend=b, status="cancelled") == 1
    wait = fams["executord_job_queue_wait_seconds"]
    assert wait.get(wait.name + "_count", backend=b) == 1


def test_setup_failure_is_not_a_script_failure(make_server, tmp_path):
    """A sandbox that cannot be built (here: the work root replaced by a file, so no job
    folder can be made) counts as a set-up failure; a script that raises does not."""
    srv = token_server(make_server, tmp_path, "--backend", "direct", "--workers", "1")
    c = srv.client()
    work = srv.data_dir / "work"
    assert work.is_dir()
    moved = srv.data_dir / "work.moved"
    work.rename(moved)
    work.write_text("not a folder")
    try:
        broken = c.run("def main():\n    return 1\n")
    finally:
        work.unlink()
        moved.rename(work)
    assert broken["status"] == "failed" and broken["error"]["type"] == "SandboxError", broken
    raised = c.run("def main():\n    raise RuntimeError('no')\n")
    assert raised["status"] == "failed" and raised["error"]["type"] == "SandboxExecutionError", raised

    fams = scrape(c)
    fail = fams["executord_sandbox_setup_failures_total"]
    assert fail.type == "counter"
    assert fail.get(backend="direct") == 1
    assert fail.get(backend="ephemeral") == 0 and fail.get(backend="pool") == 0
    assert fams["executord_jobs"].get(status="failed", backend="direct") == 2
    assert fams["executord_jobs_finished_total"].get(backend="direct", status="failed") == 2


def test_pool_ready_and_busy(make_server, tmp_path):
    srv = token_server(make_server, tmp_path, "--backend", "pool", "--workers", "2", "--pool-size", "2")
    c = srv.client()
    pool = backend_state(c, "pool")
    if not pool or not pool["available"]:
        pytest.skip(f"the pool backend is not available here: {pool and pool.get('reason')}")
    assert "state" in pool, pool

    def pool_metrics():
        fams = scrape(c)
        sandboxes = fams["executord_pool_sandboxes"]
        assert sandboxes.type == "gauge"
        return {"size": fams["executord_pool_size"].get(), "ready": sandboxes.get(state="ready"),
                "busy": sandboxes.get(state="busy")}, fams

    deadline = time.monotonic() + 30
    while (m := pool_metrics()[0])["ready"] != 2:
        assert time.monotonic() < deadline, f"pool never had 2 ready sandboxes: {m}"
        time.sleep(0.1)
    assert m == {"size": 2, "ready": 2, "busy": 0}
    _, fams = pool_metrics()
    for name in ("started_total", "recycled_total", "failures_total", "cold_starts_total"):
        assert fams[f"executord_pool_{name}"].type == "counter"
    assert fams["executord_pool_started_total"].get() >= 2
    assert fams["executord_backend_available"].get(backend="pool") == 1

    job = c.submit({"script": "import time\ndef main():\n    time.sleep(60)\n", "timeout_seconds": 120})
    c.wait_status(job["id"], {"running"})
    deadline = time.monotonic() + 10
    while (m := pool_metrics()[0])["busy"] != 1:
        assert time.monotonic() < deadline, f"a running pool job is not counted busy: {m}"
        time.sleep(0.1)
    state = backend_state(c, "pool")["state"]
    assert state["busy"] == 1, state
    assert c.cancel(job["id"]).status == 200
    assert c.wait_final(job["id"])["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while (m := pool_metrics()[0])["busy"] != 0:
        assert time.monotonic() < deadline, f"busy never went back to 0: {m}"
        time.sleep(0.1)
