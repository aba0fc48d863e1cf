--[[
trl.gluon.loss: Gluon's losses (gluon/loss.py): SoftmaxCrossEntropyLoss, L2Loss, L1Loss,
SigmoidBinaryCrossEntropyLoss. Each is a block called as loss(pred, label [, sample_weight]) and
returns one value per sample (the mean over every axis but batch_axis); backward on that vector
is backward on its sum. Axes are 1-based Lua dims: batch_axis defaults to 1 (Gluon's 0).
]]
local block = require 'trl.gluon.block'
local nd = require 'trl.nd'

local class, HybridBlock, pyrepr = block.class, block.HybridBlock, block.pyrepr

local M = {}

local function shape_str(shape) return '[' .. table.concat(shape, ',') .. ']' end

local function norm_axis(axis, ndim) return axis < 0 and ndim + 1 + axis or axis end

--[[ {==================================================================
** Loss: the shared base
** =================================================================== ]]

local Loss = class('Loss', HybridBlock)
M.Loss = Loss

-- Loss(weight, batch_axis, opts): weight scales every value (nil: 1).
function Loss:__init(weight, batch_axis, opts)
  HybridBlock.__init(self, opts)
  rawset(self, '_weight', weight)
  rawset(self, '_batch_axis', batch_axis or 1)
end

-- sample_weight (broadcast) and the loss's weight.
function Loss:_apply_weighting(loss, weight, sample_weight)
  if sample_weight ~= nil then loss = loss * sample_weight end
  if weight ~= nil and weight ~= 1 then loss = loss * weight end
  return loss
end

-- The mean over every axis but the batch axis: (N, ...) -> (N).
function Loss:_batch_mean(loss)
  local s = loss:shape()
  if #s <= 1 then return loss end
  local ba = norm_axis(self._batch_axis, #s)
  if ba < 1 or ba > #s then
    error(string.format("%s: batch_axis %d is out of range for a loss of shape %s",
                        self._class_name, self._batch_axis, shape_str(s)), 3)
  end
  if ba ~= 1 then loss = loss:transpose(1, ba):contiguous() end
  return loss:reshape{s[ba], -1}:mean(2)
end

-- 'label' with the shape of 'pred' (same number of elements).
function Loss:_reshape_like(label, pred)
  local ps, ls = pred:shape(), label:shape()
  if pred:numel() ~= label:numel() then
    error(string.format("%s: label of shape %s does not match pred of shape %s",
                        self._class_name, shape_str(ls), shape_str(ps)), 3)
  end
  return label:reshape(ps)
end

function Loss.__tostring(self)
  local ba = self._batch_axis > 0 and self._batch_axis - 1 or self._batch_axis
  return string.format('%s(batch_axis=%d, w=%s)', self._class_name, ba, pyrepr(self._weight))
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Losses
** =================================================================== ]]

-- SoftmaxCrossEntropyLoss({axis=-1, sparse_label=true, from_logits=false, weight=,
--                          batch_axis=1}): -log softmax(pred)[label] per sample; labels are
-- 0-based class indices (sparse), or distributions shaped like pred.
local SoftmaxCE = class('SoftmaxCrossEntropyLoss', Loss)
M.SoftmaxCrossEntropyLoss = SoftmaxCE
M.SoftmaxCELoss = SoftmaxCE

function SoftmaxCE:__init(opts)
  opts = opts or {}
  Loss.__init(self, opts.weight, opts.batch_axis, opts)
  rawset(self, '_axis', opts.axis or -1)
  rawset(self, '_sparse_label', opts.sparse_label ~= false)
  rawset(self, '_from_logits', opts.from_logits or false)
end

-- pred[label] along 'axis' (keeping it as size 1), labels 0-based.
local function pick(self, pred, label, axis)
  local ps = pred:shape()
  local ls = {}
  for i = 1, #ps do ls[i] = i == axis and 1 or ps[i] end
  local nl = 1
  for _, d in ipairs(ls) do nl = nl * d end
  if label:numel() ~= nl then
    error(string.format("%s: label of shape %s does not fit pred of shape %s (one class index "
      .. "per sample expected)", self._class_name, shape_str(label:shape()), shape_str(ps)), 3)
  end
  local cs = {}
  for i = 1, #ps do cs[i] = i == axis and ps[i] or 1 end
  local onehot = nd.arange(ps[axis]):reshape(cs):eq(label:reshape(ls)):astype('float32')
  return (pred * onehot):sum(axis, true)
end

function SoftmaxCE:forward(pred, label, sample_weight)
  local ps = pred:shape()
  local axis = norm_axis(self._axis, #ps)
  if axis < 1 or axis > #ps then
    error(string.format("SoftmaxCrossEntropyLoss: axis %d is out of range for pred of shape %s",
                        self._axis, shape_str(ps)), 2)
  end
  local ops = require 'trl._nn'
  local loss
  if self._sparse_label and not self._from_logits and #ps == 2 and axis == 2
     and self._batch_axis == 1 then
    if label:numel() ~= ps[1] then
      error(string.format("SoftmaxCrossEntropyLoss: label of shape %s does not fit pred of "
        .. "shape %s (one class index per sample expected)", shape_str(label:shape()),
        shape_str(ps)), 2)
    end
    if label:dtype() ~= 'int64' then label = label:astype('int64') end
    loss = ops.softmax_xent(pred, label:reshape{ps[1]})     -- fused: (N)
    if sample_weight ~= nil then loss = loss:reshape{ps[1], 1} end  -- as Gluon's keepdims pick
  else
    local logp = self._from_logits and pred or ops.log_softmax(pred, axis)
    if self._sparse_label then
      loss = -pick(self, logp, label, axis)
    else
      loss = -(logp * self:_reshape_like(label, logp)):sum(axis, true)
    end
  end
  loss = self:_apply_weighting(loss, self._weight, sample_weight)
  return self:_batch_mean(loss)
end

-- L2Loss({weight=1, batch_axis=1}): weight/2 * (label - pred)^2
local L2Loss = class('L2Loss', Loss)
M.L2Loss = L2Loss

function L2Loss:__init(opts)
  opts = opts or {}
  Loss.__init(self, opts.weight or 1, opts.batch_axis, opts)
end

function L2Loss:forward(pred, label, sample_weight)
  local loss = (self:_reshape_like(label, pred) - pred):square()
  return self:_batch_mean(self:_apply_weighting(loss, self._weight / 2, sample_weight))
end

-- L1Loss({weight=, batch_axis=1}): |label - pred|
local L1Loss = class('L1Loss', Loss)
M.L1Loss = L1Loss

function L1Loss:__init(opts)
  opts = opts or {}
  Loss.__init(self, opts.weight, opts.batch_axis, opts)
end

function L1Loss:forward(pred, label, sample_weight)
  local loss = (self:_reshape_like(label, pred) - pred):abs()
  return self:_batch_mean(self:_apply_weighting(loss, self._weight, sample_weight))
end

-- SigmoidBinaryCrossEntropyLoss({from_sigmoid=false, weight=, batch_axis=1}): labels in {0, 1}
-- (or probabilities); pred are logits unless from_sigmoid.
local SigmoidBCE = class('SigmoidBinaryCrossEntropyLoss', Loss)
M.SigmoidBinaryCrossEntropyLoss = SigmoidBCE
M.SigmoidBCELoss = SigmoidBCE

function SigmoidBCE:__init(opts)
  opts = opts or {}
  Loss.__init(self, opts.weight, opts.batch_axis, opts)
  rawset(self, '_from_sigmoid', opts.from_sigmoid or false)
end

function SigmoidBCE:forward(pred, label, sample_weight)
  label = self:_reshape_like(label, pred)
  local loss
  if not self._from_sigmoid then
    -- max(x, 0) - x*z + log(1 + exp(-|x|)), stable for any x
    loss = pred:relu() - pred * label + ((-pred:abs()):exp() + 1):log()
  else
    local eps = 1e-12
    loss = -((pred + eps):log() * label + ((-pred + 1) + eps):log() * (-label + 1))
  end
  return self:_batch_mean(self:_apply_weighting(loss, self._weight, sample_weight))
end

--[[ }================================================================== ]]

return M
