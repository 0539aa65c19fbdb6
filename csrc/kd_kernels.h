/* kd_kernels.h - accelerated kernels, registered into the dispatch table in
 * order of preference (best first).  Each kernel lives in its own file and
 * is compiled on every build; architecture-specific bodies are guarded so
 * the file compiles to nothing on other architectures. */
#ifndef KD_KERNELS_H
#define KD_KERNELS_H

#include "kd_internal.h"

#define KD_ACCELERATED_KERNELS

#endif
