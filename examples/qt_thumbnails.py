"""Build a CT stack's thumbnail pyramid from a Qt GUI without blocking it.

    python examples/qt_thumbnails.py SCAN_DIR [--out DIR] [--min-size 500] [--auto-close]

The pattern: start a ctstack.PyramidJob (it runs on the library's own thread,
outside the GIL), and poll it from a QTimer on the GUI thread. Each tick reads
``job.progress`` (cheap: two atomics) and updates the progress bar; the event
loop never blocks, so the window repaints, moves and answers the Cancel button
at once. Cancel calls ``job.cancel()``; the job stops after the output slice it
is writing (only complete files are left; a later run resumes).

Works with PyQt5, PyQt6 or PySide6, whichever is installed; ctstack itself does
not depend on Qt. ``--auto-close`` quits when the job ends (used by the tests,
with QT_QPA_PLATFORM=offscreen). Prints the outcome and exits 0 when built, 1 on
error, 130 when cancelled.
"""

import argparse
import importlib.util
import os
import sys

if importlib.util.find_spec("ctstack") is None:  # a checkout used without installing
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
    )

import ctstack  # noqa: E402

for _binding in ("PyQt5", "PyQt6", "PySide6"):
    if importlib.util.find_spec(_binding):
        QtCore = importlib.import_module(_binding + ".QtCore")
        QtWidgets = importlib.import_module(_binding + ".QtWidgets")
        break
else:
    raise SystemExit("this example needs PyQt5, PyQt6 or PySide6")

POLL_MS = 50


class PyramidWindow(QtWidgets.QWidget):
    """A progress bar and a Cancel button over one PyramidJob."""

    def __init__(self, job, auto_close):
        super().__init__()
        self.job = job
        self.auto_close = auto_close
        self.outcome = None
        self.setWindowTitle("ctstack %s: building thumbnails" % ctstack.__version__)
        self.bar = QtWidgets.QProgressBar()
        self.label = QtWidgets.QLabel("starting")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.job.cancel)
        layout = QtWidgets.QVBoxLayout(self)
        for widget in (self.label, self.bar, self.cancel_button):
            layout.addWidget(widget)
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.timer.start(POLL_MS)

    def poll(self):
        """One timer tick: show the progress; once the job has ended, show how."""
        done, total = self.job.progress
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)
        self.label.setText("%d of %d output slices" % (done, total))
        if self.job.running:
            return
        self.timer.stop()
        self.cancel_button.setEnabled(False)
        try:
            self.job.wait()  # finished: returns at once, or raises how it failed
            self.outcome = "built"
        except ctstack.CancelledError:
            self.outcome = "cancelled"
        except ctstack.CtstackError as e:
            self.outcome = "error: %s" % e
        self.label.setText(self.outcome)
        if self.auto_close:
            self.close()

    def closeEvent(self, event):
        """Closing the window cancels a running job and releases it."""
        self.timer.stop()
        self.job.close()
        super().closeEvent(event)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir")
    parser.add_argument("--out", help="output directory (default: <input_dir>/.thumbnail)")
    parser.add_argument("--min-size", type=int, default=ctstack.DEFAULT_MIN_SIZE)
    parser.add_argument("--auto-close", action="store_true", help="quit when the job ends")
    args = parser.parse_args(argv)

    app = QtWidgets.QApplication(sys.argv[:1])
    window = PyramidWindow(
        ctstack.PyramidJob(args.input_dir, args.out, args.min_size), args.auto_close
    )
    window.show()
    app.exec() if hasattr(app, "exec") else app.exec_()
    print(window.outcome or "closed")
    return {"built": 0, "cancelled": 130}.get(window.outcome, 1)


if __name__ == "__main__":
    sys.exit(main())
