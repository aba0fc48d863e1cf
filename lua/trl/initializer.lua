--[[
trl.init: weight initializers, as Gluon's mx.init (python/mxnet/initializer.py).
  net:initialize(trl.init.Xavier())             -- Gluon defaults: uniform, avg, magnitude 3
  net:initialize(trl.init.Xavier{rnd_type='gaussian', magnitude=2})
An initializer is called as init(name, tensor): the name's suffix picks the rule (bias, beta,
running_mean -> 0; gamma, running_var -> 1; weight -> the initializer's own rule), like Gluon's
Initializer.__call__. init:init_weight(name, tensor) applies the own rule whatever the name.
Tensors are filled in place from nd.random, so nd.random.seed(n) makes them reproducible.
]]
local nd = require 'trl.nd'

local init = {}

local Initializer = {}
Initializer.__index = Initializer
Initializer.__call = function(self, name, arr) return self:apply(name, arr) end
Initializer.__tostring = function(self) return self.kind .. '()' end
init.Initializer = Initializer

-- A new initializer kind: its instances get 'kind' and the fields of 'fields'.
local function kind(name, init_weight)
  return function(fields)
    local o = setmetatable({}, Initializer)
    for k, v in pairs(fields or {}) do o[k] = v end
    o.kind = name
    o.init_weight = init_weight
    return o
  end
end

-- Gluon's suffix rules (Initializer.__call__ for descriptors without an explicit __init__).
function Initializer:apply(name, arr)
  name = name or ''
  local function ends(s) return name:sub(-#s) == s end
  if ends('running_mean') or ends('moving_mean') or ends('bias') or ends('beta') then
    arr:fill(0)
  elseif ends('running_var') or ends('moving_var') or ends('gamma') then
    arr:fill(1)
  elseif ends('weight') then
    self:init_weight(name, arr)
  else
    error(string.format("init: unknown initialization pattern for '%s'; parameter names must end "
      .. "in weight, bias, gamma, beta, running_mean or running_var, or give the parameter "
      .. "its own init", name), 2)
  end
  return arr
end

local function fill_uniform(arr, lo, hi) arr:set(nd.random.uniform(lo, hi, arr:shape())) end
local function fill_normal(arr, mean, std) arr:set(nd.random.normal(mean, std, arr:shape())) end

init.Zero = kind('Zero', function(_, _, arr) arr:fill(0) end)
init.One = kind('One', function(_, _, arr) arr:fill(1) end)

-- Constant(value)
local constant = kind('Constant', function(self, _, arr) arr:fill(self.value) end)
function init.Constant(value)
  assert(type(value) == 'number', 'init.Constant: value must be a number')
  return constant{value = value}
end

-- Uniform(scale=0.07): U(-scale, scale)
local uniform = kind('Uniform', function(self, _, arr)
  fill_uniform(arr, -self.scale, self.scale)
end)
function init.Uniform(scale) return uniform{scale = scale or 0.07} end

-- Normal(sigma=0.01): N(0, sigma^2)
local normal = kind('Normal', function(self, _, arr) fill_normal(arr, 0, self.sigma) end)
function init.Normal(sigma) return normal{sigma = sigma or 0.01} end

-- fan_in, fan_out of a weight of shape (out, in, k...) as Gluon computes them.
local function fans(name, shape)
  if #shape < 2 then
    error(string.format("init: Xavier cannot be applied to the vector '%s' of shape [%s]; it "
      .. "needs at least 2 dims", name, table.concat(shape, ',')), 4)
  end
  local hw = 1
  for i = 3, #shape do hw = hw * shape[i] end
  return shape[2] * hw, shape[1] * hw
end

local xavier = kind('Xavier', function(self, name, arr)
  local fan_in, fan_out = fans(name, arr:shape())
  local factor
  if self.factor_type == 'avg' then factor = (fan_in + fan_out) / 2
  elseif self.factor_type == 'in' then factor = fan_in
  elseif self.factor_type == 'out' then factor = fan_out
  else error("init.Xavier: factor_type must be 'avg', 'in' or 'out', got " ..
             tostring(self.factor_type), 3) end
  local scale = math.sqrt(self.magnitude / factor)
  if self.rnd_type == 'uniform' then fill_uniform(arr, -scale, scale)
  elseif self.rnd_type == 'gaussian' then fill_normal(arr, 0, scale)
  else error("init.Xavier: rnd_type must be 'uniform' or 'gaussian', got " ..
             tostring(self.rnd_type), 3) end
end)

-- Xavier{rnd_type='uniform', factor_type='avg', magnitude=3}: scale = sqrt(magnitude / factor)
-- with factor = (fan_in + fan_out)/2, fan_in or fan_out; U(-scale, scale) or N(0, scale^2).
function init.Xavier(opts)
  opts = opts or {}
  return xavier{rnd_type = opts.rnd_type or 'uniform', factor_type = opts.factor_type or 'avg',
                magnitude = opts.magnitude or 3}
end

-- MSRAPrelu{factor_type='avg', slope=0.25}: Xavier gaussian with magnitude 2/(1+slope^2).
function init.MSRAPrelu(opts)
  opts = opts or {}
  local slope = opts.slope or 0.25
  local o = xavier{rnd_type = 'gaussian', factor_type = opts.factor_type or 'avg',
                   magnitude = 2 / (1 + slope * slope), slope = slope}
  o.kind = 'MSRAPrelu'
  return o
end

local by_name = {
  zeros = init.Zero, zero = init.Zero, ones = init.One, one = init.One,
  uniform = init.Uniform, normal = init.Normal, xavier = init.Xavier, msraprelu = init.MSRAPrelu,
}

-- An initializer from an initializer, a name ('zeros', 'ones', 'xavier', ...) or a number
-- (a constant); nil stays nil.
function init.create(x)
  if x == nil or getmetatable(x) == Initializer then return x end
  if type(x) == 'number' then return init.Constant(x) end
  local f = type(x) == 'string' and by_name[x:lower()]
  if not f then error(string.format("init: unknown initializer '%s'", tostring(x)), 2) end
  return f()
end

function init.is_initializer(x) return getmetatable(x) == Initializer end

return init
