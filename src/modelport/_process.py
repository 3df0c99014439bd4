"""Whether a process still exists on this machine: a worker board's slot, a batch run's job."""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool:
    """True while process ``pid`` exists here (another user's counts: signalling it is only
    refused). A pid the system has since given to a new process also counts, which is why
    callers that can also look at time (a run's heartbeat) do."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
