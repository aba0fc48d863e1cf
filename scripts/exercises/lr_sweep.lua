--[[
lr_sweep.lua: exercise 1 of d2l's fine-tuning chapter: keep increasing the learning rate of
the fine-tuned net. What happens to the accuracy? Runs the chapter's fine-tuning once per
learning rate (default 0.001, 0.01 and 0.1) from the same pretrained weights and seed.
]]
local trl = require 'trl'
local nd = trl.nd
local common = require 'trl.finetune_common'

local p = common.parser('lr_sweep.lua', 'fine-tuning learning rate 0.001 vs 0.01 vs 0.1')
p:option('--lrs', 'comma-separated learning rates', '0.001,0.01,0.1')
p:option('--output-lr-mult', 'lr_mult of the new output layer', '1'):convert(tonumber)
local args = common.parse(p)
local lrs = {}
for s in args.lrs:gmatch('[^,%s]+') do
  local lr = tonumber(s)
  if lr == nil or lr <= 0 then p:error('--lrs takes positive numbers, got ' .. s) end
  lrs[#lrs + 1] = lr
end
local inputs = common.check_inputs(args, {weights = true})
local train_imgs, test_imgs = common.datasets(inputs.data, args)

local results = {}
for _, lr in ipairs(lrs) do
  local pretrained = common.pretrained(args, inputs.weights)
  nd.random.seed(args.seed)
  local net = common.finetune_net(args, pretrained, {lr_mult = args.output_lr_mult})
  local name = string.format('lr %g', lr)
  local history = common.train(net, lr, args, train_imgs, test_imgs, {label = name})
  results[#results + 1] = {name, history}
end
common.report(results, args)
