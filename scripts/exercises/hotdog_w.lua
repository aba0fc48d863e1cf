--[[
hotdog_w.lua: exercise 4 of d2l's fine-tuning chapter. The ImageNet classifier already has a
"hot dog" class: start the new 2-class output from that class's weights instead of Xavier
and compare the first epoch. Row 934 of the 1000-class output is "hotdog, hot dog, red hot"
(ILSVRC-2012 order, n07697537); the notebook's 713 is "photocopier". The new output's row 0 is
our class 0, hotdog; the not-hotdog row (1) stays Xavier.
  trl scripts/exercises/hotdog_w.lua --model squeezenet1.1 \
      --weights ../shared/models/squeezenet1.1.params --data hotdog.zip --limit 100
Works with resnet18_v2 (Dense output, weight (1000,512)) and squeezenet1.1 (a 1x1 conv,
weight (1000,512,1,1)) when their weights exist.
]]
local trl = require 'trl'
local nd = trl.nd
local common = require 'trl.finetune_common'

local HOTDOG = 934            -- 0-based ImageNet class id

local p = common.parser('hotdog_w.lua', 'initialize the output from the ImageNet hot-dog row',
                        {model = 'squeezenet1.1', epochs = 1})
p:option('--lr', 'learning rate', '0.01'):convert(tonumber)
local args = common.parse(p)
local inputs = common.check_inputs(args, {weights = true})
local train_imgs, test_imgs = common.datasets(inputs.data, args)

-- The output layer's weight (and bias) Parameters: the ones whose first dim is the class count.
local function output_params(net, classes)
  local w, b
  for name, prm in net.output:collect_params():items() do
    if prm.shape[1] == classes then
      if name:match('weight$') then w = prm elseif name:match('bias$') then b = prm end
    end
  end
  if not w then
    error(string.format('hotdog_w: %s has no output weight with %d rows', args.model, classes), 0)
  end
  return w, b
end

local results = {}
for _, init_row in ipairs{true, false} do
  -- each run gets its own copy of the pretrained net: fine-tuning changes its features
  local pretrained = common.pretrained(args, inputs.weights)
  local w1000, b1000 = output_params(pretrained, 1000)
  nd.random.seed(args.seed)
  local net = common.finetune_net(args, pretrained)
  local name = 'Xavier output'
  if init_row then
    local w2, b2 = output_params(net, 2)
    -- a layer made without in_channels knows its input size only after a forward: take it
    -- from the ImageNet layer, whose input is the same features
    local shape = {2, table.unpack(w1000.shape, 2)}
    w2:_set_shape(shape)
    w2:data():select(1, 1):set(w1000:data():select(1, HOTDOG + 1))   -- Lua rows are 1-based
    if b2 and b1000 then b2:data():select(1, 1):set(b1000:data():select(1, HOTDOG + 1)) end
    name = 'hot-dog row ' .. HOTDOG .. ' output'
  end
  local history = common.train(net, args.lr, args, train_imgs, test_imgs, {label = name})
  results[#results + 1] = {name, history}
end
common.report(results, args)
