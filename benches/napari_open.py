"""napari: time from ``viewer.open`` to the first frame drawn with the layer,
and peak RSS, through the ctstack reader (a multiscale layer: the pyramid,
plus level 0's visible tiles) against napari's built-in reader on the same
folder (``plugin="napari"``: one dask array of the slices); and what one 2D
read of level 0 costs through a :class:`ctstack.Volume` (one plan per level)
against a new crop plan per read (``ctstack.crop_to_array``).

Not a test: figures for docs/napari.md. Run under a display:

    xvfb-run -a python benches/napari_open.py --stack target/compare-data/raw

``--stack``: a folder of slices (the 64-slice benchmark stack that
benches/compare.py generates in target/compare-data/raw). It is never
written to: the script links its slices into ``--workdir`` and builds the
pyramid there (not timed). Each contender runs in a fresh process per run
(``--runs``), which reports its own peak RSS (the napari viewer's own
footprint is measured alone, ``empty``). The library is the one the package
finds (``CTSTACK_LIBRARY``): use a release build for figures.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import napari
from qtpy.QtWidgets import QApplication

path, plugin = sys.argv[1], sys.argv[2]
if plugin == "ctstack":
    import npe2, ctstack
    from pathlib import Path
    manager = npe2.PluginManager.instance()
    manager.discover()
    if "ctstack" not in manager._manifests:
        manifest = Path(ctstack.__file__).with_name("napari.yaml")
        manager.register(npe2.PluginManifest.from_file(manifest))
viewer = napari.Viewer(show=True)
app = QApplication.instance()
for _ in range(50):
    app.processEvents()
draws = []
viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(
    lambda event: draws.append(time.perf_counter()))
result = {"plugin": plugin}
if plugin != "empty":
    start = time.perf_counter()
    layers = viewer.open(path, plugin=plugin)
    opened = time.perf_counter()
    while not all(layer.loaded for layer in layers):
        app.processEvents()
    loaded = time.perf_counter()
    viewer.window._qt_viewer.canvas._scene_canvas.update()
    while not draws or draws[-1] < loaded:
        app.processEvents()
    result.update(open_s=opened - start, first_frame_s=draws[-1] - start,
                  levels=[list(map(int, s)) for s in layers[0].level_shapes],
                  data_level=int(getattr(layers[0], "data_level", 0)))
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
viewer.close()
"""

READ_COST = r"""
import json, sys, time, ctstack
d, n = sys.argv[1], 20
start = time.perf_counter(); volume = ctstack.open(d); opened = time.perf_counter() - start
level = volume.levels[0]
level[0]
start = time.perf_counter()
for i in range(n):
    level[(i * 7) % level.shape[0]]
per_volume = (time.perf_counter() - start) / n
ctstack.crop_to_array(d, z=(0, 1))
start = time.perf_counter()
for i in range(n):
    z = (i * 7) % level.shape[0]
    ctstack.crop_to_array(d, z=(z, z + 1))
per_read = (time.perf_counter() - start) / n
print(json.dumps({"slices": level.shape[0], "shape": level.shape[1:], "open_s": opened,
                  "read_one_plan_per_volume_ms": per_volume * 1e3,
                  "read_new_plan_per_read_ms": per_read * 1e3, "ratio": per_read / per_volume}))
"""


def run_child(code, *args):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", required=True, help="a folder of slices (never written to)")
    p.add_argument("--workdir", default="target/napari-bench")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--read-cost-slices", type=int, default=200,
                   help="slices of the generated 512x512 stack for the read cost (0: skip)")
    a = p.parse_args(argv)
    import ctstack

    stack = Path(a.stack).resolve()
    work = Path(a.workdir).resolve()
    linked = work / stack.name
    linked.mkdir(parents=True, exist_ok=True)
    names = sorted(e.name for e in stack.iterdir() if e.suffix.lower() in (".tif", ".tiff"))
    for name in names:
        if not (linked / name).exists():
            (linked / name).symlink_to(stack / name)
    ctstack.build_pyramid(linked)  # not timed; kept when current
    results = {}
    for plugin in ("empty", "ctstack", "napari"):
        runs = [run_child(CHILD, linked, plugin) for _ in range(a.runs)]
        results[plugin] = runs
        print(plugin, json.dumps(runs[-1]), file=sys.stderr)
    read_cost = None
    if a.read_cost_slices:
        import numpy as np
        import tifffile

        d = work / ("read-cost-%d" % a.read_cost_slices)
        if not d.is_dir():
            d.mkdir()
            rng = np.random.default_rng(1)
            for i in range(a.read_cost_slices):
                tifffile.imwrite(str(d / ("s_%04d.tif" % i)),
                                 rng.integers(0, 60000, (512, 512), dtype="uint16"))
        read_cost = run_child(READ_COST, d)
    med = lambda plugin, key: statistics.median(r[key] for r in results[plugin])  # noqa: E731
    print("# napari_open.py, %s UTC, %s, %d cores, load %s, ctstack library %s" % (
        time.strftime("%Y-%m-%d %H:%M", time.gmtime()), platform.processor() or platform.machine(),
        os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()), ctstack.library_path))
    print("stack: %s, %d slices; medians of %d runs, each a fresh process" % (
        stack, len(names), a.runs))
    print("| reader | viewer.open returns | first frame | peak RSS |")
    print("| --- | --- | --- | --- |")
    for plugin in ("ctstack", "napari"):
        print("| %s | %.2f s | %.2f s | %.0f MB |" % (plugin, med(plugin, "open_s"),
              med(plugin, "first_frame_s"), med(plugin, "peak_rss_mb")))
    print("| (the viewer alone) | | | %.0f MB |" % med("empty", "peak_rss_mb"))
    print("ctstack layer levels %s, level shown %d" % (
        results["ctstack"][0]["levels"], results["ctstack"][0]["data_level"]))
    if read_cost:
        print("one 2D read of level 0 (%d slices of %s): %.2f ms through a Volume, %.1f ms with a "
              "new crop plan per read (x%.0f); opening the volume %.0f ms" % (
                  read_cost["slices"], "x".join(map(str, read_cost["shape"])),
                  read_cost["read_one_plan_per_volume_ms"], read_cost["read_new_plan_per_read_ms"],
                  read_cost["ratio"], read_cost["open_s"] * 1e3))


if __name__ == "__main__":
    main(sys.argv[1:])
