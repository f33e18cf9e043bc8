"""Build of fastmlp's one extension, fastmlp._core: the Cython bridge plus the C kernels of csrc/,
compiled for float and double. OpenMP is used when a tiny OpenMP program compiles and links;
without it the package still builds and runs single-threaded.

Environment variables read at build time (README.md, "Development"):
  FASTMLP_NO_OPENMP=1   build without OpenMP even where the compiler has it (single-threaded)
  FASTMLP_DEBUG=1       -O0 -g with AddressSanitizer and UndefinedBehaviorSanitizer"""
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def openmp_flags(compiler):
    """The compile and link flags that make OpenMP work with this compiler, or None."""
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, ldflags in candidates:
            try:
                objects = compiler.compile([source], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=ldflags)
            except Exception:  # any compiler or linker failure means: no OpenMP this way
                continue
            return cflags, ldflags
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        if os.environ.get("FASTMLP_NO_OPENMP"):
            flags = None
            sys.stderr.write("fastmlp: OpenMP turned off by FASTMLP_NO_OPENMP; building "
                             "single-threaded kernels\n")
        else:
            flags = openmp_flags(self.compiler)
            if flags is None:
                sys.stderr.write("fastmlp: OpenMP not found; building single-threaded kernels\n")
        unix = self.compiler.compiler_type != "msvc"
        for ext in self.extensions:
            if unix:
                # -O3 but never -ffast-math: the kernels rely on IEEE inf/nan behaviour; no
                # contraction into FMAs, so the AVX clones of csrc/fastmlp.h give the bits of
                # the baseline build
                ext.extra_compile_args += ["-O3", "-ffp-contract=off"]
                if os.environ.get("FASTMLP_DEBUG"):
                    ext.extra_compile_args += ["-O0", "-g", "-fsanitize=address,undefined"]
                    ext.extra_link_args += ["-fsanitize=address,undefined"]
            if flags:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()


class Sdist(sdist):
    def make_distribution(self):
        # setuptools lists its egg-info folder's SOURCES.txt in every sdist whatever
        # MANIFEST.in prunes; a build from the sdist makes its own, so leave it out
        self.filelist.files = [name for name in self.filelist.files
                               if not any(part.endswith(".egg-info")
                                          for part in os.path.normpath(name).split(os.sep))]
        super().make_distribution()


kernel_sources = ["dense.c", "tiles.c", "batchnorm.c", "loss.c", "optim.c", "input.c", "train.h",
                  "workspace.c", "step.c", "batch.c", "train.c", "predict.c", "corruption.c",
                  "health.c", "rng.h", "fastmlp.h", "tied.c", "team.h"]
extension = Extension(
    "fastmlp._core",
    sources=["src/fastmlp/_core.pyx", "csrc/fastmlp_f32.c", "csrc/fastmlp_f64.c"],
    include_dirs=["csrc", numpy.get_include()],
    depends=[os.path.join("csrc", name) for name in kernel_sources],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize(
        [extension],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
    cmdclass={"build_ext": BuildExt, "sdist": Sdist},
)
