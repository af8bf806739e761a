"""One pyramid built by a Dask cluster: slabs of the stack mapped over the
workers, byte for byte the pyramid :func:`ctstack.build_pyramid` writes.

Level-k slice j depends only on inputs ``j * 2**k .. (j + 1) * 2**k - 1``, so
with L levels a slab of consecutive inputs starting and ending on multiples of
``2**L`` (the last may end at the stack's end) owns all of its outputs at every
level. Each slab is one Dask task: it writes its outputs and a small slab
record into the output folder, takes no lock and removes nothing, so all of
them run at once; a task retried after its worker died skips the files it
finished. Once every slab has returned, this process (the driver) finishes the
build: it checks every output, writes the folder's manifest once, removes stale
outputs of an earlier run (only files an earlier manifest lists) and temporary
files of killed tasks, and reports what a single-machine run would.

Assumptions: the input and output folders are on a filesystem every worker
and the driver see under the same paths (NFS, Lustre, GPFS, CephFS, SMB); on
a network filesystem use ``mmap="never"`` (or ``"auto"``, which detects NFS,
SMB and FUSE mounts and reads them instead of mapping).

Dask is an optional dependency (``pip install '.[dask]'`` in a checkout): this module
imports it only when :func:`build_pyramid` runs, so ``import ctstack`` (and
this module) work without it. Workers import ``ctstack`` themselves (the task
functions are module-level functions of this module): install the package in
the workers' environment too.
"""

from __future__ import annotations

import ctypes
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

from . import _library as _l
from ._errors import invalid_argument
from ._library import PathArg
from ._pyramid import DEFAULT_MIN_SIZE, JobReport, PyramidJob, _Input, _options, warn_each

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

    from ._zarr import ZarrOptions

#: Tasks per worker the default slab size aims at: several, so a slow node or
#: a retried task does not leave the others idle at the end.
TASKS_PER_WORKER = 4

#: The smallest default slab, in inputs (before rounding up to ``2**L``): a
#: task also checks every input's header and starts a thread pool, which a
#: slab of this many CT slices (tens of MB each) makes negligible.
MIN_SLAB_INPUTS = 16

#: Test hook, not an option: if this environment variable names a file, the
#: first slab task that claims it (renames it away) kills its own worker
#: process after writing its first output, as a node lost mid-job would.
_DIE_ENV = "CTSTACK_TEST_DIE_IN_SLAB"

ProgressCallback = Callable[[int, int], Any]
Inputs = Union[PathArg, Sequence[PathArg]]


