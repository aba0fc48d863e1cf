--[[
trl.freeze: freeze and unfreeze a Block's weights for fine-tuning (trl.freeze(block, opts),
trl.unfreeze(block)). It sets grad_req and BatchNorm's use_global_stats; it does not build
optimizers: a Trainer skips parameters whose grad_req is 'null'.
  trl.freeze(net.features)                    -- weights fixed, BN statistics fixed too
  trl.freeze(net.features, {bn = 'train'})    -- Gluon's behaviour: BN statistics still move
]]
local block = require 'trl.gluon.block'

local M = {}

local BN_POLICIES = {frozen = true, train = true}

local function is_batchnorm(b)
  local bn = require('trl.gluon.nn').BatchNorm
  return block.is_subclass(getmetatable(b), bn)
end

local function check_block(where, b)
  if not block.is_block(b) then
    error(string.format("%s: expected a Block, got a %s", where, type(b)), 3)
  end
end

--[[
freeze(block [, {bn = 'frozen'}]) -> block. Sets grad_req 'null' on every parameter of
'block' and its descendants, so gradients are not computed for them and Trainer:step leaves
them alone.

The trap: in Gluon, `net.features:collect_params():setattr('grad_req', 'null')` is NOT a full
freeze. running_mean/running_var are not trained by gradients (their grad_req is already
'null'); a BatchNorm updates them in every training-mode forward (inside autograd.record)
and also normalizes with the statistics of the current batch. So "frozen" features still
change: their BN statistics drift toward the new data set, and batch statistics are used
while training.
  bn = 'frozen': every BatchNorm inside also switches to use_global_stats, so it normalizes
                 with its stored statistics and never updates them: the features compute
                 exactly the same function in training and in inference.
  bn = 'train':  only grad_req changes, as Gluon's setattr does (statistics keep moving).
Each parameter's previous grad_req (and each BatchNorm's previous use_global_stats) is kept,
so unfreeze restores exactly what was there before.
]]
function M.freeze(b, opts)
  check_block('freeze', b)
  if opts ~= nil and type(opts) ~= 'table' then
    error("freeze: options must be a table such as {bn = 'frozen'}, got a " .. type(opts), 2)
  end
  local bn = (opts and opts.bn) or 'frozen'
  if not BN_POLICIES[bn] then
    error(string.format("freeze: bn must be 'frozen' or 'train', got %s", tostring(bn)), 2)
  end
  for _, p in b:collect_params():items() do
    if rawget(p, '_req_before_freeze') == nil then rawset(p, '_req_before_freeze', p.grad_req) end
    p.grad_req = 'null'
  end
  if bn == 'frozen' then
    b:apply(function(layer)
      if is_batchnorm(layer) then
        if rawget(layer, '_gs_before_freeze') == nil then
          rawset(layer, '_gs_before_freeze', rawget(layer, '_use_global_stats'))
        end
        rawset(layer, '_use_global_stats', true)
      end
    end)
  end
  return b
end

-- unfreeze(block) -> block: undo freeze. Parameters never frozen by trl.freeze (e.g. set with
-- setattr) become 'write', except BN running statistics and a fixed gamma/beta
-- (scale=false / center=false), which stay 'null'.
function M.unfreeze(b)
  check_block('unfreeze', b)
  local fixed = {}                 -- parameters that are never trained by gradients
  b:apply(function(layer)
    if is_batchnorm(layer) then
      fixed[layer.running_mean] = true
      fixed[layer.running_var] = true
      if rawget(layer, '_fix_gamma') then fixed[layer.gamma] = true end
      if layer.beta.grad_req == 'null' and rawget(layer.beta, '_req_before_freeze') == nil then
        fixed[layer.beta] = true   -- center=false
      end
      local gs = rawget(layer, '_gs_before_freeze')
      if gs ~= nil then
        rawset(layer, '_use_global_stats', gs)
        rawset(layer, '_gs_before_freeze', nil)
      end
    end
  end)
  for _, p in b:collect_params():items() do
    local before = rawget(p, '_req_before_freeze')
    if before ~= nil then
      p.grad_req = before
      rawset(p, '_req_before_freeze', nil)
    elseif not fixed[p] then
      p.grad_req = 'write'
    end
  end
  return b
end

-- True when every parameter of 'b' has grad_req 'null'.
function M.is_frozen(b)
  check_block('is_frozen', b)
  for _, p in b:collect_params():items() do
    if p.grad_req ~= 'null' then return false end
  end
  return true
end

return setmetatable(M, {__call = function(_, ...) return M.freeze(...) end})
