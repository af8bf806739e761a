"""The napari reader (npe2; manifest ``ctstack/napari.yaml``): a folder of
slices, a multi-page TIFF, a ctstack pyramid folder (or a ctstack OME-Zarr
store, placed by its own metadata) opens as ONE multiscale
image layer of :func:`ctstack.open`'s levels: level 0 read lazily from the
original files (only the tiles napari shows), the others from the pyramid.

- Contrast limits: the smallest level's minimum and maximum (level 0 is never
  read for them).
- Placement: the layer's ``scale`` and ``translate`` are level 0's (the voxel
  size from the resolution tags, else 1 voxel); napari places the lower levels
  itself, from the ratio of the level shapes (see docs/napari.md for where
  that differs from the voxel centres, by less than half a level-k voxel).
- A stack without a pyramid (or with one built from other files): the pyramid
  is built in the background, with napari's progress bar in the activity dock
  (the viewer stays responsive: the build runs on the library's own thread and
  a Qt timer polls it), then the layer appears. Without a viewer (the reader
  called by a script), the build blocks.

Install: ``pip install 'ctstack[napari]'``; then ``napari --plugin ctstack
scan/`` or ``viewer.open("scan", plugin="ctstack")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._pyramid import PyramidJob
from ._volume import MANIFEST, Volume, _zarr_attributes, open as open_volume

#: Slice file extensions a folder must hold for the reader to take it.
SLICE_SUFFIXES = (".tif", ".tiff", ".bmp", ".png", ".jpg", ".jpeg")

#: How often the background build's progress is polled, in milliseconds.
POLL_MS = 100

LayerData = Tuple[Any, ...]


def get_reader(path: Any) -> Optional[Callable[[Any], List[LayerData]]]:
    """The reader for ``path`` if it looks like a stack, else None (napari
    then asks other readers). One path only (napari's stack of several files
    is not a ctstack input)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    if p.is_dir():
        if (p / MANIFEST).is_file() or _zarr_attributes(p) is not None:
            return read
        try:
            if any(e.suffix.lower() in SLICE_SUFFIXES for e in p.iterdir() if e.is_file()):
                return read
        except OSError:
            return None
        return None
    if p.suffix.lower() in (".tif", ".tiff") and p.is_file():
        return read
    return None


def read(path: Any) -> List[LayerData]:
    """The stack at ``path`` as napari layer data (one multiscale image), or,
    while its pyramid is being built in the background, the null layer
    ``[(None,)]`` (napari adds nothing; the layer comes when the build ends)."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    volume = open_volume(path)
    if volume.pyramid_note is None:
        return [layer_data(volume)]
    viewer = _current_viewer()
    if viewer is None:
        return [layer_data(open_volume(path, build=True))]
    BackgroundBuild(path, volume, viewer)
    return [(None,)]


def contrast_limits(volume: Volume) -> Tuple[float, float]:
    """The smallest level's (min, max); a flat level gives (v, v + 1)."""
    import numpy as np

    smallest = np.asarray(volume.levels[-1])
    lo, hi = float(smallest.min()), float(smallest.max())
    if np.isnan(lo) or np.isnan(hi):
        lo, hi = float(np.nanmin(smallest)), float(np.nanmax(smallest))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def layer_data(volume: Volume) -> LayerData:
    """``(data, kwargs, "image")`` for napari: the levels, multiscale when
    there are several, placed by level 0's scale and translate."""
    levels = volume.levels
    level0 = levels[0]
    kwargs: Dict[str, Any] = {
        "name": volume.input.name,
        "multiscale": len(levels) > 1,
        "contrast_limits": contrast_limits(volume),
        "scale": level0.scale,
        "translate": level0.translate,
        "axis_labels": ("z", "y", "x"),
        "metadata": {
            "ctstack": {
                "input": str(volume.input),
                "pyramid_dir": str(volume.pyramid_dir),
                "levels": [lv.shape for lv in levels],
                "scale": [lv.scale for lv in levels],
                "translate": [lv.translate for lv in levels],
                "voxel_size": volume.voxel_size,
                "unit": volume.unit,
                "voxel_size_source": volume.voxel_size_source,
            }
        },
    }
    if volume.unit is not None:
        kwargs["units"] = (volume.unit,) * 3
    data = list(levels) if len(levels) > 1 else level0
    return (data, kwargs, "image")


