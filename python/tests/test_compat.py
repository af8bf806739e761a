"""ctstack.compat.ct_thumbnail against the contract of CTHarvester's
``ct_thumbnail.build_thumbnails``: signature, percentages, cancel, layout,
pattern selection and exact pixels (against a numpy reference).

Needs numpy and tifffile (to write stacks wider than CTHarvester's 500 px
limit); skipped without them unless CTSTACK_REQUIRE_EXTERNAL=1.
"""

import inspect
import os
import re
import tempfile
import unittest

from ctstack.compat import ct_thumbnail, save_cropped_image_stack

import ctstack

try:
    import numpy as np
    import tifffile
except ImportError:
    np = tifffile = None

REQUIRE_EXTERNAL = os.environ.get("CTSTACK_REQUIRE_EXTERNAL") == "1"

#: Wider than 500 px: two levels (1002x40 -> 501x20 -> 250x10).
WIDTH, HEIGHT = 1002, 40
LEVEL_FILE = re.compile(r"^\d{6}\.tif$")


def reference_pyramid(slices, max_size=500):
    """The exact pyramid of ``slices`` (uint16 arrays) in numpy: per level, the
    2x2x2 mean ``(sum + 4) >> 3`` of slice pairs, an odd last slice paired
    with itself, while the width or height exceeds ``max_size``."""
    levels = []
    current = [s.astype(np.uint32) for s in slices]
    while current[0].shape[1] > max_size or current[0].shape[0] > max_size:
        h, w = current[0].shape[0] // 2 * 2, current[0].shape[1] // 2 * 2
        nxt = []
        for j in range(0, len(current), 2):
            a = current[j][:h, :w]
            b = current[j + 1][:h, :w] if j + 1 < len(current) else a
            total = sum(s[dy::2, dx::2] for s in (a, b) for dy in (0, 1) for dx in (0, 1))
            nxt.append((total + 4) >> 3)
        levels.append([s.astype(slices[0].dtype) for s in nxt])
        current = nxt
    return levels


