"""The one exception type for user mistakes, and the helper that fits a foreign error into its one line."""

from __future__ import annotations


class GanslimError(Exception):
    """A mistake the user can fix (bad path, bad data, mismatched checkpoint, impossible budget).

    The message is one line that names the thing and the fix; the CLI prints it without a traceback.
    """


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters; ``None``: all of it), or its type
    name when the message is empty: the detail a one-line :class:`GanslimError` quotes from torch, NumPy, ..."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a training run, with where it stopped; the CLI prints :meth:`line` instead of a traceback.

    ``checkpoint`` is ``(step, path)`` of the last checkpoint on disk (None before the first one);
    ``resume_dir`` is the folder ``--resume`` takes (the run folder, or the staged run it belongs to).
    """

    def __init__(self, step: int, run_dir: str, resume_dir: str, checkpoint: tuple[int, str] | None) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.run_dir, self.resume_dir, self.checkpoint = step, run_dir, resume_dir, checkpoint

    def line(self, command: str) -> str:
        """The one line for the user; ``command`` is how the run was started, e.g. ``ganslim train pix2pix``."""
        resume = f"resume with: {command} --resume {self.resume_dir}"
        if self.checkpoint is not None:
            step, path = self.checkpoint
            return f"interrupted at step {self.step}; last checkpoint: step {step} in {path}; {resume}"
        line = f"interrupted at step {self.step}, before the first checkpoint: '{self.run_dir}' holds nothing to resume"
        if self.resume_dir == self.run_dir:
            return line + " and can be deleted"
        return line + f" and can be deleted; {resume} (its earlier stages are kept)"