def _current_viewer() -> Any:
    try:
        import napari
    except ImportError:
        return None
    return napari.current_viewer()


class BackgroundBuild:
    """Builds the pyramid of a stack on the library's thread, shows its
    progress in napari's activity dock (polled by a Qt timer on the GUI
    thread), then adds the layer to ``viewer``; a failure becomes napari's
    error notification naming the stack."""

    #: The builds running (kept alive until they finish).
    running: List["BackgroundBuild"] = []

    def __init__(self, path: Any, volume: Volume, viewer: Any) -> None:
        from napari.utils import progress
        from qtpy.QtCore import QTimer

        self.path = path
        self.viewer = viewer
        self.volume = volume
        pyramid_dir = None if volume._arguments[1] is None else volume.pyramid_dir
        self.job = PyramidJob(volume.input, pyramid_dir)
        self.bar = progress(total=0, desc="ctstack: building the pyramid of %s" % volume.input.name)
        self.timer = QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)
        BackgroundBuild.running.append(self)
        self.timer.start()

    def _poll(self) -> None:
        running, done, total = self.job._poll()
        if total and self.bar.total != total:
            self.bar.total = total
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)
        if running:
            return
        self.timer.stop()
        self.bar.close()
        BackgroundBuild.running.remove(self)
        try:
            self.job.report()
            volume = open_volume(self.path)
            data, kwargs, kind = layer_data(volume)
            self.viewer.add_image(data, **kwargs)
        except Exception as e:  # shown to the user, who can do something about it
            from napari.utils.notifications import show_error

            show_error("ctstack: the pyramid of %s was not built: %s" % (self.volume.input, e))
        finally:
            self.job.close()


# ---------------------------------------------------------------- Harvest


def harvest_box(image: Any, shapes: Any, level: int, z: Tuple[int, int]) -> Dict[str, Any]:
    """The crop that a rectangle of ``shapes`` (its last shape) and level-0
    slices ``z`` (first, last: included, as CTHarvester's bottom and top) ask
    for, in level ``level``'s pixels: ``{"x": (x0, x1), "y": (y0, y1), "z":
    (z0, z1)}``, half-open, clipped to the level. A pixel is in the box when
    its centre is; at level k, every level-k voxel that meets the level-0 box.

    Raises:
        ValueError: no shape, or a box or range that holds no pixel.
    """
    import numpy as np

    if shapes is None or len(shapes.data) == 0:
        raise ValueError("draw a rectangle in a shapes layer first (the box to harvest)")
    vertices = np.asarray(shapes.data[-1], dtype="f8")
    world = np.array([shapes.data_to_world(v) for v in vertices])
    data = np.array([image.world_to_data(w) for w in world])[:, -2:]
    level0 = image.level_shapes[0] if image.multiscale else image.data.shape
    n0, h0, w0 = (int(v) for v in level0)
    lo = [int(v) for v in np.floor(data.min(axis=0) + 0.5)]
    hi = [int(v) for v in np.floor(data.max(axis=0) + 0.5)]
    y0, x0 = max(0, lo[0]), max(0, lo[1])
    y1, x1 = min(h0, hi[0]), min(w0, hi[1])
    first, last = max(0, int(z[0])), min(n0 - 1, int(z[1]))
    if y1 <= y0 or x1 <= x0:
        raise ValueError("the box holds no pixel of the image (draw it over the image)")
    if last < first:
        raise ValueError("slices %d..%d: the first must not be after the last" % tuple(z))
    f = 2**level
    shape = image.level_shapes[level] if image.multiscale else image.data.shape

    def down(a: int, b: int, n: int) -> Tuple[int, int]:
        return a // f, min(n, -(-b // f))

    return {
        "x": down(x0, x1, int(shape[2])),
        "y": down(y0, y1, int(shape[1])),
        "z": down(first, last + 1, int(shape[0])),
    }
