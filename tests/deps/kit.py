"""The dependencies suite's package kit: tiny packages written by the test, as wheels
assembled here (a wheel is a zip with a dist-info; no build tool needed), as sdists whose
in-tree PEP 517 backend runs code of the test's choosing when pip builds them (a hostile or
failing build script, with `requires = []` so the build needs nothing from anywhere), and
as a plain setuptools sdist built with `python3 -m pip wheel --no-deps
--no-build-isolation` on the host for comparison. A Wheelhouse is a find-links folder;
write_index lays out a PEP 503 simple index over it. Standard library only (bench/deps.py
uses it too)."""

import hashlib
import io
import random
import re
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

PYTHON = "/usr/bin/python3"
# Debian's wheels of the build tools (python3-setuptools-whl, python3-wheel-whl): served by
# the index so a setuptools sdist can be built with pip's build isolation and no PyPI.
DEBIAN_WHEELS = Path("/usr/share/python-wheels")


def canonical(name):
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def import_name(name):
    """The package folder of a project: NAME with runs of - and . as _."""
    return re.sub(r"[-.]+", "_", name)


# The wheel writer, as source: the kit uses it and embeds it into every in-tree backend,
# which must be self-contained inside the sdist.
WHEEL_WRITER = '''
def write_wheel(outdir, name, version, files, requires=()):
    """Writes NAME-VERSION-py3-none-any.whl holding files {path: bytes} and returns its
    file name."""
    import base64, hashlib, os, re, zipfile
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    meta += "".join(f"Requires-Dist: {r}\\n" for r in requires)
    entries = dict(files)
    entries[f"{info}/METADATA"] = meta.encode()
    entries[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: executord-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for path, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    fname = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(outdir, fname), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in entries.items():
            z.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return fname
'''
_ns = {}
exec(WHEEL_WRITER, _ns)
write_wheel = _ns["write_wheel"]

# An in-tree PEP 517 backend: runs BUILD_CODE (which may set `files`, the package's
# contents, or raise) and then writes the wheel. pip calls build_wheel once and takes the
# metadata from the wheel (no prepare_metadata hook).
BACKEND_TEMPLATE = '''
import re
NAME, VERSION = {name!r}, {version!r}
{writer}

def import_name(name):
    return re.sub(r"[-.]+", "_", name)

def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {{import_name(NAME) + "/__init__.py": b"VERSION = " + repr(VERSION).encode() + b"\\n"}}
{build_code}
    return write_wheel(wheel_directory, NAME, VERSION, files)
'''


