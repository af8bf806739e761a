"""Tests of ctstack.distributed: a pyramid built on a Dask LocalCluster (two
worker processes) is byte for byte the single-machine one.

Needs dask, distributed, numpy and tifffile; skipped without them unless
CTSTACK_REQUIRE_EXTERNAL=1 (then they fail). One cluster serves the whole
module (starting one takes seconds).
"""

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import ctstack
import ctstack.distributed as cd

try:
    import numpy as np
    import tifffile
    from distributed import Client, LocalCluster
except ImportError as e:  # checked in setUpModule
    MISSING = str(e)
else:
    MISSING = ""

REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"

#: 40x36 slices with min_size 5 give 3 levels (20x18, 10x9, 5x4): slabs are
#: multiples of 8.
W, H, MIN_SIZE, ALIGN = 40, 36, 5, 8

SCRATCH = ""
#: The file whose existence arms the kill hook of the worker processes.
DIE_FILE = ""
CLUSTER = None
CLIENT = None


def setUpModule():
    global SCRATCH, DIE_FILE, CLUSTER, CLIENT
    SCRATCH = tempfile.mkdtemp(prefix="ctstack-dask-")
    if MISSING:
        return
    DIE_FILE = os.path.join(SCRATCH, "die")
    # Workers are spawned processes: they inherit the environment as it is now.
    os.environ[cd._DIE_ENV] = DIE_FILE
    CLUSTER = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    CLIENT = Client(CLUSTER)


def tearDownModule():
    if CLIENT is not None:
        CLIENT.close()
    if CLUSTER is not None:
        CLUSTER.close()
    os.environ.pop(cd._DIE_ENV, None)
    shutil.rmtree(SCRATCH, ignore_errors=True)


def make_stack(name, count, dtype):
    """``count`` random slices (extremes included) in a new folder; returns it."""
    folder = Path(SCRATCH) / name
    folder.mkdir()
    rng = np.random.default_rng(count)
    top = np.iinfo(dtype).max
    for i in range(count):
        img = rng.integers(0, top, (H, W), dtype=dtype, endpoint=True)
        img[0, :4] = (0, top, top, 0)
        tifffile.imwrite(folder / ("slice_%04d.tif" % i), img)
    return folder


def level_files(out):
    """``{"k/name": bytes}`` of every file in the level folders of ``out``."""
    return {
        "%s/%s" % (level.name, f.name): f.read_bytes()
        for level in sorted(Path(out).iterdir())
        if level.is_dir()
        for f in sorted(level.iterdir())
    }


