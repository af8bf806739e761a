#!/usr/bin/env python3
"""Drives CTHarvester's own export (its main window, offscreen Qt) with
ctstack's drop-ins wired in as ctstack's documentation says, and compares every
file it writes with numpy of the sources (issue 26 items 1 and 2).

usage: CTSTACK_LIBRARY=target/debug/libctstack.so PYTHONPATH=python \\
       QT_QPA_PLATFORM=offscreen VENV/bin/python benches/ctharvester_export.py CTHARVESTER WORKDIR
       (CTH_WIRING=before: the call as documented before issue 26, for an older checkout)

  CTHARVESTER  a CTHarvester work tree (github.com/jikhanjung/CTHarvester; this
               was written against 4b2928c), e.g. from
               `git --git-dir=CTHarvester.git archive HEAD | tar -x -C /tmp/cth`
  VENV         a venv with CTHarvester's requirements.txt from PyPI and tifffile
               (python -m venv VENV; VENV/bin/pip install -r CTHARVESTER/requirements.txt tifffile)
  WORKDIR      scratch (stacks, outputs, CTHarvester's settings and logs)

The wiring (python/ctstack/compat/export_handler.py's docstring):
  - ``ct_thumbnail`` is ``ctstack.compat.ct_thumbnail`` (sys.modules, as the
    documented ``from ctstack.compat import ct_thumbnail`` in CTHarvester's import);
  - ``ExportHandler._save_images_with_progress`` calls
    ``ctstack.compat.save_cropped_image_stack`` with crop_info's size_idx and
    ``level_info=self.window.level_info``, and shows a ctstack error's message.
Rows marked "CTHarvester's loop" run CTHarvester's export unchanged, for
comparison. "thumbnails by CTHarvester" rows make the thumbnails with
CTHarvester's own Python path (ct_thumbnail not importable).

Each case opens the stack through the window (QFileDialog answered), lets it
build thumbnails and fill its level menu, picks the menu entry, sets the
slice range and the box on the window's widgets, and presses "save"
(``save_result``, its @guard_slot included). Dialogs are recorded, not shown.

Truth: level 0, numpy slicing of tifffile's reading of each source; level k,
the exact 2x2x2 mean cascade ((sum of 8 + 4) >> 3, an odd last slice paired
with itself) of the sources in numpy. A file is "equal" if its name's number
is the slice it holds (level 0: that file; level k: slice number - seq_begin
of the level) and its pixels equal the truth's box.
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np
import tifffile

CTH, WORK = (os.path.abspath(a) for a in sys.argv[1:3])
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HOME"] = os.path.join(WORK, "home")
os.makedirs(os.environ["HOME"], exist_ok=True)
sys.path.insert(0, CTH)

import ctstack  # noqa: E402
from ctstack.compat import ct_thumbnail as ctstack_ct_thumbnail  # noqa: E402
from ctstack.compat import save_cropped_image_stack  # noqa: E402
from PyQt5.QtWidgets import QFileDialog, QMessageBox  # noqa: E402

import ui.errors  # noqa: E402
from ui.ctharvester_app import CTHarvesterApp  # noqa: E402
from ui.handlers.export_handler import ExportHandler  # noqa: E402
from ui.main_window import CTHarvesterMainWindow  # noqa: E402

# ---- dialogs: answered and recorded ---------------------------------------
ANSWER = {"dir": None}
DIALOGS = []
QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: ANSWER["dir"])


def _record_box(self, *a, **k):
    DIALOGS.append((self.text(), self.detailedText()))
    return QMessageBox.Ok


QMessageBox.exec = _record_box
QMessageBox.exec_ = _record_box
for _name in ("warning", "critical", "information"):
    setattr(
        QMessageBox,
        _name,
        staticmethod(lambda parent, title, text, *a, **k: DIALOGS.append((text, "")) or QMessageBox.Ok),
    )

# ---- the wiring ------------------------------------------------------------
CTH_LOOP = ExportHandler._save_images_with_progress


#: CTH_WIRING=before: the call as ctstack's docs had it before issue 26 (level
#: = size_idx taken as the folder number, no level_info), to run against an
#: older ctstack (PYTHONPATH and CTSTACK_LIBRARY of that checkout).
BEFORE = os.environ.get("CTH_WIRING") == "before"


def documented_call(self, target_dir, crop_info, progress_dialog, **extra):
    """The call of python/ctstack/compat/export_handler.py's documented wiring
    (`extra`: `level_info=`, which older ctstack lacks)."""
    settings = self.window.settings_hash
    save_cropped_image_stack(
        self.window.edtDirname.text(), target_dir,
        crop_info["size_idx"], crop_info["from_x"], crop_info["from_y"],
        crop_info["to_x"], crop_info["to_y"],
        crop_info["bottom_idx"], crop_info["top_idx"],
        settings["prefix"], settings["file_type"], int(settings["index_length"]),
        int(settings["seq_begin"]), int(settings["seq_end"]),
        lambda current, total: self._update_progress(progress_dialog, current, total),
        **extra,
    )  # fmt: skip


def ctstack_loop(self, target_dir, crop_info, progress_dialog, total_count):
    """The documented wiring: errors shown in a message box of their own."""
    if BEFORE:
        documented_call(self, target_dir, crop_info, progress_dialog)
        return
    try:
        documented_call(self, target_dir, crop_info, progress_dialog, level_info=self.window.level_info)
    except ctstack.CtstackError as e:
        QMessageBox.warning(self.window, self.window.tr("Export"), str(e))


def ctstack_loop_unguarded(self, target_dir, crop_info, progress_dialog, total_count):
    """The same call without the except: the error reaches CTHarvester's
    @guard_slot, which shows EXPORT_FAILED's fixed text."""
    documented_call(self, target_dir, crop_info, progress_dialog, level_info=self.window.level_info)


