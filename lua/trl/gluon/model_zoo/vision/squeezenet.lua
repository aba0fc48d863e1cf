--[[
trl.gluon.model_zoo.vision.squeezenet: SqueezeNet 1.0 and 1.1 as Gluon 1.x builds them
(python/mxnet/gluon/model_zoo/vision/squeezenet.py, v1.x). Every Sequential uses prefix='', so
one 'conv' counter runs through the whole net (squeezenet0_conv0 ... conv25), as in the zoo
file's flat names. Pools use ceil_mode; 'output' is conv 1x1 -> ReLU -> AvgPool(13) -> Flatten.
]]
local block = require 'trl.gluon.block'
local nn = require 'trl.gluon.nn'

local class, HybridBlock = block.class, block.HybridBlock

local M = {}

local function fire_conv(channels, kernel_size, padding)
  local out = nn.HybridSequential{prefix = ''}
  out:add(nn.Conv2D(channels, kernel_size, {padding = padding or 0}))
  out:add(nn.Activation('relu'))
  return out
end

-- fire: squeeze 1x1, then the 1x1 and 3x3 expands concatenated on channels.
local function fire(squeeze, expand1x1, expand3x3)
  local out = nn.HybridSequential{prefix = ''}
  out:add(fire_conv(squeeze, 1))
  local paths = nn.HybridConcurrent(2, {prefix = ''})    -- Gluon axis=1: channels
  paths:add(fire_conv(expand1x1, 1))
  paths:add(fire_conv(expand3x3, 3, 1))
  out:add(paths)
  return out
end

local function pool() return nn.MaxPool2D(3, 2, {ceil_mode = true}) end

-- SqueezeNet(version '1.0'|'1.1', {classes=1000, prefix=, params=})
local SqueezeNet = class('SqueezeNet', HybridBlock)
M.SqueezeNet = SqueezeNet

function SqueezeNet:__init(version, opts)
  if version ~= '1.0' and version ~= '1.1' then
    error(string.format("SqueezeNet: unsupported version %s ('1.0' or '1.1' expected)",
                        tostring(version)), 2)
  end
  opts = opts or {}
  HybridBlock.__init(self, {prefix = opts.prefix, params = opts.params})
  self:name_scope(function()
    local f = nn.HybridSequential{prefix = ''}
    self.features = f
    if version == '1.0' then
      f:add(nn.Conv2D(96, 7, {strides = 2}), nn.Activation('relu'), pool())
      f:add(fire(16, 64, 64), fire(16, 64, 64), fire(32, 128, 128), pool())
      f:add(fire(32, 128, 128), fire(48, 192, 192), fire(48, 192, 192), fire(64, 256, 256))
      f:add(pool(), fire(64, 256, 256))
    else
      f:add(nn.Conv2D(64, 3, {strides = 2}), nn.Activation('relu'), pool())
      f:add(fire(16, 64, 64), fire(16, 64, 64), pool())
      f:add(fire(32, 128, 128), fire(32, 128, 128), pool())
      f:add(fire(48, 192, 192), fire(48, 192, 192), fire(64, 256, 256), fire(64, 256, 256))
    end
    f:add(nn.Dropout(0.5))
    local o = nn.HybridSequential{prefix = ''}
    self.output = o
    o:add(nn.Conv2D(opts.classes or 1000, 1), nn.Activation('relu'), nn.AvgPool2D(13),
          nn.Flatten())
  end)
end

function SqueezeNet:forward(x) return self.output(self.features(x)) end

-- get_squeezenet(version, {pretrained=false, root=, classes=1000}): 'pretrained' is true
-- (the model store) or a weight file's path.
function M.get_squeezenet(version, opts)
  opts = opts or {}
  local net = SqueezeNet(version, opts)
  rawset(net, '_model_name', 'squeezenet' .. version)
  if opts.pretrained then
    require('trl.gluon.model_zoo.model_store').load_pretrained(net, 'squeezenet' .. version, opts)
  end
  return net
end

function M.squeezenet1_0(opts) return M.get_squeezenet('1.0', opts) end
function M.squeezenet1_1(opts) return M.get_squeezenet('1.1', opts) end

return M
