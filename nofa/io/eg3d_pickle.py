"""Read NVIDIA's EG3D `.pkl` snapshots as plain data, without importing or executing anything from
them.

EG3D's training loop writes a snapshot as `pickle.dump({training_set_kwargs, G, D, G_ema,
augment_pipe})`. Each network is a "persistent" object that pickles itself as
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` holds `type`,
`version`, `module_src` (the Python source of its module), `class_name` and `state` (the
object's `__dict__`: `_parameters`, `_buffers`, `_modules`, `_init_kwargs`, plain attributes
such as numpy float64 gains). Unpickling it the normal way would `exec` `module_src`.

Here a restricted, pure-Python unpickler resolves globals against a short allowlist of
stand-ins (nothing is ever imported from the file's names):

- persistent objects and the plain module classes found in EG3D's generator become inert
  :class:`ModuleTree` records (class name, state, the source kept as text);
- tensor storages (`torch.storage._load_from_bytes`) are parsed here, every length checked
  against the bytes actually present before anything is allocated;
- numpy scalars (`numpy.core.multiarray.scalar` as numpy 1.x writes it,
  `numpy._core.multiarray.scalar` as numpy 2 does, with `numpy.dtype`) become Python floats,
  ints or bools;
- any other global becomes an inert :class:`OpaqueObject` record. Such records are tolerated
  only inside the entries nofa skips (:data:`SIDE_ENTRIES`: `D`, `augment_pipe`,
  `training_set_kwargs`); anywhere else the file is refused with :class:`UnsafePickleError`
  naming the global.

Every read is bounded by the file's size, so a corrupt length field fails at once instead of
allocating; every failure is an :class:`EG3DImportError` with a one-line message.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from typing import Any, BinaryIO

import torch

__all__ = [
    "SIDE_ENTRIES",
    "EG3DImportError",
    "ModuleTree",
    "OpaqueObject",
    "UnsafePickleError",
    "find_opaque",
    "flatten_tensors",
    "load_eg3d_pickle",
]

#: Snapshot entries nofa never reads: they may hold classes outside the allowlist (as inert
#: :class:`OpaqueObject` records) without the file being refused.
SIDE_ENTRIES = ("D", "augment_pipe", "training_set_kwargs")

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch's legacy (non-zip) format
_TORCH_LEGACY_PROTOCOL = 1001


class EG3DImportError(ValueError):
    """An EG3D checkpoint could not be read or converted (the message says which part and why)."""


class UnsafePickleError(EG3DImportError, pickle.UnpicklingError):
    """The pickle asks for something the restricted unpickler does not allow (a global, an opcode,
    a state change on an allowed object)."""


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModuleTree:
    """A module read from the pickle: its class name and its `__dict__` as plain data.

    `module_src` is kept as text (for inspection); it is never compiled or executed.
    """

    def __init__(
        self, class_name: str, state: dict | None = None, module_src: str | None = None
    ) -> None:
        self.class_name = class_name
        self.state = dict(state or {})
        self.module_src = module_src

    def __repr__(self) -> str:
        return f"ModuleTree({self.class_name!r}, {len(self.state)} state entries)"

    def __setstate__(self, state: Any) -> None:
        """BUILD of a plain (non-persistent) module pickled by reference: its `__dict__`."""
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and (state[1] is None or isinstance(state[1], dict))
        ):
            state = state[0] if state[0] is not None else {}
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnsafePickleError(
                f"module {self.class_name}: its pickled state is a {type(state).__name__} "
                f"({_short(state, 60)}), expected the module's __dict__ (a dict with str keys)"
            )
        self.state = dict(state)

    def _mapping(self, key: str) -> dict:
        value = self.state.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise EG3DImportError(
                f"module {self.class_name}: {key} is a {type(value).__name__}, expected a dict "
                f"with str keys"
            )
        return dict(value)

    @property
    def parameters(self) -> dict:
        return self._mapping("_parameters")

    @property
    def buffers(self) -> dict:
        return self._mapping("_buffers")

    @property
    def children(self) -> dict:
        return self._mapping("_modules")

    @property
    def init_kwargs(self) -> dict:
        return self._mapping("_init_kwargs")


class OpaqueObject:
    """An object of a class outside the allowlist, recorded (global name, arguments, state) but
    never built. Allowed only inside :data:`SIDE_ENTRIES`."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueObject:
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"OpaqueObject({self.global_name!r})"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def add(self, value: Any) -> None:
        self.items.append(value)


