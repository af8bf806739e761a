"""The Harvest dock widget of the napari plugin (see :mod:`ctstack._napari`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ._crop import CropJob
from ._napari import POLL_MS, harvest_box


class HarvestWidget(QWidget):
    """The Harvest dock widget (npe2 widget ``ctstack.harvest``), CTHarvester's
    export in napari: the box drawn in a shapes layer (its last rectangle) and
    a slice range of a ctstack layer (the selected one, else the last), written
    at a chosen level by :class:`ctstack.CropJob` (one file per slice, the
    sources' format at level 0), with a progress bar and Cancel; the viewer
    stays responsive (the job runs on the library's thread, a Qt timer polls
    it). After a run, :attr:`report` is the job's :class:`ctstack.CropReport`,
    or :attr:`error` says why nothing (or not everything) was written."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.job: Optional[CropJob] = None
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)
        form = QFormLayout(self)
        self.level = QSpinBox()
        self.first = QSpinBox()
        self.last = QSpinBox()
        for spin in (self.level, self.first, self.last):
            spin.setMaximum(1 << 30)
        self.last.setValue(1 << 30)
        self.output = QLineEdit()
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.output)
        row.addWidget(browse)
        self.export = QPushButton("Harvest")
        self.export.clicked.connect(self.start)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self._cancel)
        self.bar = QProgressBar()
        self.status = QLabel("Draw a rectangle in a shapes layer over a ctstack layer.")
        self.status.setWordWrap(True)
        form.addRow("Level", self.level)
        form.addRow("First slice", self.first)
        form.addRow("Last slice", self.last)
        form.addRow("Output folder", row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export)
        buttons.addWidget(self.cancel)
        form.addRow(buttons)
        form.addRow(self.bar)
        form.addRow(self.status)
        self.report: Any = None
        self.error: Optional[str] = None

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Harvest into")
        if folder:
            self.output.setText(folder)

    def _layers(self) -> Tuple[Any, Any]:
        from napari.layers import Image, Shapes

        images = [lyr for lyr in self.viewer.layers
                  if isinstance(lyr, Image) and "ctstack" in lyr.metadata]  # fmt: skip
        shapes = [lyr for lyr in self.viewer.layers if isinstance(lyr, Shapes)]
        if not images:
            raise ValueError("open a stack with the ctstack reader first")
        selected = [lyr for lyr in images if lyr in self.viewer.layers.selection]
        return (selected or images)[-1], (shapes[-1] if shapes else None)

    def start(self) -> None:
        """Checks the request and starts the crop job; a bad request is
        shown in the status line (nothing is written)."""
        self.report, self.error = None, None
        try:
            image, shapes = self._layers()
            meta = image.metadata["ctstack"]
            box = harvest_box(image, shapes, self.level.value(),
                              (self.first.value(), self.last.value()))  # fmt: skip
            if not self.output.text():
                raise ValueError("choose an output folder")
            self.job = CropJob(
                meta["input"], self.output.text(), self.level.value(),
                pyramid_dir=meta["pyramid_dir"], **box,
            )  # fmt: skip
        except Exception as e:  # shown to the user, who can do something about it
            self.error = str(e)
            self.status.setText("Not harvested: %s" % e)
            return
        self.status.setText("Harvesting %s x=%s y=%s z=%s at level %d" % (
            Path(meta["input"]).name, box["x"], box["y"], box["z"], self.level.value()))
        self.bar.setMaximum(max(1, self.job.shape[0]))
        self.bar.setValue(0)
        self.export.setEnabled(False)
        self.cancel.setEnabled(True)
        self.timer.start()

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _poll(self) -> None:
        job = self.job
        if job is None:
            return
        running, done, total = job._poll()
        self.bar.setValue(int(done))
        if running:
            return
        self.timer.stop()
        self.export.setEnabled(True)
        self.cancel.setEnabled(False)
        try:
            self.report = job.report()
            self.status.setText("Harvested %d files into %s" % (
                self.report.written, self.report.output_dir))
        except Exception as e:  # cancelled or failed: said in the widget
            self.error = str(e)
            self.status.setText("Stopped: %s" % e)
        finally:
            job.close()
            self.job = None