# ---- stacks and truth ------------------------------------------------------
def make_stack(name, shape, gap):
    folder = os.path.join(WORK, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    rng = np.random.default_rng(26)
    slices = {}
    for n in range(5, 45):
        a = rng.integers(0, 65536, shape, dtype=np.uint16)
        if gap and n == 15:
            continue
        tifffile.imwrite(os.path.join(folder, "ct_%04d.tif" % n), a)
        slices[n] = a
    return folder, slices


def cascade(slices, k):
    """Level k of the exact pyramid of ``slices`` (in order)."""
    level = [s.astype(np.uint32) for s in slices]
    for _ in range(k):
        h, w = level[0].shape[0] // 2 * 2, level[0].shape[1] // 2 * 2
        nxt = []
        for j in range(0, len(level), 2):
            a = level[j][:h, :w]
            b = level[j + 1][:h, :w] if j + 1 < len(level) else a
            nxt.append((sum(s[dy::2, dx::2] for s in (a, b) for dy in (0, 1) for dx in (0, 1)) + 4) >> 3)
        level = nxt
    return [s.astype(np.uint16) for s in level]


def truth_of(slices, k, number):
    """The truth for the output named ``number`` at level k, or None if that
    number stands for slices that are not all there (a gap in its group)."""
    seq_begin = 5
    if k == 0:
        return slices.get(number)
    j = number - seq_begin
    group = range(seq_begin + j * 2**k, seq_begin + (j + 1) * 2**k)
    # The stack's numbers before and in the group must all be there for the
    # positional pyramid to be the mean of these numbers.
    if any(n not in slices for n in range(seq_begin, min(group.stop, 45))):
        return None
    return cascade([slices[n] for n in sorted(slices)], k)[j]


# ---- driving the window ----------------------------------------------------
app = CTHarvesterApp([sys.argv[0]])


def run_case(label, folder, slices, menu_index, rng_, box, loop, thumbnails="ctstack"):
    sys.modules["ct_thumbnail"] = ctstack_ct_thumbnail if thumbnails == "ctstack" else None
    shutil.rmtree(os.path.join(folder, ".thumbnail"), ignore_errors=True)
    ExportHandler._save_images_with_progress = loop
    DIALOGS.clear()
    window = CTHarvesterMainWindow()
    window.cbxOpenDirAfter.setChecked(False)
    ANSWER["dir"] = folder
    window.open_dir()
    menu = [window.comboLevel.itemText(i) for i in range(window.comboLevel.count())]
    window.comboLevel.setCurrentIndex(menu_index)
    window.comboLevelIndexChanged()
    bottom, top = rng_
    window.timeline.setLower(bottom)
    window.timeline.setUpper(top)
    window.image_label.set_bottom_idx(bottom)
    window.image_label.set_top_idx(top)
    il = window.image_label
    il.crop_from_x, il.crop_from_y, il.crop_to_x, il.crop_to_y = box
    target = os.path.join(WORK, "out", label.replace(" ", "_"))
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    ANSWER["dir"] = target
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        window.save_result()
    name = menu[menu_index]
    k = int(name.split()[-1]) if name.split()[-1].isdigit() else 0
    # The outputs (not the crop's hidden record, .ctstack-crop.json).
    files = sorted(f for f in os.listdir(target) if not f.startswith("."))
    equal = 0
    wrong = []
    x0, y0, x1, y1 = box
    for f in files:
        number = int(f[3:7])
        want = truth_of(slices, k, number)
        got = tifffile.imread(os.path.join(target, f))
        if want is not None and got.shape == want[y0:y1, x0:x1].shape and np.array_equal(
            got, want[y0:y1, x0:x1]
        ):
            equal += 1
        else:
            wrong.append(f)
    window.close()
    window.deleteLater()
    app.processEvents()
    return {
        "case": label,
        "menu": menu,
        "menu_index": menu_index,
        "level": k,
        "range": rng_,
        "box": box,
        "files": len(files),
        "equal": equal,
        "wrong": wrong,
        "names": files,
        "warnings": [str(w.message) for w in caught],
        "dialogs": DIALOGS[:],
    }


def main():
    a_gap, a_slices_gap = make_stack("A_gap", (1000, 1100), gap=True)
    a_full, a_slices = make_stack("A", (1000, 1100), gap=False)
    b_gap, b_slices_gap = make_stack("B_gap", (700, 800), gap=True)
    b_full, b_slices = make_stack("B", (700, 800), gap=False)
    box0 = (37, 51, 413, 389)
    cases = [
        # (label, folder, slices, menu index, (bottom, top), box, loop, thumbnails)
        ("1100x1000 L0", a_full, a_slices, 0, (3, 30), box0, ctstack_loop, "ctstack"),
        ("1100x1000 L0 gap", a_gap, a_slices_gap, 0, (3, 30), box0, ctstack_loop, "ctstack"),
        ("1100x1000 L0 gap CTHarvester's loop", a_gap, a_slices_gap, 0, (3, 30), box0, CTH_LOOP, "ctstack"),
        ("1100x1000 menu 1 (L2)", a_full, a_slices, 1, (0, 6), (13, 12, 203, 97), ctstack_loop, "ctstack"),
        ("1100x1000 menu 1 (L2) gap", a_gap, a_slices_gap, 1, (0, 6), (13, 12, 203, 97), ctstack_loop, "ctstack"),
        ("1100x1000 menu 1 (L2) CTHarvester's loop", a_full, a_slices, 1, (0, 6), (13, 12, 203, 97), CTH_LOOP, "ctstack"),
        ("800x700 menu 1 (L1)", b_full, b_slices, 1, (1, 12), (18, 25, 206, 173), ctstack_loop, "ctstack"),
        ("800x700 menu 1 (L1) gap", b_gap, b_slices_gap, 1, (1, 12), (18, 25, 206, 173), ctstack_loop, "ctstack"),
        ("800x700 L0 gap", b_gap, b_slices_gap, 0, (0, 39), (0, 0, 800, 700), ctstack_loop, "ctstack"),
        ("800x700 menu 1 (L1) thumbnails by CTHarvester", b_full, b_slices, 1, (1, 12), (18, 25, 206, 173), ctstack_loop, "cth"),
        ("800x700 menu 1 (L1) thumbnails by CTHarvester, no except", b_full, b_slices, 1, (1, 12), (18, 25, 206, 173), ctstack_loop_unguarded, "cth"),
    ]  # fmt: skip
    rows = [run_case(*c) for c in cases]
    with open(os.path.join(WORK, "ctharvester_export.json"), "w") as fh:
        json.dump(rows, fh, indent=1, default=str)
    print("CTHarvester", os.environ.get("CTHARVESTER_COMMIT", CTH))
    print("ctstack", ctstack.version(), "python", sys.version.split()[0])
    print()
    print("| case | menu | level | range | files written | equal to truth | warning / dialog |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        said = ["warning: " + w[:120] + "..." for w in r["warnings"][:1]] + [
            "dialog: " + d[0][:100] + "..." + (" Details: " + d[1].splitlines()[0][:90] + "..." if d[1] else "")
            for d in r["dialogs"][:1]
        ]
        said = said[0] if said else ""
        print(
            "| %s | %s | %d | %d..=%d | %d | %d%s | %s |"
            % (
                r["case"], "/".join(r["menu"]), r["level"], r["range"][0], r["range"][1],
                r["files"], r["equal"], (" (wrong: %s)" % ", ".join(r["wrong"])) if r["wrong"] else "",
                said.replace("|", "/").replace("\n", " "),
            )
        )  # fmt: skip


if __name__ == "__main__":
    main()
