/*
** conv_winograd4_body.h: the loops of F(4x4,3x3) (conv_winograd4.c), compiled once per
** instruction set. The includer defines WI (the functions' target attribute), F(name) (the
** name with the set's suffix) and, for that set, the group helpers these loops call:
**   GMASK, F(gmask_at)   the column masks of a group of 8 tiles at column x0 of maps W wide
**   F(cols6)   the six columns of 8 input patches' row (V's gather), rows masked by rv
**   F(cols4)   the four columns of 8 output tiles' row (NULL rows read as zeros)
**   F(put4)    the inverse of cols4, with the bias, the epilogue or the add applied
**   F(weight_transform)
** Included by conv_winograd4.c only, twice.
*/

// V is (C,36,ld): tile rows [r0, r0+nr) (row ty of image n is n*TH + ty) of inp (B,C,H,W),
// input channels [c0, c1), S tile rows per group of 8 tiles (group_rows). Masked loads read
// the input rows in place: lanes outside the image (the padding) are zero and never touched.
// S is a constant in each copy, and the six rows of a group unrolled, so that the 36 values
// of 8 patches stay in registers.
WI static inline __attribute__((always_inline))
void F(input_rows) (const int S, float *V, int64_t ld, const float *inp, int r0, int nr,
                    int c0, int c1, const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4;
  for (int c = c0; c < c1; c++)
    for (int q = 0; q < nr; q += S) {
      const float *x[4];
      int y0[4];
      group_planes(x, y0, inp, g->C, (size_t)g->H * g->W, c, r0, q, nr, S, g->ph, g);
      const float *p[6][4];   // the six input rows of each tile row; rv: 0 where outside
      int rv[6][4];
      for (int r = 0; r < 6; r++)
        for (int s = 0; s < S; s++) {
          int yy = y0[s] + r, in = x[s] && yy >= 0 && yy < g->H;
          p[r][s] = in ? x[s] + (size_t)yy * g->W : inp;
          rv[r][s] = in;
        }
      float *v = V + (size_t)c * 36 * ld + (size_t)q * TW;
      for (int k = 0; k < TW; k += 8) {
        int x0 = 4 * k - g->pw;   // columns x0 + [0, 36): the six columns of 8 tiles
        GMASK m;
        F(gmask_at)(S, &m, x0, g->W);
        __m256 h[6][6];   // h[r] = row r of the patches times B (columns), then V = B^T h
        #pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
          __m256 d[6];
          F(cols6)(S, d, p[r], rv[r], x0, &m);
          BT6(h[r], d);
        }
        #pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
          __m256 col[6] = { h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j] }, o[6];
          BT6(o, col);
          #pragma GCC unroll 6
          for (int i = 0; i < 6; i++) {
            float *vx = v + (i * 6 + j) * ld + k;   // V[xi] of these tiles
            _mm256_storeu_ps(vx, o[i]);
            __builtin_prefetch(vx + 16, 1, 3);   // the row's next line (bench/NOTES.md 46)
          }
        }
      }
    }
}

WI static void F(input_transform) (float *V, int64_t ld, const float *inp, int r0, int nr,
                                   int c0, int c1, const trl_conv_geom *g) {
  switch (group_rows((g->OW + 3) / 4)) {
    case 1: F(input_rows)(1, V, ld, inp, r0, nr, c0, c1, g); break;
    case 2: F(input_rows)(2, V, ld, inp, r0, nr, c0, c1, g); break;
    default: F(input_rows)(4, V, ld, inp, r0, nr, c0, c1, g); break;
  }
}

// out (B,OC,OH,OW) gets (acc: += ) Y = A^T M A for tile rows [r0, r0+nr), plus the bias b or
// through the epilogue e, output channels [oc0, oc1); M is (OC,36,ld).
WI static inline __attribute__((always_inline))
void F(output_rows) (const int S, float *out, const float *M, int64_t ld, const float *b,
                     const trl_epilogue *e, int acc, int r0, int nr, int oc0, int oc1,
                     const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4;
  int clamp = e && (e->lo != -INFINITY || e->hi != INFINITY);
  for (int oc = oc0; oc < oc1; oc++) {
    tail4 t = { acc, e != NULL, clamp, !e && b, e && e->scale ? e->scale[oc] : 1.0f,
                e ? (e->shift ? e->shift[oc] : 0.0f) : b ? b[oc] : 0.0f,
                e ? e->lo : 0.0f, e ? e->hi : 0.0f };
    for (int q = 0; q < nr; q += S) {
      float *o[4];
      int yy[4];
      for (int s = 0; s < S; s++) {
        TILE_ROW(g, r0 + q + s, n, ty);
        o[s] = q + s < nr ? out + ((size_t)n * g->OC + oc) * g->OH * g->OW : NULL;
        yy[s] = 4 * ty;
      }
      const float *m = M + (size_t)oc * 36 * ld + (size_t)q * TW;
      for (int k = 0; k < TW; k += 8) {
        __m256 s6[4][6];   // s = A^T m (rows), then y = s A
        #pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
          __m256 col[6];
          for (int r = 0; r < 6; r++) col[r] = _mm256_loadu_ps(m + (r * 6 + j) * ld + k);
          __m256 t4[4];
          AT6(t4, col);
          for (int i = 0; i < 4; i++) s6[i][j] = t4[i];
        }
        int x0 = 4 * k;
        GMASK gm;
        F(gmask_at)(S, &gm, x0, g->OW);
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
          float *p[4];
          int any = 0;
          for (int s = 0; s < S; s++) {
            p[s] = o[s] && yy[s] + i < g->OH ? o[s] + (size_t)(yy[s] + i) * g->OW : NULL;
            any |= p[s] != NULL;
          }
          if (!any) continue;
          __m256 y[4];
          AT6(y, s6[i]);
          F(put4)(S, p, x0, g->OW, &gm, y, &t);
        }
      }
    }
  }
}

