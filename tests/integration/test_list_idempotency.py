"""Listing (newest first, filters, cursor pagination that is stable while jobs arrive) and
Idempotency-Key semantics."""

import json
import uuid

import pytest

LIST_FIELDS = {
    "id", "status", "backend", "created_at", "started_at", "finished_at", "queue_wait_ms", "run_ms",
    "result_preview", "result_bytes", "result_truncated", "error", "exit_code", "signal", "usage", "limits",
    "labels", "allow_network", "env_vars", "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated",
    "output_evicted", "result_evicted", "dependencies", "install",
}


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """A dedicated server holding 5 succeeded + 2 failed jobs, labelled."""
    from executord_client import Server

    base = tmp_path_factory.mktemp("listing")
    srv = Server(base / "data", args=["--workers", "2"], log_path=base / "stderr.log")
    srv.start()
    c = srv.client()
    ids = []
    for i in range(7):
        ok = i not in (2, 5)
        src = f"def main():\n    return {i}\n" if ok else "def main():\n    raise RuntimeError('no')\n"
        team = "red" if i % 2 else "blue"
        job = c.submit({"script": src, "labels": {"team": team, "n": str(i)}})
        c.wait_final(job["id"])  # one at a time: creation order is unambiguous
        ids.append(job["id"])
    yield srv, c, ids
    srv.stop()


def walk(c, **params):
    out, cursor, pages = [], None, 0
    while True:
        r = c.list(cursor=cursor, **params)
        assert r.status == 200, r
        doc = r.json()
        assert set(doc) == {"jobs", "next_cursor"}
        out.extend(doc["jobs"])
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            return out, pages
        assert pages < 50, "pagination does not end"


def test_list_newest_first_in_list_form(listing):
    srv, c, ids = listing
    r = c.list()
    assert r.status == 200
    doc = r.json()
    assert [j["id"] for j in doc["jobs"]] == list(reversed(ids))
    assert doc["next_cursor"] is None
    for j in doc["jobs"]:
        assert set(j) == LIST_FIELDS, "the list form omits script, inputs and the result (a preview instead)"


def test_pagination_exactly_once_while_jobs_arrive(listing):
    srv, c, ids = listing
    seen, cursor, new = [], None, []
    for _ in range(20):
        r = c.list(limit=2, cursor=cursor)
        assert r.status == 200, r
        doc = r.json()
        assert len(doc["jobs"]) <= 2
        seen.extend(j["id"] for j in doc["jobs"])
        # a new job arrives between pages: it must not appear in later pages
        new.append(c.submit({"script": "def main():\n    return 'new'\n", "labels": {"late": "yes"}})["id"])
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)), "every pre-existing job exactly once, newest first"
    for j in new:
        c.wait_final(j)
        assert c.delete(j).status == 204


def test_status_filter(listing):
    srv, c, ids = listing
    failed, _ = walk(c, status="failed", limit=1)
    assert [j["id"] for j in failed] == [ids[5], ids[2]]
    assert all(j["status"] == "failed" for j in failed)
    succeeded, _ = walk(c, status="succeeded")
    assert [j["id"] for j in succeeded] == [ids[i] for i in (6, 4, 3, 1, 0)]
    assert walk(c, status="cancelled")[0] == []


def test_label_filter(listing):
    srv, c, ids = listing
    red, pages = walk(c, label="team:red", limit=2)
    assert [j["id"] for j in red] == [ids[5], ids[3], ids[1]]
    assert pages == 2
    assert [j["id"] for j in walk(c, label="n:4")[0]] == [ids[4]]
    assert walk(c, label="team:green")[0] == []
    both = walk(c, label="team:blue", status="failed")[0]
    assert [j["id"] for j in both] == [ids[2]]


def test_limit_bounds(listing):
    srv, c, ids = listing
    assert len(c.list(limit=1).json()["jobs"]) == 1
    assert c.list(limit=1).json()["next_cursor"] is not None
    assert len(c.list(limit=200).json()["jobs"]) == 7


# --- idempotency -----------------------------------------------------------------------------

def test_idempotency_same_key_same_body_returns_existing(client):
    key = f"k-{uuid.uuid4()}"
    body = {"script": "def main(a):\n    return a\n", "inputs": {"a": 1, "b": [1, 2]}, "labels": {"x": "1"}}
    r1 = client.post_job(body, headers={"Idempotency-Key": key})
    assert r1.status == 201, r1
    # same JSON, different key order and whitespace: still the same canonical body
    raw = json.dumps({"labels": {"x": "1"}, "inputs": {"b": [1, 2], "a": 1},
                      "script": body["script"]}, indent=3).encode()
    r2 = client.post_job(raw, headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert r2.status == 200, r2
    assert r2.json()["id"] == r1.json()["id"]
    assert r2.headers.get("Location") in (None, f"/v1/jobs/{r1.json()['id']}")
    listed = [j["id"] for j in client.list(limit=200, label="x:1").json()["jobs"]]
    assert listed.count(r1.json()["id"]) == 1
    assert sum(1 for _ in listed) == len(set(listed))


def test_idempotency_different_keys_make_different_jobs(client):
    body = {"script": "def main():\n    return 1\n"}
    a = client.post_job(body, headers={"Idempotency-Key": f"a-{uuid.uuid4()}"})
    b = client.post_job(body, headers={"Idempotency-Key": f"b-{uuid.uuid4()}"})
    c = client.post_job(body)
    d = client.post_job(body)
    assert {a.status, b.status, c.status, d.status} == {201}
    assert len({x.json()["id"] for x in (a, b, c, d)}) == 4


def test_idempotency_conflict(client):
    key = f"k-{uuid.uuid4()}"
    assert client.post_job({"script": "def main():\n    return 1\n"}, headers={"Idempotency-Key": key}).status == 201
    r = client.post_job({"script": "def main():\n    return 2\n"}, headers={"Idempotency-Key": key})
    assert r.status == 409 and r.error["code"] == "idempotency_conflict", r


def test_idempotency_repeat_after_job_finished(client):
    key = f"k-{uuid.uuid4()}"
    body = {"script": "def main():\n    return 'once'\n"}
    first = client.post_job(body, headers={"Idempotency-Key": key}, wait=30)
    assert first.status == 201 and first.json()["status"] == "succeeded", first
    again = client.post_job(body, headers={"Idempotency-Key": key})
    assert again.status == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["result"] == "once"


def test_idempotency_key_is_freed_with_its_job(client):
    """As documented: a key lives as long as its job; after DELETE it makes a new job."""
    key = f"k-{uuid.uuid4()}"
    body = {"script": "def main():\n    return 'x'\n"}
    first = client.post_job(body, headers={"Idempotency-Key": key}, wait=30)
    assert first.status == 201 and first.json()["status"] == "succeeded", first
    assert client.delete(first.json()["id"]).status == 204
    again = client.post_job(body, headers={"Idempotency-Key": key}, wait=30)
    assert again.status == 201, again
    assert again.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["", "x" * 201, "bad\u00e9key"])
def test_idempotency_key_invalid(client, key):
    r = client.post_job({"script": "def main():\n    return 1\n"},
                        headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    assert r.status in (400, 422), r
