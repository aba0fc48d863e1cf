--[[
trl.gluon.nn.basic_layers: containers (Sequential, HybridSequential, Concurrent,
HybridConcurrent) and the basic layers (Dense, Activation, Dropout, BatchNorm, Flatten,
Lambda, HybridLambda), as Gluon 1.x (gluon/nn/basic_layers.py, activations.py, contrib).
Axes given to layers are 1-based Lua dims (BatchNorm's default axis=2 is Gluon's axis=1);
printouts show Gluon's 0-based value so they read like Gluon's.
]]
local block = require 'trl.gluon.block'
local autograd = require 'trl.autograd'
local nd = require 'trl.nd'

local class, HybridBlock, Block = block.class, block.HybridBlock, block.Block
local pyrepr, indent = block.pyrepr, block.indent

local M = {}

local function shape_str(shape) return '[' .. table.concat(shape, ',') .. ']' end
M.shape_str = shape_str

local nn_ops
-- trl._nn, loaded on first use.
function M.nn_ops()
  if nn_ops == nil then nn_ops = require 'trl._nn' end
  return nn_ops
end

local function check_opts(layer, opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error(string.format("%s: options must be a table, got a %s", layer, type(opts)), 3)
  end
  return opts or {}
end
M.check_opts = check_opts

local function check_block(where, b, i)
  if not block.is_block(b) then
    error(string.format("%s: argument %d is a %s, not a Block", where, i, type(b)), 3)
  end
end

--[[ {==================================================================
** Containers
** =================================================================== ]]

-- Sequential(opts): children run in order. net[1] is the first child (1-based, negatives from
-- the end); structural names count from "0" as Gluon's files do.
local Sequential = class('Sequential', Block)
M.Sequential = Sequential

function Sequential:__init(opts) Block.__init(self, check_opts('Sequential', opts)) end

-- add(b1, b2, ...): returns self
function Sequential:add(...)
  for i = 1, select('#', ...) do
    local b = select(i, ...)
    check_block(self._class_name .. ':add', b, i)
    self:register_child(b)
  end
  return self
end

function Sequential:forward(x)
  for _, n in ipairs(self._child_names) do x = self._children[n](x) end
  return x
end

function Sequential.__len(self) return #rawget(self, '_child_names') end

local HybridSequential = class('HybridSequential', HybridBlock)
M.HybridSequential = HybridSequential
HybridSequential.__init = Sequential.__init
HybridSequential.add = Sequential.add

-- Hybridized: Conv2D-BatchNorm-ReLU runs fused in inference, BatchNorm-ReLU as one op in
-- training (nn/fused.lua).
function HybridSequential:forward(x)
  if rawget(self, '_active') ~= true then return Sequential.forward(self, x) end
  local fused = require 'trl.gluon.nn.fused'
  local blocks = {}
  for i, n in ipairs(self._child_names) do blocks[i] = self._children[n] end
  return fused.sequential(blocks, x)
end

HybridSequential.__len = Sequential.__len

-- Concurrent(axis=-1, opts): every child sees the input; outputs join along 'axis' (1-based).
local Concurrent = class('Concurrent', Sequential)
M.Concurrent = Concurrent

function Concurrent:__init(axis, opts)
  if type(axis) == 'table' then axis, opts = nil, axis end
  Sequential.__init(self, opts)
  rawset(self, 'axis', axis or -1)
end

function Concurrent:forward(x)
  local outs = {}
  for i, n in ipairs(self._child_names) do outs[i] = self._children[n](x) end
  if #outs == 0 then
    error(string.format("%s '%s' has no children", self._class_name, self.name), 2)
  end
  return nd.concat(outs, self.axis)
end

local HybridConcurrent = class('HybridConcurrent', HybridSequential)
M.HybridConcurrent = HybridConcurrent
HybridConcurrent.__init = Concurrent.__init
HybridConcurrent.forward = Concurrent.forward

--[[ }================================================================== ]]

--[[ {==================================================================
** Activation
** =================================================================== ]]

local ACTS = {
  relu = function(x) return x:relu() end,
  sigmoid = function(x) return x:sigmoid() end,
  tanh = function(x) return x:tanh() end,
  -- log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|)), stable for large |x|
  softrelu = function(x) return x:relu() + ((-x:abs()):exp() + 1):log() end,
  softsign = function(x) return x / (x:abs() + 1) end,
  relu6 = function(x) return x:clip(0, 6) end,
}

