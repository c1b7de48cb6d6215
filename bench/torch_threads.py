"""Cap the thread pools of Debian's torch before it loads.

Debian's torch does its matrix products in the system BLAS (OpenBLAS, with
a thread pool of its own that torch.set_num_threads does not size, one
thread per core by default) and the rest in OpenMP. The baselines under
bench/ import this module before numpy and torch and call cap(), so that
their --threads N means N threads for the whole step, as the Go side's
--threads does. Without it, on a 2-core machine, OpenBLAS's spinning
threads made the DeepFool twin several times slower on Gemm-heavy models
(an MNIST MLP: 45-66 images/s instead of hundreds), a ratio in Go's favour
that measured only the baseline's misconfiguration.
"""

import os


def threads(argv):
    """The --threads value of argv (default 1), as a string."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


def cap(argv):
    """Set the BLAS and OpenMP pools to argv's --threads; call before torch loads."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads(argv)


def blas():
    """The BLAS libraries this process has loaded (torch's matrix products), by path.

    Debian's torch multiplies matrices in whatever libblas.so.3 the
    alternatives system points to: the reference BLAS of libblas3 is
    several times slower than OpenBLAS (libopenblas0-pthread) on an MLP's
    products, and a baseline on it is a slow baseline.
    """
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.split()[-1].lower()}
    return sorted(p for p in paths if p.startswith("/"))


def reference_blas():
    """Whether the loaded BLAS is the reference BLAS (libblas3's /blas/ folder)."""
    return any("/blas/" in p for p in blas())
