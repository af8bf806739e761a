"""Wall time of one pyramid built by ctstack.distributed on a LocalCluster
against the single-process ctstack.build_pyramid, on the same stack.

    cargo build --release --lib
    CTSTACK_LIBRARY=$PWD/target/release/libctstack.so PYTHONPATH=python \
        python benches/dask_cluster.py STACK_DIR [--workers 2] [--repeats 3] [--slab-size N]

STACK_DIR: e.g. the 64-slice benchmark stack (make_stack.py DIR -n 64). Every
run is a fresh build (the output folder is removed first); one unmeasured run
of each warms the page cache. Prints each time, the medians, and checks that
both outputs are byte for byte the same.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import ctstack
import ctstack.distributed as cd
from distributed import Client, LocalCluster


def level_files(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted(Path(out).glob("*/*.tif"))}


def timed(build, out):
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = build(out)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("stack")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slab-size", type=int, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ctstack-dask-bench-"))
    single_out, dask_out = scratch / "single", scratch / "dask"

    def single(out):
        return ctstack.build_pyramid(args.stack, out)

    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    print("cluster start-up: %.2f s (%d workers)" % (time.perf_counter() - started, args.workers))

    def distributed(out):
        return cd.build_pyramid(args.stack, out, client=client, slab_size=args.slab_size)

    try:
        timed(single, single_out)  # warm-up
        timed(distributed, dask_out)
        singles, dasks = [], []
        for _ in range(args.repeats):
            singles.append(timed(single, single_out)[0])
            seconds, report = timed(distributed, dask_out)
            dasks.append(seconds)
        print("single process: %s s" % ", ".join("%.2f" % t for t in singles))
        print("dask (%d slabs of %d): %s s" % (report.slabs, report.slab_size,
                                               ", ".join("%.2f" % t for t in dasks)))
        print("median: single %.2f s, dask %.2f s (ratio %.2f)" % (
            statistics.median(singles), statistics.median(dasks),
            statistics.median(dasks) / statistics.median(singles)))
        assert level_files(single_out) == level_files(dask_out), "outputs differ"
        print("outputs byte-identical:", len(level_files(dask_out)), "files")
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
