"""OME-Zarr builds: :func:`build_ome_zarr` (blocking) and :class:`ZarrJob` (a
background thread, polled), over the library's ``ctstack_zarr_*`` functions.

The store: one array per level, ``<store>/0`` (the input stack) to
``<store>/L`` (the pyramid's levels, the same samples as
:func:`ctstack.build_pyramid`'s), axes z, y, x; the multiscales metadata in
the root group, written last (a store that has it is complete); each array's
own metadata is written after its last chunk, and removed before a rerun
changes one, so an array path opens as the whole, right array or not at all.
OME-Zarr 0.5 (Zarr v3) by default, 0.4 (Zarr v2) with ``ngff="0.4"``. Every
file appears atomically; a rerun writes only the files that are missing or
differ. The store path must be new, an empty folder or a ctstack store;
anything else is refused and left untouched, as is a path that is, holds or
lies inside the input (no option changes that: ctstack never deletes a file
it did not write, and a store of its own needs no flag to be replaced). In z,
level k keeps the planes that average exactly ``2**k`` slices
(docs/ome-zarr.md, "Where each voxel is").
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from . import _library as _l
from ._errors import CtstackIOError, invalid_argument
from ._library import PathArg
from ._pyramid import DEFAULT_MIN_SIZE, JobReport, PyramidJob, StackPattern, _Input, _options, run_job

#: The default chunk shape (z, y, x).
DEFAULT_CHUNKS = (16, 256, 256)

#: ``ctstack_zarr_options.step`` values (CTSTACK_ZARR_*).
STEP_WHOLE, STEP_PREPARE, STEP_SLAB, STEP_FINISH = 0, 1, 2, 3

Inputs = Union[PathArg, Sequence[PathArg]]
ProgressCallback = Callable[[int, int], Any]


class ZarrOptionsT(ctypes.Structure):
    """``ctstack_zarr_options`` (include/ctstack.h), versioned by ``struct_size``."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("store", ctypes.c_char_p),
        ("ngff", ctypes.c_uint32),
        ("chunks", ctypes.c_uint32 * 3),
        ("shard", ctypes.c_uint32 * 3),
        ("compression", ctypes.c_int32),
        ("zstd_level", ctypes.c_int32),
        ("voxel_size", ctypes.c_double * 3),
        ("unit", ctypes.c_char_p),
        ("step", ctypes.c_int32),
        ("slab_start", ctypes.c_uint64),
        ("slab_end", ctypes.c_uint64),
        ("blosc_compressor", ctypes.c_int32),
        ("blosc_shuffle", ctypes.c_int32),
        ("blosc_level", ctypes.c_int32),
    ]


_ZARR_SIGNATURES = {
    # The resolution tags' voxel size (the OME-Zarr writer's rule), for ctstack.open.
    "ctstack_crop_voxel_size": (
        ctypes.c_int32,
        [_l.CropP, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int32)],
    ),
    "ctstack_zarr_options_init": (None, [ctypes.POINTER(ZarrOptionsT), ctypes.c_size_t]),
    "ctstack_zarr_job_start": (
        ctypes.c_int32,
        [ctypes.c_char_p, _l.OptionsP, ctypes.POINTER(ZarrOptionsT), ctypes.POINTER(_l.JobP)],
    ),
    "ctstack_zarr_job_start_files": (
        ctypes.c_int32,
        [
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_size_t,
            _l.OptionsP,
            ctypes.POINTER(ZarrOptionsT),
            ctypes.POINTER(_l.JobP),
        ],
    ),
    "ctstack_zarr_slab_alignment": (
        ctypes.c_int32,
        [
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_size_t,
            _l.OptionsP,
            ctypes.POINTER(ZarrOptionsT),
            ctypes.POINTER(ctypes.c_uint64),
            ctypes.POINTER(ctypes.c_uint64),
        ],
    ),
}

_bound = threading.Lock()


