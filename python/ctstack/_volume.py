"""A CT stack as a lazy multiscale volume: :func:`open` gives a :class:`Volume`
whose levels (:class:`LevelArray`) are numpy-like arrays that read only what
an index asks for. (An OME-Zarr store that ``ctstack zarr`` wrote opens too:
its levels through zarr-python, placed by its own metadata.)

Level 0 is the original slices, read through the crop's region reader
(``ctstack_crop_read_box``: only the strips or tiles of the box, never a copy
on disk); levels k >= 1 are the pyramid's, checked against its manifest when
the volume is opened. Each level is planned once per volume (planning reads
every slice's header: about 1 ms per slice), then every index is one read.

Placement (``LevelArray.scale``, ``LevelArray.translate``, z y x in the
unit of :attr:`Volume.unit`): level 0's voxel ``(z, y, x)`` has its centre
at ``voxel_size * (z, y, x)``. Level k's voxel averages a 2^k block of level 0
(rows and columns: the odd last row or column of a level is dropped), so its
centre is at ``voxel_size * (2^k * i + (2^k - 1) / 2)``: scale ``voxel_size *
2^k``, translate ``voxel_size * (2^k - 1) / 2``, the OME-Zarr writer's rule.
In z the TIFF pyramid keeps CTHarvester's rule: a level with an odd count
pairs its last slice with itself, so level k has ``ceil(n / 2^k)`` slices and,
when ``n`` is not a multiple of ``2^k``, its last slice averages fewer than
``2^k`` slices with unequal weights: that one slice's centre is
:meth:`Volume.z_centres` (exact), not where the uniform scale puts it.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _library as _l
from ._errors import StateError, invalid_argument
from ._library import PathArg
from ._pyramid import DEFAULT_MIN_SIZE, build_pyramid
from ._readback import open_pyramid

if TYPE_CHECKING:
    import numpy
    import numpy.typing

#: The file the pyramid's manifest is in (a folder holding it is a pyramid).
MANIFEST = "ctstack.json"

_TIFF_SUFFIXES = (".tif", ".tiff")


def _default_pyramid_dir(input: Path) -> Path:
    """Where a build puts the pyramid of ``input``: ``<dir>/.thumbnail``, or
    ``STEM.thumbnail`` beside a multi-page TIFF."""
    if input.is_file():
        return input.with_name(input.stem + ".thumbnail")
    return input / ".thumbnail"


def _input_of_pyramid(pyramid_dir: Path) -> Path:
    """The stack a pyramid folder was built from, by where builds put it, else
    by the folder its manifest names (a pyramid written with ``output_dir``
    elsewhere)."""
    if pyramid_dir.name == ".thumbnail":
        return pyramid_dir.parent
    if pyramid_dir.name.endswith(".thumbnail"):
        stem = pyramid_dir.name[: -len(".thumbnail")]
        for suffix in _TIFF_SUFFIXES + tuple(s.upper() for s in _TIFF_SUFFIXES):
            candidate = pyramid_dir.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    import json

    try:
        manifest = json.loads((pyramid_dir / MANIFEST).read_text(encoding="utf-8"))
        folder, inputs = Path(manifest["folder"]), manifest["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        folder, inputs = None, []
    if folder is not None and folder.is_dir() and inputs:
        names = {i.get("name") for i in inputs if isinstance(i, dict)}
        # One file's pages: the stack is that multi-page file.
        if len(names) == 1 and len(inputs) > 1 and (folder / names.pop()).is_file():
            return folder / inputs[0]["name"]
        return folder
    raise invalid_argument(
        "%s is a ctstack pyramid whose stack cannot be found by its name (a build writes "
        "<stack>/.thumbnail or STEM.thumbnail beside STEM.tif): open the stack, "
        "ctstack.open(stack, pyramid_dir=%r)" % (pyramid_dir, str(pyramid_dir))
    )


class _LevelPlan:
    """One native crop plan of a whole level, shared by every read of it."""

    def __init__(self, input: Path, level: int, pyramid_dir: Optional[Path]) -> None:
        options = _l.default_crop_options()
        options.level = level
        self._keep = [_l.path_arg(pyramid_dir, "pyramid_dir")] if pyramid_dir else []
        options.pyramid_dir = self._keep[0] if self._keep else None
        out = _l.CropP()
        _l.check(
            _l.lib.ctstack_crop_plan(_l.path_arg(input, "path"), ctypes.byref(options),
                                     ctypes.byref(out))
        )  # fmt: skip
        self.handle = _l.NativeHandle(out, _l.lib.ctstack_crop_free)
        count, h, w, st = ctypes.c_uint64(), ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_int32()
        _l.check(
            _l.lib.ctstack_crop_shape(
                out, ctypes.byref(count), ctypes.byref(h), ctypes.byref(w), ctypes.byref(st)
            )
        )
        self.shape = (count.value, h.value, w.value)
        self.sample_type, self.typestr, _ = _l.sample_type(st.value)

    def read(
        self, start: Sequence[int], end: Sequence[int], step: Sequence[int], out: Any
    ) -> None:
        """``[z0:z1:zs, y0:y1:ys, x0:x1:xs]`` (steps >= 1) into ``out``."""
        triple = ctypes.c_uint64 * 3
        _l.check(
            _l.lib.ctstack_crop_read_box(
                self.handle.ptr, triple(*start), triple(*end), triple(*step),
                out.ctypes.data, out.nbytes,
            )
        )  # fmt: skip

    def voxel_size(self, unit: str) -> Optional[Tuple[Tuple[float, float, float], str]]:
        """(z, y, x) in ``unit`` from the first slice's resolution tags, else
        the scanner's file beside it, and which (``"resolution tags"``,
        ``"scanner's file"``), if any."""
        from ._zarr import _zarr_lib

        try:
            lib = _zarr_lib()
        except ImportError:
            return None  # a library without the ome-zarr feature: unknown
        size = (ctypes.c_double * 3)()
        found = ctypes.c_int32()
        _l.check(
            lib.ctstack_crop_voxel_size(
                self.handle.ptr, unit.encode("utf-8"), size, ctypes.byref(found)
            )
        )
        if not found.value:
            return None
        return (size[0], size[1], size[2]), _l.VOXEL_SIZE_SOURCES.get(found.value, "unknown")


class _ZarrLevelPlan:
    """One level of a ctstack OME-Zarr store, read through zarr-python."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.typestr = array.dtype.str
        self.sample_type = array.dtype.name

    def read(
        self, start: Sequence[int], end: Sequence[int], step: Sequence[int], out: Any
    ) -> None:
        out[...] = self.array[tuple(slice(a, b, s) for a, b, s in zip(start, end, step))]