class CtThumbnailTest(unittest.TestCase):
    def setUp(self):
        if np is None:
            if REQUIRE_EXTERNAL:
                self.fail("numpy and tifffile are required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("numpy or tifffile is not installed")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name

    def write_stack(self, indices, prefix="slice_", width=4, seed=7):
        """Writes one random uint16 slice per index (extremes included) as
        ``prefix{index:0width}.tif``; returns ``{index: array}``."""
        rng = np.random.default_rng(seed)
        slices = {}
        for i in indices:
            a = rng.integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
            a[0, :4] = (0, 65535, 65535, 0)
            tifffile.imwrite(os.path.join(self.dir, "%s%0*d.tif" % (prefix, width, i)), a)
            slices[i] = a
        return slices

    def thumbnail_files(self):
        """``{level: [file names]}`` under <dir>/.thumbnail (level directories only)."""
        root = os.path.join(self.dir, ".thumbnail")
        return {
            int(k): sorted(os.listdir(os.path.join(root, k)))
            for k in os.listdir(root)
            if k.isdigit()
        }

    def assertPyramid(self, levels):
        """The files under .thumbnail are exactly ``levels``, pixel for pixel."""
        files = self.thumbnail_files()
        self.assertEqual(sorted(files), list(range(1, len(levels) + 1)))
        for k, level in enumerate(levels, start=1):
            self.assertEqual(files[k], ["%06d.tif" % j for j in range(len(level))], "level %d" % k)
            for j, want in enumerate(level):
                got = tifffile.imread(os.path.join(self.dir, ".thumbnail", str(k), "%06d.tif" % j))
                np.testing.assert_array_equal(got, want, "level %d slice %d" % (k, j))

    def test_signature(self):
        params = inspect.signature(ct_thumbnail.build_thumbnails).parameters
        positional = [
            (p.name, p.default)
            for p in params.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        self.assertEqual(
            positional,
            [
                ("input_dir", inspect.Parameter.empty),
                ("py_progress_cb", None),
                ("prefix", None),
                ("file_type", None),
                ("seq_begin", None),
                ("seq_end", None),
                ("index_length", None),
            ],
        )
        self.assertIs(ct_thumbnail.build_thumbnails_optimized, ct_thumbnail.build_thumbnails)

    def test_exact_pixels_and_complete_trailing_slices(self):
        """21 slices: 11 + 6 outputs (CTHarvester's module gives 10 + 5), each
        the exact mean."""
        slices = self.write_stack(range(21))
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir))
        levels = reference_pyramid([slices[i] for i in range(21)])
        self.assertEqual([len(level) for level in levels], [11, 6])
        self.assertEqual([level[0].shape for level in levels], [(20, 501), (10, 250)])
        self.assertPyramid(levels)

    def test_percentages_rise_to_100(self):
        self.write_stack(range(21))
        seen = []
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir, seen.append))
        self.assertGreaterEqual(len(seen), 2)
        self.assertEqual(seen[0], 0.0)
        self.assertEqual(seen[-1], 100.0)
        self.assertTrue(all(isinstance(p, float) for p in seen), seen)
        self.assertEqual(seen, sorted(seen), "percentages went back")
        self.assertNotIn(100.0, seen[:-1], "100 reported before the end")

    def test_callback_returning_none_or_true_goes_on(self):
        self.write_stack(range(5))
        for answer in (None, True, 1, "yes"):
            with self.subTest(answer=answer):
                self.assertIsNone(
                    ct_thumbnail.build_thumbnails(self.dir, lambda p, answer=answer: answer)
                )
                files = self.thumbnail_files()
                self.assertEqual([len(files[k]) for k in sorted(files)], [3, 2])

    def test_cancel_by_returning_false(self):
        """False cancels: None is returned, only complete files are left, and
        a second run completes the pyramid."""
        slices = self.write_stack(range(64))
        calls = []

        def cancel_at_once(percentage):
            calls.append(percentage)
            return False

        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir, cancel_at_once))
        self.assertNotIn(100.0, calls)
        root = os.path.join(self.dir, ".thumbnail")
        written = 0
        for k, names in self.thumbnail_files().items():
            for name in names:
                self.assertRegex(name, LEVEL_FILE)
                with ctstack.Slice(os.path.join(root, str(k), name)) as s:
                    self.assertEqual((s.width, s.height), (WIDTH >> k, HEIGHT >> k))
                written += 1
        self.assertLess(written, 32 + 16, "the cancel did not stop the run")
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir))
        self.assertPyramid(reference_pyramid([slices[i] for i in range(64)]))

    def test_callback_exception_cancels_and_propagates(self):
        self.write_stack(range(8))

        def boom(percentage):
            raise RuntimeError("from the callback")

        with self.assertRaisesRegex(RuntimeError, "from the callback"):
            ct_thumbnail.build_thumbnails(self.dir, boom)

    def test_pattern_selection_with_a_gap(self):
        """prefix{i:0width}.ext for i in seq_begin..=seq_end: files outside the
        range or the pattern are ignored, a missing index is skipped."""
        slices = self.write_stack([i for i in range(10, 31) if i != 15])
        self.write_stack([9, 31], seed=8)  # outside the range
        self.write_stack([12], prefix="other_", seed=9)  # another prefix
        seen = []
        result = ct_thumbnail.build_thumbnails(self.dir, seen.append, "slice_", "tif", 10, 30, 4)
        self.assertIsNone(result)
        self.assertEqual(seen[-1], 100.0)
        selected = [slices[i] for i in range(10, 31) if i != 15]
        self.assertEqual(len(selected), 20)
        self.assertPyramid(reference_pyramid(selected))

    def test_bmp_pattern(self):
        """CTHarvester's usual input: an 8-bit BMP stack selected by pattern."""
        try:
            from PIL import Image
        except ImportError:
            if REQUIRE_EXTERNAL:
                self.fail("Pillow is required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("Pillow is not installed")
        rng = np.random.default_rng(5)
        slices = []
        for i in range(7):
            a = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
            a[0, :2] = (0, 255)
            Image.fromarray(a).save(os.path.join(self.dir, "rec%05d.bmp" % i))
            slices.append(a)
        seen = []
        self.assertIsNone(
            ct_thumbnail.build_thumbnails(self.dir, seen.append, "rec", "bmp", 0, 6, 5)
        )
        self.assertEqual(seen[-1], 100.0)
        self.assertPyramid(reference_pyramid(slices))

    def test_pattern_matching_nothing(self):
        """No file of the pattern exists: nothing is built, the callback hears
        100, None is returned (as CTHarvester's module)."""
        self.write_stack(range(3))
        seen = []
        self.assertIsNone(
            ct_thumbnail.build_thumbnails(self.dir, seen.append, "scan_", "tif", 0, 9, 4)
        )
        self.assertEqual(seen, [100.0])
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".thumbnail")))

    def test_small_slices_build_level_1_as_ctharvesters_python_path(self):
        """Slices within 500 px, called as CTHarvester calls (positionally,
        no min_levels): level 1 and no more, as its Python path builds."""
        rng = np.random.default_rng(4)
        slices = [rng.integers(0, 65536, (64, 66), dtype=np.uint16) for _ in range(5)]
        for i, a in enumerate(slices):
            tifffile.imwrite(os.path.join(self.dir, "s%d.tif" % i), a)
        seen = []
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir, seen.append))
        self.assertEqual(seen[-1], 100.0)
        self.assertPyramid(reference_pyramid(slices, max_size=65)[:1])

    def test_a_build_that_writes_nothing_leaves_no_manifest(self):
        """min_levels=0 on small slices (the Rust module's rule), and slices
        one pixel high (nothing can be halved): no level, no manifest, no
        .thumbnail folder; a folder holding other files is kept."""
        rng = np.random.default_rng(3)
        for i in range(4):
            tifffile.imwrite(
                os.path.join(self.dir, "s%d.tif" % i),
                rng.integers(0, 255, (64, 64), dtype=np.uint8),
            )
        root = os.path.join(self.dir, ".thumbnail")
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir, None, min_levels=0))
        self.assertFalse(os.path.exists(root), os.listdir(self.dir))
        os.makedirs(root)
        with open(os.path.join(root, "notes.txt"), "w") as f:
            f.write("mine")
        self.assertIsNone(ct_thumbnail.build_thumbnails(self.dir, None, min_levels=0))
        self.assertEqual(os.listdir(root), ["notes.txt"])
        flat = os.path.join(self.dir, "flat")
        os.makedirs(flat)
        for i in range(3):
            tifffile.imwrite(os.path.join(flat, "f%d.tif" % i), np.zeros((1, 40), np.uint16))
        self.assertIsNone(ct_thumbnail.build_thumbnails(flat))
        self.assertFalse(os.path.exists(os.path.join(flat, ".thumbnail")))

    def test_missing_directory_is_an_oserror(self):
        with self.assertRaises(OSError):
            ct_thumbnail.build_thumbnails(os.path.join(self.dir, "no_such_scan"))


