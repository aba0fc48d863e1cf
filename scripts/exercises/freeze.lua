--[[
freeze.lua: exercise 3 of d2l's fine-tuning chapter: keep the pretrained features fixed and
train only the new output, against fine-tuning everything. Freezing has a trap: Gluon's
`net.features:collect_params():setattr('grad_req', 'null')` fixes the weights, but every
BatchNorm in the features still normalizes with the batch's statistics while training and
keeps moving its running mean and variance toward the new data. trl.freeze(block,
{bn = 'frozen'}) also fixes those (use_global_stats); {bn = 'train'} is Gluon's behaviour.
Three runs: full fine-tuning, frozen with bn='frozen', frozen with bn='train'; --runs picks
some of them (full, frozen, train), e.g. to skip the full run you already have from finetune.lua
with the same seed.
]]
local trl = require 'trl'
local nd = trl.nd
local common = require 'trl.finetune_common'
local freeze = require 'trl.freeze'

local p = common.parser('freeze.lua', 'frozen features (both BatchNorm policies) vs full '
                        .. 'fine-tuning')
p:option('--lr', 'learning rate', '0.01'):convert(tonumber)
p:option('--runs', "comma-separated runs: full, frozen (bn='frozen'), train (bn='train')",
         'full,frozen,train')
local args = common.parse(p)
local RUNS = {full = 'full fine-tuning', frozen = "frozen, bn='frozen'",
              train = "frozen, bn='train'"}
local runs = {}
for r in args.runs:gmatch('[^,%s]+') do
  if not RUNS[r] then p:error('--runs takes full, frozen and train, got ' .. r) end
  runs[#runs + 1] = RUNS[r]
end
local inputs = common.check_inputs(args, {weights = true})
local train_imgs, test_imgs = common.datasets(inputs.data, args)

local results = {}
for _, how in ipairs(runs) do
  local pretrained = common.pretrained(args, inputs.weights)
  nd.random.seed(args.seed)
  local net = common.finetune_net(args, pretrained)
  local bn = how:match("bn='(%a+)'")
  if bn then freeze(net.features, {bn = bn}) end
  local history = common.train(net, args.lr, args, train_imgs, test_imgs, {label = how})
  results[#results + 1] = {how, history}
end
common.report(results, args)
