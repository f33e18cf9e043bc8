/* fastmlp_f64.c: every kernel compiled with real = double. The kernel sources are written once over
 * `real` and FN() (see fastmlp.h); fastmlp_f32.c compiles the same sources for the other type. */
#include <math.h>
#include <tgmath.h>   /* exp, tanh, sqrt, ... pick the double version from their argument */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastmlp.h"
#include "rng.h"

#define real double
#define FASTMLP_REAL_IS_FLOAT 0  /* picks the vector intrinsics of tiles.c */
#define FN(name) name##_f64
#include "dense.c"
#include "tiles.c"
#include "batchnorm.c"
#include "loss.c"
#include "optim.c"
#include "input.c"
#include "corruption.c"
#include "tied.c"
#include "health.c"
#include "train.h"
#include "workspace.c"
#include "step.c"
#include "batch.c"
#include "train.c"
#include "predict.c"