-- Activation('relu'|'sigmoid'|'tanh'|'softrelu'|'softsign'|'relu6', opts)
local Activation = class('Activation', HybridBlock)
M.Activation = Activation

function Activation:__init(act, opts)
  if ACTS[act] == nil then
    error(string.format("Activation: unknown activation %s (relu, sigmoid, tanh, softrelu, "
      .. "softsign, relu6)", type(act) == 'string' and "'" .. act .. "'" or tostring(act)), 2)
  end
  rawset(self, '_act_type', act)
  HybridBlock.__init(self, check_opts('Activation', opts))
end

function Activation:_alias() return self._act_type end
function Activation:forward(x) return ACTS[self._act_type](x) end
function Activation.__tostring(self) return 'Activation(' .. self._act_type .. ')' end

--[[ }================================================================== ]]

--[[ {==================================================================
** Dense
** =================================================================== ]]

-- Dense(units, {activation=, use_bias=true, flatten=true, in_units=0, weight_initializer=,
--               bias_initializer='zeros', dtype='float32', prefix=, params=})
-- weight is (units, in_units); in_units 0 is inferred from the first input.
local Dense = class('Dense', HybridBlock)
M.Dense = Dense

function Dense:__init(units, opts)
  opts = check_opts('Dense', opts)
  if math.type(units) ~= 'integer' or units < 1 then
    error('Dense: units must be a positive integer, got ' .. tostring(units), 2)
  end
  HybridBlock.__init(self, opts)
  rawset(self, '_units', units)
  rawset(self, '_flatten', opts.flatten ~= false)
  self:name_scope(function()
    self.weight = self.params:get('weight', {shape = {units, opts.in_units or 0},
      init = opts.weight_initializer, dtype = opts.dtype, allow_deferred_init = true})
    if opts.use_bias ~= false then
      self.bias = self.params:get('bias', {shape = {units}, init = opts.bias_initializer or 'zeros',
        dtype = opts.dtype, allow_deferred_init = true})
    end
    if opts.activation then
      self.act = Activation(opts.activation, {prefix = opts.activation .. '_'})
    end
  end)
end

function Dense:forward(x)
  local shape = x:shape()
  local n_in, lead
  if self._flatten then
    n_in = 1
    for i = 2, #shape do n_in = n_in * shape[i] end
    if #shape ~= 2 then x = x:reshape{#shape > 0 and shape[1] or 1, n_in} end
  else
    n_in = shape[#shape] or 1
    lead = {}
    for i = 1, #shape - 1 do lead[i] = shape[i] end
    if #shape ~= 2 then x = x:reshape{-1, n_in} end
  end
  local w = self.weight
  if w.shape[2] == 0 then
    w:_set_shape{self._units, n_in}
  elseif w.shape[2] ~= n_in then
    error(string.format("Dense '%s': input of shape %s does not match in_units %d", self.name,
                        shape_str(shape), w.shape[2]), 2)
  end
  local out = x:matmul(w:data():transpose())
  local b = self.bias
  if b then out = out + b:data() end
  if lead and #lead ~= 1 then
    lead[#lead + 1] = self._units
    out = out:reshape(lead)
  end
  if self.act then out = self.act(out) end
  return out
end

function Dense.__tostring(self)
  local s = self.weight.shape
  return string.format('Dense(%s -> %d, %s)', s[2] ~= 0 and tostring(s[2]) or 'None', s[1],
                       self.act and tostring(self.act) or 'linear')
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Dropout, Flatten, HybridLambda
** =================================================================== ]]

-- Dropout(rate): active only in training mode (autograd.record with train_mode).
local Dropout = class('Dropout', HybridBlock)
M.Dropout = Dropout

function Dropout:__init(rate, opts)
  if type(rate) ~= 'number' or rate < 0 or rate >= 1 then
    error('Dropout: rate must be a number in [0, 1), got ' .. tostring(rate), 2)
  end
  HybridBlock.__init(self, check_opts('Dropout', opts))
  rawset(self, '_rate', rate)
end

function Dropout:forward(x)
  if self._rate == 0 then return x end
  return M.nn_ops().dropout(x, self._rate, autograd.is_training())
end

function Dropout.__tostring(self)
  return string.format('Dropout(p = %s, axes=())', pyrepr(self._rate))
end

-- Flatten: (N, ...) -> (N, rest)
local Flatten = class('Flatten', HybridBlock)
M.Flatten = Flatten
function Flatten:__init(opts) HybridBlock.__init(self, check_opts('Flatten', opts)) end
function Flatten:forward(x) return x:flatten() end
function Flatten.__tostring(self) return 'Flatten' end

-- Lambda(fn | name): returns fn(x, ...) or nd[name](x, ...).
-- HybridLambda(fn | name): returns fn(F, x, ...) or F[name](x, ...) (F as in hybrid_forward).
-- Either stores '_fn' as a function(F, x, ...).
local function lambda_init(self, layer, fn, space, takes_F)
  if type(fn) == 'string' then
    local f = space()[fn]
    if type(f) ~= 'function' then
      error(string.format("%s: unknown function '%s'", layer, fn), 3)
    end
    rawset(self, '_fn', function(_, ...) return f(...) end)
    rawset(self, '_fn_name', fn)
  elseif type(fn) == 'function' then
    rawset(self, '_fn', takes_F and fn or function(_, ...) return fn(...) end)
    rawset(self, '_fn_name', '<function>')
  else
    error(string.format('%s: expected a function or a function name, got %s', layer, type(fn)), 3)
  end
end

local Lambda = class('Lambda', Block)
M.Lambda = Lambda
function Lambda:__init(fn, opts)
  Block.__init(self, check_opts('Lambda', opts))
  lambda_init(self, 'Lambda', fn, function() return nd end, false)
end
function Lambda:forward(...) return self._fn(nil, ...) end
function Lambda.__tostring(self) return 'Lambda(' .. self._fn_name .. ')' end

local HybridLambda = class('HybridLambda', HybridBlock)
M.HybridLambda = HybridLambda
function HybridLambda:__init(fn, opts)
  HybridBlock.__init(self, check_opts('HybridLambda', opts))
  lambda_init(self, 'HybridLambda', fn, block.F, true)
end
function HybridLambda:forward(...) return self._fn(block.F(), ...) end
function HybridLambda.__tostring(self) return 'HybridLambda(' .. self._fn_name .. ')' end

--[[ }================================================================== ]]

