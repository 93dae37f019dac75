"""Read a Python pickle without running its code: NVIDIA's StyleGAN ``.pkl`` network snapshots.

A pickle names every callable it needs as ``module.name`` and the unpickler imports and calls it, which is how
a file can run ``os.system``. :class:`RestrictedUnpickler` resolves only an allow-list: tensors and storages
(rebuilt by torch's own functions, storages read back with ``torch.load(weights_only=True)``), plain containers,
numpy arrays and scalars, and two inert stand-ins for the classes NVIDIA's files reference:

* ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` rebuilds their networks by importing the source
  code stored in ``meta["module_src"]``; here it returns a :class:`PersistentObject` that keeps ``meta``'s class
  name and state (``_parameters``, ``_buffers``, ``_modules``, attributes) and never looks at the source;
* ``dnnlib.util.EasyDict`` (their option dicts) becomes :class:`EasyDict`, a plain dict.

Any other name raises :class:`RefusedGlobal` before anything is called.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections import OrderedDict
from typing import Any, BinaryIO, Callable

import torch


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle needs ``module.name``, which is not on the allow-list (nothing was called)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class PersistentObject:
    """An NVIDIA persistent network object as data: ``class_name`` and ``state`` (the module's ``__dict__``)."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.class_name = class_name
        self.state = state

    @classmethod
    def from_meta(cls, meta: dict) -> PersistentObject:
        """Stands in for ``_reconstruct_persistent_obj(meta)``; ``meta["module_src"]`` is dropped unread."""
        if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
            raise pickle.UnpicklingError("a persistent object without a state dict")
        return cls(str(meta.get("class_name")), meta["state"])

    def child(self, name: str) -> PersistentObject | None:
        """The submodule ``name`` (from ``_modules``), or None."""
        child = (self.state.get("_modules") or {}).get(name)
        return child if isinstance(child, PersistentObject) else None

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every parameter and buffer below this object, keyed as ``state_dict`` keys them."""
        found: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, tensor in (self.state.get(group) or {}).items():
                if isinstance(tensor, torch.Tensor):
                    found[prefix + name] = tensor.detach()
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObject):
                found.update(child.tensors(f"{prefix}{name}."))
        return found


class EasyDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: the same items, no behaviour."""


def _storage_from_bytes(data: bytes) -> Any:
    """Stands in for ``torch.storage._load_from_bytes``, which unpickles the bytes with ``weights_only=False``."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode``, which protocol-2 pickles use for bytes, for the text encodings only."""
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode,
    ("torch", "Size"): torch.Size,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject.from_meta,
    ("dnnlib.util", "EasyDict"): EasyDict,
}
# numpy arrays, dtypes and scalars: numpy 1 pickles name numpy.core.multiarray, numpy 2 numpy._core.multiarray.
_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
          ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy._core.multiarray", "scalar")}


def _numpy_global(module: str, name: str) -> Callable[..., Any]:
    import numpy

    if module == "numpy":
        return getattr(numpy, name)
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(numpy, "_core")
                                         else "numpy.core.multiarray")
    return getattr(multiarray, name)


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the allow-list in the module docstring."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in _NUMPY:
            return _numpy_global(module, name)
        raise RefusedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id (this is a torch.save file, not a plain pickle)")


def restricted_load(file: BinaryIO) -> Any:
    """Unpickle ``file`` through :class:`RestrictedUnpickler`.

    Raises:
        RefusedGlobal: the pickle names a class or function outside the allow-list.
        pickle.UnpicklingError, EOFError, ...: what a truncated or foreign file raises.
    """
    return RestrictedUnpickler(file).load()
