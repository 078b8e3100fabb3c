# executord's package install (src/depinstall.c), embedded and run by the runner like a
# job's script in an `ephemeral` sandbox: main(**inputs) runs pip into /deps (a tmpfs the
# service copies into its cache afterwards). pip's output goes to the job's logs as it
# comes; a failure raises PackageInstallError with pip's error text, which the service
# reports as the job's error. The requirements come validated and normalized (never
# options), and pip is started without a shell.
import os
import subprocess
import sys
import urllib.parse

TARGET = "/deps"
TAIL_BYTES = 8192


class PackageInstallError(Exception):
    pass


def _http_hosts(urls):
    """host[:port] of each http URL, once (URLs come checked: a host, no credentials)."""
    hosts = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http" and parts.netloc not in hosts:
            hosts.append(parts.netloc)
    return hosts


def _command(requirements, index_url, extra_index_urls, find_links):
    cmd = [sys.executable, "-I", "-m", "pip", "install", "--target", TARGET, "--no-cache-dir",
           "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    indexes = ([index_url] if index_url else []) + list(extra_index_urls or ())
    if indexes:
        # Never pip's default index: without --pip-index-url the first extra one replaces it.
        cmd += ["--index-url", indexes[0]]
        for url in indexes[1:]:
            cmd += ["--extra-index-url", url]
        # pip ignores a plain-http index unless its host is trusted. The operator named
        # each of these with --pip-*-index-url, so an http one is trusted as configured
        # (the start-up log warns that http is unauthenticated); an index on the
        # service's loopback reaches us rewritten to the slirp gateway, trusted the same.
        for host in _http_hosts(indexes):
            cmd += ["--trusted-host", host]
    else:
        cmd.append("--no-index")
    if find_links:
        cmd += ["--find-links", find_links]
    return cmd + ["--"] + list(requirements)


def _error_text(tail):
    text = tail.decode("utf-8", "replace")
    errors = [line for line in text.splitlines() if line.startswith("ERROR:")]
    return "\n".join(errors) if errors else text.strip()[-2000:]


def main(requirements, index_url=None, extra_index_urls=(), find_links=None):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME") or "/tmp",
        "LANG": "C.UTF-8",
        "PIP_BREAK_SYSTEM_PACKAGES": "1",  # Debian's PEP 668 marker: --target is ours
        "PIP_ROOT_USER_ACTION": "ignore",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = _command(requirements, index_url, extra_index_urls, find_links)
    sys.stdout.write("executord: installing %s\n" % " ".join(requirements))
    sys.stdout.flush()
    # stdout passes straight through; stderr is copied through and its tail kept for the
    # error message.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd="/tmp")
    tail = b""
    while True:
        chunk = os.read(proc.stderr.fileno(), 65536)
        if not chunk:
            break
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
        tail = (tail + chunk)[-TAIL_BYTES:]
    code = proc.wait()
    if code != 0:
        raise PackageInstallError(_error_text(tail) or "pip exited with status %d" % code)
    return {"installed": list(requirements)}
