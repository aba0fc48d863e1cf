--[[
fewer_layers.lua: how much of the pretrained net is worth keeping? Reuse only the stem and
the first k stages of the features, re-initialize the later stages and what follows them
(Xavier; BatchNorm back to its defaults), and fine-tune. k = all stages is the chapter's
fine-tuning; k = 0 keeps only the stem.
Stages: a ResNet's four 'stage<i>_' blocks; MobileNetV2's bottlenecks grouped by output
resolution (112, 56, 28, 14, 7 pixels for a 224 input: 1, 2, 3, 7 and 4 blocks), a stage
starting at each stride-2 block.
  trl scripts/exercises/fewer_layers.lua --stages 0,2,4 --data hotdog.zip --limit 100
  trl scripts/exercises/fewer_layers.lua --model mobilenet_v2_1.0 --stages 0,3 \
      --weights ../shared/models/mobilenetv2_1.0-features.params --data hotdog.zip
]]
local trl = require 'trl'
local nd = trl.nd
local common = require 'trl.finetune_common'

local p = common.parser('fewer_layers.lua', 'reuse only the first k stages of the features')
p:option('--lr', 'learning rate', '0.01'):convert(tonumber)
p:option('--stages', 'comma-separated values of k (default: 0, half of the stages, all)')
local args = common.parse(p)

local layout = common.stages(common.new_net(args, 'probe_').features)
if not layout then
  p:error(args.model .. ': fewer_layers knows the stages of ResNets and MobileNetV2 only')
end
local ks = {}
for k in (args.stages or string.format('0,%d,%d', #layout // 2, #layout)):gmatch('[^,%s]+') do
  local n = math.tointeger(tonumber(k))
  if n == nil or n < 0 or n > #layout then
    p:error(string.format('--stages takes integers 0 to %d for %s, got %s', #layout,
                          args.model, k))
  end
  ks[#ks + 1] = n
end
local inputs = common.check_inputs(args, {weights = true})
local train_imgs, test_imgs = common.datasets(inputs.data, args)

local results = {}
for _, k in ipairs(ks) do
  local pretrained = common.pretrained(args, inputs.weights)
  nd.random.seed(args.seed)
  local net = common.finetune_net(args, pretrained)
  common.reinit_stages(net.features, k)
  local name = string.format('first %d of %d stages pretrained', k, #layout)
  local history = common.train(net, args.lr, args, train_imgs, test_imgs, {label = name})
  results[#results + 1] = {name, history}
end
common.report(results, args)