def _zarr_lib() -> Any:
    """The library, its OME-Zarr functions bound; ImportError if it was built
    without them (the ``ome-zarr`` feature, on by default)."""
    with _bound:
        for name, (restype, argtypes) in _ZARR_SIGNATURES.items():
            try:
                fn = getattr(_l.lib, name)
            except AttributeError:
                raise ImportError(
                    "%s was built without OME-Zarr support (cargo feature ome-zarr)"
                    % _l.library_path
                ) from None
            fn.restype = restype
            fn.argtypes = argtypes
    return _l.lib


@dataclass(frozen=True)
class ZarrOptions:
    """How the store is laid out; checked here and by the library.

    Attributes:
        ngff: ``"0.5"`` (Zarr v3, default) or ``"0.4"`` (Zarr v2).
        chunks: chunk shape (z, y, x), the same at every level.
        shard: shard shape (z, y, x), multiples of ``chunks`` (0.5 only), or None.
        compression: ``"none"``, ``"zstd"`` (level 3) or ``"zstd:LEVEL"``, or
            Blosc: ``"blosc-lz4"``, ``"blosc-lz4-bitshuffle"``, ``"blosc-zstd"``,
            ``"blosc-zstd-bitshuffle"``, each with an optional ``":LEVEL"``
            (0 ..= 9, default 5): the command line's ``--compression``. Default
            ``"blosc-lz4-bitshuffle"`` (docs/ome-zarr.md, "Compression").
        voxel_size: level 0's voxel size (z, y, x) in ``unit``, stored exactly;
            None: from the resolution tags, else from the scanner's file
            beside the slices (Bruker NRecon ``*_rec.log``, Nikon ``.xtekct``,
            GE phoenix ``.pcr``/``.pca``; a malformed one is a warning), else
            unknown (1, 1, 1 without a unit, and a warning).
        unit: an NGFF space unit.
    """

    ngff: str = "0.5"
    chunks: Tuple[int, int, int] = DEFAULT_CHUNKS
    shard: Optional[Tuple[int, int, int]] = None
    compression: str = "blosc-lz4-bitshuffle"
    voxel_size: Optional[Tuple[float, float, float]] = None
    unit: str = "micrometer"

    def __post_init__(self) -> None:
        if self.ngff not in ("0.4", "0.5"):
            raise invalid_argument("ngff %r: '0.4' or '0.5'" % (self.ngff,))
        for name in ("chunks", "shard", "voxel_size"):
            value = getattr(self, name)
            if value is not None and len(tuple(value)) != 3:
                raise invalid_argument("%s %r: three values (z, y, x)" % (name, value))
        self._compression()

    def _compression(self) -> Tuple[int, int, int, int, int]:
        """(compression, zstd_level, blosc_compressor, blosc_shuffle,
        blosc_level) of ``ctstack_zarr_options``; the library checks the levels."""
        text = self.compression
        if isinstance(text, str):
            name, _, level = text.partition(":")
            try:
                if name == "none" and not level:
                    return 0, 3, 0, 1, 5
                if name == "zstd":
                    return 1, int(level) if level else 3, 0, 1, 5
                if name.startswith("blosc-"):
                    cname, _, shuffle = name[6:].partition("-")
                    if cname in ("lz4", "zstd") and shuffle in ("", "bitshuffle"):
                        return (2, 3, 0 if cname == "lz4" else 1, 2 if shuffle else 1,
                                int(level) if level else 5)
            except ValueError:
                pass
        raise invalid_argument(
            "compression %r: 'none', 'zstd' or 'zstd:LEVEL', or 'blosc-lz4', "
            "'blosc-lz4-bitshuffle', 'blosc-zstd', 'blosc-zstd-bitshuffle' with an optional "
            "':LEVEL'" % (text,))

    def _native(
        self, store: bytes, step: int = STEP_WHOLE, slab: Tuple[int, int] = (0, 0)
    ) -> ZarrOptionsT:
        """The ``ctstack_zarr_options``; ``store`` (and the unit) must outlive the call."""
        lib = _zarr_lib()
        native = ZarrOptionsT()
        lib.ctstack_zarr_options_init(ctypes.byref(native), ctypes.sizeof(ZarrOptionsT))
        native.store = store
        native.ngff = 4 if self.ngff == "0.4" else 5
        native.chunks[:] = [int(v) for v in self.chunks]
        native.shard[:] = [int(v) for v in self.shard] if self.shard is not None else [0, 0, 0]
        (native.compression, native.zstd_level, native.blosc_compressor, native.blosc_shuffle,
         native.blosc_level) = self._compression()
        if self.voxel_size is not None:
            native.voxel_size[:] = [float(v) for v in self.voxel_size]
        native.unit = self.unit.encode("utf-8")
        native.step = step
        native.slab_start, native.slab_end = slab
        return native


