"""The napari reader plugin in a real napari window (pytest + pytest-qt, run
under Xvfb: ``xvfb-run -a python -m pytest python/tests/test_napari.py``):
``viewer.open(path, plugin="ctstack")`` on fixtures/stack and on generated
stacks, the layer's levels, shapes, scale and translate, the pixels of
``viewer.screenshot()`` against the levels, and a stack without a pyramid
built in the background and then shown.

Skipped without napari, pytest-qt or a display, unless
CTSTACK_REQUIRE_NAPARI=1 (.ci/run sets it), which fails them instead. Written
as pytest functions (napari's ``make_napari_viewer`` fixture), so the Rust
suite's ``unittest discover`` of python/tests does not collect them.

``CTSTACK_NAPARI_SCREENSHOT=PATH`` saves the fixture's screenshot there (the
one in docs/napari.md was made so).
"""

import importlib.util
import os
import shutil
import unittest
from pathlib import Path

try:
    import pytest
except ImportError:  # unittest discover (the Rust suite) without pytest: nothing to run here
    raise unittest.SkipTest("pytest runs these: python -m pytest python/tests/test_napari.py")

import ctstack

REQUIRE = os.environ.get("CTSTACK_REQUIRE_NAPARI") == "1"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _missing():
    """What is missing for these tests, or None."""
    for module in ("napari", "pytestqt", "numpy", "tifffile"):
        if importlib.util.find_spec(module) is None:
            return "the Python package %s" % module
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if os.environ.get("QT_QPA_PLATFORM") not in ("offscreen", "minimal"):
            return "a display (run under xvfb-run -a)"
    return None


MISSING = _missing()
if MISSING and REQUIRE:
    pytest.fail("CTSTACK_REQUIRE_NAPARI=1 but %s is missing" % MISSING, pytrace=False)
pytestmark = pytest.mark.skipif(MISSING is not None, reason="needs %s" % MISSING)

if MISSING is None:
    import numpy as np
    import tifffile


@pytest.fixture(autouse=True)
def ctstack_plugin():
    """The plugin registered with napari: by its entry point when ctstack is
    installed (a wheel), else from the package's napari.yaml (the source tree)."""
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    if "ctstack" not in manager._manifests:
        manifest = Path(ctstack.__file__).with_name("napari.yaml")
        manager.register(npe2.PluginManifest.from_file(manifest))
    yield manager.get_manifest("ctstack")


def test_the_manifest_is_the_packaged_one(ctstack_plugin):
    assert ctstack_plugin.contributions.readers[0].command == "ctstack.get_reader"
    assert Path(ctstack.__file__).with_name("napari.yaml").is_file()


def make_stack(folder, n, h, w, seed=0):
    """``n`` slices of smooth 16-bit content with a bright square (so a
    misplaced level shows in the pixels), ``h`` x ``w``."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    for i in range(n):
        plane = (xx * 20 + yy * 15 + i * 100).astype("uint16")  # below 65536 up to 2000 x 1500
        plane[h // 4 : h // 2, w // 3 : w // 2] = 60000
        plane += rng.integers(0, 50, (h, w), dtype="uint16")
        tifffile.imwrite(str(folder / ("ct_%04d.tif" % i)), plane)
    return folder


def open_layer(viewer, path):
    layers = viewer.open(str(path), plugin="ctstack")
    assert len(layers) == 1, layers
    return layers[0]


def check_layer(layer, volume):
    """The layer holds the volume's levels, placed by level 0, contrast from the smallest."""
    levels = layer.data if layer.multiscale else [layer.data]
    assert [tuple(lv.shape) for lv in levels] == [lv.shape for lv in volume.levels]
    assert all(isinstance(lv, ctstack.LevelArray) for lv in levels)
    np.testing.assert_allclose(layer.scale, volume.levels[0].scale)
    np.testing.assert_allclose(layer.translate, volume.levels[0].translate)
    smallest = np.asarray(volume.levels[-1])
    assert tuple(layer.contrast_limits) == (float(smallest.min()), float(smallest.max()))
    meta = layer.metadata["ctstack"]
    assert meta["levels"] == [lv.shape for lv in volume.levels]
    assert meta["scale"] == [lv.scale for lv in volume.levels]
    assert meta["translate"] == [lv.translate for lv in volume.levels]


