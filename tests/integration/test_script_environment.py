"""Issue 14: the script's environment is Tracecat's, on every backend, as a user sees it
through the API: exactly PATH, HOME, LANG, LC_ALL, PYTHONUNBUFFERED=1 and
PYTHONDONTWRITEBYTECODE=1, then env_vars (which may override them); a PYTHONPATH in
env_vars is honoured although the runner starts Python isolated: its entries come first
on sys.path, in order; an invalid variable name gets Tracecat's words."""

import textwrap

import pytest

from executord_client import Server

BASE = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("environment")
    s = Server(base / "data", args=["--workers", "2", "--backends", "pool,ephemeral,direct"],
               log_path=base / "executord.stderr.log")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def run_ok(client, backend, src, **fields):
    job = client.run(textwrap.dedent(src).lstrip("\n"), backend=backend, **fields)
    assert job["status"] == "succeeded", job["error"]
    return job["result"]


ENV_PROBE = """
    import os, subprocess, sys

    def main():
        child = subprocess.run([sys.executable, "-c", "import os, sys; print(bool(sys.flags.dont_write_bytecode),"
                                " os.environ.get('PYTHONUNBUFFERED'))"], capture_output=True, text=True)
        return {"env": dict(os.environ), "cwd": os.getcwd(), "child": child.stdout.split(),
                "dont_write_bytecode": sys.dont_write_bytecode}
"""


def test_base_environment_is_tracecats(client, backend):
    r = run_ok(client, backend, ENV_PROBE)
    env = r["env"]
    home = env.pop("HOME")
    assert env == BASE
    assert home == r["cwd"], "HOME is the job's own working folder"
    # What the variables mean reaches the script and the programs it starts.
    assert r["dont_write_bytecode"] is True
    assert r["child"] == ["True", "1"]


def test_env_vars_come_after_and_override_the_base(client, backend):
    mine = {"API_KEY": "k", "LANG": "en_US.UTF-8", "PYTHONUNBUFFERED": "0", "HOME": "/elsewhere"}
    r = run_ok(client, backend, ENV_PROBE, env_vars=mine)
    assert r["env"] == {**BASE, **mine}


def test_pythonpath_entries_come_first_in_order(client, backend):
    # Relative and empty entries are the working folder's, as CPython reads PYTHONPATH.
    # direct's working folder lies in the data folder (0700): no absolute path leads a job
    # into it, so nothing there is importable (the import is checked in the sandboxes).
    r = run_ok(client, backend, """
        import importlib, os, sys

        def main():
            os.makedirs("lib", exist_ok=True)
            with open("lib/tracecat_helper.py", "w") as f:
                f.write("def greet(name):\\n    return 'hello ' + name\\n")
            importlib.invalidate_caches()  # the folder was missing when sys.path was first searched
            try:
                import tracecat_helper
                greet = tracecat_helper.greet("x")
            except ImportError:
                greet = None
            std = os.path.dirname(os.__file__)
            return {"head": sys.path[:4], "cwd": os.getcwd(), "greet": greet,
                    "std_after": sys.path.index(std) > 3, "env": os.environ["PYTHONPATH"]}
    """, env_vars={"PYTHONPATH": "lib:/opt/nowhere::/usr/share/nowhere"})
    cwd = r["cwd"]
    assert r["head"] == [f"{cwd}/lib", "/opt/nowhere", cwd, "/usr/share/nowhere"]
    assert r["greet"] == (None if backend == "direct" else "hello x")
    assert r["std_after"] is True
    assert r["env"] == "lib:/opt/nowhere::/usr/share/nowhere"


def test_no_pythonpath_adds_nothing(client, backend):
    r = run_ok(client, backend, """
        import os, sys

        def main():
            return [sys.path.index(os.path.dirname(os.__file__)) <= 1, os.getcwd() in sys.path, "" in sys.path]
    """)
    assert r == [True, False, False]


@pytest.mark.parametrize("name", ["123VAR", "MY-VAR", "VAR\nINJECT", 'VAR"INJECT', "MY VAR", "", "VAR=NAME"])
def test_invalid_env_var_name_in_tracecats_words(client, name):
    r = client.post_job({"script": "def main():\n    return 1\n", "env_vars": {name: "v"}})
    assert r.status == 422, r
    err = r.json()["error"]
    assert err["code"] == "invalid_field"
    assert err["field"] == "env_vars"
    assert "Invalid environment variable key" in err["message"], err
    assert "Keys must match pattern [A-Za-z_][A-Za-z0-9_]*" in err["message"], err
