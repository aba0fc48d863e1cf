-- bench/dataloader.lua: images/s of the hotdog chapter's training pipeline (ImageFolderDataset,
-- RandomResizedCrop(224), RandomFlipLeftRight, ToTensor, Normalize; batch 128, shuffled) with
-- 0, 1 and 2 native workers. Extracts shared/data/hotdog.zip into a temporary directory first.
--   trl bench/dataloader.lua [ZIP] [BATCHES]
-- Targets: >= 200 img/s with 1 worker, >= 400 with 2.
local trl = require 'trl'
local data = require 'trl.gluon.data'
local vision = require 'trl.gluon.data.vision'
local T = vision.transforms

local zip = arg[1] or os.getenv('TRL_SHARED') and (os.getenv('TRL_SHARED') .. '/data/hotdog.zip')
            or '../shared/data/hotdog.zip'
local max_batches = tonumber(arg[2]) or math.huge   -- default: one whole epoch

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute('mkdir -p ' .. q(dir)), 'cannot create ' .. dir)
local ok = os.execute('unzip -q ' .. q(zip) .. ' -d ' .. q(dir))
if not ok then
  os.execute('rm -rf ' .. q(dir))
  error('cannot extract ' .. zip)
end

local train = vision.ImageFolderDataset(dir .. '/hotdog/train')
local aug = T.Compose{
  T.RandomResizedCrop(224), T.RandomFlipLeftRight(), T.ToTensor(),
  T.Normalize({ 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }) }
print(string.format('%d training images, batch 128, up to %s batches per run', #train,
                    tostring(max_batches)))
print(string.format('%-12s %10s %10s %12s', 'num_workers', 'batches', 'seconds', 'images/s'))

local results = {}
for _, workers in ipairs{ 0, 1, 2 } do
  local loader = data.DataLoader(train:transform_first(aug), 128,
                                 { shuffle = true, seed = 1, num_workers = workers })
  assert(loader._native, 'the native pipeline should take the built-in transforms')
  local n_img, n_batch = 0, 0
  local t0 = trl.clock()
  for x in loader:iter() do
    n_img, n_batch = n_img + x:shape()[1], n_batch + 1
    if n_batch == max_batches then break end
  end
  local dt = trl.clock() - t0
  results[workers] = n_img / dt
  print(string.format('%-12d %10d %10.2f %12.0f', workers, n_batch, dt, n_img / dt))
  loader:close()
end

os.execute('rm -rf ' .. q(dir))
local function verdict(w, target)
  return string.format('%d worker(s): %.0f img/s (target %d) %s', w, results[w], target,
                       results[w] >= target and 'ok' or 'BELOW TARGET')
end
print(verdict(1, 200))
print(verdict(2, 400))
