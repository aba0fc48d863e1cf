--[[
trl.gluon.nn: Gluon's layers (gluon.nn): containers, Dense, Conv2D, BatchNorm, pooling,
Activation, Dropout, Flatten. See basic_layers.lua and conv_layers.lua for each layer's options.
  local nn = require('trl').gluon.nn
  local net = nn.HybridSequential()
  net:add(nn.Conv2D(16, 3, {padding=1}), nn.BatchNorm(), nn.Activation('relu'), nn.Dense(10))
]]
local block = require 'trl.gluon.block'
local basic = require 'trl.gluon.nn.basic_layers'
local conv = require 'trl.gluon.nn.conv_layers'

local nn = {Block = block.Block, HybridBlock = block.HybridBlock}

for _, m in ipairs{basic, conv} do
  for k, v in pairs(m) do
    if type(v) == 'table' and rawget(v, '_class_name') and k:sub(1, 1) ~= '_' then nn[k] = v end
  end
end

return nn
