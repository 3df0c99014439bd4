"""The worker board: a version is committed only when every live worker holds it, commands
reach every worker, and a dead worker neither blocks a commit nor keeps its slot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelport.serving.worker_board import LOADING, NONE, PATH, WorkerBoard, encode


def test_one_process_commits_what_it_holds_and_follows_commands() -> None:
    board = WorkerBoard.in_memory(models=2)
    board.join()
    assert not board.shared
    assert board.committed(0) == NONE
    board.report(0, LOADING)
    assert board.try_commit(0) == NONE
    assert board.waiting_for_first_load(0)
    board.report(0, 3)
    assert board.try_commit(0) == 3
    assert board.committed(1) == NONE  # models are independent

    epoch = board.command(0, unload=True)
    assert (epoch, board.unloaded(0), board.committed(0)) == (1, True, NONE)
    assert board.try_commit(0) == NONE, "nothing is committed while unloaded"
    assert not board.all_seen(0, epoch)
    board.report(0, NONE, seen=epoch)
    assert board.all_seen(0, epoch)

    epoch = board.command(0, unload=False)
    assert (epoch, board.unloaded(0)) == (2, False)
    board.report(0, 4, seen=epoch)
    assert board.try_commit(0) == 4


def test_workers_commit_only_a_version_all_of_them_hold(tmp_path: Path) -> None:
    path = tmp_path / "board"
    WorkerBoard.create(path, models=1, slots=3)
    first, second = WorkerBoard.open(path), WorkerBoard.open(path)
    first.join()
    second.join()
    assert first.shared
    first.report(0, 1)
    second.report(0, LOADING)
    assert first.try_commit(0) == NONE
    second.report(0, 1)
    assert first.try_commit(0) == 1

    first.report(0, 2)  # the alias moved: the first worker has loaded version 2
    assert first.try_commit(0) == 1, "the second still has only version 1"
    second.report(0, 2)
    assert second.try_commit(0) == 2
    assert first.committed(0) == 2  # the same memory, read by the other worker

    epoch = second.command(0, unload=True)
    assert first.unloaded(0)
    assert first.committed(0) == NONE
    second.report(0, NONE, seen=epoch)
    assert not second.all_seen(0, epoch)
    first.report(0, NONE, seen=epoch)
    assert second.all_seen(0, epoch)

    second.leave()  # a stopping worker no longer holds commits up
    first.report(0, encode(None))
    second.command(0, unload=False)
    assert first.try_commit(0) == PATH
    first.close()
    second.close()


def test_a_dead_worker_neither_blocks_commits_nor_keeps_its_slot(tmp_path: Path) -> None:
    path = tmp_path / "board"
    WorkerBoard.create(path, models=1, slots=2)
    code = (
        "import sys; from pathlib import Path\n"
        "from modelport.serving.worker_board import WorkerBoard\n"
        "board = WorkerBoard.open(Path(sys.argv[1])); board.join(); board.report(0, 9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)  # exits holding a slot
    board = WorkerBoard.open(path)
    board.join()
    board.report(0, 5)
    assert board.try_commit(0) == 5, "the dead worker's version 9 does not count"
    other = WorkerBoard.open(path)
    other.join()  # takes the dead worker's slot: there are only two
    third = WorkerBoard.open(path)
    with pytest.raises(RuntimeError, match="no free slot"):
        third.join()
    for b in (board, other, third):
        b.close()


def test_a_file_that_is_not_a_board_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "board"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="not a modelport worker board"):
        WorkerBoard.open(path)
