--[[
trl.show: show_images, d2l's image grid without matplotlib: images (uint8 (H,W,C) tensors of
any sizes, C = 1 or 3) are fitted into square cells of round(100*scale) pixels (aspect kept,
bilinear, white margins), tiled rows x cols, and written as a PNG whose path is printed.
]]
local D = require 'trl._data'
local nd = require 'trl.nd'

local show = {}

local function check_image(i, img)
  if not nd.is_tensor(img) then
    error(string.format('show_images: image %d is a %s, expected a uint8 (H,W,C) tensor', i,
                        type(img)), 3)
  end
  local shape = img:shape()
  if img:dtype() ~= 'uint8' or #shape ~= 3 or (shape[3] ~= 1 and shape[3] ~= 3) then
    error(string.format('show_images: image %d is %s [%s], expected uint8 (H,W,C) with C = 1 '
                        .. 'or 3', i, img:dtype(), table.concat(shape, ',')), 3)
  end
  return shape
end

-- show_images(imgs, rows, cols, {scale = 1.5, path = 'show_images.png'}) -> path, grid tensor
function show.show_images(imgs, rows, cols, opts)
  opts = opts or {}
  assert(type(imgs) == 'table', 'show_images: expects a list of images')
  if math.type(rows) ~= 'integer' or math.type(cols) ~= 'integer' or rows < 1 or cols < 1 then
    error('show_images: rows and cols must be positive integers', 2)
  end
  if #imgs > rows * cols then
    error(string.format('show_images: %d images do not fit %d x %d cells', #imgs, rows, cols), 2)
  end
  local scale, path = opts.scale or 1.5, opts.path or 'show_images.png'
  local cell = math.max(8, math.floor(100 * scale + 0.5))
  local gap = 2
  local H, W = rows * cell + (rows + 1) * gap, cols * cell + (cols + 1) * gap
  local grid = nd.full({ H, W, 3 }, 255, 'uint8')
  for i, img in ipairs(imgs) do
    local shape = check_image(i, img)
    local h, w = shape[1], shape[2]
    local s = math.min(cell / h, cell / w)
    local nh, nw = math.max(1, math.floor(h * s + 0.5)), math.max(1, math.floor(w * s + 0.5))
    local fitted = D.apply({ { kind = 'resize', w = nw, h = nh } }, img)
    local r, c = (i - 1) // cols, (i - 1) % cols
    local y0 = gap + r * (cell + gap) + (cell - nh) // 2 + 1   -- 1-based, inclusive
    local x0 = gap + c * (cell + gap) + (cell - nw) // 2 + 1
    grid:slice(1, y0, y0 + nh - 1):slice(2, x0, x0 + nw - 1):set(fitted)  -- C = 1 broadcasts
  end
  local ok, msg = require('trl._image').write(grid, path)
  if ok == nil then error(msg, 2) end
  print(path)
  return path, grid
end

return setmetatable(show, { __call = function(_, ...) return show.show_images(...) end })