def default_store(input_path: PathArg) -> str:
    """``scan`` -> ``scan.ome.zarr``; ``dir/stack.tif`` -> ``dir/stack.ome.zarr``;
    ``.`` or ``..`` are named after the folder they stand for."""
    path = os.path.normpath(os.fsdecode(input_path))
    if os.path.basename(path) in ("", ".", ".."):
        path = os.path.abspath(path)
    if os.path.isfile(path):
        path = os.path.splitext(path)[0]
    return path + ".ome.zarr"


class ZarrJob(PyramidJob):
    """An OME-Zarr build on a background thread: poll :attr:`progress` and
    :attr:`running`, :meth:`wait`, :meth:`cancel`, :meth:`report` as a
    :class:`PyramidJob`. In the report, ``rebuilt`` counts the files written,
    ``kept`` the files that already held their bytes, ``output_dir`` is the store.
    """

    def __init__(
        self,
        input_dir: Inputs,
        store: Optional[PathArg] = None,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        options: ZarrOptions = ZarrOptions(),
        pattern: Optional[StackPattern] = None,
        threads: Optional[int] = None,
        mmap: Optional[str] = None,
        strict: bool = False,
        single_page: bool = False,
        depth: Optional[int] = None,
        _step: int = STEP_WHOLE,
        _slab: Tuple[int, int] = (0, 0),
    ) -> None:
        self._handle = None
        if isinstance(input_dir, (str, bytes, os.PathLike)):
            store = store if store is not None else default_store(input_dir)
            source = _Input(input_dir, None, pattern)
        else:
            if store is None:
                raise invalid_argument("store is required with an explicit file list")
            source = _Input(None, store, files=list(input_dir))
        native = source.options(
            _options(min_size, 0, threads, mmap, strict, False, depth, single_page)
        )
        store_arg = _l.path_arg(store, "store")
        zarr = options._native(store_arg, _step, _slab)
        out = _l.JobP()
        lib = _zarr_lib()
        if source.files is not None:
            status = lib.ctstack_zarr_job_start_files(
                source.files,
                source.n_files,
                ctypes.byref(native),
                ctypes.byref(zarr),
                ctypes.byref(out),
            )
        else:
            status = lib.ctstack_zarr_job_start(
                source.dir, ctypes.byref(native), ctypes.byref(zarr), ctypes.byref(out)
            )
        _l.check(status)
        self._adopt(out)

    def __repr__(self) -> str:
        return super().__repr__().replace("PyramidJob", "ZarrJob")


