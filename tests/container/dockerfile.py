#!/usr/bin/env python3
"""Replays the repository's Dockerfile without a Docker engine (see tests/container/run.sh).

  dockerfile.py parse [--dockerfile F]            the parsed stages and final image config (JSON)
  dockerfile.py build --roots DIR --base IMAGE=ROOT ... --apt-cache DIR --config-out FILE

The parser is deliberately strict: an instruction, flag or feature it does not implement
(ADD, ARG, USER, SHELL, ONBUILD, COPY --chown, variable substitution, globs in COPY
sources, ...) is an error, so a later change of the Dockerfile cannot be skipped silently.

Each stage starts from a copy of the debootstrap'd root its FROM maps to. RUN executes
`/bin/sh -c LINE` chrooted into the stage's root, with the stage's WORKDIR and ENV (plus
Docker's default PATH and HOME), stdin /dev/null, in fresh PID and mount namespaces that
get /proc, a Docker-like /dev, a read-only /sys and the host's resolv.conf (ns-root.sh
"build" mode): the mounts die with the namespace, so nothing leaks even on SIGKILL. COPY
reads the build context (the repository) filtered by .dockerignore; COPY --from=STAGE reads
that stage's root. ENV/WORKDIR/VOLUME/EXPOSE/HEALTHCHECK/STOPSIGNAL/ENTRYPOINT/CMD/LABEL
make up the image config written for the run phase.
"""
import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUN_TIMEOUT = int(os.environ.get("CONTAINER_RUN_TIMEOUT", "1500"))


class DockerfileError(Exception):
    pass


# ---- parsing ------------------------------------------------------------------------------

def logical_lines(text):
    """(line number, instruction text): continuations joined, comments and blanks dropped.
    As Docker does, comment lines inside a continuation are removed."""
    out, buf, start = [], None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if stripped.startswith("#"):
            if buf is None and n == 1 and re.match(r"#\s*\w+\s*=", stripped):
                raise DockerfileError(f"line {n}: parser directive {stripped!r} not supported")
            continue
        if buf is None:
            if not stripped:
                continue
            buf, start = "", n
        elif not stripped:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
        else:
            buf += line
            out.append((start, buf.strip()))
            buf = None
    if buf is not None:
        raise DockerfileError(f"line {start}: continuation at end of file")
    return out


def json_or_none(arg):
    if arg.startswith("["):
        try:
            v = json.loads(arg)
        except json.JSONDecodeError as e:
            raise DockerfileError(f"bad JSON array {arg!r}: {e}") from None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise DockerfileError(f"not a JSON array of strings: {arg!r}")
        return v
    return None


def no_substitution(n, word, arg):
    if "$" in arg:
        raise DockerfileError(f"line {n}: {word}: variable substitution is not implemented by this replay: {arg!r}")


def split_flags(n, word, arg, allowed):
    flags = {}
    while arg.startswith("--"):
        m = re.match(r"--([a-z-]+)(?:=(\S*))?\s*", arg)
        if not m or m.group(1) not in allowed:
            raise DockerfileError(f"line {n}: {word}: flag {arg.split()[0]!r} not supported (supported: {sorted(allowed)})")
        flags[m.group(1)] = m.group(2)
        arg = arg[m.end():]
    return flags, arg