--[[ {==================================================================
** BatchNorm
** =================================================================== ]]

-- BatchNorm({axis=2, momentum=0.9, epsilon=1e-5, center=true, scale=true,
--            use_global_stats=false, in_channels=0, beta_initializer='zeros',
--            gamma_initializer='ones', running_mean_initializer='zeros',
--            running_variance_initializer='ones'})
-- Training mode (autograd.record) normalizes with batch statistics and moves running_mean/var;
-- otherwise (or with use_global_stats) it uses the running statistics. scale=false fixes gamma
-- at 1 (Gluon's fix_gamma); both flags set grad_req 'null'.
local BatchNorm = class('BatchNorm', HybridBlock)
M.BatchNorm = BatchNorm

function BatchNorm:__init(opts)
  opts = check_opts('BatchNorm', opts)
  HybridBlock.__init(self, opts)
  local axis = opts.axis or 2
  if math.type(axis) ~= 'integer' or axis == 0 then
    error('BatchNorm: axis must be a non-zero integer (1-based), got ' .. tostring(axis), 2)
  end
  local scale, center = opts.scale ~= false, opts.center ~= false
  rawset(self, '_axis', axis)
  rawset(self, '_eps', opts.epsilon or 1e-5)
  rawset(self, '_momentum', opts.momentum or 0.9)
  rawset(self, '_fix_gamma', not scale)
  rawset(self, '_use_global_stats', opts.use_global_stats or false)
  local c = opts.in_channels or 0
  local function get(name, init, trainable)
    return self.params:get(name, {shape = {c}, init = init, allow_deferred_init = true,
                                  grad_req = trainable and 'write' or 'null'})
  end
  self:name_scope(function()
    self.gamma = get('gamma', opts.gamma_initializer or 'ones', scale)
    self.beta = get('beta', opts.beta_initializer or 'zeros', center)
    self.running_mean = get('running_mean', opts.running_mean_initializer or 'zeros', false)
    self.running_var = get('running_var', opts.running_variance_initializer or 'ones', false)
  end)
end

function BatchNorm:forward(x) return self:_forward(x) end

-- _forward(x, lo, hi): the BatchNorm, then (when lo or hi is given) a clamp to [lo, hi] fused
-- into the same op (nn/fused.lua: BatchNorm-ReLU of a hybridized net).
function BatchNorm:_forward(x, lo, hi)
  local shape = x:shape()
  local axis = self._axis < 0 and #shape + 1 + self._axis or self._axis
  if axis < 1 or axis > #shape or #shape < 2 then
    error(string.format("BatchNorm '%s': axis %d is out of range for input of shape %s",
                        self.name, self._axis, shape_str(shape)), 2)
  end
  local c = shape[axis]
  if self.gamma.shape[1] == 0 then
    for _, p in ipairs{self.gamma, self.beta, self.running_mean, self.running_var} do
      p:_set_shape{c}
    end
  elseif self.gamma.shape[1] ~= c then
    error(string.format("BatchNorm '%s': input of shape %s has %d channels on axis %d, "
      .. "expected in_channels %d", self.name, shape_str(shape), c, axis, self.gamma.shape[1]), 2)
  end
  if axis ~= 2 then x = x:transpose(2, axis) end
  local gamma = self.gamma:data()  -- also ends a deferred init when gamma is fixed at 1
  local out = M.nn_ops().batch_norm(x,
    not self._fix_gamma and gamma or nil, self.beta:data(),
    self.running_mean:data(), self.running_var:data(),
    {eps = self._eps, momentum = self._momentum, training = autograd.is_training(),
     use_global_stats = self._use_global_stats, lo = lo, hi = hi})
  if axis ~= 2 then out = out:transpose(2, axis) end
  return out
end

function BatchNorm.__tostring(self)
  local c = self.gamma.shape[1]
  local axis = self._axis > 0 and self._axis - 1 or self._axis
  return string.format('BatchNorm(axis=%d, eps=%s, momentum=%s, fix_gamma=%s, '
    .. 'use_global_stats=%s, in_channels=%s)', axis, pyrepr(self._eps), pyrepr(self._momentum),
    pyrepr(self._fix_gamma), pyrepr(self._use_global_stats), c ~= 0 and tostring(c) or 'None')
end

--[[ }================================================================== ]]

-- Sequential-style printout: every child under its key.
local function seq_tostring(self)
  local lines = {}
  for _, n in ipairs(self._child_names) do
    lines[#lines + 1] = string.format('  (%s): %s', n, indent(tostring(self._children[n]), 2))
  end
  return string.format('%s(\n%s\n)', self._class_name, table.concat(lines, '\n'))
end
for _, c in ipairs{Sequential, HybridSequential, Concurrent, HybridConcurrent} do
  c.__tostring = seq_tostring
end

return M
