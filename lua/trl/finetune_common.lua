--[[
trl.finetune_common: what scripts/finetune.lua and scripts/exercises/*.lua share: their
command-line flags (lua-argparse), finding the hot-dog data and the pretrained weights
BEFORE anything slow (with a message that says which file to put where), the datasets with
the chapter's transforms, the nets (pretrained, fine-tune, scratch) and one training run.
Not here: the training loop itself (trl.utils) and the tutorial text (scripts/finetune.lua).
]]
local argparse = require 'argparse'
local cio = require 'trl._io'
local trl = require 'trl'

local M = {}

M.HOTDOG_URL = 'https://apache-mxnet.s3-accelerate.amazonaws.com/gluon/dataset/hotdog.zip'
M.HOTDOG_SHA1 = 'fba480ffa8aa7e0febbb511d181409f899b9baa5'
M.MEAN, M.STD = {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}

--[[ {==================================================================
** Flags
** =================================================================== ]]

local function positive(name)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if n == nil or n < 1 then return nil, name .. ' must be a positive integer, got ' .. s end
    return n
  end
end

local function number(s)
  local n = tonumber(s)
  if n == nil then return nil, 'expected a number, got ' .. s end
  return n
end

--[[
parser(name, description, defaults) -> an argparse parser with the shared flags; 'defaults'
overrides their defaults (e.g. {epochs = 2}). Scripts add their own flags, then call parse.
]]
function M.parser(name, description, defaults)
  defaults = defaults or {}
  local p = argparse(name, description)
  p:option('--data', 'hotdog data: an extracted folder or a zip (default: download d2l\'s '
    .. 'hotdog.zip into $TRL_HOME/data)')
  p:option('--model', 'model zoo network', defaults.model or 'resnet18_v2')
  p:option('--weights', 'pretrained weights file (default: the model zoo\'s, from '
    .. '$TRL_HOME/models or downloaded)')
  p:option('--epochs', 'epochs per run', tostring(defaults.epochs or 5))
    :convert(positive('--epochs'))
  p:option('--batch-size', 'batch size', tostring(defaults.batch_size or 128))
    :convert(positive('--batch-size'))
  p:option('--workers', 'DataLoader worker threads', '2'):convert(function(s)
    local n = math.tointeger(tonumber(s))
    if n == nil or n < 0 then return nil, '--workers must be an integer >= 0, got ' .. s end
    return n
  end)
  p:option('--seed', 'random seed (weights init, data order and augmentation)', '1')
    :convert(math.tointeger)
  p:option('--limit', 'use only the first N images per class in each split (quick runs)')
    :convert(positive('--limit'))
  p:option('--image-size', 'training crop size (test: resize to size*256/224, center crop)',
           tostring(defaults.image_size or 224)):convert(positive('--image-size'))
  p:option('--wd', 'weight decay', '0.001'):convert(number)
  p:option('--json', 'append one JSON line per epoch to this file')
  p:option('--plot', 'write the training curves (PNG) to this file')
  return p
end

-- The canonical model-store name of a --model value: 'mobilenet_v2_1_0' -> 'mobilenetv2_1.0'.
function M.store_name(model)
  local n = model:lower():gsub('^mobilenet_v2_', 'mobilenetv2_')
  if n:match('^squeezenet') or n:match('^mobilenet') then
    n = n:gsub('(%d)_(%d+)$', '%1.%2')
  end
  return n
end

-- Parse the command line; normalises args.model and args.nets (a set) when present.
function M.parse(p, argv)
  local args = p:parse(argv)
  args.model = M.store_name(args.model)
  if args.nets then
    local set = {}
    for n in args.nets:gmatch('[^,%s]+') do
      if n ~= 'finetune' and n ~= 'scratch' then
        p:error("--nets takes 'finetune', 'scratch' or both, got '" .. n .. "'")
      end
      set[n] = true
    end
    args.nets = set
  end
  return args
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Inputs: data and weights, checked before anything slow
** =================================================================== ]]

function M.home()
  local h = os.getenv('TRL_HOME')
  if h == nil or h == '' then h = (os.getenv('HOME') or '.') .. '/.trl' end
  return h
end

-- 'path' with $HOME shown as '~'.
local function shown(path)
  local home = os.getenv('HOME')
  if home and home ~= '' and path:sub(1, #home + 1) == home .. '/' then
    return '~' .. path:sub(#home + 1)
  end
  return path
end

local function isdir(p) return cio.filetype(p) == 'directory' end

-- The folder holding train/ and test/: 'dir' itself or dir/hotdog.
local function split_root(dir)
  dir = dir:gsub('(.)/+$', '%1')
  if isdir(dir .. '/train') and isdir(dir .. '/test') then return dir end
  if isdir(dir .. '/hotdog/train') and isdir(dir .. '/hotdog/test') then return dir .. '/hotdog' end
  return nil
end

-- Extract 'zip' into <dest>/<name>-<sha1[1:8]>/ (once: a folder with that name is reused),
-- through a temporary folder renamed into place. Returns the split root or nil, msg.
local function extract_zip(zip, dest)
  local sha = cio.sha1_file(zip)
  if not sha then return nil, 'cannot read ' .. zip end
  local stem = zip:match('([^/]+)$'):gsub('%.zip$', '')
  local final = dest .. '/' .. stem .. '-' .. sha:sub(1, 8)
  local root = split_root(final)
  if root then return root end
  local ok, err = cio.makedirs(dest)
  if not ok then return nil, err end
  local tmp = string.format('%s/.%s.tmp%d', dest, stem, math.random(0, 999999))
  ok, err = cio.makedirs(tmp)
  if ok then ok, err = cio.extract(zip, tmp) end
  if ok then ok, err = os.rename(tmp, final) end
  if not ok then
    os.execute("rm -rf '" .. tmp:gsub("'", "'\\''") .. "'")
    return nil, tostring(err)
  end
  root = split_root(final)
  if not root then return nil, zip .. ' holds no hotdog/train and hotdog/test folders' end
  return root
end

--[[
data_root(args) -> the folder with train/ and test/, or nil, message. d2l's first cell:
download hotdog.zip (sha1-checked) into the data folder and extract it there. --data may name
a local zip (any hotdog.zip with the same layout: its sha1 is not checked) or a folder.
]]
function M.data_root(args)
  local dest = M.home() .. '/data'
  if args.data then
    local ft = cio.filetype(args.data)
    if ft == 'directory' then
      local root = split_root(args.data)
      if root then return root end
      return nil, string.format('data not usable: %s has neither train/ and test/ nor '
        .. 'hotdog/train and hotdog/test folders', args.data)
    elseif ft == 'file' then
      local root, err = extract_zip(args.data, dest)
      if root then return root end
      return nil, string.format('data not usable: cannot extract %s into %s: %s', args.data,
                                shown(dest), err)
    end
    return nil, string.format('data not found: %s does not exist; put hotdog.zip (or its '
      .. 'extracted hotdog/ folder) there, or pass --data DIR|ZIP', args.data)
  end
  local zip = dest .. '/hotdog.zip'
  if cio.filetype(zip) ~= 'file' then
    local ok, err = pcall(trl.gluon.utils.download, M.HOTDOG_URL,
                          {path = zip, sha1_hash = M.HOTDOG_SHA1, retries = 1})
    if not ok then
      return nil, string.format('hotdog data not found: put hotdog.zip (%s, sha1 %s) in %s/ '
        .. '(or pass --data DIR|ZIP)\n  (download failed: %s)', M.HOTDOG_URL, M.HOTDOG_SHA1,
        shown(dest), tostring(err):gsub('; place the file by hand.*$', ''):gsub('^.-: ', '', 1))
    end
  end
  local root, err = extract_zip(zip, dest)
  if root then return root end
  return nil, string.format('data not usable: cannot extract %s: %s', shown(zip), err)
end

--[[
weights_file(args) -> the pretrained weights' path, or nil, message: --weights, else the
model store's cache ($TRL_HOME/models/<name>-<hash8>.params), downloaded when missing.
]]
function M.weights_file(args)
  if args.weights then
    if cio.filetype(args.weights) == 'file' then return args.weights end
    return nil, string.format('pretrained weights not found: %s does not exist (--weights)',
                              args.weights)
  end
  local store = trl.gluon.model_zoo.model_store
  local name = args.model
  if store._model_sha1[name] == nil then
    return nil, string.format('no pretrained weights are known for %s; pass --weights FILE',
                              name)
  end
  local ok, path = pcall(store.get_model_file, name, {quiet = true})
  if ok then return path end
  local why = tostring(path):match('download failed: ([^\n]-)%.?\n') or 'download failed'
  return nil, string.format('pretrained weights for %s not found: put %s-%s.params in %s/ '
    .. '(or pass --weights FILE)\n  (%s)', name, name, store.short_hash(name),
    shown(store.default_root()), why)
end

-- check_inputs(args, {weights = true}) -> {data = root, weights = path}; on any problem
-- prints every one of them and exits with status 1, before any net is built.
function M.check_inputs(args, need)
  need = need or {}
  local problems, r = {}, {}
  if need.weights then
    local w, msg = M.weights_file(args)
    if w then r.weights = w else problems[#problems + 1] = msg end
  end
  local d, msg = M.data_root(args)
  if d then r.data = d else problems[#problems + 1] = msg end
  if #problems > 0 then
    io.stderr:write(table.concat(problems, '\n'), '\n')
    os.exit(1)
  end
  return r
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Datasets and transforms
** =================================================================== ]]

-- Keep the first 'n' images of each class (ImageFolderDataset items are sorted by class).
local function limit(ds, n)
  if not n then return ds end
  local kept, per = {}, {}
  for _, item in ipairs(ds.items) do
    local c = item[2]
    per[c] = (per[c] or 0) + 1
    if per[c] <= n then kept[#kept + 1] = item end
  end
  ds.items = kept
  return ds
end

-- datasets(root, args) -> train_imgs, test_imgs (ImageFolderDatasets, --limit applied).
function M.datasets(root, args)
  local vision = trl.gluon.data.vision
  return limit(vision.ImageFolderDataset(root .. '/train'), args.limit),
         limit(vision.ImageFolderDataset(root .. '/test'), args.limit)
end

-- The chapter's augmentations for a crop size (224: RandomResizedCrop(224) / Resize(256),
-- CenterCrop(224)); other sizes keep the 256/224 ratio.
function M.augs(size)
  local T = trl.gluon.data.vision.transforms
  local normalize = T.Normalize(M.MEAN, M.STD)
  local train = T.Compose{T.RandomResizedCrop(size), T.RandomFlipLeftRight(), T.ToTensor(),
                          normalize}
  local test = T.Compose{T.Resize(math.floor(size * 256 / 224 + 0.5)), T.CenterCrop(size),
                         T.ToTensor(), normalize}
  return train, test
end

-- loaders(train_imgs, test_imgs, args [, augs]) -> train_iter, test_iter (as d2l's
-- train_fine_tuning); augs = {train_augs, test_augs}, default M.augs(args.image_size).
function M.loaders(train_imgs, test_imgs, args, augs)
  local data = trl.gluon.data
  local train_augs, test_augs
  if augs then train_augs, test_augs = augs[1], augs[2]
  else train_augs, test_augs = M.augs(args.image_size) end
  local train_iter = data.DataLoader(train_imgs:transform_first(train_augs), args.batch_size,
    {shuffle = true, num_workers = args.workers, seed = args.seed})
  local test_iter = data.DataLoader(test_imgs:transform_first(test_augs), args.batch_size,
    {num_workers = args.workers})
  return train_iter, test_iter
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Nets
** =================================================================== ]]

-- pretrained(args, path) -> the zoo net with ImageNet weights. A file that holds only
-- 'features.*' (such as mobilenetv2_1.0-features.params) is loaded into net.features.
function M.pretrained(args, path, opts)
  local vision = trl.gluon.model_zoo.vision
  local _, names = require('trl._serial').load(path)
  local features_only = type(names) == 'table' and #names > 0
  for _, n in ipairs(type(names) == 'table' and names or {}) do
    if not n:match('^features%.') then features_only = false break end
  end
  local o = {prefix = opts and opts.prefix}
  if not features_only then
    o.pretrained = path
    return vision.get_model(args.model, o)
  end
  local net = vision.get_model(args.model, o)
  net.features:load_parameters(path, {name_map = function(n)
    return n:match('^features%.(.+)$') or false
  end})
  return net
end

-- A fresh 2-class net of the same architecture (explicit prefixes keep parameter names, and
-- so the checkpoints' trainer states, the same whichever nets a run builds).
function M.new_net(args, prefix)
  return trl.gluon.model_zoo.vision.get_model(args.model, {classes = 2, prefix = prefix})
end

-- finetune_net(args, pretrained_net, {lr_mult=1}): the pretrained features and a new,
-- Xavier-initialized 2-class output.
function M.finetune_net(args, pretrained_net, opts)
  local net = M.new_net(args, 'finetune_')
  net.features = pretrained_net.features
  net.output:initialize(trl.init.Xavier())
  local mult = opts and opts.lr_mult or 1
  if mult ~= 1 then net.output:collect_params():setattr('lr_mult', mult) end
  return net
end

--[[
stages(features) -> a list of stages, each a list of child positions in 'features', and the
position of the last stage's last child; nil for a net whose stages are not known. ResNet:
the four 'stage<i>_' blocks. MobileNetV2: the bottlenecks grouped by output resolution, a
stage starting at each stride-2 block (1, 2, 3, 7, 4 blocks).
]]
function M.stages(features)
  local list, last = {}, nil
  for i, c in ipairs(features:children()) do
    local b = c[2]
    if b.prefix:match('stage%d+_$') then
      list[#list + 1], last = {i}, i
    elseif b._class_name == 'LinearBottleneck' then
      if #list == 0 or b.stride ~= 1 then list[#list + 1] = {} end
      table.insert(list[#list], i)
      last = i
    end
  end
  if #list == 0 then return nil end
  return list, last
end

-- reinit_stages(features, k): Xavier (BatchNorm: its defaults) for stages k+1.. and, when
-- k is not all of them, for what follows the stages (ResNet v2's BN, MobileNetV2's conv+BN).
function M.reinit_stages(features, k)
  local layout, last = M.stages(features)
  local fresh = {}
  for s = k + 1, #layout do
    for _, i in ipairs(layout[s]) do fresh[#fresh + 1] = i end
  end
  if k < #layout then
    for i = last + 1, #features do fresh[#fresh + 1] = i end
  end
  for _, i in ipairs(fresh) do
    features[i]:collect_params():initialize(trl.init.Xavier(), {force_reinit = true})
  end
end

--[[ }================================================================== ]]

--[[ {==================================================================
** One training run
** =================================================================== ]]

--[[
train(net, lr, args, train_imgs, test_imgs, {label=, save=dir, resume=dir, params=, augs=}) ->
history, status: d2l's train_fine_tuning: DataLoaders, SoftmaxCrossEntropyLoss, SGD with
wd, utils.train. 'params' (default all of net's) are what the Trainer updates. With 'resume',
the run continues from that checkpoint (and keeps saving there unless 'save' says otherwise).
]]
function M.train(net, lr, args, train_imgs, test_imgs, o)
  o = o or {}
  local gluon, utils = trl.gluon, require 'trl.utils'
  local checkpoint = require 'trl.checkpoint'
  local train_iter, test_iter = M.loaders(train_imgs, test_imgs, args, o.augs)
  net:hybridize()   -- as d2l's train_fine_tuning (README: hybridize)
  local loss = gluon.loss.SoftmaxCrossEntropyLoss()
  local trainer = gluon.Trainer(o.params or net:collect_params(), 'sgd',
                                {learning_rate = lr, wd = args.wd})
  local opts = {json = args.json, label = o.label, checkpoint = o.save or o.resume}
  if o.resume and checkpoint.exists(o.resume) then
    local state, err = checkpoint.load(o.resume, {net = net, trainer = trainer})
    if not state then error(err, 0) end
    opts.resume = state
    if state.epoch >= args.epochs and not state.partial then
      print(string.format('%s: %s already holds %d epochs', o.label or 'run', o.resume,
                          state.epoch))
      return state.history, 'done'
    end
  end
  local history, status = utils.train(train_iter, test_iter, net, loss, trainer, 'cpu',
                                      args.epochs, opts)
  train_iter:close()
  test_iter:close()
  return history, status
end

--[[
report(results, args) prints one line per run (final loss and accuracies) and, with --plot,
draws the runs' test accuracy per epoch. results: a list of {name, history}.
]]
function M.report(results, args)
  print(string.format('\n%-32s %8s %10s %9s', 'run', 'loss', 'train acc', 'test acc'))
  for _, r in ipairs(results) do
    local h = r[2]
    local last = h[#h]
    if last then
      print(string.format('%-32s %8.4f %10.3f %9.3f', r[1], last.loss, last.train_acc,
                          last.test_acc))
    end
  end
  if args.plot then
    require('trl.plot').compare(results, args.plot, {key = 'test_acc',
      title = 'test accuracy, ' .. args.model})
    print('plot: ' .. args.plot)
  end
end

--[[ }================================================================== ]]

return M
