--[[
trl.gluon.nn.conv_layers: Conv2D and the 2-D pooling layers (MaxPool2D, AvgPool2D,
GlobalAvgPool2D, GlobalMaxPool2D), as Gluon 1.x (gluon/nn/conv_layers.py), NCHW only.
Sizes may be given positionally as in Gluon, Conv2D(64, 7, 2, 3, {use_bias=false}), or by name,
Conv2D(64, 7, {strides=2, padding=3, use_bias=false}); a size is a number or {h, w}.
]]
local block = require 'trl.gluon.block'
local basic = require 'trl.gluon.nn.basic_layers'
local fused = require 'trl.gluon.nn.fused'

local class, HybridBlock = block.class, block.HybridBlock
local pyrepr, shape_str = block.pyrepr, basic.shape_str

local M = {}

-- A size option as a pair {h, w}.
local function pair(layer, what, v)
  if math.type(v) == 'integer' then return {v, v} end
  if type(v) == 'table' and #v == 2 and math.type(v[1]) == 'integer'
     and math.type(v[2]) == 'integer' then
    return {v[1], v[2]}
  end
  error(string.format("%s: %s must be an integer or {h, w}, got %s", layer, what,
                      type(v) == 'table' and 'a table of ' .. #v or tostring(v)), 4)
end

-- Split (size, size, ..., opts) into the positional sizes and the options table.
local function split_args(layer, names, ...)
  local n = select('#', ...)
  local pos, opts = {}, {}
  for i = 1, n do
    local a = select(i, ...)
    if type(a) == 'table' and a[1] == nil then   -- {h, w} sizes are arrays; options are not
      if i ~= n then error(layer .. ': the options table must come last', 3) end
      opts = a
    elseif a ~= nil then
      if i > #names then error(string.format('%s: too many positional arguments', layer), 3) end
      pos[names[i]] = a
    end
  end
  local r = {}
  for k, v in pairs(opts) do r[k] = v end
  for k, v in pairs(pos) do
    if r[k] ~= nil then error(string.format('%s: %s given twice', layer, k), 3) end
    r[k] = v
  end
  return r
end

--[[ {==================================================================
** Conv2D
** =================================================================== ]]

-- Conv2D(channels, kernel_size, [strides, padding, dilation,] {strides=1, padding=0,
--        dilation=1, groups=1, layout='NCHW', activation=, use_bias=true, in_channels=0,
--        weight_initializer=, bias_initializer='zeros', prefix=, params=})
-- weight is (channels, in_channels/groups, kh, kw); in_channels 0 is inferred at first forward.
local Conv2D = class('Conv2D', HybridBlock)
M.Conv2D = Conv2D

function Conv2D:__init(channels, kernel_size, ...)
  local opts = split_args('Conv2D', {'strides', 'padding', 'dilation'}, ...)
  if math.type(channels) ~= 'integer' or channels < 1 then
    error('Conv2D: channels must be a positive integer, got ' .. tostring(channels), 2)
  end
  if (opts.layout or 'NCHW') ~= 'NCHW' then
    error("Conv2D: only layout 'NCHW' is supported, got '" .. tostring(opts.layout) .. "'", 2)
  end
  HybridBlock.__init(self, opts)
  local k = pair('Conv2D', 'kernel_size', kernel_size)
  local groups = opts.groups or 1
  local in_ch = opts.in_channels or 0
  if math.type(groups) ~= 'integer' or groups < 1 or channels % groups ~= 0
     or in_ch % groups ~= 0 then
    error(string.format('Conv2D: groups %s must divide channels %d and in_channels %d',
                        tostring(groups), channels, in_ch), 2)
  end
  rawset(self, '_channels', channels)
  rawset(self, '_kwargs', {kernel = k, stride = pair('Conv2D', 'strides', opts.strides or 1),
    pad = pair('Conv2D', 'padding', opts.padding or 0),
    dilate = pair('Conv2D', 'dilation', opts.dilation or 1), num_group = groups})
  self:name_scope(function()
    self.weight = self.params:get('weight', {shape = {channels, in_ch // groups, k[1], k[2]},
      init = opts.weight_initializer, dtype = opts.dtype, allow_deferred_init = true})
    if opts.use_bias ~= false then
      self.bias = self.params:get('bias', {shape = {channels},
        init = opts.bias_initializer or 'zeros', dtype = opts.dtype, allow_deferred_init = true})
    end
    if opts.activation then
      self.act = basic.Activation(opts.activation, {prefix = opts.activation .. '_'})
    end
  end)
end

function Conv2D:_alias() return 'conv' end

function Conv2D:forward(x)
  local shape = x:shape()
  local kw = self._kwargs
  if #shape ~= 4 then
    error(string.format("Conv2D '%s': input must be (N,C,H,W), got shape %s", self.name,
                        shape_str(shape)), 2)
  end
  local w = self.weight
  local per_group = shape[2] // kw.num_group
  if shape[2] % kw.num_group ~= 0 then
    error(string.format("Conv2D '%s': input of shape %s has %d channels, not divisible by "
      .. "groups %d", self.name, shape_str(shape), shape[2], kw.num_group), 2)
  end
  if w.shape[2] == 0 then
    w:_set_shape{self._channels, per_group, kw.kernel[1], kw.kernel[2]}
  elseif w.shape[2] ~= per_group then
    error(string.format("Conv2D '%s': input of shape %s has %d channels, expected in_channels %d",
                        self.name, shape_str(shape), shape[2], w.shape[2] * kw.num_group), 2)
  end
  if rawget(self, '_active') == true or rawget(self, '_pack') ~= nil then   -- see nn.fused
    local y = fused.conv_forward(self, x)
    if y then return y end
  end
  local b = self.bias
  local out = basic.nn_ops().conv2d(x, w:data(), b and b:data() or nil,
    {stride = kw.stride, pad = kw.pad, dilation = kw.dilate, groups = kw.num_group})
  if self.act then out = self.act(out) end
  return out
end

function Conv2D.__tostring(self)
  local kw, s = self._kwargs, self.weight.shape
  local parts = {string.format('Conv2D(%s -> %d, kernel_size=%s, stride=%s',
    s[2] ~= 0 and tostring(s[2]) or 'None', s[1], pyrepr(kw.kernel), pyrepr(kw.stride))}
  if kw.pad[1] ~= 0 or kw.pad[2] ~= 0 then parts[#parts + 1] = ', padding=' .. pyrepr(kw.pad) end
  if kw.dilate[1] ~= 1 or kw.dilate[2] ~= 1 then
    parts[#parts + 1] = ', dilation=' .. pyrepr(kw.dilate)
  end
  if kw.num_group ~= 1 then parts[#parts + 1] = ', groups=' .. kw.num_group end
  if self.bias == nil then parts[#parts + 1] = ', bias=False' end
  if self.act then parts[#parts + 1] = ', ' .. tostring(self.act) end
  return table.concat(parts) .. ')'
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Pooling
** =================================================================== ]]

local Pooling = class('_Pooling', HybridBlock)
M._Pooling = Pooling

-- _Pooling(layer, pool_type, global, pool_size, ...): the shared constructor.
local function pool_init(self, layer, pool_type, global, pool_size, ...)
  local opts = split_args(layer, {'strides', 'padding'}, ...)
  if (opts.layout or 'NCHW') ~= 'NCHW' then
    error(layer .. ": only layout 'NCHW' is supported, got '" .. tostring(opts.layout) .. "'", 3)
  end
  HybridBlock.__init(self, opts)
  local k = pair(layer, 'pool_size', pool_size or 2)
  rawset(self, '_kwargs', {kernel = k, stride = pair(layer, 'strides', opts.strides or k),
    pad = pair(layer, 'padding', opts.padding or 0), global_pool = global,
    pool_type = pool_type, ceil_mode = opts.ceil_mode or global,
    count_include_pad = opts.count_include_pad ~= false})
end

function Pooling:_alias() return 'pool' end

function Pooling:forward(x)
  local shape = x:shape()
  local kw = self._kwargs
  if #shape ~= 4 then
    error(string.format("%s '%s': input must be (N,C,H,W), got shape %s", self._class_name,
                        self.name, shape_str(shape)), 2)
  end
  local ops = basic.nn_ops()
  if kw.global_pool then
    if kw.pool_type == 'avg' then return ops.global_avg_pool2d(x) end
    return x:max(4, true):max(3, true)
  end
  local o = {kernel = kw.kernel, stride = kw.stride, pad = kw.pad, ceil_mode = kw.ceil_mode,
             count_include_pad = kw.count_include_pad}
  if kw.pool_type == 'max' then return ops.max_pool2d(x, o) end
  return ops.avg_pool2d(x, o)
end

function Pooling.__tostring(self)
  local kw = self._kwargs
  return string.format('%s(size=%s, stride=%s, padding=%s, ceil_mode=%s, global_pool=%s, '
    .. 'pool_type=%s, layout=NCHW)', self._class_name, pyrepr(kw.kernel), pyrepr(kw.stride),
    pyrepr(kw.pad), pyrepr(kw.ceil_mode), pyrepr(kw.global_pool), kw.pool_type)
end

-- MaxPool2D(pool_size=2, [strides=pool_size, padding=0,] {ceil_mode=false})
local MaxPool2D = class('MaxPool2D', Pooling)
M.MaxPool2D = MaxPool2D
function MaxPool2D:__init(pool_size, ...)
  pool_init(self, 'MaxPool2D', 'max', false, pool_size, ...)
end

-- AvgPool2D(pool_size=2, [strides=pool_size, padding=0,] {ceil_mode=false, count_include_pad=true})
local AvgPool2D = class('AvgPool2D', Pooling)
M.AvgPool2D = AvgPool2D
function AvgPool2D:__init(pool_size, ...)
  pool_init(self, 'AvgPool2D', 'avg', false, pool_size, ...)
end

-- GlobalAvgPool2D(opts) / GlobalMaxPool2D(opts): (N,C,H,W) -> (N,C,1,1)
local GlobalAvgPool2D = class('GlobalAvgPool2D', Pooling)
M.GlobalAvgPool2D = GlobalAvgPool2D
function GlobalAvgPool2D:__init(opts) pool_init(self, 'GlobalAvgPool2D', 'avg', true, 1, opts) end

local GlobalMaxPool2D = class('GlobalMaxPool2D', Pooling)
M.GlobalMaxPool2D = GlobalMaxPool2D
function GlobalMaxPool2D:__init(opts) pool_init(self, 'GlobalMaxPool2D', 'max', true, 1, opts) end

--[[ }================================================================== ]]

return M