WI static void F(output_transform) (float *out, const float *M, int64_t ld, const float *b,
                                    const trl_epilogue *e, int acc, int r0, int nr, int oc0,
                                    int oc1, const trl_conv_geom *g) {
  switch (group_rows((g->OW + 3) / 4)) {
    case 1: F(output_rows)(1, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
    case 2: F(output_rows)(2, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
    default: F(output_rows)(4, out, M, ld, b, e, acc, r0, nr, oc0, oc1, g); break;
  }
}

// D is (OC,36,ld): A dY A^T for the 4x4 tiles of dout (B,OC,OH,OW) in tile rows [r0, r0+nr)
// (zero past the map's edge), output channels [oc0, oc1).
WI static void F(dout_transform) (float *D, int64_t ld, const float *dout, int r0, int nr,
                                  int oc0, int oc1, const trl_conv_geom *g) {
  int TW = (g->OW + 3) / 4, S = group_rows(TW);
  for (int oc = oc0; oc < oc1; oc++)
    for (int q = 0; q < nr; q += S) {
      const float *x[4];
      int y0[4];
      group_planes(x, y0, dout, g->OC, (size_t)g->OH * g->OW, oc, r0, q, nr, S, 0, g);
      for (int k = 0; k < TW; k += 8) {
        int x0 = 4 * k;
        GMASK gm;
        F(gmask_at)(S, &gm, x0, g->OW);
        __m256 y[4][4];   // y[i][j]: row i, column j of 8 tiles
        for (int i = 0; i < 4; i++) {
          const float *p[4];
          for (int s = 0; s < S; s++)
            p[s] = x[s] && y0[s] + i < g->OH ? x[s] + (size_t)(y0[s] + i) * g->OW : NULL;
          F(cols4)(S, y[i], p, x0, &gm);
        }
        __m256 z[6][4];   // z = A y (rows), then A z^T (columns)
        for (int j = 0; j < 4; j++) {
          __m256 col[4] = { y[0][j], y[1][j], y[2][j], y[3][j] }, o[6];
          A4(o, col);
          for (int r = 0; r < 6; r++) z[r][j] = o[r];
        }
        float *d = D + (size_t)oc * 36 * ld + (size_t)q * TW + k;
        for (int r = 0; r < 6; r++) {
          __m256 o[6];
          A4(o, z[r]);
          for (int c = 0; c < 6; c++) {
            _mm256_storeu_ps(d + (r * 6 + c) * ld, o[c]);
            __builtin_prefetch(d + (r * 6 + c) * ld + 16, 1, 3);
          }
        }
      }
    }
}

// The team version of wgrad: each xi's dU sum belongs to one thread (the same bits every run),
// no private sums.
WI static void F(wgrad_team) (float *dw, const float *dout, const float *inp, float *ws, int nt,
                              const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, cr = team_rows(g), rows = g->B * TH;
  int64_t ld = row_ld(cr, TW);
  float *dU = ws, *V = dU + (size_t)36 * g->OC * g->C, *D = V + (size_t)36 * g->C * ld;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int r0 = 0; r0 < rows; r0 += cr) {
      int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
      F(input_transform)(V, ld, inp, r0, nr, g->C * t / nth, g->C * (t + 1) / nth, g);
      F(dout_transform)(D, ld, dout, r0, nr, g->OC * t / nth, g->OC * (t + 1) / nth, g);
      #pragma omp barrier
      for (int xi = 36 * t / nth; xi < 36 * (t + 1) / nth; xi++)
        trl_gemm_nt(g->OC, g->C, nn, D + (size_t)xi * ld, (int)(36 * ld), V + (size_t)xi * ld,
                    (int)(36 * ld), dU + (size_t)xi * g->OC * g->C, g->C, r0 != 0);
      #pragma omp barrier
    }
    weight_grad_transform(dw, dU, g->OC * t / nth, g->OC * (t + 1) / nth, g);
  }
}

