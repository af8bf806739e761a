"""examples/qt_thumbnails.py, the non-blocking Qt pattern (a QTimer polling a
PyramidJob), run headless (QT_QPA_PLATFORM=offscreen) to its end.

Qt is not a dependency of ctstack: skipped when no Qt binding (PyQt5, PyQt6,
PySide6) is installed, unless CTSTACK_REQUIRE_QT=1.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT = next((b for b in ("PyQt5", "PyQt6", "PySide6") if importlib.util.find_spec(b)), None)


class QtExampleTest(unittest.TestCase):
    def setUp(self):
        if QT is None:
            if os.environ.get("CTSTACK_REQUIRE_QT") == "1":
                self.fail("a Qt binding is required (CTSTACK_REQUIRE_QT=1)")
            self.skipTest("no Qt binding installed")

    def run_example(self, *args):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        return subprocess.run(
            [sys.executable, str(ROOT / "examples" / "qt_thumbnails.py"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    def test_builds_the_pyramid(self):
        with tempfile.TemporaryDirectory() as out:
            run = self.run_example(
                str(ROOT / "fixtures" / "stack"), "--out", out, "--min-size", "80", "--auto-close"
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            self.assertEqual(run.stdout.strip().splitlines()[-1], "built")
            self.assertEqual(len(os.listdir(os.path.join(out, "1"))), 11)
            self.assertEqual(len(os.listdir(os.path.join(out, "2"))), 6)

    def test_reports_an_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_example(os.path.join(tmp, "no_such_scan"), "--auto-close")
            self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
            self.assertIn("error:", run.stdout)


if __name__ == "__main__":
    unittest.main()
