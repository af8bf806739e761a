"""What running ctstack.build_pyramid as a polled job costs against the C
ABI's blocking call (issue 27: build_pyramid returns the job's report), on
fixtures/stack (21 slices of 301x203, min_size 80, force: every output
written), median of 15 runs of each in one process. Run from the checkout:

    cargo build --lib && PYTHONPATH=python CTSTACK_LIBRARY=target/debug/libctstack.so python benches/py_blocking_call.py
"""

import ctypes
import statistics
import tempfile
import time

import ctstack
from ctstack import _library as L

RUNS = 15


def main():
    out = tempfile.mkdtemp()

    def native():
        o = L.default_options()
        o.output_dir = out.encode()
        o.min_size = 80
        o.force = 1
        L.call_with_progress(
            lambda cb: L.lib.ctstack_pyramid_build(b"fixtures/stack", ctypes.byref(o), cb, None),
            lambda d, t: None,
        )

    def job():
        ctstack.build_pyramid("fixtures/stack", out, 80, force=True, progress=lambda d, t: None)

    medians = {}
    for name, run in (("C ABI blocking call", native), ("ctstack.build_pyramid (job)", job)):
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
    for name, median in medians.items():
        print("%-30s median %.3f s" % (name, median))
    print("ratio job / blocking: %.2f" % (medians["ctstack.build_pyramid (job)"] / medians["C ABI blocking call"]))


if __name__ == "__main__":
    main()
