-- test_data.lua: gluon.data and its vision transforms: each transform's geometry and numbers,
-- RandomResizedCrop's ranges, ImageFolderDataset on a small tree, and the DataLoader (order,
-- shuffle, last_batch, 0 vs 2 workers bit for bit, the main-thread path, errors, threads).
local H = require 'helpers'
local test, checkerror, approx = H.test, H.checkerror, H.approx
local lfs = require 'lfs'
local trl = require 'trl'
local nd = trl.nd
local data = require 'trl.gluon.data'
local vision = require 'trl.gluon.data.vision'
local T = vision.transforms
local D = require 'trl._data'

-- A uint8 (h,w,3) image whose pixel (y,x,c) (1-based) is (y*31 + x*7 + c*3) % 256.
local function pattern(h, w)
  local t = {}
  for y = 1, h do
    local row = {}
    for x = 1, w do
      local v = y * 31 + x * 7
      row[x] = { (v + 3) % 256, (v + 6) % 256, (v + 9) % 256 }
    end
    t[y] = row
  end
  return nd.array(t)
end

local function u8(t) return t:astype('uint8') end

local function same(a, b)
  if table.concat(a:shape(), 'x') ~= table.concat(b:shape(), 'x') then return false end
  return (a:astype('float32') - b:astype('float32')):abs():max():asscalar() == 0
end

local function threads()
  local n = 0
  for name in lfs.dir('/proc/self/task') do
    if name:sub(1, 1) ~= '.' then n = n + 1 end
  end
  return n
end

