--[[
trl.gluon.optimizer: SGD, NAG and Adam with MXNet 1.x semantics (python/mxnet/optimizer/
optimizer.py). An optimizer keeps an explicit 'state' table per parameter index and a count
of updates; the arithmetic is one fused C pass per parameter (trl._optim).
  lr = learning_rate (or lr_scheduler(num_update)) * param.lr_mult
  wd = wd * param.wd_mult;  the gradient is scaled by rescale_grad (1/batch_size from Trainer)
]]
local nd = require 'trl.nd'
local O = require 'trl._optim'

local M = {}

local Optimizer = {}
Optimizer.__index = Optimizer

local function new(cls, o, defaults)
  o = o or {}
  local self = setmetatable({}, cls)
  for k, v in pairs(defaults) do self[k] = v end
  self.learning_rate = o.learning_rate or defaults.learning_rate
  self.wd = o.wd or 0
  self.rescale_grad = o.rescale_grad or 1
  self.clip_gradient = o.clip_gradient or -1
  self.lr_scheduler = o.lr_scheduler
  if self.lr_scheduler then self.lr_scheduler.base_lr = self.learning_rate end
  for k, v in pairs(o) do
    if defaults[k] == nil and self[k] == nil then
      error(string.format("%s: unknown option '%s'", cls.__name, k), 3)
    end
    if defaults[k] ~= nil then self[k] = v end
  end
  self.num_update = 0      -- the largest update count of any parameter
  self.counts = {}         -- index -> updates of that parameter
  self.state = {}          -- index -> optimizer state (tensors), made at its first update
  return self
end

-- The learning rate for the current update (before lr_mult).
function Optimizer:current_lr()
  if self.lr_scheduler then return self.lr_scheduler(self.num_update) end
  return self.learning_rate
end

function Optimizer:set_learning_rate(lr)
  if self.lr_scheduler then
    error('set_learning_rate: this optimizer follows an lr_scheduler; change the scheduler instead', 2)
  end
  self.learning_rate = lr
end

-- Count one more update of parameter 'i' (MXNet's _update_count).
function Optimizer:_count(i)
  local c = (self.counts[i] or 0) + 1
  self.counts[i] = c
  if c > self.num_update then self.num_update = c end
  return c
end

--[[ SGD{learning_rate=0.01, momentum=0, wd=0, ...} ]]
local SGD = setmetatable({__name = 'SGD'}, {__index = Optimizer})
SGD.__index = SGD
M.SGD = SGD
function M.sgd(o) return new(SGD, o, {learning_rate = 0.01, momentum = 0}) end

-- SGD and NAG differ only in the kernel: a momentum buffer made at the first update, if any.
local function momentum_update(self, kernel, i, weight, grad, lr_mult, wd_mult)
  self:_count(i)
  local lr, wd = self:current_lr() * lr_mult, self.wd * wd_mult
  local st = self.state[i]
  if st == nil and self.momentum ~= 0 then
    st = {momentum = nd.zeros(weight:shape())}
    self.state[i] = st
  end
  kernel(weight, grad, st and st.momentum, lr, wd, self.rescale_grad, self.momentum, self.clip_gradient)
end

function SGD:update(...) return momentum_update(self, O.sgd, ...) end

--[[ NAG{learning_rate=0.01, momentum=0, ...}: Nesterov momentum ]]
local NAG = setmetatable({__name = 'NAG'}, {__index = Optimizer})
NAG.__index = NAG
M.NAG = NAG
function M.nag(o) return new(NAG, o, {learning_rate = 0.01, momentum = 0}) end

function NAG:update(...) return momentum_update(self, O.nag, ...) end

--[[ Adam{learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, ...} ]]
local Adam = setmetatable({__name = 'Adam'}, {__index = Optimizer})
Adam.__index = Adam
M.Adam = Adam
function M.adam(o) return new(Adam, o, {learning_rate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8}) end

function Adam:update(i, weight, grad, lr_mult, wd_mult)
  local t = self:_count(i)
  local lr, wd = self:current_lr() * lr_mult, self.wd * wd_mult
  lr = lr * math.sqrt(1 - self.beta2 ^ t) / (1 - self.beta1 ^ t)   -- bias correction, as MXNet
  local st = self.state[i]
  if st == nil then
    st = {mean = nd.zeros(weight:shape()), var = nd.zeros(weight:shape())}
    self.state[i] = st
  end
  O.adam(weight, grad, st.mean, st.var, lr, wd, self.rescale_grad, self.beta1, self.beta2,
         self.epsilon, self.clip_gradient)
end

-- create('sgd', {...}) as mx.optimizer.create
function M.create(name, o)
  local make = M[string.lower(name)]
  if type(make) ~= 'function' or name:lower() == 'create' then
    error(string.format("unknown optimizer '%s' (sgd, nag, adam)", tostring(name)), 2)
  end
  return make(o)
end

return M
