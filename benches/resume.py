#!/usr/bin/env python3
"""Full build vs unchanged rerun vs one touched input, ctstack pyramid on the 64-slice stack.
usage: python3 benches/resume.py target/release/ctstack STACK_DIR OUT_DIR
(STACK_DIR: python3 ../shared/tools/make_stack.py STACK_DIR -n 64, in a venv with numpy and
tifffile; OUT_DIR is deleted and rebuilt; the last row sets slice_0010.tif's mtime to now,
its bytes untouched.) Medians of 7 whole-process runs per row."""
import os, subprocess, time, shutil, statistics, sys
bin_, stack, out = sys.argv[1], sys.argv[2], sys.argv[3]
def run(*extra):
    t = time.perf_counter()
    r = subprocess.run([bin_, "pyramid", stack, "--out", out, *extra], check=True, capture_output=True, text=True)
    return time.perf_counter() - t, r.stdout.strip()
run(); shutil.rmtree(out)  # warm the page cache
rows = {"full build (empty output folder)": [], "--force over a complete output": [],
        "unchanged rerun": [], "rerun after touching one input": []}
last = {}
victim = os.path.join(stack, "slice_0010.tif")
for i in range(7):
    shutil.rmtree(out, ignore_errors=True)
    for name, extra in [("full build (empty output folder)", ()), ("unchanged rerun", ()),
                        ("--force over a complete output", ("--force",)), ("rerun after touching one input", ())]:
        if name.startswith("rerun after"):
            os.utime(victim)
        t, line = run(*extra)
        rows[name].append(t)
        last[name] = line
for name, v in rows.items():
    print("%-34s median %.4f s (min %.4f, max %.4f, n=%d)  %s" % (name, statistics.median(v), min(v), max(v), len(v),
          last[name].split(" -> ")[0].split("), ", 1)[1]))
