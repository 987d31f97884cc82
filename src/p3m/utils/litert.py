"""Running LiteRT (TensorFlow Lite) models: quiet start-up, one interpreter per thread."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import numpy as np

#: One thread at a time swaps file descriptor 2: two threads loading models at once
#: (worker threads, each with its own interpreter) would otherwise save each other's
#: /dev/null and leave the process's stderr pointing there for good.
_STDERR_SWAP = threading.Lock()


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to file descriptor 2 to /dev/null for the block
    (Python's own sys.stderr is untouched). Only for a short call made at start-up."""
    with _STDERR_SWAP:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_interpreter(path: Path, threads: int | None = None):
    """A LiteRT interpreter with its tensors allocated (LiteRT's INFO line silenced)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    with native_stderr_silenced():  # LiteRT's C++ logs an INFO line for its CPU delegate here
        interpreter.allocate_tensors()
    return interpreter


class PerThreadModel:
    """A LiteRT model callable from many threads: an interpreter is not thread-safe, so
    each thread gets its own (they are small). ``model(x)`` returns every output."""

    def __init__(self, path: Path, threads: int | None = 1) -> None:
        self.path, self.threads = path, threads
        self._local = threading.local()

    def _interpreter(self):
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = self._local.interpreter = load_interpreter(self.path, self.threads)
        return interpreter

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        interpreter = self._interpreter()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.astype(np.float32))
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
