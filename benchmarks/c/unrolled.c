/* The numba unrolled encoder translated to C, in float64 and float32:
 * wlsc_unrolled_f64 and wlsc_unrolled_f32. A reference point for
 * benchmarks/compiled.py, not part of the library. */
#include <math.h>
#include <stdlib.h>

#define WLSC_T double
#define WLSC_NAME wlsc_unrolled_f64
#define WLSC_THR threshold_f64
#include "unrolled_impl.h"
#undef WLSC_T
#undef WLSC_NAME
#undef WLSC_THR

#define WLSC_T float
#define WLSC_NAME wlsc_unrolled_f32
#define WLSC_THR threshold_f32
#include "unrolled_impl.h"
