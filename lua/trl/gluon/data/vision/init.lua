--[[
trl.gluon.data.vision: image datasets (Gluon's mx.gluon.data.vision) and, as the field
`transforms`, the image transforms. ImageFolderDataset reads root/<class>/<image>: classes
are the sub-folders in sorted order (label 0 is the first), images the .jpg/.jpeg/.png files
of each, sorted; ds[i] decodes image i to a uint8 (H,W,C) tensor.
]]
local lfs = require 'lfs'
local data = require 'trl.gluon.data'

local vision = {}
vision.transforms = require 'trl.gluon.data.vision.transforms'

local D = require 'trl._data'

local function imread(path, flag)
  local img, msg = D.imread(path, flag)
  if img == nil then error(msg, 3) end
  return img
end

local exts = { jpg = true, jpeg = true, png = true }

local function sorted_entries(dir)
  local names = {}
  for name in lfs.dir(dir) do
    if name ~= '.' and name ~= '..' then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local ImageFolderDataset = data.Dataset.class('ImageFolderDataset')
vision.ImageFolderDataset = ImageFolderDataset

-- ImageFolderDataset(root, {flag = 1, transform = nil}): 'transform(img, label)' returns
-- the sample, as in Gluon.
function ImageFolderDataset.new(root, opts)
  opts = opts or {}
  if type(root) ~= 'string' then
    error('ImageFolderDataset: root must be a path string, got ' .. type(root), 2)
  end
  root = root:gsub('(.)/+$', '%1')
  local attr = lfs.attributes(root)
  if not attr or attr.mode ~= 'directory' then
    error(string.format("ImageFolderDataset: '%s' is not a directory", root), 2)
  end
  local flag = opts.flag == nil and 1 or opts.flag
  if flag ~= 0 and flag ~= 1 then
    error('ImageFolderDataset: flag must be 0 (gray) or 1 (color), got ' .. tostring(flag), 2)
  end
  local self = { root = root, synsets = {}, items = {}, _flag = flag,
                 _transform = opts.transform }
  for _, name in ipairs(sorted_entries(root)) do
    local dir = root .. '/' .. name
    if lfs.attributes(dir, 'mode') == 'directory' then
      local label = #self.synsets
      self.synsets[label + 1] = name
      for _, file in ipairs(sorted_entries(dir)) do
        local ext = file:match('%.([^.]+)$')
        local path = dir .. '/' .. file
        if ext and exts[ext:lower()] and lfs.attributes(path, 'mode') == 'file' then
          self.items[#self.items + 1] = { path, label }
        end
      end
    end
  end
  return setmetatable(self, ImageFolderDataset)
end

setmetatable(ImageFolderDataset, { __index = data.Dataset,
                                   __call = function(c, ...) return c.new(...) end })

function ImageFolderDataset:_len() return #self.items end

function ImageFolderDataset:_get(i)
  local item = self.items[i]
  local img = imread(item[1], self._flag)
  if self._transform then return self._transform(img, item[2]) end
  return img, item[2]
end

function ImageFolderDataset:_native()
  if self._transform then return nil end
  local paths, labels = {}, {}
  for i, item in ipairs(self.items) do paths[i], labels[i] = item[1], item[2] end
  return { paths = paths, labels = labels, flag = self._flag, ops = {} }
end

function ImageFolderDataset:__tostring()
  return string.format("ImageFolderDataset('%s', %d images, %d classes)", self.root,
                       #self.items, #self.synsets)
end

return vision
