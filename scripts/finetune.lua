--[[
finetune.lua: d2l's "Fine-Tuning" notebook (chapter computer-vision, MXNet Gluon), cell by
cell: fine-tune an ImageNet ResNet-18 to tell hot dogs from other food, and compare it with
the same net trained from scratch. Run `trl scripts/finetune.lua --help` for the flags; the
defaults are the notebook's (resnet18_v2 pretrained, batch 128, 5 epochs, wd 0.001).
  trl scripts/finetune.lua --data /path/to/hotdog.zip --limit 50 --epochs 2   # a quick run
]]
local trl = require 'trl'
local gluon, nd, init = trl.gluon, trl.nd, trl.init
local common = require 'trl.finetune_common'

local p = common.parser('finetune.lua', "d2l's fine-tuning chapter: hot dog or not?")
p:option('--lr', 'learning rate of the fine-tuned net', '0.01'):convert(tonumber)
p:option('--scratch-lr', 'learning rate of the net trained from scratch', '0.1')
  :convert(tonumber)
p:option('--output-lr-mult', "lr_mult of the new output layer (the 2019 edition uses 10)", '1')
  :convert(tonumber)
p:option('--nets', 'which nets to train: finetune, scratch or both', 'finetune,scratch')
p:option('--save', 'save a checkpoint of each net after every epoch in DIR/<net>/')
p:option('--resume', 'continue the runs checkpointed in DIR/<net>/ (same flags and seed)')
p:option('--show', 'where to write the grid of sample images (PNG); "none" skips it',
         'hotdog_samples.png')
local args = common.parse(p)

-- Before anything slow: are the data and (when fine-tuning) the pretrained weights here?
-- Offline, this stops at once and says which file to put where.
local inputs = common.check_inputs(args, {weights = args.nets.finetune})
nd.random.seed(args.seed)
trl.data.seed(args.seed)

--[[ {==================================================================
** Getting the data set
** =================================================================== ]]

-- The hot dog data set: 1400 images with hot dogs and 1400 of other food, 1000 of each for
-- training. d2l downloads hotdog.zip into its data folder and extracts it there;
-- check_inputs did exactly that (or used --data). Inside are train/ and test/, each with a
-- hotdog/ and a not-hotdog/ folder; the sorted folder names make label 0 = hotdog.
local data_dir = inputs.data
local train_imgs, test_imgs = common.datasets(data_dir, args)
print(string.format('%s: %d training and %d test images, classes %s', data_dir, #train_imgs,
                    #test_imgs, table.concat(train_imgs.synsets, ', ')))

-- The first 8 hot dogs and the last 8 not-hot-dogs: their sizes and aspect ratios vary.
if args.show ~= 'none' then
  local hotdogs, not_hotdogs = {}, {}
  for i = 1, 8 do hotdogs[i] = train_imgs[i][1] end
  for i = 1, 8 do not_hotdogs[i] = train_imgs[#train_imgs - i + 1][1] end
  for i = 1, 8 do hotdogs[8 + i] = not_hotdogs[i] end
  trl.show.show_images(hotdogs, 2, 8, {scale = 1.4, path = args.show})
end

-- Training: a random crop of random area and aspect ratio, resized to 224 x 224, and a
-- random horizontal flip. Testing: resize to 256 x 256 and take the central 224 x 224. Both
-- normalize each RGB channel with the ImageNet mean and standard deviation, as the
-- pretrained model saw its inputs. (--image-size changes 224 and scales 256 with it.)
local T = gluon.data.vision.transforms
local normalize = T.Normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225})
local size = args.image_size
local train_augs = T.Compose{T.RandomResizedCrop(size), T.RandomFlipLeftRight(), T.ToTensor(),
                             normalize}
local test_augs = T.Compose{T.Resize(math.floor(size * 256 / 224 + 0.5)), T.CenterCrop(size),
                            T.ToTensor(), normalize}

--[[ }================================================================== ]]

--[[ {==================================================================
** Defining and initializing the models
** =================================================================== ]]

local finetune_net
if args.nets.finetune then
  -- A ResNet-18 pretrained on ImageNet. Its 'features' are every layer up to the global
  -- average pool; its 'output' is the 1000-class Dense layer.
  local pretrained_net = common.pretrained(args, inputs.weights, {prefix = 'pretrained_'})
  print(pretrained_net.output)

  -- The net to fine-tune: the same architecture with 2 outputs. Its features are the
  -- pretrained ones (the same Parameters, not a copy); its new output layer starts from
  -- Xavier. The output may learn faster than the features (--output-lr-mult; the 2019
  -- edition used 10 with learning rate 0.01).
  nd.random.seed(args.seed)
  finetune_net = common.new_net(args, 'finetune_')     -- model_zoo ... {classes = 2}
  finetune_net.features = pretrained_net.features
  finetune_net.output:initialize(init.Xavier())
  if args.output_lr_mult ~= 1 then
    finetune_net.output:collect_params():setattr('lr_mult', args.output_lr_mult)
  end
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Fine-tuning the model
** =================================================================== ]]

local histories = {}

-- d2l's train_fine_tuning(net, learning_rate, batch_size=128, num_epochs=5): DataLoaders
-- with the augmentations above, SoftmaxCrossEntropyLoss, SGD with weight decay 0.001 on every
-- parameter, and d2l's training loop (one line per epoch).
local function train_fine_tuning(name, net, learning_rate)
  print(string.format('== %s: %s, learning rate %g, batch %d, %d epochs', name, args.model,
                      learning_rate, args.batch_size, args.epochs))
  net:hybridize()   -- as d2l does; in trl it fuses Conv-BN-ReLU when measuring test accuracy
  local history, status = common.train(net, learning_rate, args, train_imgs, test_imgs, {
    label = name,
    save = args.save and args.save .. '/' .. name,
    resume = args.resume and args.resume .. '/' .. name,
    augs = {train_augs, test_augs},
  })
  histories[#histories + 1] = {name, history}
  if status == 'interrupted' then os.exit(130) end
  return history
end

-- The pretrained features need only small changes: a small learning rate.
if finetune_net then train_fine_tuning('finetune', finetune_net, args.lr) end

-- For comparison: the same net, every parameter Xavier-initialized, trained from scratch
-- with a 10 times larger learning rate. It ends well below the fine-tuned net.
if args.nets.scratch then
  nd.random.seed(args.seed + 1)
  local scratch_net = common.new_net(args, 'scratch_')
  scratch_net:initialize(init.Xavier())
  train_fine_tuning('scratch', scratch_net, args.scratch_lr)
end

--[[ }================================================================== ]]

if args.plot and #histories > 0 then
  local plot = require 'trl.plot'
  if #histories == 1 then
    plot.curves(histories[1][2], args.plot, {title = histories[1][1] .. ' ' .. args.model})
  else
    plot.compare(histories, args.plot, {key = 'test_acc', title = 'test accuracy, '
      .. args.model})
  end
  print('plot: ' .. args.plot)
end
