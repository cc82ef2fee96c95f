"""Nothing readable inside the sandbox names the host's layout: the warehouse home, the job, the
scratch folder, the checkout, the venv or the interpreter's install.

Bind mounts show their source's host path in ``/proc/self/mountinfo``; the runner shows every
host folder through a neutral overlay instead (``sandbox/isolation/mounts.py``). The job here
walks the whole tree and greps: every path name under ``/``, the target of every symlink, the
content of every file outside ``/usr`` and the Python install (its own folder, ``/twh``,
``/out``, ``/tmp``...), everything readable under ``/proc/self`` and ``/proc/1`` (mountinfo,
mounts, environ, cmdline, cwd, exe, maps, cgroup, status...), the environment, and the Python
install's configuration and packaging metadata (``pyvenv.cfg``, ``*.pth``, ``*.dist-info``...).
Not grepped: the installed libraries' code and bytecode (see the mounts module: bytecode records
the path it was compiled at, which names the install location and nothing of the warehouse).
A canary file in the job folder proves the grep reads what it claims to.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

from sandbox.isolation.runner import SandboxLimits, SandboxOutcome, run_in_sandbox

REPO = Path(__file__).resolve().parents[2]

_WALK = r'''
import json, os, sys
# hex-encoded, so that the list itself is no hit
NEEDLES = {k: bytes.fromhex(v).decode() for k, v in json.load(open("/job/needles.json")).items()}
hits = {n: [] for n in NEEDLES}
counts = {"names": 0, "files": 0, "proc": 0}
META_SUFFIXES = (".pth", ".cfg", ".json", ".txt", ".toml", ".egg-link", ".ini")
META_NAMES = {"RECORD", "INSTALLER", "METADATA", "WHEEL", "REQUESTED", "entry_points.txt", "top_level.txt"}

def check(where, text):
    for name, needle in NEEDLES.items():
        if needle in text and len(hits[name]) < 10:
            hits[name].append(where)

def read(path, limit=4 << 20):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""

for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys")]
    in_python = root.startswith(("/opt/python", "/opt/venv"))
    for name in dirs + files:
        path = os.path.join(root, name)
        counts["names"] += 1
        check("name " + path, path)
        if os.path.islink(path):
            check("link " + path, os.readlink(path))
    for name in files:
        path = os.path.join(root, name)
        if root.startswith(("/usr", "/dev")) or not os.path.isfile(path) or os.path.islink(path):
            continue
        if in_python and not (name.endswith(META_SUFFIXES) or name in META_NAMES or ".dist-info" in root):
            continue
        counts["files"] += 1
        check("file " + path, read(path))

for base in ("/proc/self", "/proc/1", "/proc/thread-self"):
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if d not in ("net", "task")]  # net: the namespace's; task: the same again
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                try:
                    check("link " + path, os.readlink(path))
                except OSError:
                    pass
        for name in files:
            if name in ("pagemap", "mem", "clear_refs", "kmsg", "exe"):
                continue  # (exe: the interpreter binary itself, whose run path names its build prefix)
            counts["proc"] += 1
            check("proc " + os.path.join(root, name), read(os.path.join(root, name), 1 << 20))
for name in ("mounts", "cmdline", "keys", "cgroups", "partitions", "swaps"):
    check("proc /proc/" + name, read("/proc/" + name))
for key, value in os.environ.items():
    check("env " + key, key + "=" + value)
check("cwd", os.getcwd())
check("sys", repr([sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.path, sys.argv]))
print(json.dumps({"hits": hits, "counts": counts, "prefix": sys.prefix, "executable": sys.executable}))
'''


def test_nothing_inside_names_the_host_layout(sandbox_available, tmp_path: Path) -> None:
    job_id = f"job_{secrets.token_hex(6)}"
    home = tmp_path / f"warehouse-{secrets.token_hex(4)}"
    job_dir, scratch = home / "jobs" / job_id / "code", home / "jobs" / job_id / "run"
    job_dir.mkdir(parents=True)
    scratch.mkdir()
    (job_dir / "job.py").write_text(_WALK)
    canary = f"canary-{secrets.token_hex(6)}"
    (job_dir / "canary.txt").write_text(canary)
    needles = {"home": str(home), "job id": job_id, "scratch": str(scratch), "checkout": str(REPO),
               "venv": os.path.realpath(sys.prefix), "interpreter install": os.path.realpath(sys.base_prefix),
               "canary": canary}
    # a path of 8 characters or fewer (a checkout at /tmp/ci) would match ordinary text: such a
    # needle is left out, the rest (the warehouse home, job id and scratch always among them) stay
    needles = {k: v for k, v in needles.items() if len(v) > 8}
    assert {"home", "job id", "scratch", "canary"} <= set(needles)
    (job_dir / "needles.json").write_text(json.dumps({k: v.encode().hex() for k, v in needles.items()}))
    result = run_in_sandbox(job_dir, scratch, lambda r: {"ok": True}, SandboxLimits(wall_seconds=120))
    assert result.outcome is SandboxOutcome.SUCCEEDED, (result.reason, result.stderr[-3000:])
    seen = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert seen["hits"].pop("canary") == ["file /job/canary.txt"]  # the grep reads what it claims
    assert seen["hits"] == {k: [] for k in needles if k != "canary"}
    assert seen["counts"]["names"] > 10_000 and seen["counts"]["proc"] > 30  # it walked /usr and /proc/self
    assert (seen["prefix"], seen["executable"]) == ("/opt/venv", "/opt/venv/bin/python") if sys.prefix != sys.base_prefix \
        else seen["prefix"] in ("/opt/python", "/usr", "/usr/local")


def test_a_venv_under_tmp_works_from_the_neutral_paths(sandbox_available, tmp_path: Path) -> None:
    """A CI clone lives under /tmp: its venv must be staged before the launcher covers /tmp, and
    the job's interpreter must start from /opt/venv with the venv's own packages."""
    venv = tmp_path / "clone" / ".venv"
    # made as `make setup` makes it (this process may run under the warehouse's umask 077)
    subprocess.run(["/bin/sh", "-c", f'umask 022; exec "{sys.executable}" -m venv --without-pip "{venv}"'], check=True)
    tmp_path.chmod(0o755)
    (tmp_path / "clone").chmod(0o755)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "ci_only_pkg.py").write_text("WHERE = __file__\n")
    # The supervisor finds pyseccomp and the warehouse through this (it needs them; the job does not).
    main_site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    (site / "zz_supervisor_deps.pth").write_text(f"{main_site}\n{REPO}\n")
    for f in site.iterdir():
        f.chmod(0o644)
    job = tmp_path / "code"
    job.mkdir()
    (job / "job.py").write_text(textwrap.dedent("""
        import json, sys, ci_only_pkg
        mountinfo = open("/proc/self/mountinfo").read()
        print(json.dumps({"prefix": sys.prefix, "base": sys.base_prefix, "pkg": ci_only_pkg.WHERE,
                          "mountinfo": mountinfo}))
    """))
    supervisor = textwrap.dedent(f"""
        import json, pathlib
        from sandbox.isolation.runner import run_in_sandbox
        scratch = pathlib.Path({str(tmp_path / 'run')!r}); scratch.mkdir()
        r = run_in_sandbox(pathlib.Path({str(job)!r}), scratch, lambda q: {{"ok": True}})
        print(json.dumps({{"outcome": r.outcome.value, "stdout": r.stdout.decode(), "stderr": r.stderr.decode()[-2000:]}}))
    """)
    done = subprocess.run([str(venv / "bin" / "python"), "-c", supervisor], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "succeeded", report["stderr"]
    seen = json.loads(report["stdout"].strip().splitlines()[-1])
    assert seen["prefix"] == "/opt/venv" and seen["pkg"].startswith("/opt/venv/lib/")
    assert str(tmp_path) not in seen["mountinfo"] and "/opt/venv/lib" in seen["mountinfo"]


def test_a_python_install_others_cannot_read_is_refused_clearly(sandbox_available, tmp_path: Path) -> None:
    venv = tmp_path / "private" / ".venv"
    subprocess.run(["/bin/sh", "-c", f'umask 077; exec "{sys.executable}" -m venv --without-pip "{venv}"'], check=True)
    main_site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    (next(venv.glob("lib/python3*/site-packages")) / "zz_deps.pth").write_text(f"{main_site}\n{REPO}\n")
    code = ("from sandbox.isolation.mounts import python_install\n"
            "from sandbox.errors import SandboxError\n"
            "try:\n    python_install()\nexcept SandboxError as e:\n    print(e.message)\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60)
    assert "not readable by other users" in out.stdout and "chmod -R o+rX" in out.stdout, out.stderr[-2000:]
