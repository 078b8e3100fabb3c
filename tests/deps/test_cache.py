"""The environment cache through the real binary, on ephemeral and pool: two jobs with the
same set at once install it once; a restarted executord reuses what it installed; the
cache stays under --deps-cache-mb by evicting the least recently used environment."""

import threading
import time

from conftest import IMPORT_JOB, assert_install, imported


def test_concurrent_jobs_install_once(start_service, index, backend):
    """The index holds slowpkg's file back 2 s, so the two installs would overlap: the
    file is fetched once, and both jobs run in the one environment."""
    service = start_service("--pip-index-url", index.url, name="concurrent")
    version = {"ephemeral": "1.0", "pool": "2.0"}[backend]  # a set no other test installs
    deps = [f"slowpkg=={version}"]
    docs, errors = [None, None], []

    def one(i):
        try:
            docs[i] = service.ok(IMPORT_JOB, backend, deps, inputs={"modules": ["slowpkg"]})
        except BaseException as e:  # noqa: B902 (reported below, in the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    installs = [assert_install(d) for d in docs]
    assert all(imported(d, "slowpkg")["version"] == version for d in docs)
    assert installs[0]["environment"] == installs[1]["environment"]
    assert not all(i["cache_hit"] for i in installs), installs  # someone installed it
    assert index.downloads(f"slowpkg-{version}-py3-none-any.whl") == 1, index.requests()
    assert len([e for e in service.envs() if e == installs[0]["environment"]]) == 1


def test_restart_reuses_the_cache(start_service, index, backend):
    service = start_service("--pip-index-url", index.url, name=f"restart-{backend}")
    first = service.ok(IMPORT_JOB, backend, ["beta", "alpha<2"], inputs={"modules": ["beta", "alpha"]})
    env = assert_install(first, cache_hit=False)["environment"]
    asked = len(index.requests())
    service.restart()
    again = service.ok(IMPORT_JOB, backend, ["alpha<2", "beta"], inputs={"modules": ["beta", "alpha"]})
    assert assert_install(again, cache_hit=True)["environment"] == env
    assert again["result"] == first["result"]
    assert len(index.requests()) == asked, index.requests()[asked:]  # a hit asks no index
    assert service.envs() == [env]


def test_eviction_at_the_bound(start_service, index, backend):
    """Each bulk-* environment holds 1.2 MB: two fit under 3 MB, a third does not. bulk-a
    is used again after bulk-b was installed, so bulk-b is the least recently used and
    the one evicted when bulk-c arrives."""
    service = start_service("--pip-index-url", index.url, "--deps-cache-mb", "3", name=f"evict-{backend}")

    def job(name, hit):
        doc = service.ok(IMPORT_JOB, backend, [name], inputs={"modules": [name.replace("-", "_")]})
        assert imported(doc, name.replace("-", "_"))["version"] == "1.0"
        time.sleep(1.1)  # use times a second apart, whatever clock the cache keeps
        return assert_install(doc, cache_hit=hit)["environment"]

    a = job("bulk-a", False)
    b = job("bulk-b", False)
    assert service.envs() == sorted([a, b])
    assert job("bulk-a", True) == a
    c = job("bulk-c", False)
    assert service.envs() == sorted([a, c]), "bulk-b, the least recently used, should have gone"
    assert job("bulk-a", True) == a
    assert job("bulk-b", False) == b  # installed again
    assert len(service.envs()) == 2, service.envs()
    total = sum(f.stat().st_size for e in service.envs()
                for f in (service.data_dir / "deps" / "envs" / e).rglob("*") if f.is_file())
    assert total <= 3 << 20, total