def _zarr_attributes(store: Path) -> Optional[Dict[str, Any]]:
    """The root group's attributes of a Zarr store written by ctstack, or None."""
    import json

    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            doc = json.loads((store / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        attrs = doc.get(key, {}) if key else doc
        if isinstance(attrs, dict) and "ctstack" in attrs:
            return attrs
    return None


#: The store's record of its inputs (written last by ``ctstack zarr``).
_STORE_RECORD = "ctstack-inputs.json"


def _store_note(store: Path) -> Optional[str]:
    """None when the store's inputs are as its record lists them (names,
    sizes, modification times; in the folder it names, else in the stack its
    default name points to); else a sentence: stale (an input changed or
    missing), or why that cannot be told. ``ctstack info`` says the same."""
    import json

    try:
        record = json.loads((store / _STORE_RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (
            "whether %s is current is unknown: it has no record of its inputs (%s; a "
            "build that did not finish has none)" % (store, _STORE_RECORD)
        )
    except (OSError, ValueError) as e:
        return "whether %s is current is unknown: %s: %s" % (store, _STORE_RECORD, e)
    if not isinstance(record, dict) or record.get("format") != "ctstack-zarr-inputs":
        return "whether %s is current is unknown: %s is not ctstack's record" % (
            store, _STORE_RECORD,
        )  # fmt: skip
    inputs = [i for i in record.get("inputs", []) if isinstance(i, dict) and "name" in i]
    recorded = record.get("folder")
    folder: Optional[Path] = None
    if isinstance(recorded, str) and Path(recorded).is_dir():
        folder = Path(recorded)
    else:
        name = store.name
        stem = name[: -len(".ome.zarr")] if name.endswith(".ome.zarr") else None
        for candidate in ([store.with_name(stem)] if stem else []) + [store.parent]:
            if candidate.is_dir() and any((candidate / i["name"]).is_file() for i in inputs):
                folder = candidate
                break
    if folder is None:
        return "whether %s is current is unknown: its inputs are not in %s, nor beside it" % (
            store, recorded if isinstance(recorded, str) else "the folder it was written from",
        )  # fmt: skip
    changed = []
    for i in inputs:
        try:
            st = os.stat(folder / i["name"])
            same = st.st_size == i.get("size") and st.st_mtime_ns == i.get("mtime_ns")
        except OSError:
            same = False
        if not same:
            changed.append(i["name"])
    if not changed:
        return None
    return (
        "%s is stale: %d input%s changed or missing since it was written (first: %s): "
        "build it again (ctstack.build_ome_zarr(%r, %r))"
        % (store, len(changed), "" if len(changed) == 1 else "s", changed[0], str(folder),
           str(store))
    )  # fmt: skip


def _axis_index(key: Any, n: int, axis: int) -> Tuple[int, int, int, int, bool]:
    """One axis of a basic index as ``(start, end, step, count, reverse)``,
    ``step >= 1`` and ``end`` one past the last kept index; an int keeps one
    index (``count`` -1 marks the axis dropped)."""
    import operator

    if isinstance(key, slice):
        indices = range(*key.indices(n))
        count = len(indices)
        if count == 0:
            return 0, 0, 1, 0, False
        if indices.step > 0:
            return indices.start, indices[-1] + 1, indices.step, count, False
        return indices[-1], indices.start + 1, -indices.step, count, True
    try:
        i = operator.index(key)
    except TypeError:
        raise IndexError(
            "ctstack levels take basic indexing (ints, slices, ...): %r on axis %d is not one"
            % (key, axis)
        ) from None
    if not -n <= i < n:
        raise IndexError("index %d is out of bounds for axis %d with size %d" % (i, axis, n))
    i %= n
    return i, i + 1, 1, -1, False


class LevelArray:
    """One level of a :class:`Volume`: a ``(slices, rows, columns)`` array-like
    with ``shape``, ``dtype``, ``ndim``, numpy's basic indexing (ints, negative
    indices, slices with any step, ``...``) and ``__array__``. Indexing reads
    only the slices, and with a row step only the rows, it returns, and gives
    a new numpy array. Thread-safe. Picklable (a pickle reopens the volume).

    Attributes:
        level: 0 the slices, k >= 1 the pyramid's level k.
        scale, translate: where voxel ``(z, y, x)`` is: its centre at
            ``translate + scale * (z, y, x)``, in the volume's unit.
    """

    def __init__(self, volume: "Volume", level: int, plan: Any) -> None:
        import numpy as np

        self._volume = volume
        self._plan = plan
        self.level = level
        self.shape: Tuple[int, int, int] = plan.shape
        self.dtype = np.dtype(plan.typestr)
        self.scale, self.translate = volume._transform(level)

    ndim = 3

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return "<ctstack.LevelArray %d: %s %s>" % (self.level, self.shape, self.dtype)

    def __getitem__(self, key: Any) -> "numpy.typing.NDArray[Any]":
        import numpy as np

        if not isinstance(key, tuple):
            key = (key,)
        if any(k is None for k in key):
            raise IndexError("ctstack levels do not take None (numpy.newaxis): index the result")
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if Ellipsis in [k for k in key if k is Ellipsis]:
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1 :]
        if len(key) > 3:
            raise IndexError("too many indices: a level has 3 dimensions, %d given" % len(key))
        key = key + (slice(None),) * (3 - len(key))
        axes = [_axis_index(k, n, a) for a, (k, n) in enumerate(zip(key, self.shape))]
        shape = tuple(abs(c) for _, _, _, c, _ in axes)
        out = np.empty(shape, dtype=self.dtype)
        if out.size:
            self._plan.read([a[0] for a in axes], [a[1] for a in axes], [a[2] for a in axes], out)
        flip = tuple(slice(None, None, -1) if a[4] else slice(None) for a in axes)
        if any(a[4] for a in axes):
            out = out[flip]
        drop = tuple(0 if a[3] == -1 else slice(None) for a in axes)
        return out[drop] if any(a[3] == -1 for a in axes) else out

    def __array__(
        self, dtype: "Optional[numpy.typing.DTypeLike]" = None, copy: Optional[bool] = None
    ) -> "numpy.typing.NDArray[Any]":
        """The whole level, read now (a new array)."""
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self) -> Any:
        return (_level_of, (self._volume._arguments, self.level))


def _level_of(arguments: Tuple[Any, ...], level: int) -> LevelArray:
    """The level of a volume reopened from its arguments (pickles, dask tasks):
    one open volume per process and arguments."""
    return _reopened(arguments).levels[level]


@functools.lru_cache(maxsize=8)
def _reopened(arguments: Tuple[Any, ...]) -> "Volume":
    path, pyramid_dir, voxel_size, unit = arguments
    return Volume(path, pyramid_dir=pyramid_dir, voxel_size=voxel_size, unit=unit)


def _token(arguments: Tuple[Any, ...]) -> str:
    """A name for the dask array of these arguments, the same in every process."""
    import hashlib

    return hashlib.sha1(repr(arguments).encode("utf-8")).hexdigest()[:16]


class Volume:
    """A stack of CT slices as a lazy multiscale volume (see :func:`open`).

    Attributes:
        levels: level 0 (the slices), then the pyramid's levels 1..L, largest
            first, each a :class:`LevelArray`.
        input: the stack (a folder or a multi-page TIFF).
        pyramid_dir: where its pyramid is (or would be built).
        pyramid_note: None when the pyramid is there; else why the volume has
            level 0 only (no pyramid yet, or one built from other files). For
            an OME-Zarr store (all its levels always there): None when its
            inputs are unchanged since it was written, else whether it is
            stale (an input changed or missing) or why that is unknown.
        voxel_size: level 0's (z, y, x) size, in ``unit``.
        unit: an NGFF space unit (``"micrometer"``, ...), or None when the
            size is unknown (then the voxel size is 1, 1, 1: voxels).
        voxel_size_source: ``"given"`` (the ``voxel_size`` argument),
            ``"resolution tags"`` (the first slice's), ``"scanner's file"`` (a
            Bruker ``*_rec.log``, ``.xtekct``, ``.pcr``, ``.pca`` beside the
            slices), ``"OME-Zarr metadata"`` (a store) or ``"unknown"``: the
            words of :attr:`JobReport.voxel_size_source`.
    """

    def __init__(
        self,
        path: PathArg,
        *,
        pyramid_dir: Optional[PathArg] = None,
        voxel_size: Optional[Sequence[float]] = None,
        unit: Optional[str] = None,
    ) -> None:
        p = Path(os.fspath(path))
        pyramid = Path(os.fspath(pyramid_dir)) if pyramid_dir is not None else None
        self._arguments = (
            str(path), None if pyramid_dir is None else str(pyramid_dir),
            None if voxel_size is None else tuple(float(v) for v in voxel_size), unit,
        )  # fmt: skip
        self._zarr_transforms: Optional[List[Tuple[Tuple[float, ...], Tuple[float, ...]]]] = None
        attributes = _zarr_attributes(p) if p.is_dir() else None
        if attributes is not None:
            self._open_zarr(p, attributes)
            return
        if p.is_dir() and (p / MANIFEST).is_file():
            pyramid = p if pyramid is None else pyramid
            p = _input_of_pyramid(p)
        self.input: Path = p
        self.pyramid_dir: Path = pyramid if pyramid is not None else _default_pyramid_dir(p)
        level0 = _LevelPlan(p, 0, pyramid)
        self._count0 = level0.shape[0]
        unit_name = unit or "micrometer"
        if voxel_size is not None:
            size = tuple(float(v) for v in voxel_size)
            if len(size) != 3 or not all(v > 0 and v < 1e30 for v in size):
                raise invalid_argument(
                    "voxel_size=%r: give (z, y, x), each a number > 0" % (voxel_size,)
                )
            self.voxel_size: Tuple[float, float, float] = size  # type: ignore[assignment]
            self.unit: Optional[str] = unit_name
            self.voxel_size_source = "given"
        else:
            found = level0.voxel_size(unit_name)
            self.voxel_size = found[0] if found is not None else (1.0, 1.0, 1.0)
            self.unit = unit_name if found is not None else None
            self.voxel_size_source = found[1] if found is not None else "unknown"
        self.levels: List[LevelArray] = [LevelArray(self, 0, level0)]
        self.pyramid_note: Optional[str] = None
        if not (self.pyramid_dir / MANIFEST).is_file():
            self.pyramid_note = (
                "no pyramid in %s: build it (ctstack.open(..., build=True), or "
                "ctstack.build_pyramid)" % self.pyramid_dir
            )
            return
        try:
            with open_pyramid(self.pyramid_dir) as built:
                count = len(built)
            for k in range(1, count + 1):
                self.levels.append(LevelArray(self, k, _LevelPlan(p, k, pyramid)))
        except StateError as e:
            self.levels = self.levels[:1]
            self.pyramid_note = str(e)

    def _open_zarr(self, store: Path, attributes: Dict[str, Any]) -> None:
        """The levels of a ctstack OME-Zarr store (zarr-python reads them), placed
        by its multiscales metadata (the store's own voxel centres: its levels
        keep floor(n / 2^k) slices, each the mean of exactly 2^k)."""
        try:
            import zarr
        except ImportError:
            raise ImportError(
                "%s is an OME-Zarr store: reading it needs zarr-python (pip install 'zarr>=3')"
                % store
            ) from None
        if not attributes["ctstack"].get("complete"):
            raise StateError(
                "%s: the OME-Zarr store is not complete (its build did not finish): build it "
                "again (ctstack zarr)" % store
            )
        ome = attributes.get("ome", attributes)
        multiscale = ome["multiscales"][0]
        axes = multiscale.get("axes", [])
        units = {a.get("unit") for a in axes if isinstance(a, dict)}
        self.input = store
        self.pyramid_dir = store
        self.pyramid_note = _store_note(store)
        self.unit = units.pop() if len(units) == 1 and None not in units else None
        group = zarr.open_group(str(store), mode="r")
        self.levels = []
        self._zarr_transforms = []
        for k, dataset in enumerate(multiscale["datasets"]):
            scale: Tuple[float, ...] = (1.0, 1.0, 1.0)
            translate: Tuple[float, ...] = (0.0, 0.0, 0.0)
            for t in dataset.get("coordinateTransformations", []):
                if t.get("type") == "scale":
                    scale = tuple(float(v) for v in t["scale"])
                elif t.get("type") == "translation":
                    translate = tuple(float(v) for v in t["translation"])
            self._zarr_transforms.append((scale, translate))
            plan = _ZarrLevelPlan(group[dataset["path"]])
            if k == 0:
                self._count0 = plan.shape[0]
                self.voxel_size = scale  # type: ignore[assignment]
                self.voxel_size_source = "OME-Zarr metadata"
            self.levels.append(LevelArray(self, k, plan))

    def _transform(self, k: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        """Level k's (scale, translate), z y x (see the module docs)."""
        if self._zarr_transforms is not None:
            return self._zarr_transforms[k]
        f = float(2**k)
        scale = tuple(s * f for s in self.voxel_size)
        translate = tuple(s * (f - 1) / 2 for s in self.voxel_size)
        # z: slice 0 exactly where it is (it differs from (2^k - 1) / 2 only
        # when the stack has fewer than 2^k slices: one slice, the whole stack).
        return scale, (self.z_centres(k)[0],) + translate[1:]

    def z_centres(self, level: int) -> List[float]:
        """Where each slice of ``level`` is centred in z, exactly (the mean
        position of the level-0 slices it averages, with their weights, in the
        volume's unit). Equal to ``translate + scale * j`` for every slice but
        the last of a level whose level-0 block is cut by the stack's end (an
        OME-Zarr store has no such slice: every one is on the grid)."""
        if self._zarr_transforms is not None:
            scale, translate = self._zarr_transforms[level]
            return [translate[0] + scale[0] * j for j in range(self.levels[level].shape[0])]
        centres = [float(i) for i in range(self._count0)]
        for _ in range(level):
            centres = [
                (centres[j] + centres[min(j + 1, len(centres) - 1)]) / 2
                for j in range(0, len(centres), 2)
            ]
        return [c * self.voxel_size[0] for c in centres]

    def to_dask(self, level: int = 0, chunks: Any = "auto") -> Any:
        """Level ``level`` as a dask array whose tasks read through the same
        reader (picklable: a ``dask.distributed`` cluster can compute it; each
        worker opens the volume once). ``chunks`` as ``dask.array.from_array``
        takes it; ``"auto"`` is one slice per chunk."""
        import dask.array as da
        import numpy as np

        array = self.levels[level]
        if isinstance(chunks, str) and chunks == "auto":
            chunks = (1,) + array.shape[1:]
        return da.from_array(
            array, chunks=chunks, asarray=False, fancy=False, lock=False,
            meta=np.empty((0, 0, 0), dtype=array.dtype),
            name="ctstack-level-%d-%s" % (level, _token(self._arguments)),
        )  # fmt: skip

    def __repr__(self) -> str:
        return "<ctstack.Volume %s: %d level%s, level 0 %s %s>" % (
            self.input, len(self.levels), "" if len(self.levels) == 1 else "s",
            self.levels[0].shape, self.levels[0].dtype,
        )  # fmt: skip

    def __reduce__(self) -> Any:
        return (_reopened, (self._arguments,))


def open(
    path: PathArg,
    *,
    pyramid_dir: Optional[PathArg] = None,
    build: bool = False,
    progress: Optional[Callable[[int, int], Any]] = None,
    min_size: int = DEFAULT_MIN_SIZE,
    voxel_size: Optional[Sequence[float]] = None,
    unit: Optional[str] = None,
) -> Volume:
    """A CT stack as a lazy multiscale :class:`Volume`.

    Args:
        path: a folder of slices, a multi-page TIFF, a ctstack pyramid
            folder (``<stack>/.thumbnail``, ``STEM.thumbnail``), or an
            OME-Zarr store ctstack wrote (``ctstack zarr``; read with
            zarr-python, placed by its multiscales metadata, ``voxel_size``
            and ``unit`` ignored: the store's own).
        pyramid_dir: where the pyramid is (default: where a build puts it).
        build: when the pyramid is missing or was built from other files,
            build it now (blocking, ``progress(done, total)`` as
            :func:`build_pyramid`); False (default): the volume has level 0
            only and :attr:`Volume.pyramid_note` says why. Never built silently.
        min_size: the pyramid's ``min_size`` when it is built here.
        voxel_size: level 0's (z, y, x) voxel size, in ``unit``; None: from
            the first slice's resolution tags, else unknown (1, 1, 1).
        unit: an NGFF space unit, ``"micrometer"`` by default.

    Raises:
        CtstackIOError, TiffFormatError, MismatchError, ...: as a crop plan of
            the stack (a slice that cannot be read, slices of different sizes).
        StateError: a numbered stack with a missing number.
    """
    volume = Volume(path, pyramid_dir=pyramid_dir, voxel_size=voxel_size, unit=unit)
    if build and volume.pyramid_note is not None:
        build_pyramid(
            volume.input, None if pyramid_dir is None else pyramid_dir, min_size, progress
        )
        volume = Volume(path, pyramid_dir=pyramid_dir, voxel_size=voxel_size, unit=unit)
    return volume

