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

#endif
