/*
** conv_winograd.h: Winograd convolution for conv2d.c (internal, not public API). 3x3 kernels,
** stride 1, dilation 1, pad 0..2, one group: F(4x4,3x3) (36 GEMMs on transformed 6x6 tiles,
** 4x fewer multiplies than im2col + GEMM) where the CPU has AVX2 and FMA, else F(2x2,3x3)
** (16 GEMMs, 2.25x fewer).
*/
#ifndef TRL_CONV_WINOGRAD_H
#define TRL_CONV_WINOGRAD_H

#include <stddef.h>

#include "nn.h"

// What winograd_conv runs for 'g': 4 (F(4x4,3x3), on CPUs with AVX2), 2 (F(2x2,3x3);
// TRL_CONV_WINOGRAD=2 forces it) or 0 (neither: im2col + GEMM). 'packed': the F(4x4) weight
// comes transformed (wino4_weights, kept by a conv pack), which moves the choice.
int winograd_variant (const trl_conv_geom *g, int packed);
// True when 'g' is a conv that winograd_conv can run.
int winograd_applies (const trl_conv_geom *g);
// Floats of scratch winograd_conv needs with 'nt' threads.
size_t winograd_workspace (const trl_conv_geom *g, int nt);
// out is (B,OC,OH,OW), inp is (B,C,H,W), w is (OC,C,3,3), b is (OC) or NULL. 'flip' reads w as
// the weight of the transposed conv: w is (C,OC,3,3) and each kernel is rotated 180 degrees
// (the data gradient of a conv). 'acc' adds to out instead of overwriting it. 'nt' threads
// split the images, each with single-threaded GEMMs.
void winograd_conv (float *out, const float *inp, const float *w, const float *b,
                    const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                    const trl_conv_geom *g);

// F(4x4,3x3) (conv_winograd4.c), which winograd_conv runs instead of F(2x2,3x3) where the CPU
// has AVX2 and FMA (wino4_cpu) unless TRL_CONV_WINOGRAD=2.
// U, when not NULL, is w already transformed (wino4_weights; flip 0): the scratch then holds
// no room for it (wino4_workspace with 'packed').
int wino4_cpu (void);
size_t wino4_workspace (const trl_conv_geom *g, int nt, int packed);
void wino4_conv (float *out, const float *inp, const float *w, const float *U, const float *b,
                 const trl_epilogue *e, int flip, int acc, float *ws, int nt,
                 const trl_conv_geom *g);
// U (wino4_weights_size(g) floats) = w (OC,C,3,3) transformed as wino4_conv reads it, by 'nt'
// threads.
size_t wino4_weights_size (const trl_conv_geom *g);
void wino4_weights (float *U, const float *w, int nt, const trl_conv_geom *g);
// The weight gradient of a conv F(4x4,3x3) runs: dw (OC,C,3,3) += the correlation of inp
// (B,C,H,W) with dout (B,OC,OH,OW), as 36 GEMMs over transformed tiles summed per thread
// (static split: the same bits every run); ws holds wino4_wgrad_workspace(g, nt) floats.
size_t wino4_wgrad_workspace (const trl_conv_geom *g, int nt);
void wino4_wgrad (float *dw, const float *dout, const float *inp, float *ws, int nt,
                  const trl_conv_geom *g);

#endif