def _opaque_class(module: str, name: str) -> type:
    return type(
        "OpaqueObject", (OpaqueObject,), {"global_name": f"{_short(module, 80)}.{_short(name, 80)}"}
    )


def _plain_module_class(name: str) -> type:
    """A fresh ModuleTree subclass standing in for a plain module class (Sequential, OSGDecoder,
    ...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ModuleTree:
        obj = object.__new__(cls)
        ModuleTree.__init__(obj, name)
        return obj

    return type(name, (ModuleTree,), {"__new__": __new__, "__init__": lambda self, *a, **k: None})


# ---------------------------------------------------------------------------------------
# Stand-ins for the allowed globals
# ---------------------------------------------------------------------------------------


def _reconstruct_persistent_obj(meta: Any) -> ModuleTree:
    """Stands in for torch_utils.persistence._reconstruct_persistent_obj: build a record, no
    exec."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise UnsafePickleError(
            f"persistent object: unexpected metadata ({_short(kind, 40)}); EG3D pickles "
            f"persistent classes with meta type 'class'"
        )
    name = meta.get("class_name")
    if not isinstance(name, str):
        raise UnsafePickleError(
            f"persistent object: class_name is a {type(name).__name__}, expected a str"
        )
    state = meta.get("state") if meta.get("state") is not None else {}
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise UnsafePickleError(
            f"persistent object {name!r}: its state is a {type(state).__name__}, expected the "
            f"object's __dict__ (a dict with str keys)"
        )
    src = meta.get("module_src")
    return ModuleTree(name, state, src if isinstance(src, str) else None)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> ModuleTree:
    """copyreg._reconstructor (protocol < 2 pickles): only for the module stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, ModuleTree)):
        raise UnsafePickleError(f"copyreg._reconstructor on {_short(cls, 60)} is not allowed")
    return cls.__new__(cls)


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """_codecs.encode as protocol-2 pickles use it for bytes: (str, 'latin1') only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            "_codecs.encode is allowed only as pickle's latin1 encoding of bytes"
        )
    return text.encode("latin1")


# numpy dtype strings -> struct formats of the scalar kinds EG3D's modules hold
_NUMPY_FORMATS = {
    "f2": "e",
    "f4": "f",
    "f8": "d",
    "i1": "b",
    "i2": "h",
    "i4": "i",
    "i8": "q",
    "u1": "B",
    "u2": "H",
    "u4": "I",
    "u8": "Q",
    "b1": "?",
}


class _NumpyDType:
    """numpy.dtype as numpy pickles it: dtype(spec, align, copy), then BUILD (version, byteorder,
    ...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _NumpyDType:
        obj = object.__new__(cls)
        obj.spec, obj.byteorder = None, "="
        return obj

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = False) -> None:
        self.spec = spec if isinstance(spec, str) else None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
            raise UnsafePickleError(
                f"numpy.dtype: unexpected pickled state {_short(state, 60)} (expected a tuple "
                f"(version, byteorder, ...))"
            )
        self.byteorder = state[1]


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy.(_)core.multiarray.scalar(dtype, bytes) -> a Python float, int or bool."""
    if not isinstance(dtype, _NumpyDType):
        raise UnsafePickleError(
            f"numpy scalar: its dtype is a {type(dtype).__name__}, expected numpy.dtype"
        )
    fmt = _NUMPY_FORMATS.get(dtype.spec or "")
    if isinstance(data, str):  # protocol-2 style
        data = data.encode("latin1")
    if fmt is None or not isinstance(
        data, bytes
    ):  # e.g. a complex or structured scalar: keep it inert
        return _opaque_class("numpy.core.multiarray", f"scalar[{dtype.spec}]")(dtype.spec, data)
    if len(data) != struct.calcsize(fmt):
        raise UnsafePickleError(
            f"numpy {dtype.spec} scalar holds {len(data)} bytes, expected {struct.calcsize(fmt)}"
        )
    return struct.unpack((">" if dtype.byteorder == ">" else "<") + fmt, data)[0]


