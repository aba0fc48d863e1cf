--[[
trl.gluon.model_zoo.vision.mobilenet: MobileNet (v1) and MobileNetV2 as Gluon 1.x builds them
(python/mxnet/gluon/model_zoo/vision/mobilenet.py, v1.x), widths 1.0, 0.75, 0.5 and 0.25.
V2: 'features' (prefix 'features_') = conv-BN-RELU6, 17 LinearBottlenecks, conv 1x1 to 1280,
BN, RELU6, global pool; 'output' (prefix 'output_') = conv 1x1 'pred_' (no bias) + Flatten.
RELU6 is clip(x, 0, 6).
]]
local block = require 'trl.gluon.block'
local fused = require 'trl.gluon.nn.fused'
local nn = require 'trl.gluon.nn'

local class, HybridBlock = block.class, block.HybridBlock

local M = {}

-- RELU6(): a parameterless block, clip(x, 0, 6).
local RELU6 = class('RELU6', HybridBlock)
M.RELU6 = RELU6
function RELU6:__init(opts) HybridBlock.__init(self, opts) end
function RELU6:forward(x) return x:clip(0, 6) end
function RELU6.__tostring() return 'RELU6()' end

-- conv (no bias) + BN [+ ReLU or RELU6], added to the Sequential 'out'.
local function add_conv(out, channels, kernel, stride, pad, num_group, active, relu6)
  out:add(nn.Conv2D(channels, kernel or 1, stride or 1, pad or 0,
                    {groups = num_group or 1, use_bias = false}))
  out:add(nn.BatchNorm{scale = true})
  if active ~= false then out:add(relu6 and RELU6() or nn.Activation('relu')) end
end

local function add_conv_dw(out, dw_channels, channels, stride, relu6)
  add_conv(out, dw_channels, 3, stride, 1, dw_channels, true, relu6)
  add_conv(out, channels, 1, 1, 0, 1, true, relu6)
end

-- LinearBottleneck(in_channels, channels, t, stride, opts): expand 1x1 (x t), depthwise 3x3,
-- project 1x1 without activation; adds the input when stride 1 keeps the channel count.
local LinearBottleneck = class('LinearBottleneck', HybridBlock)
M.LinearBottleneck = LinearBottleneck

function LinearBottleneck:__init(in_channels, channels, t, stride, opts)
  HybridBlock.__init(self, opts)
  rawset(self, 'use_shortcut', stride == 1 and in_channels == channels)
  rawset(self, 'stride', stride)
  self:name_scope(function()
    self.out = nn.HybridSequential()
    add_conv(self.out, in_channels * t, 1, 1, 0, 1, true, true)
    add_conv(self.out, in_channels * t, 3, stride, 1, in_channels * t, true, true)
    add_conv(self.out, channels, 1, 1, 0, 1, false, true)
  end)
end

function LinearBottleneck:forward(x)
  if fused.on(self) then   -- inference, hybridized: one op (trl.gluon.nn.fused.bottleneck)
    local blocks = {}
    for i, n in ipairs(self.out._child_names) do blocks[i] = self.out._children[n] end
    local y = fused.bottleneck(blocks, x, self.stride, self.use_shortcut)
    if y then return y end
  end
  local out = self.out(x)
  if self.use_shortcut then
    local sum = out + x
    if rawget(self, '_active') == true then fused.drop(out, x) end
    out = sum
  end
  return out
end

-- Gluon's int(x * multiplier): truncation toward zero.
local function width(x, m) return math.floor(x * m + 1e-9) end

-- MobileNet(multiplier=1.0, {classes=1000, prefix=, params=})
local MobileNet = class('MobileNet', HybridBlock)
M.MobileNet = MobileNet

function MobileNet:__init(multiplier, opts)
  multiplier = multiplier or 1.0
  opts = opts or {}
  HybridBlock.__init(self, {prefix = opts.prefix, params = opts.params})
  self:name_scope(function()
    local f = nn.HybridSequential{prefix = ''}
    self.features = f
    f:name_scope(function()
      add_conv(f, width(32, multiplier), 3, 2, 1)
      local dw = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024}
      local ch = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024}
      local st = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1}
      for i = 1, #dw do
        add_conv_dw(f, width(dw[i], multiplier), width(ch[i], multiplier), st[i])
      end
      f:add(nn.GlobalAvgPool2D(), nn.Flatten())
    end)
    self.output = nn.Dense(opts.classes or 1000)
  end)
end

function MobileNet:forward(x) return fused.features_output(self, x) end

-- MobileNetV2(multiplier=1.0, {classes=1000, prefix=, params=})
local MobileNetV2 = class('MobileNetV2', HybridBlock)
M.MobileNetV2 = MobileNetV2

function MobileNetV2:__init(multiplier, opts)
  multiplier = multiplier or 1.0
  opts = opts or {}
  HybridBlock.__init(self, {prefix = opts.prefix, params = opts.params})
  self:name_scope(function()
    local f = nn.HybridSequential{prefix = 'features_'}
    self.features = f
    f:name_scope(function()
      add_conv(f, width(32, multiplier), 3, 2, 1, 1, true, true)
      local in_c = {32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160}
      local ch = {16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320}
      local st = {1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1}
      for i = 1, #in_c do
        f:add(LinearBottleneck(width(in_c[i], multiplier), width(ch[i], multiplier),
                               i == 1 and 1 or 6, st[i]))
      end
      add_conv(f, multiplier > 1.0 and width(1280, multiplier) or 1280, 1, 1, 0, 1, true, true)
      f:add(nn.GlobalAvgPool2D())
    end)
    local o = nn.HybridSequential{prefix = 'output_'}
    self.output = o
    o:name_scope(function()
      o:add(nn.Conv2D(opts.classes or 1000, 1, {use_bias = false, prefix = 'pred_'}),
            nn.Flatten())
    end)
  end)
end

MobileNetV2.forward = MobileNet.forward

-- The model-store name of a width: 1.0, 0.75, 0.5, 0.25 (Gluon's '{0:.2f}' minus a '0').
local function suffix(multiplier)
  local s = string.format('%.2f', multiplier)
  if s == '1.00' or s == '0.50' then s = s:sub(1, -2) end
  return s
end

-- get_mobilenet(multiplier, opts) / get_mobilenet_v2(multiplier, opts): opts as the nets'
-- plus pretrained (true: the model store; a string: a weight file) and root.
function M.get_mobilenet(multiplier, opts)
  opts = opts or {}
  local net = MobileNet(multiplier, opts)
  local name = 'mobilenet' .. suffix(multiplier)
  rawset(net, '_model_name', name)
  if opts.pretrained then require('trl.gluon.model_zoo.model_store').load_pretrained(net, name, opts) end
  return net
end

function M.get_mobilenet_v2(multiplier, opts)
  opts = opts or {}
  local net = MobileNetV2(multiplier, opts)
  local name = 'mobilenetv2_' .. suffix(multiplier)
  rawset(net, '_model_name', name)
  if opts.pretrained then require('trl.gluon.model_zoo.model_store').load_pretrained(net, name, opts) end
  return net
end

for _, w in ipairs{{'1_0', 1.0}, {'0_75', 0.75}, {'0_5', 0.5}, {'0_25', 0.25}} do
  M['mobilenet' .. w[1]] = function(opts) return M.get_mobilenet(w[2], opts) end
  M['mobilenet_v2_' .. w[1]] = function(opts) return M.get_mobilenet_v2(w[2], opts) end
end

return M