WI static void F(wgrad) (float *dw, const float *dout, const float *inp, float *ws, int nt,
                         const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, cr = wgrad_rows(g);
  int64_t ld = row_ld(cr, TW);
  if (nt < 1) nt = 1;
  int prev = nt > 1 ? trl_blas_threads(1) : 0;
  if (team_mode(g)) {
    F(wgrad_team)(dw, dout, inp, ws, nt, g);
    if (nt > 1) trl_blas_threads(prev);
    return;
  }
  size_t uN = (size_t)36 * g->OC * g->C, per = uN + (size_t)36 * (g->C + g->OC) * ld;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    float *dU = ws + (size_t)t * per, *V = dU + uN, *D = V + (size_t)36 * g->C * ld;
    // a static split of the tile rows: each thread's sum covers the same tiles in every run,
    // so dw has the same bits every time
    int rows = g->B * TH, lo = (int)((int64_t)rows * t / nth), hi = (int)((int64_t)rows * (t + 1) / nth);
    if (lo >= hi) memset(dU, 0, sizeof(float) * uN);
    for (int r0 = lo; r0 < hi; r0 += cr) {
      int nr = hi - r0 < cr ? hi - r0 : cr, nn = nr * TW;
      F(input_transform)(V, ld, inp, r0, nr, 0, g->C, g);
      F(dout_transform)(D, ld, dout, r0, nr, 0, g->OC, g);
      for (int xi = 0; xi < 36; xi++)   // dU[xi] (OC,C) += D[xi] (OC,T) x V[xi]^T (T,C)
        trl_gemm_nt(g->OC, g->C, nn, D + (size_t)xi * ld, (int)(36 * ld), V + (size_t)xi * ld,
                    (int)(36 * ld), dU + (size_t)xi * g->OC * g->C, g->C, r0 != lo);
    }
    #pragma omp barrier
    // thread 0's dU gets the others', each thread summing a slice; then dw += G^T dU G
    size_t s0 = uN * t / nth, s1 = uN * (t + 1) / nth;
    for (int k = 1; k < nth; k++) {
      const float *src = ws + (size_t)k * per;
      for (size_t i = s0; i < s1; i++) ws[i] += src[i];
    }
    #pragma omp barrier
    weight_grad_transform(dw, ws, g->OC * t / nth, g->OC * (t + 1) / nth, g);
  }
  if (nt > 1) trl_blas_threads(prev);
}

WI static void F(conv) (float *out, const float *inp, const float *w, const float *Upre,
                        const float *b, const trl_epilogue *e, int flip, int acc, float *ws,
                        int nt, const trl_conv_geom *g) {
  int TH = (g->OH + 3) / 4, TW = (g->OW + 3) / 4, team = team_mode(g), rows = g->B * TH;
  int cr = team ? team_rows(g) : chunk_rows(g);
  int64_t ld = row_ld(cr, TW);
  if (nt < 1) nt = 1;
  size_t per = (size_t)36 * (g->C + g->OC) * ld, up = u_plane(g);
  float *U = Upre ? NULL : ws, *vm = Upre ? ws : ws + 36 * up;   // vm: V and M
  const float *Ur = Upre ? Upre : U;
  int prev = nt > 1 ? trl_blas_threads(1) : 0;
  #pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), nth = omp_get_num_threads();
    if (!Upre) {
      int panels = (g->OC + trl_gemm_mr(g->OC) - 1) / trl_gemm_mr(g->OC);
      F(weight_transform)(U, w, flip, panels * t / nth, panels * (t + 1) / nth, g);
      #pragma omp barrier
    }
    if (team) {   // every chunk by all threads: channels, then xi, then output channels
      float *V = vm, *M = V + (size_t)36 * g->C * ld;
      for (int r0 = 0; r0 < rows; r0 += cr) {
        int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
        F(input_transform)(V, ld, inp, r0, nr, g->C * t / nth, g->C * (t + 1) / nth, g);
        #pragma omp barrier
        for (int xi = 36 * t / nth; xi < 36 * (t + 1) / nth; xi++)
          trl_gemm_packed(g->OC, nn, g->C, Ur + xi * up, V + (size_t)xi * ld, (int)(36 * ld),
                          M + (size_t)xi * ld, (int)(36 * ld), NULL, NULL, 0);
        #pragma omp barrier
        F(output_transform)(out, M, ld, b, e, acc, r0, nr, g->OC * t / nth,
                            g->OC * (t + 1) / nth, g);
        #pragma omp barrier
      }
    } else {   // chunks of 'cr' tile rows go out dynamically, as in conv2d.c
      float *V = vm + (size_t)t * per, *M = V + (size_t)36 * g->C * ld;
      #pragma omp for schedule(dynamic, 1)
      for (int r0 = 0; r0 < rows; r0 += cr) {
        int nr = rows - r0 < cr ? rows - r0 : cr, nn = nr * TW;
        F(input_transform)(V, ld, inp, r0, nr, 0, g->C, g);
        for (int xi = 0; xi < 36; xi++)   // V and M keep a channel's 36 rows together
          trl_gemm_packed(g->OC, nn, g->C, Ur + xi * up, V + (size_t)xi * ld, (int)(36 * ld),
                          M + (size_t)xi * ld, (int)(36 * ld), NULL, NULL, 0);
        F(output_transform)(out, M, ld, b, e, acc, r0, nr, 0, g->OC, g);
      }
    }
  }
  if (nt > 1) trl_blas_threads(prev);
}
