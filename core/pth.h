/*
** pth.h: PyTorch checkpoints ('torch.save', zip format of torch >= 1.6) holding a plain
** state_dict of tensors. The pickle is run by a restricted unpickler whose only callables
** are collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and the
** storage types; any other global is refused, so loading never runs code. Tensors are made
** contiguous; dtypes map as in ndlist.h. Legacy (pre-1.6, non-zip) files are refused.
*/
#ifndef TRL_PTH_H
#define TRL_PTH_H

#include "ndlist.h"

// Names in pickle (insertion) order. On failure 'out' is zeroed.
trl_status trl_pth_load (trl_ndlist *out, const char *path);
trl_status trl_pth_load_mem (trl_ndlist *out, const char *what, const void *buf, size_t len);

#endif
