"""Reading a PyTorch state dict saved in torch's legacy format, without PyTorch and
without running code from the file.

The privacy path runs without PyTorch, and MTCNN's weights ship as ``torch.save`` files
of that format (before torch 1.6): five pickles in a row (magic number, protocol
version, system info, the state dict, the storage keys), then each storage's raw
bytes after an 8-byte element count. The state dict's pickle may name only an
``OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the float storage types;
anything else is refused, so the file cannot make Python call anything.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p3m.errors import CheckpointError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
_STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16}


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    count: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Builds plain data and tensor placeholders; refuses every other global."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise CheckpointError(f"{self.path}: refused: the file names {module}.{name}, and only tensors are read")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in _STORAGE_TYPES.values()):
            raise CheckpointError(f"{self.path}: refused: an unexpected stored object {str(pid)[:80]}")
        return _Storage(str(pid[2]), pid[1], int(pid[4]))


def read_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format ``torch.save`` state dict, as numpy arrays by name."""
    path = Path(path)
    stream = io.BytesIO(path.read_bytes())
    try:
        header = [_StateDictUnpickler(stream, path).load() for _ in range(3)]  # two ints and a dict
        if header[0] != MAGIC or header[1] != PROTOCOL or not (isinstance(header[2], dict) and header[2].get("little_endian")):
            raise CheckpointError(f"{path}: not a little-endian legacy torch.save file")
        state = _StateDictUnpickler(stream, path).load()
        keys = _StateDictUnpickler(stream, path).load()
        named = {tensor.storage.key: tensor.storage for tensor in state.values() if isinstance(tensor, _Tensor)}
        storages = {}
        for key in keys:
            count = int.from_bytes(stream.read(8), "little")
            wanted = named[key]
            data = np.frombuffer(stream.read(count * np.dtype(wanted.dtype).itemsize), wanted.dtype)
            if data.size != count or count < wanted.count:
                raise CheckpointError(f"{path}: truncated (storage {key})")
            storages[key] = data
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable legacy torch state dict ({exc})") from None
    out = {}
    for name, tensor in state.items():
        if not isinstance(tensor, _Tensor):
            raise CheckpointError(f"{path}: {name} is not a tensor")
        if tensor.storage.key not in storages:
            raise CheckpointError(f"{path}: {name}'s storage is not in the file")
        data, item = storages[tensor.storage.key], np.dtype(tensor.storage.dtype).itemsize
        if tensor.offset + sum((s - 1) * d for s, d in zip(tensor.size, tensor.stride)) >= data.size and tensor.size:
            raise CheckpointError(f"{path}: {name} reaches past its storage")
        view = np.lib.stride_tricks.as_strided(data[tensor.offset:], tensor.size, [d * item for d in tensor.stride])
        out[name] = np.array(view, dtype=np.float32)
    return out