def parse_duration(n, s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s or "")
    if not m:
        raise DockerfileError(f"line {n}: bad duration {s!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse(text):
    stages = []
    for n, line in logical_lines(text):
        m = re.match(r"(\S+)\s*(.*)$", line, re.S)
        word, arg = m.group(1).upper(), m.group(2).strip()
        if word == "FROM":
            fm = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            if not fm or arg.startswith("--"):
                raise DockerfileError(f"line {n}: FROM {arg!r} not supported")
            no_substitution(n, word, arg)
            stages.append({"line": n, "from": fm.group(1), "name": fm.group(2), "steps": []})
            continue
        if not stages:
            raise DockerfileError(f"line {n}: {word} before FROM")
        steps = stages[-1]["steps"]
        if word == "RUN":
            flags, arg = split_flags(n, word, arg, set())
            argv = json_or_none(arg)
            steps.append({"line": n, "op": "RUN", "argv": argv or ["/bin/sh", "-c", arg], "text": arg})
        elif word == "COPY":
            flags, arg = split_flags(n, word, arg, {"from"})
            no_substitution(n, word, arg)
            parts = json_or_none(arg) or shlex.split(arg)
            if len(parts) < 2:
                raise DockerfileError(f"line {n}: COPY needs a source and a destination")
            srcs, dest = parts[:-1], parts[-1]
            for s in srcs:
                if any(c in s for c in "*?["):
                    raise DockerfileError(f"line {n}: COPY source globs not implemented: {s!r}")
            steps.append({"line": n, "op": "COPY", "from": flags.get("from"), "srcs": srcs, "dest": dest})
        elif word == "ENV":
            no_substitution(n, word, arg)
            words = shlex.split(arg)
            pairs = []
            if words and "=" not in words[0]:
                k, _, v = arg.partition(" ")  # legacy `ENV KEY value`
                pairs.append((k, v.strip()))
            else:
                for w in words:
                    if "=" not in w:
                        raise DockerfileError(f"line {n}: ENV: {w!r} is not KEY=VALUE")
                    k, _, v = w.partition("=")
                    pairs.append((k, v))
            steps.append({"line": n, "op": "ENV", "pairs": pairs})
        elif word == "WORKDIR":
            no_substitution(n, word, arg)
            steps.append({"line": n, "op": "WORKDIR", "path": arg})
        elif word == "VOLUME":
            no_substitution(n, word, arg)
            steps.append({"line": n, "op": "VOLUME", "paths": json_or_none(arg) or arg.split()})
        elif word == "EXPOSE":
            no_substitution(n, word, arg)
            ports = []
            for p in arg.split():
                pm = re.fullmatch(r"(\d+)(?:/(tcp|udp))?", p)
                if not pm:
                    raise DockerfileError(f"line {n}: EXPOSE {p!r} not understood")
                ports.append(f"{pm.group(1)}/{pm.group(2) or 'tcp'}")
            steps.append({"line": n, "op": "EXPOSE", "ports": ports})
        elif word == "HEALTHCHECK":
            if arg.upper() == "NONE":
                steps.append({"line": n, "op": "HEALTHCHECK", "check": None})
                continue
            flags, arg = split_flags(n, word, arg, {"interval", "timeout", "start-period", "retries",
                                                    "start-interval"})
            cm = re.match(r"CMD\s+(.*)$", arg, re.S | re.I)
            if not cm:
                raise DockerfileError(f"line {n}: HEALTHCHECK without CMD: {arg!r}")
            cmd = json_or_none(cm.group(1)) or ["/bin/sh", "-c", cm.group(1)]
            check = {"cmd": cmd, "interval": 30.0, "timeout": 30.0, "start_period": 0.0, "retries": 3}
            for k, v in flags.items():
                if k == "retries":
                    if not (v or "").isdigit():
                        raise DockerfileError(f"line {n}: bad --retries {v!r}")
                    check["retries"] = int(v)
                else:
                    check[k.replace("-", "_")] = parse_duration(n, v)
            steps.append({"line": n, "op": "HEALTHCHECK", "check": check})
        elif word == "STOPSIGNAL":
            sig = arg.upper()
            if sig.isdigit():
                num = int(sig)
            else:
                try:
                    num = int(getattr(signal, sig if sig.startswith("SIG") else "SIG" + sig))
                except AttributeError:
                    raise DockerfileError(f"line {n}: unknown signal {arg!r}") from None
            steps.append({"line": n, "op": "STOPSIGNAL", "signal": num})
        elif word in ("ENTRYPOINT", "CMD"):
            argv = json_or_none(arg)
            steps.append({"line": n, "op": word, "argv": argv if argv is not None else ["/bin/sh", "-c", arg],
                          "shell_form": argv is None})
        elif word == "LABEL":
            steps.append({"line": n, "op": "LABEL", "text": arg})
        else:
            raise DockerfileError(f"line {n}: instruction {word} is not implemented by this replay "
                                  f"(tests/container/dockerfile.py): extend it before relying on the test")
    if not stages:
        raise DockerfileError("no FROM")
    return stages


# ---- .dockerignore ---------------------------------------------------------------------------

def ignore_patterns(context):
    f = context / ".dockerignore"
    pats = []
    if f.exists():
        for line in f.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            p = os.path.normpath(line[1:].strip() if neg else line).lstrip("/")
            pats.append((neg, pattern_regex(p), line))
    return pats


def pattern_regex(p):
    """Docker's (moby/patternmatcher) syntax: Go filepath.Match per segment, plus `**`."""
    i, out = 0, ""
    while i < len(p):
        c = p[i]
        if p.startswith("**", i):
            i += 2
            if p.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = p.find("]", i)
            if j < 0:
                raise DockerfileError(f".dockerignore: bad pattern {p!r}")
            cls = p[i + 1:j]
            out += "[" + ("^" + cls[1:] if cls.startswith("^") else cls) + "]"
            i = j
        elif c == "\\" and i + 1 < len(p):
            i += 1
            out += re.escape(p[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def excluded(rel, pats):
    """A path is excluded when it or one of its parent folders matches (last pattern wins)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    result = False
    for neg, rx, _ in pats:
        if any(rx.match(p) for p in prefixes):
            result = not neg
    return result


# ---- filesystem helpers ------------------------------------------------------------------------

def in_root(root, path, follow_last=True):
    """Host path of `path` inside `root`, resolving symlinks as a chroot would (never escaping)."""
    parts = [p for p in path.split("/") if p and p != "."]
    cur = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if cur:
                cur.pop()
            continue
        host = Path(root, *cur, p)
        if host.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise DockerfileError(f"symlink loop at {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                cur = []
            parts = [x for x in target.split("/") if x and x != "."] + parts
            continue
        cur.append(p)
    return Path(root, *cur)


def copy_entry(src, dst):
    """One file, symlink or folder (contents merged) from src to dst; owner root, modes kept."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if dst.is_symlink() or dst.exists():
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            else:
                dst.unlink()
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, 0, 0)
    elif stat.S_ISDIR(st.st_mode):
        if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
            dst.unlink()
        dst.mkdir(exist_ok=True)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.chown(dst, 0, 0)
    elif stat.S_ISREG(st.st_mode):
        if dst.is_symlink() or (dst.exists() and dst.is_dir()):
            raise DockerfileError(f"COPY: would replace {dst} with a file")
        shutil.copy2(src, dst, follow_symlinks=False)
        os.chown(dst, 0, 0)
    else:
        raise DockerfileError(f"COPY: {src} is neither a file, a folder nor a symlink")


def copy_tree(src, root, dest, filt=None, rel_base=""):
    """Docker COPY of one source: a file to dest (or into dest/ when dest is a folder), a
    folder's contents into dest. filt(rel) -> True to skip (the .dockerignore)."""
    count = 0
    if src.is_dir() and not src.is_symlink():
        target = in_root(root, dest)
        target.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(src):
            d = Path(dirpath)
            reld = d.relative_to(src)
            keep = []
            for name in sorted(dirnames):
                rel = os.path.normpath(os.path.join(rel_base, reld, name))
                if filt and filt(rel):
                    continue
                keep.append(name)
                out = in_root(root, os.path.join(dest, str(reld), name), follow_last=not (d / name).is_symlink())
                copy_entry(d / name, out)
            dirnames[:] = [x for x in keep if not (d / x).is_symlink()]
            for name in sorted(filenames):
                rel = os.path.normpath(os.path.join(rel_base, reld, name))
                if filt and filt(rel):
                    continue
                out = in_root(root, os.path.join(dest, str(reld))) / name
                copy_entry(d / name, out)
                count += 1
    else:
        if dest.endswith("/"):
            target = in_root(root, dest)
            target.mkdir(parents=True, exist_ok=True)
            out = target / src.name
        else:
            out = in_root(root, dest, follow_last=False)
            if out.is_dir() and not out.is_symlink():
                out = out / src.name
            out.parent.mkdir(parents=True, exist_ok=True)
        copy_entry(src, out)
        count = 1
    return count


# ---- building --------------------------------------------------------------------------------

BASES = {
    # What each FROM maps to; run.sh prepares these roots (debootstrap bookworm minbase;
    # "slim" = the same with the docker slim dpkg path-excludes applied).
    "debian:12": "bookworm", "debian:bookworm": "bookworm",
    "debian:12-slim": "bookworm-slim", "debian:bookworm-slim": "bookworm-slim",
}


def log(msg):
    print(f"[dockerfile] {msg}", flush=True)


def image_config(stage):
    cfg = {"env": {"PATH": DOCKER_DEFAULT_PATH}, "workdir": "/", "volumes": [], "exposed": [],
           "healthcheck": None, "stopsignal": int(signal.SIGTERM), "entrypoint": None, "cmd": None,
           "labels": []}
    return cfg


def absolute(workdir, path):
    return os.path.normpath(path if path.startswith("/") else os.path.join(workdir, path))


def run_step(root, cfg, step, apt_cache, logfile):
    env = dict(cfg["env"])
    env.setdefault("HOME", "/root")
    cmd = [str(HERE / "ns-root.sh"), "build", str(root)]
    if apt_cache:
        cmd += ["--apt-cache", str(apt_cache)]
    cmd += ["--", "/usr/bin/env", "-i", "-C", cfg["workdir"]] + [f"{k}={v}" for k, v in env.items()] + step["argv"]
    full = ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--propagation", "private",
            "--kill-child", "--"] + cmd
    if logfile:
        with open(logfile, "ab") as out:
            out.write(f"\n==== line {step['line']}: RUN {step['text']}\n".encode())
            out.flush()
            r = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               timeout=RUN_TIMEOUT)
    else:
        r = subprocess.run(full, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    if r.returncode != 0:
        if logfile:
            tail = Path(logfile).read_bytes()[-6000:].decode("utf-8", "replace")
            print(f"---- last output of the RUN ({logfile}):\n{tail}\n----", file=sys.stderr)
        raise DockerfileError(f"line {step['line']}: RUN failed with exit status {r.returncode}: {step['text'][:200]}")


def build(dockerfile, context, roots, bases, apt_cache, config_out, logfile=None):
    stages = parse(dockerfile.read_text())
    pats = ignore_patterns(context)
    built = {}
    final = None
    for i, st in enumerate(stages):
        t0 = time.monotonic()
        label = st["name"] or str(i)
        if st["from"] in built or st["from"] in [s["name"] for s in stages[:i]]:
            raise DockerfileError(f"line {st['line']}: FROM another stage is not implemented")
        base = BASES.get(st["from"])
        if base is None or base not in bases:
            raise DockerfileError(f"line {st['line']}: FROM {st['from']}: no debootstrap mapping "
                                  f"(known: {sorted(BASES)}); extend BASES and run.sh")
        root = roots / f"stage-{i}-{label}"
        if root.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(bases[base]), str(root)], check=True)
        log(f"stage {label}: FROM {st['from']} = {base} root, copied to {root}")
        cfg = image_config(st)
        for step in st["steps"]:
            op = step["op"]
            ts = time.monotonic()
            if op == "RUN":
                log(f"line {step['line']}: RUN {' '.join(step['text'].split())[:100]}{'...' if len(step['text']) > 100 else ''}")
                run_step(root, cfg, step, apt_cache, logfile)
                log(f"line {step['line']}: RUN done in {time.monotonic() - ts:.0f}s")
            elif op == "COPY":
                dest = step["dest"]
                dest_abs = absolute(cfg["workdir"], dest)
                if (dest.endswith("/") or dest in (".", "./") or len(step["srcs"]) > 1) and not dest_abs.endswith("/"):
                    dest_abs += "/"
                n = 0
                for s in step["srcs"]:
                    if step["from"] is not None:
                        if step["from"] not in built:
                            raise DockerfileError(f"line {step['line']}: COPY --from={step['from']}: no such earlier stage")
                        src = in_root(built[step["from"]], s, follow_last=False)
                        if not src.exists() and not src.is_symlink():
                            raise DockerfileError(f"line {step['line']}: COPY --from: {s} not found in stage {step['from']}")
                        n += copy_tree(src, root, dest_abs)
                    else:
                        rel = os.path.normpath(s).lstrip("/")
                        if rel.startswith(".."):
                            raise DockerfileError(f"line {step['line']}: COPY {s}: outside the context")
                        src = context / rel
                        if not src.exists() or (rel != "." and excluded(rel, pats)):
                            raise DockerfileError(f"line {step['line']}: COPY {s}: not in the build context"
                                                  f"{' (excluded by .dockerignore)' if src.exists() else ''}")
                        filt = (lambda r: excluded(r, pats)) if pats else None
                        n += copy_tree(src, root, dest_abs, filt, rel_base="" if rel == "." else rel)
                log(f"line {step['line']}: COPY {'--from=' + step['from'] + ' ' if step['from'] else ''}"
                    f"{' '.join(step['srcs'])} -> {dest_abs}: {n} files")
            elif op == "ENV":
                for k, v in step["pairs"]:
                    cfg["env"][k] = v
            elif op == "WORKDIR":
                cfg["workdir"] = absolute(cfg["workdir"], step["path"])
                in_root(root, cfg["workdir"]).mkdir(parents=True, exist_ok=True)
            elif op == "VOLUME":
                cfg["volumes"] += step["paths"]
            elif op == "EXPOSE":
                cfg["exposed"] += step["ports"]
            elif op == "HEALTHCHECK":
                cfg["healthcheck"] = step["check"]
            elif op == "STOPSIGNAL":
                cfg["stopsignal"] = step["signal"]
            elif op == "ENTRYPOINT":
                cfg["entrypoint"] = step["argv"]
                cfg["entrypoint_shell_form"] = step["shell_form"]
                cfg["cmd"] = None  # Docker: ENTRYPOINT resets an inherited CMD
            elif op == "CMD":
                cfg["cmd"] = step["argv"]
            elif op == "LABEL":
                cfg["labels"].append(step["text"])
            else:  # parse() only produces the ops above
                raise DockerfileError(f"line {step['line']}: {op} not handled")
        cfg["root"] = str(root)
        cfg["stage"] = label
        built[label] = root
        if st["name"]:
            built[st["name"]] = root
        built[str(i)] = root
        final = cfg
        log(f"stage {label}: built in {time.monotonic() - t0:.0f}s")
    # Docker: an exec-form ENTRYPOINT gets CMD appended; a shell-form one ignores CMD.
    ep, cmd = final["entrypoint"], final["cmd"]
    if ep and final.get("entrypoint_shell_form"):
        final["argv"] = ep
    else:
        final["argv"] = (ep or []) + (cmd or [])
    if not final["argv"]:
        raise DockerfileError("the final stage has neither ENTRYPOINT nor CMD")
    Path(config_out).write_text(json.dumps(final, indent=2) + "\n")
    return final


def main():
    # SIGTERM/SIGINT raise, so subprocess.run kills the running RUN's unshare, and its
    # --kill-child takes the whole PID namespace (and so its mounts) along.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parse")
    p.add_argument("--dockerfile", default=str(REPO / "Dockerfile"))
    b = sub.add_parser("build")
    b.add_argument("--dockerfile", default=str(REPO / "Dockerfile"))
    b.add_argument("--context", default=str(REPO))
    b.add_argument("--roots", required=True)
    b.add_argument("--base", action="append", default=[], help="NAME=ROOT, e.g. bookworm=/x/base-bookworm")
    b.add_argument("--apt-cache", default=None)
    b.add_argument("--config-out", required=True)
    b.add_argument("--log", default=None, help="RUN output goes here (default: the terminal)")
    a = ap.parse_args()
    try:
        if a.cmd == "parse":
            print(json.dumps(parse(Path(a.dockerfile).read_text()), indent=2))
        else:
            bases = dict(x.split("=", 1) for x in a.base)
            build(Path(a.dockerfile), Path(a.context).resolve(), Path(a.roots), bases,
                  a.apt_cache, a.config_out, a.log)
    except DockerfileError as e:
        print(f"dockerfile.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
