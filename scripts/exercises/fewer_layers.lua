--[[
fewer_layers.lua: how much of the pretrained net is worth keeping? Reuse only the stem and
the first k of a ResNet's four stages, re-initialize the later stages and the final
BatchNorm (Xavier, BN to its defaults), and fine-tune; k = 4 is the chapter's fine-tuning,
k = 0 keeps only the stem. ResNets only (their features are: data BN, conv, BN, ReLU, pool,
stages "5" to "8", BN, ReLU, pool, flatten).
  trl scripts/exercises/fewer_layers.lua --stages 0,2,4 --data hotdog.zip --limit 100
]]
local trl = require 'trl'
local nd = trl.nd
local common = require 'trl.finetune_common'

local p = common.parser('fewer_layers.lua', 'reuse only the first k stages of a ResNet')
p:option('--lr', 'learning rate', '0.01'):convert(tonumber)
p:option('--stages', 'comma-separated values of k (0-4)', '0,2,4')
local args = common.parse(p)
if not args.model:match('^resnet') then p:error('fewer_layers works with ResNets only') end
local ks = {}
for k in args.stages:gmatch('[^,%s]+') do
  local n = math.tointeger(tonumber(k))
  if n == nil or n < 0 or n > 4 then p:error('--stages takes integers 0 to 4, got ' .. k) end
  ks[#ks + 1] = n
end
local inputs = common.check_inputs(args, {weights = true})
local train_imgs, test_imgs = common.datasets(inputs.data, args)

local results = {}
for _, k in ipairs(ks) do
  local pretrained = common.pretrained(args, inputs.weights)
  nd.random.seed(args.seed)
  local net = common.finetune_net(args, pretrained)
  -- stages k+1..4 are children "5"+k .. "8"; "9" is the final BatchNorm
  for child = 5 + k, 9 do
    net.features[child + 1]:collect_params():initialize(trl.init.Xavier(), {force_reinit = true})
  end
  local name = string.format('first %d stage%s pretrained', k, k == 1 and '' or 's')
  local history = common.train(net, args.lr, args, train_imgs, test_imgs, {label = name})
  results[#results + 1] = {name, history}
end
common.report(results, args)
