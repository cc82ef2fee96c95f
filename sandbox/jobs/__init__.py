"""Jobs: submit, run in the sandbox, gate the outputs, hand them to the stewards.

    job = wh.jobs.submit(principal, job_dir)      # Jobs (.service); job.yaml is a JobSpec (.spec)
    Worker(wh, worker_id).serve(stop)             # take queued jobs from the catalog (.workers)
    run_local(job_dir, manifests, mock_dir)       # develop on mock tables (.localrun)

Modules: :mod:`.service`, :mod:`.files` (a job's code and logs, shared between machines), :mod:`.spec`, :mod:`.leases` (who runs a job until when), :mod:`.workers`,
:mod:`.localrun`. Errors: ``JobSpecInvalid``, ``Forbidden``, ``InvalidTransition``, ``SandboxError``.

May import: every service wing below it (training, release, broker, datasets, isolation, …);
only the facade and the interfaces import it.
"""

__all__ = ["files", "leases", "localrun", "service", "spec", "workers"]