def outputs(count):
    """The output slice count of a ``count``-slice stack (levels 1..3)."""
    return sum(-(-count // 2**k) for k in (1, 2, 3))


class Uses(unittest.TestCase):
    def setUp(self):
        if MISSING:
            if REQUIRE_EXTERNAL:
                self.fail("dask, distributed, numpy and tifffile are required: %s" % MISSING)
            self.skipTest(MISSING)

    def assert_clean(self, out):
        """Only the level folders and the manifest; no temporary file anywhere."""
        top = sorted(os.listdir(out))
        self.assertEqual(top, ["1", "2", "3", "ctstack.json"])
        for level in ("1", "2", "3"):
            hidden = [f for f in os.listdir(os.path.join(out, level)) if f.startswith(".")]
            self.assertEqual(hidden, [], level)


class SlabSizes(Uses):
    def test_byte_identical_to_a_single_machine_run(self):
        for count, dtype, as_list in ((37, "uint8", False), (64, "uint16", True)):
            stack = make_stack("sizes-%d" % count, count, np.dtype(dtype).type)
            reference = stack.parent / ("sizes-%d-ref" % count)
            ctstack.build_pyramid(stack, reference, min_size=MIN_SIZE)
            want = level_files(reference)
            self.assertEqual(len(want), outputs(count))
            inputs = sorted(stack.iterdir()) if as_list else stack
            for slab_size in (ALIGN, 3 * ALIGN, count + 3):
                out = stack.parent / ("sizes-%d-out-%d" % (count, slab_size))
                calls = []
                report = cd.build_pyramid(
                    inputs,
                    out,
                    client=CLIENT,
                    min_size=MIN_SIZE,
                    slab_size=slab_size,
                    progress=lambda done, total: calls.append((done, total)),
                )
                what = "%d %s slices, slabs of %d" % (count, dtype, slab_size)
                self.assertEqual(level_files(out), want, what)
                self.assert_clean(out)
                rounded = -(-slab_size // ALIGN) * ALIGN
                slabs = -(-count // rounded)
                self.assertEqual(
                    (report.levels, report.rebuilt, report.kept, report.removed),
                    (3, outputs(count), 0, 0),
                    what,
                )
                self.assertEqual((report.slab_size, report.slabs), (rounded, slabs), what)
                # One call per slab finished, the last (slabs, slabs).
                self.assertEqual(calls, [(i, slabs) for i in range(1, slabs + 1)])
                if rounded == slab_size:
                    self.assertEqual(report.notes, [])
                else:
                    self.assertIn("slab_size %d rounded up to %d" % (slab_size, rounded),
                                  report.notes[0])

    def test_the_default_client_and_slab_size(self):
        stack = make_stack("default", 37, np.uint16)
        out = stack / ".thumbnail"
        report = cd.build_pyramid(stack, min_size=MIN_SIZE)  # the current client
        self.assertEqual(report.output_dir, str(out))
        self.assertEqual((report.slab_size, report.slabs, report.rebuilt), (16, 3, outputs(37)))
        reference = stack.parent / "default-ref"
        ctstack.build_pyramid(stack, reference, min_size=MIN_SIZE)
        self.assertEqual(level_files(out), level_files(reference))


class Failures(Uses):
    def test_a_killed_worker_is_retried_and_the_result_is_identical(self):
        stack = make_stack("killed", 64, np.uint16)
        reference = stack.parent / "killed-ref"
        ctstack.build_pyramid(stack, reference, min_size=MIN_SIZE)
        out = stack.parent / "killed-out"
        Path(DIE_FILE).write_text("armed")
        try:
            report = cd.build_pyramid(
                stack, out, client=CLIENT, min_size=MIN_SIZE, slab_size=ALIGN
            )
        finally:
            claimed = os.path.exists(DIE_FILE + ".claimed")
            for f in (DIE_FILE, DIE_FILE + ".claimed"):
                if os.path.exists(f):
                    os.remove(f)
        self.assertTrue(claimed, "no task killed its worker")
        self.assertEqual(level_files(out), level_files(reference))
        self.assert_clean(out)
        self.assertEqual(report.rebuilt, outputs(64))
        CLIENT.wait_for_workers(2, timeout=60)

    def test_a_rerun_rebuilds_only_deleted_outputs(self):
        stack = make_stack("rerun", 37, np.uint8)
        out = stack.parent / "rerun-out"
        cd.build_pyramid(stack, out, client=CLIENT, min_size=MIN_SIZE, slab_size=ALIGN)
        files = sorted(p for p in out.glob("*/*.tif"))
        before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
        deleted = [out / "1" / "000004.tif", out / "2" / "000009.tif", out / "3" / "000000.tif"]
        for p in deleted:
            p.unlink()
        report = cd.build_pyramid(stack, out, client=CLIENT, min_size=MIN_SIZE, slab_size=ALIGN)
        self.assertEqual((report.rebuilt, report.kept), (3, outputs(37) - 3))
        after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
        changed = sorted(p for p in files if after[p][0] != before[p][0])
        self.assertEqual(changed, sorted(deleted))
        self.assertEqual({p: b for p, (_, b) in after.items()}, {p: b for p, (_, b) in before.items()})
        self.assert_clean(out)


class SlabSize(unittest.TestCase):
    def test_default_and_rounding(self):
        self.assertEqual(cd.choose_slab_size(64, 8, 2), (16, []))
        self.assertEqual(cd.choose_slab_size(10000, 8, 10), (256, []))
        self.assertEqual(cd.choose_slab_size(10, 32, 4), (32, []))
        size, notes = cd.choose_slab_size(100, 8, 2, slab_size=20)
        self.assertEqual(size, 24)
        self.assertIn("rounded up to 24", notes[0])
        self.assertEqual(cd.choose_slab_size(100, 8, 2, slab_size=40), (40, []))
        for bad in (0, -8, 2.5, True):
            with self.assertRaises(ValueError):
                cd.choose_slab_size(100, 8, 2, slab_size=bad)


class WithoutDask(unittest.TestCase):
    def test_import_ctstack_without_dask(self):
        code = (
            "import sys\n"
            "sys.modules['dask'] = sys.modules['distributed'] = None\n"
            "import ctstack, ctstack.distributed\n"
            "try:\n"
            "    ctstack.distributed.build_pyramid('.')\n"
            "except ImportError as e:\n"
            "    assert 'pip install dask distributed' in str(e), e\n"
            "    assert 'ctstack[dask]' not in str(e), e  # not on PyPI yet\n"
            "else:\n"
            "    raise SystemExit('no ImportError')\n"
            "print('ok')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