class Wheelhouse:
    """A find-links folder of wheels and sdists. Each add_* returns the file's name."""

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def files(self):
        return sorted(p.name for p in self.root.iterdir() if p.is_file())

    def add_wheel(self, name, version, modules=None, requires=(), payload_bytes=0, extra_files=None):
        """A pure-Python wheel of package NAME (import name: NAME with - as _) whose
        __init__ sets VERSION; modules {relative path: text} adds modules to it;
        payload_bytes adds incompressible data (for the cache's size bound); extra_files
        {wheel path: text} adds top-level files outside the package."""
        pkg = import_name(name)
        files = {f"{pkg}/__init__.py": f"VERSION = {version!r}\n".encode()}
        for rel, text in (modules or {}).items():
            files[f"{pkg}/{rel}"] = text.encode()
        for path, text in (extra_files or {}).items():
            files[path] = text.encode()
        if payload_bytes:
            # Seeded random bytes: incompressible, yet the same every run.
            files[f"{pkg}/payload.bin"] = random.Random(f"{name}-{version}").randbytes(payload_bytes)
        return write_wheel(str(self.root), name, version, files, requires)

    def add_backend_sdist(self, name, version, build_code):
        """An sdist NAME-VERSION.tar.gz whose build runs build_code (Python source, the body
        of build_wheel: it may read, connect, sleep, raise, or change `files`)."""
        backend = BACKEND_TEMPLATE.format(name=name, version=version, writer=WHEEL_WRITER,
                                          build_code=textwrap.indent(textwrap.dedent(build_code), "    "))
        pyproject = ('[build-system]\nrequires = []\nbuild-backend = "exd_backend"\nbackend-path = ["."]\n\n'
                     f'[project]\nname = "{name}"\nversion = "{version}"\n')
        pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        return self._sdist(name, version, {"pyproject.toml": pyproject, "exd_backend.py": backend,
                                           "PKG-INFO": pkg_info})

    def add_setuptools_sdist(self, name, version):
        """A setuptools sdist (pyproject.toml naming setuptools.build_meta, and setup.py):
        building it needs setuptools and wheel, which pip's build isolation fetches from
        the package source (add_debian_build_tools)."""
        pkg = import_name(name)
        setup = (f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                 f"packages=[{pkg!r}])\n")
        pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        pyproject = ('[build-system]\nrequires = ["setuptools>=40.8", "wheel"]\n'
                     'build-backend = "setuptools.build_meta"\n')
        return self._sdist(name, version, {"pyproject.toml": pyproject, "setup.py": setup, "PKG-INFO": pkg_info,
                                           f"{pkg}/__init__.py": f"VERSION = {version!r}\nBUILT = 'setuptools'\n"})

    def _sdist(self, name, version, files):
        base = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
        fname = f"{base}.tar.gz"
        with tarfile.open(self.root / fname, "w:gz") as tar:
            for path, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{base}/{path}")
                info.size, info.mode, info.mtime = len(data), 0o644, 1767225600
                tar.addfile(info, io.BytesIO(data))
        return fname

    def add_built_wheel(self, name, version, workdir):
        """A setuptools project built on the host with `python3 -m pip wheel --no-deps
        --no-build-isolation` (the host's setuptools and wheel): a wheel made the ordinary
        way, next to the assembled ones."""
        src = Path(workdir) / f"{name}-{version}-src"
        pkg = import_name(name)
        (src / pkg).mkdir(parents=True, exist_ok=True)
        (src / "setup.py").write_text(f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                                      f"packages=[{pkg!r}])\n")
        (src / pkg / "__init__.py").write_text(f"VERSION = {version!r}\nBUILT = 'pip wheel'\n")
        before = set(self.files())
        p = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-q", "-w", str(self.root), str(src)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"pip wheel {name} failed:\n{p.stdout}\n{p.stderr}")
        made = sorted(set(self.files()) - before)
        assert len(made) == 1, made
        return made[0]

    def add_debian_build_tools(self):
        """Debian's setuptools and wheel wheels, for builds in pip's build isolation."""
        added = []
        for whl in sorted(DEBIAN_WHEELS.glob("*.whl")):
            if whl.name.split("-")[0] in ("setuptools", "wheel"):
                shutil.copy2(whl, self.root / whl.name)
                added.append(whl.name)
        return added


def project_of(filename):
    """The canonical project name of a wheel or sdist file name."""
    stem = filename[:-len(".tar.gz")] if filename.endswith(".tar.gz") else filename
    return canonical(stem.split("-")[0])


def write_index(house, root):
    """A PEP 503 simple index at ROOT/simple/ whose links point at ROOT/files/ (a copy of
    the wheelhouse), each with its sha256 fragment."""
    root = Path(root)
    files_dir, simple = root / "files", root / "simple"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(house.root, files_dir)
    projects = {}
    for name in house.files():
        projects.setdefault(project_of(name), []).append(name)
    simple.mkdir(parents=True)
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n" +
        "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects)) + "</body></html>\n")
    for project, names in projects.items():
        (simple / project).mkdir()
        links = "".join(
            f'<a href="../../files/{n}#sha256={hashlib.sha256((files_dir / n).read_bytes()).hexdigest()}">{n}</a>\n'
            for n in names)
        (simple / project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    return simple