@dataclass(frozen=True)
class DistributedReport(JobReport):
    """What a distributed build did: the fields of :class:`ctstack.JobReport`
    (the counts are those a single-machine run reports; ``elapsed_seconds`` is
    the whole build's wall time), and how the stack was cut. Its
    ``warnings`` also went to ``warnings.warn`` (:class:`ctstack.CtstackWarning`)
    and the ``"ctstack"`` logger, on the driver.

    Attributes:
        slab_size: inputs per slab (a multiple of ``2**levels``).
        slabs: how many slab tasks ran.
        notes: e.g. a ``slab_size`` rounded up to a multiple of ``2**levels``.
    """

    slab_size: int = 0
    slabs: int = 0
    notes: List[str] = field(default_factory=list)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def choose_slab_size(
    count: int, alignment: int, workers: int, slab_size: Optional[int] = None
) -> Tuple[int, List[str]]:
    """The slab size for a stack of ``count`` inputs whose slabs must be
    multiples of ``alignment`` (``2**L``), on ``workers`` workers, and notes.

    ``slab_size`` None: about ``count / (TASKS_PER_WORKER * workers)`` inputs,
    at least ``MIN_SLAB_INPUTS``, rounded up to a multiple of ``alignment``.
    A given ``slab_size`` (>= 1) that is not a multiple of ``alignment`` is
    rounded up to the next one, and a note says so.
    """
    if slab_size is None:
        wanted = max(-(-count // (TASKS_PER_WORKER * max(workers, 1))), MIN_SLAB_INPUTS)
        return _round_up(wanted, alignment), []
    if isinstance(slab_size, bool) or not isinstance(slab_size, int) or slab_size < 1:
        raise invalid_argument("slab_size %r: must be an int >= 1" % (slab_size,))
    rounded = _round_up(slab_size, alignment)
    if rounded == slab_size:
        return rounded, []
    return rounded, [
        "slab_size %d rounded up to %d, a multiple of 2**L = %d (L: the level count)"
        % (slab_size, rounded, alignment)
    ]


def _source(inputs: Inputs, output_dir: Optional[PathArg]) -> _Input:
    """The run's input: a directory (``str``/``bytes``/path-like) or a list."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return _Input(inputs, output_dir)
    return _Input(None, output_dir, files=list(inputs))


def _native(
    inputs: Inputs, output_dir: Optional[PathArg], settings: dict
) -> Tuple[_Input, _l.PyramidOptionsT]:
    """The input and the native options of ``settings`` (``_options``' arguments)."""
    source = _source(inputs, output_dir)
    return source, _options(**settings)._native(source.output_dir)


def slab_geometry(
    inputs: Inputs, output_dir: Optional[PathArg] = None, *, min_size: int = DEFAULT_MIN_SIZE
) -> Tuple[int, int]:
    """``(count, alignment)``: the stack's slice count and ``2**L`` (L: its
    level count); checks every slice's header as a build would."""
    source, native = _native(inputs, output_dir, _settings(min_size, False, None))
    count, alignment = ctypes.c_uint64(), ctypes.c_uint64()
    if source.files is not None:
        status = _l.lib.ctstack_pyramid_slab_alignment_files(
            source.files, source.n_files, ctypes.byref(native), count, alignment
        )
    else:
        status = _l.lib.ctstack_pyramid_slab_alignment(
            source.dir, ctypes.byref(native), count, alignment
        )
    _l.check(status)
    return count.value, alignment.value


def _settings(min_size: int, force: bool, mmap: Optional[str]) -> dict:
    """The arguments of ``_options`` for a distributed build (checked there)."""
    return dict(min_size=min_size, min_levels=0, threads=None, mmap=mmap, strict=False, force=force)


def build_slab(
    inputs: Inputs, output_dir: Optional[PathArg], settings: dict, start: int, end: int
) -> Tuple[int, int]:
    """Builds slab ``start..end`` (one Dask task; runs on a worker). Returns
    the slab."""
    source, native = _native(inputs, output_dir, settings)
    native.slab_start = start
    native.slab_end = end
    callback = _l.PROGRESS_FN()
    die = os.environ.get(_DIE_ENV)
    if die:
        try:
            os.rename(die, die + ".claimed")
        except OSError:
            pass
        else:

            def kill_after_first(done: int, _total: int, _user_data: object) -> int:
                if done >= 1:
                    os._exit(1)
                return 0

            callback = _l.PROGRESS_FN(kill_after_first)
    if source.files is not None:
        status = _l.lib.ctstack_pyramid_build_files(
            source.files, source.n_files, ctypes.byref(native), callback, None
        )
    else:
        status = _l.lib.ctstack_pyramid_build(source.dir, ctypes.byref(native), callback, None)
    _l.check(status)
    return start, end


def finish(inputs: Inputs, output_dir: Optional[PathArg], settings: dict) -> JobReport:
    """The driver's last step, after every slab: see the module doc."""
    source = _source(inputs, output_dir)
    job = PyramidJob.__new__(PyramidJob)
    job._handle = None
    job._start(_options(**settings), source, finish=True)
    try:
        return job.report()
    finally:
        job.close()


def _client(client: Optional["Client"]) -> "Client":
    """The given client, or the current default one."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(
            "ctstack.distributed needs Dask: pip install dask distributed "
            "(or pip install '.[dask]' in a ctstack checkout)"
        ) from e
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError as e:
        raise invalid_argument(
            "no Dask client: pass client=, or create a distributed.Client first (%s)" % e
        ) from None


def _run_slabs(
    dask_client: "Client",
    slabs: List[Tuple[int, int]],
    name: str,
    task: Callable[[int, int], tuple],
    progress: Optional[Callable[[int, int], Any]],
) -> None:
    """Submits ``task(start, end)`` (a function, then its arguments) for every
    slab, each under a key of its own (``name-start-end-token``), not pure, one
    retry; reports ``progress(done, len(slabs))`` as each slab finishes
    (``done = 1, 2, ...``: the package's contract, one call per unit) and raises the
    first failed task's error, cancelling the rest."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = []
    for start, end in slabs:
        function, *arguments = task(start, end)
        key = "%s-%d-%d-%s" % (name, start, end, token)
        futures.append(dask_client.submit(function, *arguments, key=key, pure=False, retries=1))
    done = 0
    try:
        for future in as_completed(futures):
            future.result()  # raises the task's error
            done += 1
            if progress is not None:
                progress(done, len(slabs))
    except BaseException:
        dask_client.cancel(futures)
        raise


def build_pyramid(
    input_dir: Inputs,
    output_dir: Optional[PathArg] = None,
    *,
    client: Optional["Client"] = None,
    min_size: int = DEFAULT_MIN_SIZE,
    slab_size: Optional[int] = None,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
    mmap: Optional[str] = None,
) -> DistributedReport:
    """Builds the pyramid of ``input_dir`` (a directory, as
    :func:`ctstack.build_pyramid`; or an ordered list of slice files, with
    ``output_dir`` required) on a Dask cluster: one task per slab of
    ``slab_size`` inputs, mapped over ``client`` (default: the current
    client, ``distributed.get_client()``). The files are byte for byte those
    of :func:`ctstack.build_pyramid` with the same ``min_size`` and ``force``.

    ``slab_size`` None: about 4 tasks per worker (at least 16 inputs), a
    multiple of ``2**L``; a ``slab_size`` that is not a multiple of ``2**L``
    is rounded up to the next one (reported in the notes). The tasks show in
    the dashboard as ``ctstack-slab-<start>-<end>``; ``progress(done, total)``
    is called here after each slab (total: the slab count). ``mmap``: the
    workers' read policy (``"never"`` or ``"auto"`` on network filesystems).

    A task whose worker dies is retried by Dask on another worker and skips
    the outputs it had finished; if a slab fails for good the error is
    raised here, the folder keeps what was built, and a re-run redoes only
    what is missing. A re-run after a finished build keeps every valid
    output and rebuilds only what is missing or stale.

    Raises: the errors of :func:`ctstack.build_pyramid` (from the worker that
    hit them), ImportError without Dask.
    """
    started = time.monotonic()
    dask_client = _client(client)
    settings = _settings(min_size, force, mmap)
    source = _source(input_dir, output_dir)  # checks the arguments here
    out = os.fsdecode(source.output_dir) if source.output_dir is not None else None
    count, alignment = slab_geometry(input_dir, out, min_size=min_size)
    workers = len(dask_client.scheduler_info().get("workers", {}))
    size, notes = choose_slab_size(count, alignment, workers, slab_size)
    slabs = [(s, min(s + size, count)) for s in range(0, count, size)]
    _run_slabs(
        dask_client,
        slabs,
        "ctstack-slab",
        lambda start, end: (build_slab, input_dir, out, settings, start, end),
        progress,
    )
    report = finish(input_dir, out, settings)
    fields = asdict(report)
    fields["elapsed_seconds"] = time.monotonic() - started
    warn_each(report.warnings, 2)
    return DistributedReport(**fields, slab_size=size, slabs=len(slabs), notes=notes)


def _zarr_step(
    inputs: Inputs,
    store: PathArg,
    settings: dict,
    options: "ZarrOptions",
    step: int,
    start: int = 0,
    end: int = 0,
) -> Tuple[int, int]:
    """Runs one step of an OME-Zarr slab build (prepare, a slab on a worker, or
    finish) and waits for it. Returns the slab."""
    from ._zarr import ZarrJob

    job = ZarrJob(
        inputs,
        store,
        min_size=settings["min_size"],
        options=options,
        mmap=settings["mmap"],
        _step=step,
        _slab=(start, end),
    )
    try:
        job.wait()
    finally:
        job.close()
    return start, end


def build_ome_zarr(
    input_dir: Inputs,
    store: PathArg,
    *,
    client: Optional["Client"] = None,
    min_size: int = DEFAULT_MIN_SIZE,
    slab_size: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    mmap: Optional[str] = None,
    **options: Any,
) -> DistributedReport:
    """Writes the OME-Zarr store of :func:`ctstack.build_ome_zarr` (the same
    ``options``: ngff, chunks, shard, compression, voxel_size, unit)
    on a Dask cluster, byte for byte the store a single machine writes.

    The driver prepares the store (claims the folder, records the levels'
    layout in the root group, marked incomplete); then one task per slab of
    ``slab_size`` inputs, a multiple of the chunk (shard) depth times ``2**L``,
    so that at every level each slab owns whole chunk files and no two tasks
    write the same file; then the driver checks that every chunk is there,
    syncs them, writes each array's metadata (no array opens before that) and
    last the multiscales metadata, which declares the store complete. A
    retried task rewrites only the files that are missing or differ. The
    store path is checked as :func:`ctstack.build_ome_zarr` checks it: a
    folder that is not a ctstack store, or a path at, in or around the
    input, is refused and left untouched.

    The store is locked: prepare and finish hold its lock alone, the slab
    tasks share it, so another build (or a ``ctstack zarr`` run) on the same
    store is refused while this one writes, naming the holder's pid and
    host; and a slab or finish of a build another build has since prepared
    the store for (other inputs or options) is refused, so two builds never
    mix in one store.
    """
    from ._zarr import STEP_FINISH, STEP_PREPARE, STEP_SLAB, ZarrOptions, zarr_slab_geometry

    started = time.monotonic()
    dask_client = _client(client)
    settings = _settings(min_size, False, mmap)
    zarr_options = ZarrOptions(**options)
    store = os.fsdecode(store)
    count, alignment = zarr_slab_geometry(
        input_dir, store, min_size=min_size, options=zarr_options, mmap=mmap
    )
    workers = len(dask_client.scheduler_info().get("workers", {}))
    size, notes = choose_slab_size(count, alignment, workers, slab_size)
    slabs = [(s, min(s + size, count)) for s in range(0, count, size)]
    _zarr_step(input_dir, store, settings, zarr_options, STEP_PREPARE)
    _run_slabs(
        dask_client,
        slabs,
        "ctstack-zarr-slab",
        lambda start, end: (
            _zarr_step, input_dir, store, settings, zarr_options, STEP_SLAB, start, end
        ),
        progress,
    )
    from ._zarr import ZarrJob

    job = ZarrJob(
        input_dir, store, min_size=min_size, options=zarr_options, mmap=mmap, _step=STEP_FINISH
    )
    try:
        report = job.report()
    finally:
        job.close()
    fields = asdict(report)
    fields["elapsed_seconds"] = time.monotonic() - started
    warn_each(report.warnings, 2)
    return DistributedReport(**fields, slab_size=size, slabs=len(slabs), notes=notes)
