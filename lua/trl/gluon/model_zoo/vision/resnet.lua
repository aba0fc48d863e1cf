--[[
trl.gluon.model_zoo.vision.resnet: ResNet V1 and V2 as Gluon 1.x builds them
(python/mxnet/gluon/model_zoo/vision/resnet.py, v1.x): the same layers in the same order, so
parameter names (structural and prefixed) and weight files are Gluon's. Not here: weight
downloads (model_store) and file reading (trl.gluon.params_io).
  local net = resnet.resnet18_v2{classes = 2}    -- net.features, net.output
]]
local block = require 'trl.gluon.block'
local nn = require 'trl.gluon.nn'
local fused = require 'trl.gluon.nn.fused'

local class, HybridBlock = block.class, block.HybridBlock

local M = {}

local function conv3x3(channels, stride, in_channels)
  return nn.Conv2D(channels, 3, {strides = stride, padding = 1, use_bias = false,
                                 in_channels = in_channels})
end

-- Block options: Gluon's **kwargs (prefix, params) minus the block's own arguments.
local function block_opts(opts)
  return {prefix = opts and opts.prefix, params = opts and opts.params}
end

--[[ {==================================================================
** Residual blocks
** =================================================================== ]]

-- BasicBlockV1(channels, stride, downsample=false, in_channels=0, opts): two 3x3 convs in
-- 'body', relu(body(x) + residual); 'downsample' is conv1x1/stride + BN.
local BasicBlockV1 = class('BasicBlockV1', HybridBlock)
M.BasicBlockV1 = BasicBlockV1

function BasicBlockV1:__init(channels, stride, downsample, in_channels, opts)
  HybridBlock.__init(self, block_opts(opts))
  in_channels = in_channels or 0
  self.body = nn.HybridSequential{prefix = ''}
  self.body:add(conv3x3(channels, stride, in_channels))
  self.body:add(nn.BatchNorm())
  self.body:add(nn.Activation('relu'))
  self.body:add(conv3x3(channels, 1, channels))
  self.body:add(nn.BatchNorm())
  if downsample then
    self.downsample = nn.HybridSequential{prefix = ''}
    self.downsample:add(nn.Conv2D(channels, 1, {strides = stride, use_bias = false,
                                                in_channels = in_channels}))
    self.downsample:add(nn.BatchNorm())
  end
end

function BasicBlockV1:forward(x)
  local residual = x
  local b = self.body(x)
  if self.downsample then residual = self.downsample(residual) end
  local s = residual + b
  local y = s:relu()
  if rawget(self, '_active') == true then   -- hybridized: intermediates go at once
    fused.drop(b, x); fused.drop(s, x, y); fused.drop(residual, x)
  end
  return y
end

-- BottleneckV1: 1x1 (carries the stride) -> 3x3 -> 1x1 (x4 channels), convs with bias as in
-- Gluon's source.
local BottleneckV1 = class('BottleneckV1', HybridBlock)
M.BottleneckV1 = BottleneckV1

function BottleneckV1:__init(channels, stride, downsample, in_channels, opts)
  HybridBlock.__init(self, block_opts(opts))
  in_channels = in_channels or 0
  local mid = channels // 4
  self.body = nn.HybridSequential{prefix = ''}
  self.body:add(nn.Conv2D(mid, 1, {strides = stride}))
  self.body:add(nn.BatchNorm())
  self.body:add(nn.Activation('relu'))
  self.body:add(conv3x3(mid, 1, mid))
  self.body:add(nn.BatchNorm())
  self.body:add(nn.Activation('relu'))
  self.body:add(nn.Conv2D(channels, 1, {strides = 1}))
  self.body:add(nn.BatchNorm())
  if downsample then
    self.downsample = nn.HybridSequential{prefix = ''}
    self.downsample:add(nn.Conv2D(channels, 1, {strides = stride, use_bias = false,
                                                in_channels = in_channels}))
    self.downsample:add(nn.BatchNorm())
  end
end

BottleneckV1.forward = BasicBlockV1.forward

-- BasicBlockV2: pre-activation; the downsample conv takes relu(bn1(x)), not x.
local BasicBlockV2 = class('BasicBlockV2', HybridBlock)
M.BasicBlockV2 = BasicBlockV2

function BasicBlockV2:__init(channels, stride, downsample, in_channels, opts)
  HybridBlock.__init(self, block_opts(opts))
  in_channels = in_channels or 0
  self.bn1 = nn.BatchNorm()
  self.conv1 = conv3x3(channels, stride, in_channels)
  self.bn2 = nn.BatchNorm()
  self.conv2 = conv3x3(channels, 1, channels)
  if downsample then
    self.downsample = nn.Conv2D(channels, 1, stride, {use_bias = false, in_channels = in_channels})
  end
end

-- (fused.bn_act(bn, 'relu', x) is bn(x):relu(), one pass when hybridized in inference)
-- Hybridized, each intermediate is released once used (fused.drop).
function BasicBlockV2:forward(x)
  local residual = x
  local a = fused.bn_act(self.bn1, 'relu', x)
  if self.downsample then residual = self.downsample(a) end
  local b = fused.conv_bn_act(self.conv1, self.bn2, 'relu', a)
  local c = self.conv2(b)
  local y = c + residual
  if rawget(self, '_active') == true then
    fused.drop(a, x); fused.drop(b, x); fused.drop(c, x); fused.drop(residual, x)
  end
  return y
end

-- BottleneckV2: bn1 relu conv1(1x1) bn2 relu conv2(3x3, stride) bn3 relu conv3(1x1) + residual.
local BottleneckV2 = class('BottleneckV2', HybridBlock)
M.BottleneckV2 = BottleneckV2

function BottleneckV2:__init(channels, stride, downsample, in_channels, opts)
  HybridBlock.__init(self, block_opts(opts))
  in_channels = in_channels or 0
  local mid = channels // 4
  self.bn1 = nn.BatchNorm()
  self.conv1 = nn.Conv2D(mid, 1, {strides = 1, use_bias = false})
  self.bn2 = nn.BatchNorm()
  self.conv2 = conv3x3(mid, stride, mid)
  self.bn3 = nn.BatchNorm()
  self.conv3 = nn.Conv2D(channels, 1, {strides = 1, use_bias = false})
  if downsample then
    self.downsample = nn.Conv2D(channels, 1, stride, {use_bias = false, in_channels = in_channels})
  end
end

function BottleneckV2:forward(x)
  local residual = x
  local a = fused.bn_act(self.bn1, 'relu', x)
  if self.downsample then residual = self.downsample(a) end
  local b = fused.conv_bn_act(self.conv1, self.bn2, 'relu', a)
  local c = fused.conv_bn_act(self.conv2, self.bn3, 'relu', b)
  local d = self.conv3(c)
  local y = d + residual
  if rawget(self, '_active') == true then
    fused.drop(a, x); fused.drop(b, x); fused.drop(c, x); fused.drop(d, x)
    fused.drop(residual, x)
  end
  return y
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Networks
** =================================================================== ]]

