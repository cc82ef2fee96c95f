"""Attacks through the whole stack: each fails, the job ends with a clear status, the audit log has it.

The runner's own attack suite (tests/isolation/test_runner_attacks.py) goes deeper into each
defence; these show the same attacks end to end, as an enterprise would submit them.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def fast(landed, monkeypatch):
    """The landed warehouse, with short limits so the slow attacks end quickly."""
    st = landed.settings.model_copy(update={"job_wall_seconds": 4.0, "job_cpu_seconds": 4, "job_memory_mb": 512})
    monkeypatch.setattr(landed.ctx, "settings", st)
    return landed


def _run(wh, people, job_dir, code):
    job = wh.jobs.run(wh.jobs.submit(people["analyst"], job_dir(code))["id"])
    recs = wh.audit_records(people["auditor"], object_id=job["id"], limit=1000)
    return job, recs, wh.jobs.logs(people["auditor"], job["id"])


def _failed(job, recs, *words):
    assert job["state"] == "failed", job
    (rec,) = [r for r in recs if r["action"] == "job.failed"]
    text = (job["reason"] + " " + str(rec["details"])).lower()
    assert all(w in text for w in words), text
    return rec


def test_reading_the_warehouse_fails(fast, people, job_dir):
    home = fast.settings.home
    code = f"""
        import os
        for p in [{str(home / 'catalog.db')!r}, {str(home / 'secrets' / 'audit.key')!r},
                  {str(home / 'tables')!r}, {str(home)!r}]:
            assert not os.path.exists(p), "can see " + p
        raise SystemExit("nothing visible")
    """
    job, recs, logs = _run(fast, people, job_dir, code)
    _failed(job, recs, "exit")
    assert "nothing visible" in logs["stderr"] and "can see" not in logs["stderr"]


def test_opening_a_socket_fails(fast, people, job_dir):
    code = """
        import socket
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", 22))
    """
    job, recs, logs = _run(fast, people, job_dir, code)
    _failed(job, recs)
    assert "Error" in logs["stderr"]  # ConnectionRefused / Network unreachable, not a connection


def test_proc_1_environ_has_no_secrets(fast, people, job_dir, monkeypatch):
    monkeypatch.setenv("TWH_SECRET_PROBE", "s3cr3t-value")
    code = """
        data = open("/proc/1/environ", "rb").read()
        assert b"s3cr3t-value" not in data and b"TWH_HOME" not in data
        raise SystemExit("environ clean")
    """
    job, recs, logs = _run(fast, people, job_dir, code)
    _failed(job, recs)
    assert "environ clean" in logs["stderr"]


@pytest.mark.parametrize("make", [
    "os.symlink('/etc/passwd', '/out/leak.csv')",
    "os.mkfifo('/out/pipe.csv')",
    "open('/out/a.csv','w').write('x'); os.link('/out/a.csv', '/out/b.csv')",
])
def test_links_and_fifos_in_outputs_are_refused(fast, people, job_dir, make):
    job, recs, _ = _run(fast, people, job_dir, f"import os\n{make}\n")
    _failed(job, recs, "output")


def test_fork_bomb_is_contained(fast, people, job_dir):
    code = """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """
    job, recs, _ = _run(fast, people, job_dir, code)
    _failed(job, recs)


def test_allocating_50_gb_fails(fast, people, job_dir):
    job, recs, logs = _run(fast, people, job_dir, "x = bytearray(50 * 1024**3)\n")
    _failed(job, recs, "exit")
    assert "MemoryError" in logs["stderr"]


def test_running_forever_is_killed(fast, people, job_dir):
    job, recs, _ = _run(fast, people, job_dir, "import time\nwhile True: time.sleep(1)\n")
    _failed(job, recs, "timed_out")


def test_background_process_is_killed_before_outputs_are_read(fast, people, job_dir):
    code = """
        import os, time
        open("/out/r.csv", "w").write("a\\n1\\n")
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for i in range(100):
                    open("/out/r.csv", "w").write("a\\nleak%d\\n" % i)
                    time.sleep(0.05)
            os._exit(0)
    """
    job, recs, _ = _run(fast, people, job_dir, code)
    # Whatever the background writer managed, it is dead now and the export holds what was read then.
    started = [r for r in recs if r["action"] in ("job.gating", "job.failed")]
    assert started, recs
    if job["state"] == "awaiting_approval":
        e = fast.exports.preview(people["auditor"], fast.jobs.get(people["auditor"], job["id"])["export"]["id"])
        before = e[0].data
        import time
        time.sleep(0.5)
        e2 = fast.exports.preview(people["auditor"], fast.jobs.get(people["auditor"], job["id"])["export"]["id"])
        assert e2[0].data == before
    # The runner checked for processes that outlived the job (the pid namespace's death kills them) and
    # recorded the count; the job's scratch folder is gone, so nothing is left to rewrite.
    (rec,) = [r for r in recs if r["action"] in ("job.gating", "job.failed") and "leftover_processes_killed" in
              r["details"]]
    assert rec["details"]["leftover_processes_killed"] >= 0
    assert not (fast.settings.jobs_dir / job["id"] / "run").exists()
