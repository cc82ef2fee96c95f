"""Job isolation: untrusted code runs under bubblewrap with a trusted broker as its only door to data.

    result = run_in_sandbox(job_dir, scratch_dir, handler, SandboxLimits())   # handler answers the job's requests
    result.outcome, result.outputs                                           # read only after teardown

Modules: :mod:`.runner` (the supervisor), :mod:`.stage` (the root-side launcher server, run as a
script) and :mod:`.launcher` (the supervisor's side of it), :mod:`.availability` (the per-host
record that sandboxes work),
:mod:`.procs` (per-run uid, process teardown), :mod:`.cgroup` (memory and process ceilings),
:mod:`.scratch` (the job's copy and environment), :mod:`.mounts` (the file tree at neutral paths,
the /out tmpfs), :mod:`.seccomp` (the system-call allow-list), :mod:`.channel` (the broker
conversation and capped pipes), :mod:`.outbox` (the job's output folder, read fail-closed). ``jobclient/twh_job.py`` is the
job's side of the conversation, bound read-only into every sandbox. Errors: ``SandboxError``,
``JobSpecInvalid``.

May import: :mod:`sandbox.errors` only. Isolation knows nothing of the catalog, the gate or the
audit: the handler it is given is its whole world.
"""

__all__ = ["availability", "cgroup", "channel", "launcher", "mounts", "outbox", "procs", "runner", "scratch", "seccomp",
           "stage"]