def expected_gray(values, limits):
    """napari's gray colormap of ``values`` between ``limits``, 0..255."""
    lo, hi = limits
    return np.clip((values.astype("f8") - lo) / (hi - lo), 0, 1) * 255


def check_screenshot(viewer, layer, volume):
    """Canvas pixels where napari draws the displayed level's voxels (level
    k's voxel j at level-0 coordinate j * shape0 / shape_k) are that level's
    values through the gray colormap, within one voxel. Returns the screenshot."""
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    level = layer.data_level if layer.multiscale else 0
    z = int(viewer.dims.point[0] / layer.scale[0])
    k_shape = np.array(volume.levels[level].shape, "f8")
    factor = np.array(volume.levels[0].shape, "f8") / k_shape
    plane = volume.levels[level][min(int(round(z / factor[0])), volume.levels[level].shape[0] - 1)]
    want = expected_gray(plane, layer.contrast_limits)
    h, w = shot.shape[:2]
    zoom = viewer.camera.zoom
    centre = np.array(viewer.camera.center[-2:])
    checked = 0
    for j in range(1, plane.shape[0] - 1, max(1, plane.shape[0] // 23)):
        for i in range(1, plane.shape[1] - 1, max(1, plane.shape[1] // 31)):
            world = np.array([j * factor[1], i * factor[2]]) * layer.scale[1:] + layer.translate[1:]
            row, col = (world - centre) * zoom + np.array([h, w]) / 2.0
            r, c = int(np.floor(row)), int(np.floor(col))
            if 0 <= r < h and 0 <= c < w:
                # Within one voxel of the level (napari's placement rounds):
                # the value of the voxel or of a neighbour.
                got = shot[r, c, :3].astype("f8")
                near = want[j - 1 : j + 2, i - 1 : i + 2]
                assert np.min(np.abs(near - got[0])) <= 3, (level, j, i, got, near)
                assert got[0] == got[1] == got[2], got
                checked += 1
    assert checked > 100, checked
    return shot


def test_fixture_stack_with_its_pyramid(make_napari_viewer, tmp_path):
    stack = tmp_path / "stack"
    shutil.copytree(FIXTURES / "stack", stack)
    ctstack.build_pyramid(stack, min_size=80)
    viewer = make_napari_viewer(show=True)
    layer = open_layer(viewer, stack)
    volume = ctstack.open(stack)
    assert layer.multiscale and len(layer.data) == 3
    assert [tuple(lv.shape) for lv in layer.data] == [(21, 203, 301), (11, 101, 150), (6, 50, 75)]
    check_layer(layer, volume)
    shot = check_screenshot(viewer, layer, volume)
    save = os.environ.get("CTSTACK_NAPARI_SCREENSHOT")
    if save:
        from PIL import Image

        Image.fromarray(shot[..., :3]).save(save)
    # The pyramid folder opens the same layer.
    again = open_layer(viewer, stack / ".thumbnail")
    assert [tuple(lv.shape) for lv in again.data] == [tuple(lv.shape) for lv in layer.data]


def test_generated_stack_zoomed_out_shows_a_pyramid_level(make_napari_viewer, tmp_path):
    stack = make_stack(tmp_path / "big", n=9, h=1101, w=1203)
    ctstack.build_pyramid(stack)
    viewer = make_napari_viewer(show=True)
    layer = open_layer(viewer, stack)
    volume = ctstack.open(stack)
    assert [tuple(lv.shape) for lv in layer.data] == [(9, 1101, 1203), (5, 550, 601), (3, 275, 300)]
    check_layer(layer, volume)
    check_screenshot(viewer, layer, volume)
    # The whole stack fits the canvas: napari shows a pyramid level, not level 0.
    assert layer.data_level >= 1


def test_resolution_tags_give_the_layer_its_physical_scale(make_napari_viewer, tmp_path):
    stack = tmp_path / "tags"
    stack.mkdir()
    for i in range(4):
        # 100 pixels per centimetre: 100 micrometres.
        tifffile.imwrite(str(stack / ("t_%d.tif" % i)), np.full((40, 60), i * 1000, "uint16"),
                         resolution=(100.0, 100.0), resolutionunit="CENTIMETER")
    ctstack.build_pyramid(stack)  # small: a pyramid of no level (without one, it is built first)
    viewer = make_napari_viewer(show=True)
    layer = open_layer(viewer, stack)
    assert not layer.multiscale
    np.testing.assert_allclose(layer.scale, (100.0, 100.0, 100.0))
    assert [str(u) for u in layer.units] == ["micrometer"] * 3


def test_a_stack_without_pyramid_is_built_in_the_background_then_shown(make_napari_viewer, qtbot,
                                                                       tmp_path):
    stack = make_stack(tmp_path / "fresh", n=6, h=1003, w=900, seed=1)
    viewer = make_napari_viewer(show=True)
    added = viewer.open(str(stack), plugin="ctstack")
    assert added == []  # nothing yet: the build runs
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=120_000)
    layer = viewer.layers[0]
    assert (stack / ".thumbnail" / "ctstack.json").is_file()
    volume = ctstack.open(stack)
    assert len(volume.levels) == 3
    check_layer(layer, volume)
    check_screenshot(viewer, layer, volume)


def test_harvest_widget_writes_the_drawn_box_and_range(make_napari_viewer, qtbot, tmp_path):
    stack = tmp_path / "stack"
    shutil.copytree(FIXTURES / "stack", stack)
    ctstack.build_pyramid(stack, min_size=80)
    viewer = make_napari_viewer(show=True)
    layer = open_layer(viewer, stack)
    # The dock widget as napari makes it from the manifest.
    dock, widget = viewer.window.add_plugin_dock_widget("ctstack", "Harvest")
    sources = np.stack([tifffile.imread(str(p)) for p in sorted(stack.glob("*.tif"))])
    # A rectangle over rows 40.3..120.6, columns 10.2..200.8 (data = world: scale 1):
    # the pixels whose centres are inside: rows 40..120 (half-open 40..121), columns 10..201.
    viewer.add_shapes([[[5, 40.3, 10.2], [5, 40.3, 200.8], [5, 120.6, 200.8], [5, 120.6, 10.2]]],
                      shape_type="rectangle", name="box")
    viewer.layers.selection.active = layer
    out = tmp_path / "harvest"
    widget.first.setValue(3)
    widget.last.setValue(9)
    widget.output.setText(str(out))
    widget.export.click()
    assert widget.error is None, widget.error
    qtbot.waitUntil(lambda: widget.report is not None or widget.error is not None, timeout=60_000)
    assert widget.error is None, widget.error
    files = sorted(out.glob("*.tif"))  # beside the crop's record, .ctstack-crop.json
    assert [f.name for f in files] == ["slice_%04d.tif" % i for i in range(3, 10)]
    assert [f.name for f in out.iterdir() if f.suffix != ".tif"] == [".ctstack-crop.json"]
    got = np.stack([tifffile.imread(str(f)) for f in files])
    np.testing.assert_array_equal(got, sources[3:10, 40:121, 10:201])
    # Level 1: every level-1 voxel that meets the box, slices 3..9 -> 1..4 (half-open 1..5).
    widget.level.setValue(1)
    out1 = tmp_path / "harvest1"
    widget.output.setText(str(out1))
    widget.export.click()
    qtbot.waitUntil(lambda: widget.report is not None or widget.error is not None, timeout=60_000)
    assert widget.error is None, widget.error
    level1 = ctstack.open_pyramid(stack / ".thumbnail")[1].array()
    got = np.stack([tifffile.imread(str(f)) for f in sorted(out1.glob("*.tif"))])
    np.testing.assert_array_equal(got, level1[1:5, 20:61, 5:101])
    # A request without a box says so and writes nothing.
    viewer.layers.remove("box")
    widget.output.setText(str(tmp_path / "none"))
    widget.export.click()
    assert "rectangle" in widget.error
    assert not (tmp_path / "none").exists()
