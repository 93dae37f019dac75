"""Numbered run folders (``runs/00003-pix2pix-facades/``) and finding a run to resume.

A run folder holds::

    config.yaml            the resolved config (every key), readable by --config
    checkpoints/latest.pt  weights at the last checkpoint (+ state_XXXXXXXX.pt: optimizer/RNG/... state)
    checkpoints/best.pt    weights at the best validation score
    samples/               input | output | target PNG grids
    logs/                  TensorBoard event files and log.txt
    ...                    the method's exported models (e.g. generator.pt)
    .lock                  while a process writes the run: its pid, host and start time (see RunLock)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from ganslim.atomic import atomic_write_text
from ganslim.config import TrainConfig, config_to_yaml, read_config_file
from ganslim.engine.distributed import DistInfo, on_main
from ganslim.errors import GanslimError

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
BEST = "best.pt"
LOCK_FILE = ".lock"
ANY_TRAINING_COMMAND = "'ganslim train' or 'ganslim compress'"
_NUMBERED = re.compile(r"^(\d{5,})-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_label(method: str, config: TrainConfig) -> str:
    """``pix2pix-facades``: the method and the run name (default: the dataset folder's name)."""
    suffix = config.name or Path(config.data.rstrip("/\\")).name or "data"
    return _UNSAFE.sub("_", f"{method}-{suffix}")


def create_run_dir(out_dir: str | os.PathLike, label: str) -> Path:
    """Create ``out_dir/NNNNN-label/`` with the next free number (safe against concurrent runs)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GanslimError(f"--out-dir '{out_dir}' is a file, not a folder: pass a folder for the run folders")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        while True:
            numbers = [int(match.group(1)) for entry in out_dir.iterdir() if (match := _NUMBERED.match(entry.name))]
            run_dir = out_dir / f"{max(numbers, default=-1) + 1:05d}-{label}"
            try:
                run_dir.mkdir()
            except FileExistsError:  # another run took this number between listing and mkdir
                continue
            return run_dir
    except OSError as error:
        raise GanslimError(f"cannot create a run folder in '{out_dir}' ({error.strerror}): pass a writable "
                           f"--out-dir") from None


def write_config(run_dir: Path, config: TrainConfig, method: str) -> Path:
    """Write the resolved config as ``run_dir/config.yaml`` (atomically)."""
    return atomic_write_text(config_to_yaml(config, method), run_dir / CONFIG_FILE)


def error_reason(error: OSError) -> str:
    """``"No space left on device"``: the system's words for an OSError, even one raised without them."""
    return error.strerror or (os.strerror(error.errno) if error.errno else str(error) or type(error).__name__)


def new_run_dir(config: TrainConfig, method: str) -> Path:
    """A new numbered run folder of ``method`` in ``config.out_dir`` holding config.yaml (removed again if that
    cannot be written)."""
    run_dir = create_run_dir(config.out_dir, run_label(method, config))
    try:
        write_config(run_dir, config, method)
    except OSError as error:
        shutil.rmtree(run_dir, ignore_errors=True)  # just created here, holding nothing else
        raise GanslimError(f"cannot write '{run_dir / CONFIG_FILE}' ({error_reason(error)}): free disk space or "
                           f"pass a writable --out-dir") from None
    return run_dir


def open_run_dir(info: DistInfo, config: TrainConfig, method: str, resume: str | os.PathLike | None,
                 made_by: str) -> Path:
    """The run folder every rank works in: ``resume``, checked to be a run folder that ``made_by`` (e.g.
    ``"'ganslim compress omgd'"``) made, or a new one that rank 0 makes (:func:`new_run_dir`)."""
    if resume is not None:
        return require_run_folder(resume, made_by)
    return Path(on_main(info, lambda: str(new_run_dir(config, method))))


def require_run_folder(path: str | os.PathLike, made_by: str = ANY_TRAINING_COMMAND) -> Path:
    """``path`` if it holds a ``config.yaml``; else a one-line error naming the command (``made_by``) that makes
    run folders."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise GanslimError(f"'{path}' is not a run folder (no {CONFIG_FILE}): pass a folder that {made_by} made")
    return path


def resolve_resume(path: str | os.PathLike, made_by: str = ANY_TRAINING_COMMAND) -> tuple[Path, Path]:
    """``(run_dir, latest checkpoint)`` for a run folder or its ``checkpoints/latest.pt``."""
    path = Path(path)
    if path.is_dir():
        run_dir = require_run_folder(path.parent if path.name == CHECKPOINT_DIR else path, made_by)
        checkpoint = run_dir / CHECKPOINT_DIR / LATEST
        if not checkpoint.is_file():
            raise GanslimError(f"run folder '{run_dir}' has no {CHECKPOINT_DIR}/{LATEST} yet: it stopped before "
                               f"its first checkpoint, start it again without --resume")
    elif path.is_file():
        if path.name != LATEST:
            raise GanslimError(f"'{path}' is not a resumable checkpoint: pass the run folder or its "
                               f"{CHECKPOINT_DIR}/{LATEST} ({BEST} holds weights only)")
        checkpoint, run_dir = path, require_run_folder(path.parent.parent, made_by)
    else:
        raise GanslimError(f"--resume '{path}' not found: pass a run folder such as runs/00003-pix2pix-facades")
    return run_dir, checkpoint


def resume_folder(run_dir: Path) -> Path:
    """The folder to pass to ``--resume``: ``run_dir``, or the run whose stage it is (a run folder inside a run
    folder, as the stages of ``ganslim compress gan-compression``)."""
    folder = Path(run_dir)
    while (folder.parent / CONFIG_FILE).is_file():
        folder = folder.parent
    return folder


def read_run_config(run_dir: Path) -> dict:
    """The resolved config mapping a run folder was started with (including its ``method`` key)."""
    return read_config_file(run_dir / CONFIG_FILE)


class RunLock:
    """``run_dir/.lock``, held by the one process that writes a run folder; ``with RunLock(run_dir):``.

    The hold is an exclusive ``flock`` on the file, which the kernel drops when the holder dies however it
    dies, so a lock file left behind by a killed run is stale by construction and taken over (``notice``
    says so). The file names the holder (pid, host, start time) for the line that refuses a second writer.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.notice: str | None = None  # a line for the log: a stale lock taken over, or no locks here
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock or raise a one-line GanslimError naming the process that holds it."""
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise GanslimError(f"cannot write in run folder '{self.path.parent}' ({error.strerror}): copy it "
                                   f"somewhere writable and resume the copy") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise GanslimError(f"run folder '{self.path.parent}' is in use by {holder} (lock file {self.path}):"
                                   f" wait for that run to end or stop it, then resume") from None
            except OSError as error:  # a file system without locks (some network mounts): run unguarded
                os.close(fd)
                self.path.unlink(missing_ok=True)
                self.notice = (f"cannot lock {self.path} ({error.strerror}): make sure no other process writes "
                               f"this run folder")
                return
            if not _is_file_at(fd, self.path):  # the holder released (deleted) it between our open and flock
                os.close(fd)
                continue
            previous = _read_holder(fd) if os.fstat(fd).st_size else None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
            if previous is not None:
                self.notice = f"took over the stale lock {self.path} of {previous}, which no longer runs"
            self._fd = fd

    def release(self) -> None:
        """Delete the lock file (while still holding it, so no one takes a file that is going away) and let go."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """``"pid 123 on host h (since 2024-05-01 10:00:00)"`` from a lock file's content."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']} on host {holder['host']} (since {holder['started']})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


def _is_file_at(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
