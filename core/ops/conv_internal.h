/*
** conv_internal.h: pieces of conv2d.c that other kernels in core/ops reuse (internal, not
** public API).
*/
#ifndef TRL_CONV_INTERNAL_H
#define TRL_CONV_INTERNAL_H

#include <stddef.h>

#include "nn.h"

// One plane of a 3x3 depthwise conv (stride 1 or 2, dilation 1, g->ph / g->pw zero rows and
// columns around it): o (g->OH, g->OW) from x (g->H, g->W) with the 9 weights w of channel c,
// no bias, then the epilogue e (or NULL) of channel c. The same arithmetic as conv2d's forward
// of that plane, so the same bits. P is scratch of dw3_plane_floats(g) floats.
size_t dw3_plane_floats (const trl_conv_geom *g);
void dw3_plane (float *o, const float *x, const float *w, const trl_epilogue *e, int c, float *P,
                const trl_conv_geom *g);

// The forms a conv's forward makes of its weight on every call, and a conv pack keeps:
// CONV_FORM_GEMM, the weight packed by group for trl_gemm_packed (im2col and 1x1 convs);
// CONV_FORM_WINO4, the F(4x4,3x3) transform; CONV_FORM_NONE, neither (depthwise convs read
// the weight as it is, F(2x2,3x3) transforms it itself). conv_weight_form says which one a
// forward of 'g' uses, with ('packed') or without a pack: with one, F(4x4) takes small batches
// too, since the transform is not paid per call.
enum { CONV_FORM_NONE, CONV_FORM_GEMM, CONV_FORM_WINO4 };
int conv_weight_form (const trl_conv_geom *g, int packed);
// The weight w (wc: w itself or its contiguous copy) in 'form' (not NONE) for 'g', from pack
// 'p', made there first when p holds none for w's storage, stamp and view (and the CPU's GEMM
// layout); NULL when out of memory.
const float *conv_pack_get (trl_conv_pack *p, const trl_tensor *w, const trl_tensor *wc,
                            int form, const trl_conv_geom *g);

#endif
