"""What the worker processes of one server agree on: the version each model answers with,
and the repository commands (load, unload) every worker must follow.

With ``--workers N`` each process loads its own copy of every model, yet clients must see one
server. So a version answers only once every worker holds it, and then on all of them at the
same instant: each request reads the committed version from this board. A repository load or
unload sent to one worker is written here too, and the others apply it within
:data:`WATCH_SECONDS`.

The board is a small file of 64-bit integers that ``serve`` makes before the workers start,
which each worker maps into memory (reading it costs no system call; changes take an
exclusive ``flock``). A server with one process keeps the same board in memory, so both run
the same code. Layout: a header ``[magic, models, slots]``; per model ``[committed, epoch,
unloaded]``; per slot ``[pid, then per model: ready, seen epoch]``. A slot belongs to a live
worker process; a dead worker's slot is ignored and reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from modelport._process import process_exists

NONE = -1
"""Nothing committed, or nothing ready in a worker."""
LOADING = -2
"""A worker's first load of the model is under way: others wait for it before committing."""
PATH = 0
"""The version number of a model served from a path (the registry's versions start at 1)."""
WATCH_SECONDS = 0.05
"""How often each worker looks at the board for commands and commits of other workers."""

_MAGIC = 0x6D6F64656C626431  # "modelbd1"
_WORD = struct.Struct("<q")
_HEADER = 3
_MODEL_WORDS = 3  # committed, epoch, unloaded


def encode(version: int | None) -> int:
    """A served version as the board writes it (a path model's None is :data:`PATH`)."""
    return PATH if version is None else version


class WorkerBoard:
    """The shared state of one server's workers; every method is cheap and never blocks long."""

    def __init__(self, buffer: mmap.mmap | bytearray, fd: int | None) -> None:
        self._buf = buffer
        self._fd = fd
        self._thread_lock = threading.Lock()
        magic, self.models, self.slots = (self._get(i) for i in range(_HEADER))
        if magic != _MAGIC:
            raise ValueError("not a modelport worker board")
        self._slot: int | None = None

    @classmethod
    def create(cls, path: Path, models: int, slots: int) -> None:
        """Write an empty board for ``models`` served models and up to ``slots`` workers."""
        size = _HEADER + models * _MODEL_WORDS + slots * (1 + 2 * models)
        words = [_MAGIC, models, slots] + [0] * (size - _HEADER)
        for m in range(models):  # nothing committed yet
            words[_HEADER + m * _MODEL_WORDS] = NONE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(_WORD.pack(w) for w in words))

    @classmethod
    def open(cls, path: Path) -> WorkerBoard:
        """Map the board ``serve`` made (in a worker process)."""
        fd = os.open(path, os.O_RDWR)
        try:
            return cls(mmap.mmap(fd, 0), fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def in_memory(cls, models: int) -> WorkerBoard:
        """A board for a server of one process."""
        words = [_MAGIC, models, 1] + [NONE, 0, 0] * models + [0] * (1 + 2 * models)
        return cls(bytearray(b"".join(_WORD.pack(w) for w in words)), None)

    @property
    def shared(self) -> bool:
        """True when other processes use this board too."""
        return self._fd is not None

    # -- one model ------------------------------------------------------------------------

    def committed(self, model: int) -> int:
        """The version every worker answers with now (:data:`NONE`: none)."""
        return self._get(self._model(model))

    def epoch(self, model: int) -> int:
        """How many repository commands were sent for the model."""
        return self._get(self._model(model) + 1)

    def unloaded(self, model: int) -> bool:
        """True after a repository unload, until the next load."""
        return self._get(self._model(model) + 2) != 0

    def command(self, model: int, *, unload: bool) -> int:
        """Record a repository load or unload for every worker; returns its epoch. An unload
        takes the committed version away at once, so no worker answers after it."""
        base = self._model(model)
        with self._locked():
            epoch = self._get(base + 1) + 1
            self._set(base + 1, epoch)
            self._set(base + 2, int(unload))
            if unload:
                self._set(base, NONE)
            return epoch

    def try_commit(self, model: int) -> int:
        """Commit the version every live worker holds ready, if they agree; returns the
        committed version (unchanged when they do not)."""
        base = self._model(model)
        with self._locked():
            ready = {self._get(self._ready(slot, model)) for slot in self._live()}
            if len(ready) == 1 and not self._get(base + 2):
                (version,) = ready
                if version >= PATH:
                    self._set(base, version)
            return self._get(base)

    def waiting_for_first_load(self, model: int) -> bool:
        """True while a live worker's first load of the model is under way."""
        return any(self._get(self._ready(s, model)) == LOADING for s in self._live())

    def all_seen(self, model: int, epoch: int) -> bool:
        """True once every live worker has applied the command of ``epoch``."""
        return all(self._get(self._ready(s, model) + 1) >= epoch for s in self._live())

    # -- this worker ----------------------------------------------------------------------

    def join(self) -> None:
        """Take a slot for this process (a free one, or one whose process has died)."""
        pid = os.getpid()
        with self._locked():
            for slot in range(self.slots):
                owner = self._get(self._slot_base(slot))
                if owner == 0 or not process_exists(owner):
                    self._set(self._slot_base(slot), pid)
                    for m in range(self.models):  # commands so far are reflected in the start
                        self._set(self._ready(slot, m), NONE)
                        self._set(self._ready(slot, m) + 1, self.epoch(m))
                    self._slot = slot
                    return
        raise RuntimeError(f"no free slot on the worker board ({self.slots} workers)")

    def leave(self) -> None:
        """Give the slot back: a stopping worker no longer holds commits up."""
        if self._slot is not None:
            with self._locked():
                self._set(self._slot_base(self._slot), 0)
            self._slot = None

    def report(self, model: int, ready: int, *, seen: int | None = None) -> None:
        """Say which version this worker holds ready (loaded, warm) and which command it
        has applied."""
        assert self._slot is not None, "join first"
        with self._locked():
            self._set(self._ready(self._slot, model), ready)
            if seen is not None:
                self._set(self._ready(self._slot, model) + 1, seen)

    def close(self) -> None:
        """Leave, and unmap the board."""
        self.leave()
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- layout -----------------------------------------------------------------------------

    def _model(self, model: int) -> int:
        return _HEADER + model * _MODEL_WORDS

    def _slot_base(self, slot: int) -> int:
        return _HEADER + self.models * _MODEL_WORDS + slot * (1 + 2 * self.models)

    def _ready(self, slot: int, model: int) -> int:
        return self._slot_base(slot) + 1 + 2 * model

    def _live(self) -> list[int]:
        me = os.getpid()
        pids = ((s, self._get(self._slot_base(s))) for s in range(self.slots))
        return [s for s, pid in pids if pid != 0 and (pid == me or process_exists(pid))]

    def _get(self, word: int) -> int:
        return int(_WORD.unpack_from(self._buf, word * 8)[0])

    def _set(self, word: int, value: int) -> None:
        _WORD.pack_into(self._buf, word * 8, value)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