if __name__ == "__main__":
    unittest.main()


class SaveCroppedImageStackTest(unittest.TestCase):
    """ctstack.compat.save_cropped_image_stack against numpy of the sources:
    a gap in the numbering (issue 26 item 1) and CTHarvester's level menu
    (item 2)."""

    def setUp(self):
        if np is None:
            if REQUIRE_EXTERNAL:
                self.fail("numpy and tifffile are required (CTSTACK_REQUIRE_EXTERNAL=1)")
            self.skipTest("numpy or tifffile is not installed")
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        self.stack = os.path.join(self.dir, "stack")
        os.mkdir(self.stack)

    def write(self, numbers, shape, seed=3):
        rng = np.random.default_rng(seed)
        slices = {}
        for n in numbers:
            a = rng.integers(0, 65536, shape, dtype=np.uint16)
            tifffile.imwrite(os.path.join(self.stack, "ct_%04d.tif" % n), a)
            slices[n] = a
        return slices

    def test_a_missing_slice_is_skipped_as_ctharvester_skips_it_never_shifted(self):
        # The call: ct_0005 ..= ct_0044 without ct_0015, bottom 3, top 30.
        slices = self.write([n for n in range(5, 45) if n != 15], (420, 450))
        out = os.path.join(self.dir, "out")
        with self.assertWarnsRegex(ctstack.MissingSliceWarning, r"15 \(ct_0015\.tif\)"):
            with self.assertLogs("ctstack", "WARNING") as logged:
                report = save_cropped_image_stack(
                    self.stack, out, 0, 37, 51, 413, 389, 3, 30, "ct_", "tif", 4, 5, 44
                )
        self.assertIn("ct_0015.tif", logged.output[0])
        want = ["ct_%04d.tif" % n for n in range(8, 36) if n != 15]
        # The outputs and the crop's record of them (src/crop/record.rs).
        self.assertEqual(sorted(os.listdir(out)), [".ctstack-crop.json"] + want)
        self.assertEqual(report.files, want)
        self.assertIn("ct_0015.tif", report.notes[0])
        for name in want:
            got = tifffile.imread(os.path.join(out, name))
            np.testing.assert_array_equal(got, slices[int(name[3:7])][51:389, 37:413], name)
        # Refused on request, before anything is written.
        out = os.path.join(self.dir, "refused")
        with self.assertRaisesRegex(ctstack.StateError, r"number 15 \(ct_0015\.tif\)"):
            save_cropped_image_stack(
                self.stack, out, 0, 37, 51, 413, 389, 3, 30, "ct_", "tif", 4, 5, 44,
                skip_missing=False,
            )  # fmt: skip
        self.assertFalse(os.path.exists(out) and os.listdir(out))

    def test_files_ctstack_did_not_write_are_never_replaced(self):
        # An export into a folder that holds the user's files at the names it
        # would write: refused before anything is written, with a message that
        # says what to do (CTHarvester's wiring shows str(e): see
        # ctstack.compat.export_handler), the files unchanged.
        self.write(range(0, 6), (40, 50))
        out = os.path.join(self.dir, "export")
        os.mkdir(out)
        for n in (1, 2):
            with open(os.path.join(out, "ct_%04d.tif" % n), "wb") as f:
                f.write(b"the user's")
        with self.assertRaises(ctstack.StateError) as raised:
            save_cropped_image_stack(self.stack, out, 0, -1, 0, 0, 0, 0, 5, "ct_", "tif", 4, 0, 5)
        message = str(raised.exception)
        for part in (
            "2 files are at output names of the crop (ct_0001.tif, ct_0002.tif)",
            "ctstack did not write them",
            "choose another output folder, or move them away",
            "nothing was written",
        ):
            self.assertIn(part, message)
        self.assertEqual(sorted(os.listdir(out)), ["ct_0001.tif", "ct_0002.tif"])
        for n in (1, 2):
            with open(os.path.join(out, "ct_%04d.tif" % n), "rb") as f:
                self.assertEqual(f.read(), b"the user's")
        # Moved away: exported; exported again over its own files.
        for n in (1, 2):
            os.remove(os.path.join(out, "ct_%04d.tif" % n))
        for _ in range(2):
            report = save_cropped_image_stack(
                self.stack, out, 0, -1, 0, 0, 0, 0, 5, "ct_", "tif", 4, 0, 5
            )
            self.assertEqual(report.written, 6)

    def test_the_level_menu_position_is_mapped_through_level_info(self):
        # 1100x1000: levels 1 (550x500) and 2 (275x250); CTHarvester's menu is
        # ['Level 0', 'Level 2'] and its export passes size_idx 1.
        slices = self.write(range(0, 8), (1000, 1100))
        ct_thumbnail.build_thumbnails(self.stack, None, "ct_", "tif", 0, 7, 4)
        level2 = reference_pyramid([slices[n] for n in range(8)])[1]
        self.assertEqual(level2[0].shape, (250, 275))
        level_info = [
            {"name": "Level 0", "width": 1100, "height": 1000, "seq_begin": 0, "seq_end": 7},
            {"name": "Level 2", "width": 275, "height": 250, "seq_begin": 0, "seq_end": 1},
        ]
        out = os.path.join(self.dir, "l2")
        report = save_cropped_image_stack(
            self.stack, out, 1, 10, 20, 200, 150, 0, 1, "ct_", "tif", 4, 0, 7,
            level_info=level_info,
        )  # fmt: skip
        self.assertEqual(report.files, ["ct_0000.tif", "ct_0001.tif"])
        for j, name in enumerate(report.files):
            got = tifffile.imread(os.path.join(out, name))
            np.testing.assert_array_equal(got, level2[j][20:150, 10:200], name)
        # One level_info entry is taken as it is.
        report = save_cropped_image_stack(
            self.stack, os.path.join(self.dir, "entry"), level_info[1], -1, -1, -1, -1, 1, 1,
            "ct_", "tif", 4, 0, 7,
        )  # fmt: skip
        got = tifffile.imread(os.path.join(self.dir, "entry", "ct_0001.tif"))
        np.testing.assert_array_equal(got, level2[1])
        # A box drawn for level 1 (outside level 2 as the menu shows it): refused.
        with self.assertRaisesRegex(ctstack.InvalidArgumentError, "Level 2.*275x250"):
            save_cropped_image_stack(
                self.stack, os.path.join(self.dir, "wide"), 1, 10, 20, 500, 450, 0, 1,
                "ct_", "tif", 4, 0, 7, level_info=level_info,
            )  # fmt: skip
        with self.assertRaisesRegex(ctstack.InvalidArgumentError, "menu"):
            save_cropped_image_stack(
                self.stack, os.path.join(self.dir, "x"), 2, -1, -1, -1, -1, 0, 0,
                "ct_", "tif", 4, 0, 7, level_info=level_info,
            )  # fmt: skip

    def test_thumbnails_ctharvester_made_say_to_build_them_with_ctstack(self):
        slices = self.write(range(0, 4), (40, 60))
        level1 = os.path.join(self.stack, ".thumbnail", "1")
        os.makedirs(level1)
        for j in range(2):
            tifffile.imwrite(os.path.join(level1, "%06d.tif" % j), slices[2 * j][::2, ::2])
        with self.assertRaises(ctstack.StateError) as caught:
            save_cropped_image_stack(
                self.stack, os.path.join(self.dir, "out"), 1, -1, -1, -1, -1, 0, 1,
                "ct_", "tif", 4, 0, 3,
            )  # fmt: skip
        message = str(caught.exception)
        self.assertIn("made by CTHarvester", message)
        self.assertIn("ct_thumbnail", message)
        self.assertIn("ctstack pyramid", message)
