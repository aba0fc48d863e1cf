--[[
trl.gluon: Gluon's high-level API: Parameter, Block, nn, loss, Trainer, data, model_zoo.
Submodules load on first use (gluon.nn, gluon.loss, gluon.Trainer, ...).
]]
local block = require 'trl.gluon.block'
local parameter = require 'trl.gluon.parameter'
require 'trl.gluon.params_io'   -- installs Block:load_parameters / :save_parameters

local gluon = {
  Block = block.Block, HybridBlock = block.HybridBlock, class = block.class,
  Parameter = parameter.Parameter, ParameterDict = parameter.ParameterDict,
}

-- name -> {module, field or nil (the module itself)}
local lazy = {
  nn = {'trl.gluon.nn'}, loss = {'trl.gluon.loss'}, Trainer = {'trl.gluon.trainer', 'Trainer'},
  data = {'trl.gluon.data'}, model_zoo = {'trl.gluon.model_zoo'}, utils = {'trl.gluon.utils'},
}

return setmetatable(gluon, {
  __index = function(t, k)
    local e = lazy[k]
    if e == nil then return nil end
    local m = require(e[1])
    if e[2] and type(m) == 'table' and m[e[2]] ~= nil then m = m[e[2]] end
    rawset(t, k, m)
    return m
  end,
})