class _Storage:
    """A tensor storage read from a torch legacy storage record: a flat tensor."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat


def _ints(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(v) is int for v in value):
        raise EG3DImportError(
            f"tensor record: {name} is {_short(value, 60)}, expected a tuple of ints"
        )
    return tuple(value)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """torch._utils._rebuild_tensor_v2 with every index checked against the storage first."""
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(
            f"tensor record: its storage is a {type(storage).__name__}, expected a storage from "
            f"torch.storage._load_from_bytes"
        )
    size, stride = _ints("size", size), _ints("stride", stride)
    if type(storage_offset) is not int or storage_offset < 0:
        raise EG3DImportError(
            f"tensor record: storage offset {_short(storage_offset, 40)} is not an int >= 0"
        )
    if len(size) != len(stride) or any(v < 0 for v in size + stride):
        raise EG3DImportError(
            f"tensor record: size {list(size)} and stride {list(stride)} do not describe a tensor"
        )
    numel = storage.flat.numel()
    need = 0 if 0 in size else storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if need > numel:
        raise EG3DImportError(
            f"tensor record: a tensor of shape {list(size)} (stride {list(stride)}, offset "
            f"{storage_offset}) overruns its storage: it needs {need} elements, the storage "
            f"holds {numel}"
        )
    return torch.as_strided(storage.flat, size, stride, storage_offset)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(
    data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
) -> Any:
    if not isinstance(data, torch.Tensor):
        raise EG3DImportError(
            f"parameter record: its data is a {type(data).__name__}, expected a tensor"
        )
    return data  # a Parameter is only its data here


_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class _StorageType:
    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype


class _StorageRef:
    def __init__(self, storage_type: _StorageType, key: str, numel: int) -> None:
        self.storage_type, self.key, self.numel = storage_type, key, numel


def _load_storage_bytes(data: Any) -> _Storage:
    """torch.storage._load_from_bytes: one storage in torch's legacy format, parsed here.

    Layout: pickles of the magic number, the format version, a sys-info dict, the storage's
    persistent id ('storage', torch.<Type>Storage, key, location, numel, None) and the key
    list; then int64 numel and the raw little-endian elements.
    """
    if not isinstance(data, bytes):
        raise UnsafePickleError(
            f"storage record: torch.storage._load_from_bytes got a {type(data).__name__}, "
            f"expected bytes"
        )
    f = io.BytesIO(data)
    reader = _BoundedReader(f, len(data), "a tensor storage record")

    def next_pickle(what: str, ok: Any) -> Any:
        try:
            value = _StorageUnpickler(reader).load()
        except EG3DImportError:
            raise
        except Exception as e:
            raise EG3DImportError(
                f"storage record: unreadable {what} ({type(e).__name__}: {_short(str(e), 80)})"
            ) from e
        if not ok(value):
            raise EG3DImportError(
                f"storage record: not in torch's legacy storage format ({what} is "
                f"{_short(value, 40)})"
            )
        return value

    next_pickle("magic number", lambda v: type(v) is int and v == _TORCH_LEGACY_MAGIC)
    next_pickle("format version", lambda v: type(v) is int and v == _TORCH_LEGACY_PROTOCOL)
    sys_info = next_pickle("sys info", lambda v: isinstance(v, dict))
    if sys_info.get("little_endian") is not True:
        raise EG3DImportError(
            "storage record: not little-endian; nofa reads little-endian storages"
        )
    ref = next_pickle("storage id", lambda v: isinstance(v, _StorageRef))
    next_pickle("key list", lambda v: v == [ref.key])
    (count,) = struct.unpack("<q", reader.read(8))
    dtype = ref.storage_type.dtype
    itemsize = torch.empty(0, dtype=dtype).element_size()
    remaining = len(data) - f.tell()
    if count != ref.numel or count < 0 or count * itemsize > remaining:
        raise EG3DImportError(
            f"storage record: a {ref.storage_type.name} claims {ref.numel} elements (size field "
            f"{count}) but the record holds {remaining // itemsize}"
        )
    payload = bytearray(reader.read(count * itemsize))
    if not payload:
        flat = torch.empty(0, dtype=dtype)
    elif (
        dtype == torch.bool
    ):  # any non-zero byte is True (raw bytes other than 0/1 are not valid bools)
        flat = torch.frombuffer(payload, dtype=torch.uint8) != 0
    else:
        flat = torch.frombuffer(payload, dtype=dtype)
    return _Storage(flat)


# Plain (non-persistent) module classes inside an EG3D generator: pickled by reference, they
# become inert ModuleTree stand-ins (no code of theirs is imported: only names are matched).
_PLAIN_MODULES = {
    "torch.nn.modules.container": ("Sequential", "ModuleList", "ModuleDict"),
    "torch.nn.modules.activation": ("Softplus", "ReLU", "LeakyReLU", "Sigmoid", "Tanh"),
    "torch.nn.modules.linear": ("Identity",),
    "training.triplane": ("OSGDecoder",),
    "training.volumetric_rendering.renderer": ("ImportanceRenderer",),
    "training.volumetric_rendering.ray_marcher": ("MipRayMarcher2",),
    "training.volumetric_rendering.ray_sampler": ("RaySampler",),
}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): dict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


# ---------------------------------------------------------------------------------------
# The unpicklers
# ---------------------------------------------------------------------------------------


class _BoundedReader:
    """A file view that refuses any read past the end, before reading (so no huge buffer is
    made)."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self.f, self.name = f, name
        self.start = f.tell()
        self.end = self.start + size

    def _remaining(self) -> int:
        return self.end - self.f.tell()

    def read(self, n: int = -1) -> bytes:
        left = self._remaining()
        if n is None or n < 0:
            n = left
        if n > left:
            raise EG3DImportError(
                f"{self.name} is truncated or corrupt: at byte {self.f.tell() - self.start} a "
                f"length field asks for {n} bytes but only {left} remain"
            )
        data = self.f.read(n)
        if len(data) != n:
            raise EG3DImportError(
                f"{self.name}: short read at byte {self.f.tell() - self.start} (file changed?)"
            )
        return data

    def readline(self) -> bytes:
        return self.f.readline(max(self._remaining(), 0))


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler (every length goes through _BoundedReader) with an allowlist of
    globals."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: _BoundedReader) -> None:
        super().__init__(file, fix_imports=False, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if name in _PLAIN_MODULES.get(module, ()):
            return _plain_module_class(name)
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle uses persistent ids, which EG3D snapshots do not")

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (ModuleTree, _NumpyDType, OpaqueObject)):
            inst.__setstate__(state)
        elif state is not None and state != {}:  # an empty state is a no-op, as in pickle itself
            raise UnsafePickleError(
                f"the pickle sets the state of a {type(inst).__name__} object "
                f"({_short(state, 60)}),"
                f" which nofa does not allow"
            )

    def load_bytearray8(self) -> None:
        raise UnsafePickleError("protocol-5 bytearrays do not occur in EG3D snapshots")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


