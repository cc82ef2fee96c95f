"""The job and export state machines allow exactly the transitions drawn in ARCHITECTURE.md."""

from __future__ import annotations

import pytest

from sandbox.catalog.states import (
    EXPORT_TRANSITIONS,
    JOB_TRANSITIONS,
    ExportState,
    JobState,
    check_export_transition,
    check_job_transition,
)
from sandbox.errors import InvalidTransition


@pytest.mark.parametrize("src", list(JobState))
@pytest.mark.parametrize("dst", list(JobState))
def test_job_transitions(src, dst):
    if dst in JOB_TRANSITIONS[src]:
        check_job_transition(src.value, dst)
    else:
        with pytest.raises(InvalidTransition):
            check_job_transition(src.value, dst)


def test_terminal_states_are_terminal():
    for s in (JobState.RELEASED, JobState.DENIED, JobState.FAILED):
        assert JOB_TRANSITIONS[s] == frozenset()
    with pytest.raises(InvalidTransition):
        check_export_transition("approved", ExportState.DENIED)
    assert EXPORT_TRANSITIONS[ExportState.PENDING] == {ExportState.APPROVED, ExportState.DENIED}


def test_no_path_to_released_skips_gating():
    # from queued/running the only ways forward pass through gating
    assert JobState.RELEASED not in JOB_TRANSITIONS[JobState.QUEUED]
    assert JobState.RELEASED not in JOB_TRANSITIONS[JobState.RUNNING]
    assert JobState.AWAITING_APPROVAL not in JOB_TRANSITIONS[JobState.RUNNING]
