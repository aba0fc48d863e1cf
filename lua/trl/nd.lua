--[[
trl.nd: tensors (Gluon's mx.nd). Constructors and free functions; tensor methods live on the
tensors themselves (x:sum(), x:reshape{2,3}). Positions are 1-based and inclusive, negative
ones count from the end; index values stored in tensors (labels, argmax) are 0-based.
]]
local T = require 'trl._tensor'

local nd = {
  array = T.array, zeros = T.zeros, ones = T.ones, full = T.full, arange = T.arange,
  where = T.where, concat = T.concat, matmul = T.matmul, dot = T.matmul,
  maximum = T.maximum, minimum = T.minimum, is_tensor = T.is_tensor,
}

nd.random = {
  -- nd.random.uniform(low, high, shape), nd.random.normal(mean, std, shape)
  uniform = T.uniform, normal = T.normal, seed = T.seed,
  randint = T.randint, rand = T.rand,
  -- get_state() -> string; set_state(s): the generator behind nd.random, for checkpoints
  get_state = T.rng_state, set_state = T.set_rng_state,
}

-- Free-function forms of the elementwise and reduction methods: nd.exp(x), nd.sum(x, dim).
for _, name in ipairs{'exp', 'log', 'sqrt', 'abs', 'square', 'relu', 'sigmoid', 'tanh', 'clip',
                      'sum', 'mean', 'max', 'min', 'argmax', 'argmin', 'reshape', 'transpose',
                      'flatten', 'expand_dims', 'broadcast_to'} do
  local m = T.methods[name]
  nd[name] = function(x, ...) return m(x, ...) end
end

-- nd.stack({t1, t2, ...}, dim): join equal-shaped tensors along a new dim (default 1).
function nd.stack(ts, dim)
  dim = dim or 1
  local parts = {}
  for i, t in ipairs(ts) do parts[i] = t:unsqueeze(dim) end
  return T.concat(parts, dim)
end

-- Zeros/ones shaped like x.
function nd.zeros_like(x) return T.zeros(x:shape(), x:dtype()) end
function nd.ones_like(x) return T.ones(x:shape(), x:dtype()) end

return nd