class _StorageUnpickler(_RestrictedUnpickler):
    """The small pickles of one legacy storage record: only storage types and one persistent id."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise UnsafePickleError(
            f"storage record: refusing global '{_short(module, 80)}.{_short(name, 80)}' (only "
            f"torch storage types occur there)"
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UnsafePickleError(f"storage record: unexpected persistent id {_short(pid, 60)}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if (
            not isinstance(storage_type, _StorageType)
            or not isinstance(key, str)
            or type(numel) is not int
            or numel < 0
            or view is not None
        ):
            raise UnsafePickleError(f"storage record: unexpected persistent id {_short(pid, 60)}")
        return _StorageRef(storage_type, key, numel)


def find_opaque(obj: Any) -> OpaqueObject | type | None:
    """The first :class:`OpaqueObject` (record or class) reachable from `obj`, else None."""
    stack, seen = [obj], set()
    while stack:
        x = stack.pop()
        if (
            isinstance(x, (str, bytes, int, float, bool, torch.Tensor))
            or x is None
            or id(x) in seen
        ):
            continue
        seen.add(id(x))
        if isinstance(x, OpaqueObject) or (isinstance(x, type) and issubclass(x, OpaqueObject)):
            return x
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        elif isinstance(x, ModuleTree):
            stack.append(x.state)
    return None


def load_eg3d_pickle(path_or_file: Any) -> dict:
    """Read an EG3D snapshot as plain data: {'G_ema': ModuleTree, 'D': ..., ...}.

    Executes and imports nothing from the file. Raises :class:`EG3DImportError` (one line)
    for anything that is not a readable snapshot, :class:`UnsafePickleError` (a subclass)
    for a global outside the allowlist in an entry that is not in :data:`SIDE_ENTRIES`.
    """
    if hasattr(path_or_file, "read"):
        f = path_or_file
        name = str(getattr(f, "name", "the EG3D checkpoint"))
        try:
            start = f.tell()
            size = f.seek(0, os.SEEK_END) - start
            f.seek(start)
        except (OSError, AttributeError, ValueError):
            f = io.BytesIO(f.read())
            size = len(f.getvalue())
        return _load(f, size, name)
    name = os.fspath(path_or_file)
    try:
        with open(name, "rb") as f:
            return _load(f, os.fstat(f.fileno()).st_size, name)
    except OSError as e:
        raise EG3DImportError(f"cannot read {name}: {e.strerror or e}") from e


def _load(f: BinaryIO, size: int, name: str) -> dict:
    if size == 0:
        raise EG3DImportError(f"{name} is empty (0 bytes); expected an EG3D snapshot pickle")
    start = f.tell()
    head = f.read(4)
    f.seek(start)
    if head.startswith(b"PK\x03\x04"):
        raise EG3DImportError(
            f"{name} is a zip archive (a torch.save file?), not an EG3D snapshot: EG3D writes "
            f"plain pickles (network-snapshot-*.pkl)"
        )
    if head[:1] != b"\x80" or head[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise EG3DImportError(
            f"{name} is not a pickle (it starts with {head!r}); expected an EG3D snapshot pickle"
        )
    try:
        data = _RestrictedUnpickler(_BoundedReader(f, size, name)).load()
    except EG3DImportError as e:
        raise type(e)(str(e) if name in str(e) else f"{name}: {e}") from e
    except Exception as e:  # anything the opcodes of a corrupt file can trigger
        raise EG3DImportError(
            f"{name} is not a readable EG3D snapshot (corrupt pickle: {type(e).__name__}: "
            f"{_short(str(e), 160)})"
        ) from e
    if isinstance(data, int) and data == _TORCH_LEGACY_MAGIC:
        raise EG3DImportError(f"{name} is a (legacy) torch.save file, not an EG3D snapshot pickle")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise EG3DImportError(
            f"{name}: an EG3D snapshot is a pickled dict with str keys, got {type(data).__name__}"
        )
    for key, value in data.items():
        if key in SIDE_ENTRIES:
            continue
        found = find_opaque(value)
        if found is not None:
            raise UnsafePickleError(
                f"refusing to load global '{found.global_name}' (in entry {key!r}) from {name}: "
                "nofa reads EG3D "
                "pickles with a restricted unpickler that only allows the tensors and containers "
                "of an EG3D "
                f"snapshot"
            )
    return data


def flatten_tensors(tree: ModuleTree, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of `tree` as {'a.b.weight': tensor} (None entries skipped)."""
    out: dict[str, torch.Tensor] = {}
    stack, seen = [(prefix, tree)], {}
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            raise EG3DImportError(
                f"module {path or node.class_name} is also at {seen[id(node)] or 'the root'}; EG3D "
                f"generators share no modules"
            )
        seen[id(node)] = path
        for group in (node.parameters, node.buffers):
            for k, v in group.items():
                if v is None:
                    continue
                if not isinstance(v, torch.Tensor):
                    raise EG3DImportError(f"{path}{k} is a {type(v).__name__}, expected a tensor")
                out[path + k] = v
        for k, child in reversed(list(node.children.items())):
            if child is None:
                continue
            if not isinstance(child, ModuleTree):
                raise EG3DImportError(f"{path}{k} is a {type(child).__name__}, expected a module")
            stack.append((f"{path}{k}.", child))
    return dict(sorted(out.items()))
