"""The command line: --help, --version, bad flags/values (exit 2, one line on stderr) and
EXECUTORD_* environment variables (a flag wins over its variable)."""

import re
import subprocess

from executord_client import BIN, REPO, Client, free_port


def run(*args, env=None):
    import os
    e = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTORD_")}
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=10, env=e)


def config_flags():
    """The option table of src/config.c: {"flag", "EXECUTORD_ENV", ...}."""
    src = (REPO / "src" / "config.c").read_text()
    flags = re.findall(r'\{"([a-z0-9-]+)",\s*"(EXECUTORD_[A-Z0-9_]+)"', src)
    assert len(flags) >= 10, "could not read the option table from src/config.c"
    return flags


def test_help_lists_every_flag():
    r = run("--help")
    assert r.returncode == 0, r
    assert r.stderr == ""
    for flag, env in config_flags() + [("help", None), ("version", None)]:
        assert f"--{flag}" in r.stdout, flag
        if env:
            assert env in r.stdout, env
    for flag in ("listen", "data-dir", "backend", "workers", "python", "api-token-file", "log-level",
                 "max-body-bytes", "max-queued", "shutdown-grace-seconds"):
        assert f"--{flag}" in r.stdout, flag


def test_version():
    r = run("--version")
    assert r.returncode == 0, r
    assert re.fullmatch(r"executord \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def one_line_error(r):
    assert r.returncode == 2, r
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stderr
    return lines[0]


def test_bad_flag_exits_2_with_one_line():
    line = one_line_error(run("--no-such-flag"))
    assert "no-such-flag" in line


def test_positional_argument_exits_2():
    one_line_error(run("serve"))


def test_bad_value_exits_2_with_one_line(tmp_path):
    line = one_line_error(run("--workers", "lots", "--data-dir", str(tmp_path)))
    assert "workers" in line and "lots" in line
    one_line_error(run("--listen", "no-port-here", "--data-dir", str(tmp_path)))
    one_line_error(run("--backend", "docker", "--data-dir", str(tmp_path)))
    one_line_error(run("--log-level", "loud", "--data-dir", str(tmp_path)))
    one_line_error(run("--max-body-bytes", "-5", "--data-dir", str(tmp_path)))


def test_missing_value_exits_2():
    one_line_error(run("--workers"))


def test_bad_env_value_exits_2(tmp_path):
    line = one_line_error(run("--data-dir", str(tmp_path), env={"EXECUTORD_WORKERS": "many"}))
    assert "EXECUTORD_WORKERS" in line


def test_unreadable_token_file_exits_2(tmp_path):
    one_line_error(run("--data-dir", str(tmp_path), "--api-token-file", str(tmp_path / "missing")))


def test_env_var_works_and_flag_wins(make_server):
    p_env = free_port()
    srv = make_server(env={"EXECUTORD_LISTEN": f"127.0.0.1:{p_env}"}, listen=False, start=False)
    srv.start(port=p_env)
    assert Client(p_env).request("GET", "/healthz").status == 200
    srv.stop()

    # the flag wins over the variable
    p_env2 = free_port()
    srv2 = make_server(env={"EXECUTORD_LISTEN": f"127.0.0.1:{p_env2}",
                            "EXECUTORD_MAX_BODY_BYTES": "1024"}, start=False)
    srv2.args = ["--max-body-bytes", "100000"]
    srv2.start()
    c = srv2.client()
    assert c.request("GET", "/healthz").status == 200
    big = c.post_job({"script": "def main():\n    return 1\n" + "#" * 5000})
    assert big.status == 201, "--max-body-bytes 100000 must win over EXECUTORD_MAX_BODY_BYTES=1024"
    import socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", p_env2)) != 0, "--listen must win over EXECUTORD_LISTEN"
    srv2.stop()

    # and the variable alone is honoured
    srv3 = make_server(env={"EXECUTORD_MAX_BODY_BYTES": "1024"})
    r = srv3.client().post_job({"script": "def main():\n    return 1\n" + "#" * 5000})
    assert r.status == 413, r