-- A stage: HybridSequential 'stage<i>_' holding 'layers' blocks; the first may downsample.
local function make_layer(self, blk, layers, channels, stride, stage_index, in_channels)
  local layer = nn.HybridSequential{prefix = 'stage' .. stage_index .. '_'}
  layer:name_scope(function()
    layer:add(blk(channels, stride, channels ~= in_channels, in_channels, {prefix = ''}))
    for _ = 2, layers do layer:add(blk(channels, 1, false, channels, {prefix = ''})) end
  end)
  return layer
end

local function check_spec(cls, blk, layers, channels)
  if type(blk) ~= 'table' or type(layers) ~= 'table' or type(channels) ~= 'table'
     or #layers ~= #channels - 1 then
    error(string.format('%s: expected (block, layers, channels) with #channels = #layers + 1, '
      .. 'got %d layers and %d channels', cls, type(layers) == 'table' and #layers or -1,
      type(channels) == 'table' and #channels or -1), 3)
  end
end

-- ResNetV1(block, layers, channels, {classes=1000, thumbnail=false, prefix=, params=})
local ResNetV1 = class('ResNetV1', HybridBlock)
M.ResNetV1 = ResNetV1

function ResNetV1:__init(blk, layers, channels, opts)
  check_spec('ResNetV1', blk, layers, channels)
  opts = opts or {}
  HybridBlock.__init(self, block_opts(opts))
  self:name_scope(function()
    self.features = nn.HybridSequential{prefix = ''}
    if opts.thumbnail then
      self.features:add(conv3x3(channels[1], 1, 0))
    else
      self.features:add(nn.Conv2D(channels[1], 7, 2, 3, {use_bias = false}))
      self.features:add(nn.BatchNorm())
      self.features:add(nn.Activation('relu'))
      self.features:add(nn.MaxPool2D(3, 2, 1))
    end
    for i, n in ipairs(layers) do
      self.features:add(make_layer(self, blk, n, channels[i + 1], i == 1 and 1 or 2, i,
                                   channels[i]))
    end
    self.features:add(nn.GlobalAvgPool2D())
    self.output = nn.Dense(opts.classes or 1000, {in_units = channels[#channels]})
  end)
end

function ResNetV1:forward(x) return fused.features_output(self, x) end

-- ResNetV2: as V1 with a data BatchNorm (scale=false, center=false) first and a final
-- BN + ReLU + pool + flatten in 'features'.
local ResNetV2 = class('ResNetV2', HybridBlock)
M.ResNetV2 = ResNetV2

function ResNetV2:__init(blk, layers, channels, opts)
  check_spec('ResNetV2', blk, layers, channels)
  opts = opts or {}
  HybridBlock.__init(self, block_opts(opts))
  self:name_scope(function()
    self.features = nn.HybridSequential{prefix = ''}
    self.features:add(nn.BatchNorm{scale = false, center = false})
    if opts.thumbnail then
      self.features:add(conv3x3(channels[1], 1, 0))
    else
      self.features:add(nn.Conv2D(channels[1], 7, 2, 3, {use_bias = false}))
      self.features:add(nn.BatchNorm())
      self.features:add(nn.Activation('relu'))
      self.features:add(nn.MaxPool2D(3, 2, 1))
    end
    local in_channels = channels[1]
    for i, n in ipairs(layers) do
      self.features:add(make_layer(self, blk, n, channels[i + 1], i == 1 and 1 or 2, i,
                                   in_channels))
      in_channels = channels[i + 1]
    end
    self.features:add(nn.BatchNorm())
    self.features:add(nn.Activation('relu'))
    self.features:add(nn.GlobalAvgPool2D())
    self.features:add(nn.Flatten())
    self.output = nn.Dense(opts.classes or 1000, {in_units = in_channels})
  end)
end

ResNetV2.forward = ResNetV1.forward

--[[ }================================================================== ]]

--[[ {==================================================================
** Constructors
** =================================================================== ]]

M.resnet_spec = {
  [18] = {'basic_block', {2, 2, 2, 2}, {64, 64, 128, 256, 512}},
  [34] = {'basic_block', {3, 4, 6, 3}, {64, 64, 128, 256, 512}},
  [50] = {'bottle_neck', {3, 4, 6, 3}, {64, 256, 512, 1024, 2048}},
  [101] = {'bottle_neck', {3, 4, 23, 3}, {64, 256, 512, 1024, 2048}},
  [152] = {'bottle_neck', {3, 8, 36, 3}, {64, 256, 512, 1024, 2048}},
}
local net_versions = {ResNetV1, ResNetV2}
local block_versions = {{basic_block = BasicBlockV1, bottle_neck = BottleneckV1},
                        {basic_block = BasicBlockV2, bottle_neck = BottleneckV2}}

-- get_resnet(version, num_layers, {pretrained=false, root=, classes=1000, thumbnail=false,
-- prefix=, params=}): 'pretrained' is true (the model store) or a weight file's path.
function M.get_resnet(version, num_layers, opts)
  opts = opts or {}
  local spec = M.resnet_spec[num_layers]
  if spec == nil then
    error(string.format('get_resnet: invalid number of layers %s (options: 18, 34, 50, 101, 152)',
                        tostring(num_layers)), 2)
  end
  if version ~= 1 and version ~= 2 then
    error(string.format('get_resnet: invalid resnet version %s (options: 1, 2)',
                        tostring(version)), 2)
  end
  local name = string.format('resnet%d_v%d', num_layers, version)
  local net = net_versions[version](block_versions[version][spec[1]], spec[2], spec[3], opts)
  rawset(net, '_model_name', name)
  if opts.pretrained then require('trl.gluon.model_zoo.model_store').load_pretrained(net, name, opts) end
  return net
end

for _, n in ipairs{18, 34, 50, 101, 152} do
  for v = 1, 2 do
    M[string.format('resnet%d_v%d', n, v)] = function(opts) return M.get_resnet(v, n, opts) end
  end
end

--[[ }================================================================== ]]

return M