--[[{==================================================================
  Transforms
==================================================================]]

test('ToTensor and Normalize by hand', function()
  local img = u8(nd.array{ { { 0, 51, 255 }, { 102, 0, 10 } } })        -- (1,2,3)
  local x = T.ToTensor()(img)
  assert(x:dtype() == 'float32')
  approx(x:shape(), { 3, 1, 2 })
  approx(x:totable(), { { { 0, 0.4 } }, { { 0.2, 0 } }, { { 1, 10 / 255 } } }, 1e-6)
  local n = T.Normalize({ 0.5, 0.5, 0.5 }, { 0.5, 0.25, 1 })(x)
  approx(n:totable(), { { { -1, -0.2 } }, { { -1.2, -2 } }, { { 0.5, 10 / 255 - 0.5 } } }, 1e-6)
  local fused = T.Compose{ T.ToTensor(), T.Normalize({ 0.5, 0.5, 0.5 }, { 0.5, 0.25, 1 }) }(img)
  assert(same(fused, n), 'fused ToTensor+Normalize equals the two steps')
  -- Normalize also takes a batch (N,C,H,W), and one value for every channel
  local b = T.Normalize(0.5, 2)(nd.stack({ x, x }, 1))
  approx(b:shape(), { 2, 3, 1, 2 })
  approx(b:totable()[2][3][1][1], (1 - 0.5) / 2, 1e-6)
  checkerror('Normalize: expects', T.Normalize(0.5, 1), img)
  checkerror('std[2] is 0', T.Normalize, { 0, 0 }, { 1, 0 })
  checkerror('mean has 2 values and std 3', T.Normalize, { 0, 0 }, { 1, 1, 1 })
end)

test('Resize and CenterCrop geometry', function()
  local img = u8(pattern(10, 8))
  approx(T.Resize(5)(img):shape(), { 5, 5, 3 })
  approx(T.Resize{ 6, 4 }(img):shape(), { 4, 6, 3 })                   -- (width, height)
  approx(T.Resize(4, { keep_ratio = true })(img):shape(), { 5, 4, 3 })  -- short side 4
  assert(same(T.Resize{ 8, 10 }(img), img), 'resize to the same size is exact')
  -- central 4x4 of 10x8: rows 4..7, columns 3..6
  local c = T.CenterCrop(4)(img)
  assert(same(c, img:slice(1, 4, 7):slice(2, 3, 6)), 'center crop window')
  approx(T.CenterCrop{ 6, 2 }(img):shape(), { 2, 6, 3 })
  -- a smaller image is cropped to the size's shape, then resized up
  approx(T.CenterCrop(12)(img):shape(), { 12, 12, 3 })
  -- bilinear, half-pixel centres: a 2-pixel row to 4 is 0, 64, 191, 255
  local row = T.Resize{ 4, 1 }(u8(nd.array{ { { 0 }, { 255 } } }))
  approx(row:reshape{ 4 }:totable(), { 0, 64, 191, 255 })
  checkerror('Resize: size must be a positive integer', T.Resize, 0)
  checkerror('only interpolation=1', T.Resize, 4, { interpolation = 2 })
  checkerror("unknown option 'keepratio'", T.Resize, 4, { keepratio = true })
  checkerror('expects a uint8 (H,W,C) image', T.Resize(3), nd.zeros({ 4, 4 }, 'uint8'))
  assert(tostring(T.Resize(4)) == 'Resize(size=(4, 4))')
end)

test('flips are exact and random ones fair', function()
  local img = u8(pattern(3, 5))
  local lr = T.Compose{ T.RandomFlipLeftRight() }
  local t = img:totable()
  local want = {}
  for y = 1, 3 do want[y] = {}; for x = 1, 5 do want[y][x] = t[y][6 - x] end end
  local flipped = u8(nd.array(want))
  data.seed(11)
  local n_flip = 0
  for _ = 1, 200 do
    local out = lr(img)
    if same(out, flipped) then n_flip = n_flip + 1 else assert(same(out, img)) end
  end
  assert(n_flip > 70 and n_flip < 130, 'p = 0.5, got ' .. n_flip .. '/200')
  local tb = T.RandomFlipTopBottom()
  local upside = u8(nd.array{ t[3], t[2], t[1] })
  local seen = {}
  for _ = 1, 40 do
    local out = tb(img)
    seen[same(out, upside) and 'flip' or same(out, img) and 'keep' or 'other'] = true
  end
  assert(seen.flip and seen.keep and not seen.other)
  assert(same(img, u8(pattern(3, 5))), 'the input is not modified')
end)

test('RandomResizedCrop: area and ratio in range, output size', function()
  data.seed(3)
  local fell = 0
  for i = 1, 3000 do
    local w, h = 60 + i % 250, 50 + (i * 13) % 270
    local x0, y0, cw, ch, fitted = D.rrc_box(w, h, 224, 224, 0.08, 1, 3 / 4, 4 / 3)
    assert(x0 >= 0 and y0 >= 0 and x0 + cw <= w and y0 + ch <= h)
    if fitted then
      -- rounding moves each side by at most 1/2
      local hi = (cw + 0.5) * (ch + 0.5) / (w * h)
      local lo = (cw - 0.5) * (ch - 0.5) / (w * h)
      assert(hi >= 0.08 and lo <= 1, 'area fraction out of range')
      assert((cw + 0.5) / (ch - 0.5) >= 3 / 4 and (cw - 0.5) / (ch + 0.5) <= 4 / 3,
             'ratio out of range: ' .. cw .. 'x' .. ch)
    else
      fell = fell + 1
      assert(cw == ch and cw == math.min(w, h), 'fallback is the central square')
    end
  end
  assert(fell < 100, 'fallbacks: ' .. fell)   -- only very elongated images fall back
  local img = u8(pattern(40, 30))
  approx(T.RandomResizedCrop(16)(img):shape(), { 16, 16, 3 })
  approx(T.RandomResizedCrop{ 20, 12 }(img):shape(), { 12, 20, 3 })
  checkerror('scale must be {lo, hi}', T.RandomResizedCrop, 8, { scale = { 0.5, 0.1 } })
  assert(tostring(T.RandomResizedCrop(224)):find('scale=(0.08, 1)', 1, true))
end)

test('color jitters: statistics and fixed points', function()
  local flat = nd.full({ 6, 6, 3 }, 100, 'uint8')
  data.seed(9)
  local lo, hi = 255, 0
  for _ = 1, 100 do
    local v = T.RandomBrightness(0.5)(flat):astype('float32')
    assert(v:max():asscalar() == v:min():asscalar(), 'one factor per image')
    lo, hi = math.min(lo, v:min():asscalar()), math.max(hi, v:max():asscalar())
  end
  assert(lo >= 50 and hi <= 150 and lo < 65 and hi > 135, lo .. '..' .. hi)
  -- a flat gray image is a fixed point of contrast, saturation and hue (up to truncation)
  for _, t in ipairs{ T.RandomContrast(0.5), T.RandomSaturation(0.5), T.RandomHue(0.3) } do
    local v = t(flat):astype('float32')
    assert(v:min():asscalar() >= 99 and v:max():asscalar() <= 100, tostring(t))
  end
  -- lighting shifts each channel by one amount; jitter keeps the shape
  local l = T.RandomLighting(0.1)(flat):astype('float32')
  local ch = l:totable()[1][1]
  for _, px in ipairs(l:reshape{ 36, 3 }:totable()) do approx(px, ch) end
  local img = u8(pattern(7, 9))
  approx(T.RandomColorJitter(0.4, 0.4, 0.4, 0.1)(img):shape(), { 7, 9, 3 })
  approx(T.RandomColorJitter{ brightness = 0.2 }(img):shape(), { 7, 9, 3 })
  checkerror('RandomBrightness: brightness must be a non-negative number', T.RandomBrightness, -1)
  assert(T.Cast()(img):dtype() == 'float32')
end)

test('seeded transforms repeat; Compose mixes built-ins and functions', function()
  local img = u8(pattern(30, 40))
  local aug = T.Compose{ T.RandomResizedCrop(12), T.RandomFlipLeftRight(),
                         T.RandomColorJitter(0.3, 0.3, 0.3, 0.05), T.ToTensor() }
  data.seed(42)
  local a = aug(img)
  data.seed(42)
  local b = aug(img)
  assert(same(a, b))
  local mixed = T.Compose{ T.Resize(6), function(x) return x:astype('float32') end }
  assert(mixed:_ops() == nil)
  assert(mixed(img):dtype() == 'float32')
  assert(tostring(aug):find('Compose(\n  RandomResizedCrop', 1, true))
end)

--[[}==================================================================]]

