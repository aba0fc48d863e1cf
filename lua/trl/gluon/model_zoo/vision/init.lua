--[[
trl.gluon.model_zoo.vision: Gluon 1.x's vision model zoo (gluon.model_zoo.vision): ResNet
V1/V2 (18-152), SqueezeNet 1.0/1.1, MobileNet and MobileNetV2 (widths 1.0, 0.75, 0.5, 0.25).
  local vision = require('trl').gluon.model_zoo.vision
  local net = vision.resnet18_v2{classes = 2}
  local pre = vision.get_model('resnet18_v2', {pretrained = true})   -- or a .params path
Options: classes, pretrained (true or a file), root (the weight cache, default
$TRL_HOME/models), prefix, params; thumbnail for ResNets.
]]
local resnet = require 'trl.gluon.model_zoo.vision.resnet'
local squeezenet = require 'trl.gluon.model_zoo.vision.squeezenet'
local mobilenet = require 'trl.gluon.model_zoo.vision.mobilenet'

local M = {}

for _, mod in ipairs{resnet, squeezenet, mobilenet} do
  for k, v in pairs(mod) do M[k] = v end
end

-- get_model's names, as Gluon's (model_zoo/vision/__init__.py) plus the function names.
local models = {
  ['squeezenet1.0'] = M.squeezenet1_0, ['squeezenet1.1'] = M.squeezenet1_1,
  ['mobilenet1.0'] = M.mobilenet1_0, ['mobilenet0.75'] = M.mobilenet0_75,
  ['mobilenet0.5'] = M.mobilenet0_5, ['mobilenet0.25'] = M.mobilenet0_25,
  ['mobilenetv2_1.0'] = M.mobilenet_v2_1_0, ['mobilenetv2_0.75'] = M.mobilenet_v2_0_75,
  ['mobilenetv2_0.5'] = M.mobilenet_v2_0_5, ['mobilenetv2_0.25'] = M.mobilenet_v2_0_25,
}
for _, n in ipairs{18, 34, 50, 101, 152} do
  for v = 1, 2 do
    local k = string.format('resnet%d_v%d', n, v)
    models[k] = M[k]
  end
end
for _, k in ipairs{'squeezenet1_0', 'squeezenet1_1', 'mobilenet1_0', 'mobilenet0_75',
                   'mobilenet0_5', 'mobilenet0_25', 'mobilenet_v2_1_0', 'mobilenet_v2_0_75',
                   'mobilenet_v2_0_5', 'mobilenet_v2_0_25'} do
  models[k] = M[k]
end
M._models = models

-- The sorted list of names get_model accepts.
function M.list_models()
  local r = {}
  for k in pairs(models) do r[#r + 1] = k end
  table.sort(r)
  return r
end

-- get_model(name, opts): 'squeezenet1.1' or 'squeezenet1_1', 'mobilenetv2_1.0',
-- 'mobilenet_v2_1_0' or 'mobilenet_v2_1.0', 'resnet18_v2', ... (any case).
function M.get_model(name, opts)
  if type(name) ~= 'string' then
    error("get_model: name must be a string, got " .. type(name), 2)
  end
  -- also 'mobilenet_v2_1.0' (the issue tracker's spelling): a dot may stand for the underscore
  local f = models[name:lower()] or models[name:lower():gsub('%.', '_')]
  if f == nil then
    error(string.format("get_model: model '%s' is not supported; available: %s", name,
                        table.concat(M.list_models(), ', ')), 2)
  end
  return f(opts)
end

return M
