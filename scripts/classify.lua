--[[
classify.lua: ImageNet top-k of images with a Gluon model-zoo network, using Gluon's test
preprocessing (Resize(256) squash, CenterCrop(224), ToTensor, Normalize with ImageNet
mean/std) and a softmax over the logits. Prints, per image, '== path' and then k lines
'class_id probability name' (class ids 0-based, ILSVRC-2012 order).
  trl scripts/classify.lua --model squeezenet1.1 --weights squeezenet1.1.params img.jpg ...
Without --weights the model store is used ($TRL_HOME/models, downloading when absent).
]]
local argparse = require 'argparse'
local trl = require 'trl'
local image = require 'trl._image'
local nn_ops = require 'trl._nn'
local zoo = require 'trl.gluon.model_zoo'
local T = require 'trl.gluon.data.vision.transforms'

local script_dir = (arg and arg[0] or ''):match('^(.*)/[^/]*$') or '.'

-- The labels file: $TRL_SHARED/models, else <repo>/../shared/models, when present.
local function default_labels()
  local cands = {}
  local shared = os.getenv('TRL_SHARED')
  if shared and shared ~= '' then cands[#cands + 1] = shared .. '/models/imagenet_labels.txt' end
  cands[#cands + 1] = script_dir .. '/../../shared/models/imagenet_labels.txt'
  for _, p in ipairs(cands) do
    local f = io.open(p)
    if f then f:close() return p end
  end
end

local parser = argparse('classify.lua', 'Top-k ImageNet classes of images with a model-zoo net.')
parser:option('--model', "Model name, e.g. squeezenet1.1 (or squeezenet1_1), resnet18_v2, "
  .. "mobilenetv2_1.0.", 'squeezenet1.1')
parser:option('--weights', 'A weight file (.params, .safetensors, .pth); default: the model store.')
parser:option('--labels', "Labels file, one 'wnid name' line per class.")
parser:option('--topk', 'How many classes to print per image.', '5'):convert(tonumber)
parser:argument('images', 'JPEG or PNG files.'):args('+')
local args = parser:parse()

local labels = {}
local labels_path = args.labels or default_labels()
if labels_path then
  local f, err = io.open(labels_path)
  if not f then
    io.stderr:write('classify.lua: ' .. err .. '\n')
    os.exit(1)
  end
  for line in f:lines() do
    labels[#labels + 1] = line:match('^n%d+%s+(.*)$') or line
  end
  f:close()
end

local ok, net = pcall(zoo.vision.get_model, args.model,
                      {pretrained = args.weights or true})
if not ok then
  io.stderr:write('classify.lua: ' .. tostring(net) .. '\n')
  os.exit(1)
end

-- Inference only: fused conv/BatchNorm/ReLU and weights kept prepacked between images
-- (README: hybridize), which at one image a call is most of the speed.
net:hybridize()

local transform = T.Compose{
  T.Resize(256), T.CenterCrop(224), T.ToTensor(),
  T.Normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}),
}

local failed = false
for _, path in ipairs(args.images) do
  local img, err = image.read(path, 1)
  if not img then
    io.stderr:write('classify.lua: ' .. tostring(err) .. '\n')
    failed = true
  else
    local x = transform(img):unsqueeze(1)
    local prob = nn_ops.softmax(net(x)):totable()[1]
    local order = {}
    for i = 1, #prob do order[i] = i end
    table.sort(order, function(a, b)
      if prob[a] ~= prob[b] then return prob[a] > prob[b] end
      return a < b
    end)
    print('== ' .. path)
    for r = 1, math.min(args.topk, #order) do
      local i = order[r]
      print(string.format('%d %.4f %s', i - 1, prob[i], labels[i] or ''))
    end
  end
end
io.stdout:flush()
if failed then os.exit(1) end
