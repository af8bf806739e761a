"""What a benchmark's table says about the machine it ran on: the CPU model and
the load average, in the words every table of benches/results.md uses.

Imported by the benchmarks in this folder (their own folder is on sys.path when
run as scripts)."""
import os


def cpu_model():
    """The CPU's model name from /proc/cpuinfo ("?" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def cpu():
    """The model and the number of cores: "AMD EPYC ..., 2 cores"."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def load(average=None):
    """A load average (now, unless given) as "1.02 0.87 0.55"."""
    return " ".join(f"{x:.2f}" for x in (average or os.getloadavg()))