--[[{==================================================================
  ImageFolderDataset and DataLoader (images from the shared d2l PNGs)
==================================================================]]

local shared = os.getenv('TRL_SHARED')
local pngs = shared and (shared .. '/data/d2l-genuine/hotdog/train/not-hotdog')
if not pngs or not lfs.attributes(pngs) then
  print('SKIP image folder and DataLoader tests: TRL_SHARED/data/d2l-genuine not found')
  return
end

local function copy(src, dst)
  local f = assert(io.open(src, 'rb'))
  local bytes = f:read('a')
  f:close()
  f = assert(io.open(dst, 'wb'))
  f:write(bytes)
  f:close()
end

local root = H.tmpdir() .. '/data_tree'
os.execute("rm -rf '" .. root .. "'")
assert(lfs.mkdir(root))
local names = {}
for name in lfs.dir(pngs) do if name:match('%.png$') then names[#names + 1] = name end end
table.sort(names)
-- class 'hotdog' (label 0) gets 4 images, 'not-hotdog' 5 (one with an upper-case extension)
for _, c in ipairs{ 'not-hotdog', 'hotdog' } do assert(lfs.mkdir(root .. '/' .. c)) end
for i = 1, 4 do copy(pngs .. '/' .. names[i], root .. '/hotdog/' .. names[i]) end
for i = 5, 8 do copy(pngs .. '/' .. names[i], root .. '/not-hotdog/' .. names[i]) end
copy(pngs .. '/' .. names[9], root .. '/not-hotdog/Z' .. names[9]:upper())
copy(pngs .. '/' .. names[1], root .. '/not-hotdog/notes.txt')       -- not an image: skipped
io.open(root .. '/README', 'w'):close()                              -- a file: not a class

test('ImageFolderDataset lists, labels and decodes', function()
  local ds = vision.ImageFolderDataset(root)
  approx(#ds, 9)
  assert(ds.synsets[1] == 'hotdog' and ds.synsets[2] == 'not-hotdog' and #ds.synsets == 2)
  assert(ds.items[1][1] == root .. '/hotdog/' .. names[1] and ds.items[1][2] == 0)
  assert(ds.items[9][1]:find('/not%-hotdog/Z') and ds.items[9][2] == 1)
  for i = 2, 9 do assert(ds.items[i - 1][1] < ds.items[i][1]) end
  local sample = ds[1]
  local img, label = sample[1], sample[2]
  assert(img:dtype() == 'uint8' and #img:shape() == 3 and img:shape()[3] == 3 and label == 0)
  local img2, label2 = ds:get(6)
  assert(label2 == 1 and img2:shape()[3] == 3)
  assert(vision.ImageFolderDataset(root, { flag = 0 })[1][1]:shape()[3] == 1)
  local tds = ds:transform_first(T.Compose{ T.Resize(8), T.ToTensor() })
  local x, y = tds:get(2)
  approx(x:shape(), { 3, 8, 8 })
  assert(y == 0)
  local fds = vision.ImageFolderDataset(root,
                                        { transform = function(a, l) return a:shape()[1], l end })
  assert(fds[1][1] == img:shape()[1] and fds[1][2] == 0)
  checkerror("'" .. root .. "/nope' is not a directory", vision.ImageFolderDataset, root .. '/nope')
  checkerror('index 10 out of range [1, 9]', function() return ds[10] end)
end)

local train_aug = T.Compose{ T.RandomResizedCrop(24), T.RandomFlipLeftRight(),
                             T.RandomColorJitter(0.3, 0.3, 0.3, 0.05), T.RandomLighting(0.1),
                             T.ToTensor(), T.Normalize({ 0.485, 0.456, 0.406 },
                                                       { 0.229, 0.224, 0.225 }) }

-- All batches of one epoch: data list, concatenated labels.
local function epoch(loader)
  local xs, ys = {}, {}
  for x, y in loader do
    xs[#xs + 1] = x
    if y then for _, v in ipairs(y:totable()) do ys[#ys + 1] = v end end
  end
  return xs, ys
end

test('DataLoader: order, shapes, last_batch, #loader', function()
  local ds = vision.ImageFolderDataset(root):transform_first(train_aug)
  local loader = data.DataLoader(ds, 4)
  assert(loader._native, 'built-in transforms run natively')
  approx(#loader, 3)
  local xs, ys = epoch(loader)
  approx(#xs, 3)
  approx(xs[1]:shape(), { 4, 3, 24, 24 })
  approx(xs[3]:shape(), { 1, 3, 24, 24 })
  assert(xs[1]:dtype() == 'float32')
  approx(ys, { 0, 0, 0, 0, 1, 1, 1, 1, 1 })
  local d = data.DataLoader(ds, 4, { last_batch = 'discard' })
  approx(#d, 2)
  local dx = epoch(d)
  approx(#dx, 2)
  local r = data.DataLoader(ds, 4, { last_batch = 'rollover', shuffle = true, seed = 1 })
  approx(#r, 2)
  local _, r1 = epoch(r)                     -- 8 of 9, one rolls over
  approx(#r, 2)                              -- (1 + 9) // 4
  local _, r2 = epoch(r)
  approx(#r1, 8); approx(#r2, 8)
  checkerror("last_batch must be 'keep', 'discard' or 'rollover'", data.DataLoader, ds, 4,
             { last_batch = 'drop' })
  checkerror('batch_size must be a positive integer', data.DataLoader, ds, 0)
end)

test('DataLoader: shuffle is seeded and changes per epoch', function()
  local ds = vision.ImageFolderDataset(root):transform_first(T.Compose{ T.Resize(4), T.ToTensor() })
  local a = data.DataLoader(ds, 3, { shuffle = true, seed = 5 })
  local b = data.DataLoader(ds, 3, { shuffle = true, seed = 5 })
  local _, ya1 = epoch(a)
  local _, yb1 = epoch(b)
  approx(ya1, yb1)
  local perms = {}
  for e = 1, 6 do
    local xs = epoch(a)
    local key = {}
    for _, x in ipairs(xs) do key[#key + 1] = string.format('%.6f', x:sum():asscalar()) end
    perms[table.concat(key, ',')] = true
  end
  local distinct = 0
  for _ in pairs(perms) do distinct = distinct + 1 end
  assert(distinct > 1, 'epochs should be shuffled differently')
end)

test('DataLoader: 0 and 2 workers and the main-thread path agree bit for bit', function()
  local ds = vision.ImageFolderDataset(root)
  local base = threads()
  local function run(dset, workers)
    local loader = data.DataLoader(dset, 4, { shuffle = true, seed = 77, num_workers = workers })
    epoch(loader)                            -- epoch 0
    local xs, ys = epoch(loader)             -- epoch 1
    return xs, ys, loader
  end
  local x0, y0, l0 = run(ds:transform_first(train_aug), 0)
  local x2, y2, l2 = run(ds:transform_first(train_aug), 2)
  -- a plain function hides the transforms from the native loader: main thread, same draws
  local xl, yl, ll = run(ds:transform_first(function(img) return train_aug(img) end), 0)
  assert(l0._native and l2._native and not ll._native)
  approx(y0, y2); approx(y0, yl)
  for i = 1, #x0 do
    assert(same(x0[i], x2[i]), 'batch ' .. i .. ': 0 vs 2 workers')
    assert(same(x0[i], xl[i]), 'batch ' .. i .. ': native vs main thread')
  end
  approx(threads(), base)
end)

test('DataLoader: workers start and are joined; break; GC', function()
  local base = threads()
  local ds = vision.ImageFolderDataset(root):transform_first(T.Compose{ T.Resize(8), T.ToTensor() })
  -- batch 1, prefetch 1: the workers wait for room in the ring while the loop holds its
  -- first batch (with a ring as big as the data set they could finish and exit first)
  local loader = data.DataLoader(ds, 1, { num_workers = 2, prefetch = 1 })
  for x in loader do
    assert(threads() == base + 2, 'two workers while iterating')
    break
  end
  for _ in loader do end                     -- a new loop restarts the epoch and ends it
  approx(threads(), base)
  for _ in loader:iter() do break end        -- the to-be-closed value joins on break
  approx(threads(), base)
  for _ in loader do break end
  loader = nil
  collectgarbage(); collectgarbage()         -- __gc joins an abandoned epoch
  approx(threads(), base)
end)

test('DataLoader: a corrupt image is an error naming the file, with and without workers', function()
  local bad = root .. '/hotdog/' .. names[2]
  local f = assert(io.open(bad, 'wb'))
  f:write('\137PNG\r\n\26\n truncated')
  f:close()
  local base = threads()
  for _, workers in ipairs{ 0, 2 } do
    local ds = vision.ImageFolderDataset(root)
      :transform_first(T.Compose{ T.Resize(8), T.ToTensor() })
    local loader = data.DataLoader(ds, 4, { num_workers = workers })
    checkerror(names[2], function() for _ in loader do end end)
    approx(threads(), base)
  end
  -- the main-thread path says the same
  local ds = vision.ImageFolderDataset(root):transform_first(function(x) return x end)
  checkerror(names[2], function() for _ in data.DataLoader(ds, 4) do end end)
  copy(pngs .. '/' .. names[2], bad)
end)

test('DataLoader on ArrayDataset and SimpleDataset (main thread)', function()
  local ds = data.ArrayDataset(nd.arange(0, 10):reshape{ 5, 2 }, { 0, 1, 2, 3, 4 })
  local xs, ys = epoch(data.DataLoader(ds, 2))
  approx(xs[1]:totable(), { { 0, 1 }, { 2, 3 } })
  approx(ys, { 0, 1, 2, 3, 4 })
  local s = data.SimpleDataset{ 5, 6, 7 }
  assert(s[2] == 6 and #s == 3)
  local bx = epoch(data.DataLoader(s, 2))
  assert(bx[1]:dtype() == 'int64')
  approx(bx[2]:totable(), { 7 })
  checkerror('same length', data.ArrayDataset, { 1, 2 }, { 1 })
end)

test('show_images writes a PNG grid', function()
  local ok, image = pcall(require, 'trl._image')
  if not ok then print('SKIP show_images: trl._image not built'); return end
  local ds = vision.ImageFolderDataset(root)
  local imgs = {}
  for i = 1, 5 do imgs[i] = ds[i][1] end
  imgs[6] = vision.ImageFolderDataset(root, { flag = 0 })[6][1]
  local path = H.tmpdir() .. '/grid.png'
  local got, grid = require('trl.show').show_images(imgs, 2, 3, { scale = 0.5, path = path })
  assert(got == path and lfs.attributes(path, 'size') > 0)
  approx(grid:shape(), { 2 * 50 + 3 * 2, 3 * 50 + 4 * 2, 3 })
  checkerror('do not fit', require('trl.show').show_images, imgs, 1, 2)
end)

--[[}==================================================================]]

test('binding arguments: messages name what is missing, list items are read raw', function()
  local D = require 'trl._data'
  checkerror('number expected, got no value', D.check, {})
  local paths = setmetatable({}, {__len = function() return 1 end, __index = function() return 'x.jpg' end})
  checkerror("loader: 1 paths but 0 labels", D.loader, {paths = {'a.jpg'}, labels = {}, ops = {}})
  checkerror('loader: path 1 is not a string', D.loader, {paths = {123}, labels = {0}, ops = {}})
  local ok = pcall(D.loader, {paths = paths, labels = {}, ops = {}})   -- raw length 0: no paths
  assert(ok ~= nil)
end)