def build_ome_zarr(
    input_dir: Inputs,
    store: Optional[PathArg] = None,
    *,
    min_size: int = DEFAULT_MIN_SIZE,
    ngff: str = "0.5",
    chunks: Tuple[int, int, int] = DEFAULT_CHUNKS,
    shard: Optional[Tuple[int, int, int]] = None,
    compression: str = "blosc-lz4-bitshuffle",
    voxel_size: Optional[Tuple[float, float, float]] = None,
    unit: str = "micrometer",
    progress: Optional[ProgressCallback] = None,
    pattern: Optional[StackPattern] = None,
    threads: Optional[int] = None,
    mmap: Optional[str] = None,
    strict: bool = False,
    single_page: bool = False,
    depth: Optional[int] = None,
) -> JobReport:
    """Writes the stack of ``input_dir`` (a directory, one multi-page TIFF (a
    file of one page only with ``single_page=True``), or an ordered list of
    slice files with ``store`` required) and its pyramid as
    an OME-Zarr multiscale image at ``store`` (default ``INPUT.ome.zarr``
    beside the input), the equivalent of ``ctstack zarr INPUT --out STORE``.
    Levels 1 ..= L hold exactly the samples of :func:`ctstack.build_pyramid`'s
    levels (same ``min_size``). Blocks until done; ``progress(done, total)``
    is called once per unit of work (a slice of a level written), ``done = 1,
    2, ..., total``, the last ``(total, total)``, its return value ignored, as
    for :func:`ctstack.build_pyramid` (raise from it to stop). Returns the
    :class:`JobReport` (``rebuilt``: files written, ``kept``: files already
    right, ``output_dir``: the store, ``warnings``: also given to
    ``warnings.warn`` and the ``"ctstack"`` logger).

    ``depth=8`` or ``16`` converts a stack that mixes 8- and 16-bit slices to
    that depth, as :func:`ctstack.build_pyramid`'s ``depth`` and the CLI's
    ``--depth`` (None: mixed depths are refused, MismatchError).

    The report's warnings (a gap in the numbering, an unknown voxel size, a
    user's file left in the store) are also issued as :class:`UserWarning`.

    Raises: the errors of :func:`ctstack.build_pyramid`; InvalidArgumentError
    for a bad option or a store path that is, holds or lies inside the input;
    StateError for a store path holding something that is not a ctstack store
    (no option replaces it; a ctstack store is replaced with none);
    CtstackIOError when the default store cannot be created beside a
    read-only scan (the message says to pass ``store``).
    """
    options = ZarrOptions(
        ngff=ngff,
        chunks=tuple(chunks),  # type: ignore[arg-type]
        shard=None if shard is None else tuple(shard),  # type: ignore[arg-type]
        compression=compression,
        voxel_size=None if voxel_size is None else tuple(voxel_size),  # type: ignore[arg-type]
        unit=unit,
    )
    job = ZarrJob(
        input_dir,
        store,
        min_size=min_size,
        options=options,
        pattern=pattern,
        threads=threads,
        mmap=mmap,
        strict=strict,
        single_page=single_page,
        depth=depth,
    )
    try:
        return run_job(job, progress, stacklevel=2)
    except CtstackIOError as e:
        # The default store is beside the scan, which an archived or shared
        # scan may not allow: say how to write elsewhere (as the library says
        # of build_pyramid's default output_dir, and the CLI of --out).
        if store is not None or "cannot create" not in e.message:
            raise
        hint = " (to write elsewhere, e.g. when the scan's folder is read-only, pass store=DIR)"
        raise type(e)(e.status, e.message + hint) from e


def zarr_slab_geometry(
    inputs: Inputs,
    store: PathArg,
    *,
    min_size: int,
    options: ZarrOptions,
    mmap: Optional[str] = None,
) -> Tuple[int, int]:
    """``(count, alignment)``: the stack's slice count and the slab alignment,
    chunk (shard) depth x ``2**L``; reads every slice's header as a build would."""
    lib = _zarr_lib()
    if isinstance(inputs, (str, bytes, os.PathLike)):
        source = _Input(inputs, None)
    else:
        source = _Input(None, store, files=list(inputs))
    native = source.options(_options(min_size, 0, None, mmap, False, False))
    zarr = options._native(_l.path_arg(store, "store"))
    count, alignment = ctypes.c_uint64(), ctypes.c_uint64()
    _l.check(
        lib.ctstack_zarr_slab_alignment(
            source.dir,
            source.files,
            source.n_files,
            ctypes.byref(native),
            ctypes.byref(zarr),
            count,
            alignment,
        )
    )
    return count.value, alignment.value
