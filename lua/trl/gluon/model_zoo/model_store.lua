--[[
trl.gluon.model_zoo.model_store: pretrained weight files as Gluon 1.x's model_store.py:
'<name>-<sha1[1:8]>.params' in the cache ($TRL_HOME/models, default ~/.trl/models), else
'<repo>gluon/models/<name>-<hash8>.zip' downloaded ($TRL_REPO, default Gluon's public S3
repo), sha1-checked, unzipped and moved into the cache atomically. A failed or wrong download
leaves nothing in the cache, and the error says which file to place where.
]]
local cio = require 'trl._io'
local params_io = require 'trl.gluon.params_io'   -- also installs Block:load_parameters

local M = {}

M.apache_repo_url = 'https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/'

-- Gluon's _model_sha1 (apache/mxnet python/mxnet/gluon/model_zoo/model_store.py, v1.x;
-- read at commit 3faebb5e, whose short hashes match the zoo file names in NAMES.md).
local sha1 = {}
for _, e in ipairs{
  {'44335d1f0046b328243b32a26a4fbd62d9057b45', 'alexnet'},
  {'f27dbf2dbd5ce9a80b102d89c7483342cd33cb31', 'densenet121'},
  {'b6c8a95717e3e761bd88d145f4d0a214aaa515dc', 'densenet161'},
  {'2603f878403c6aa5a71a124c4a3307143d6820e9', 'densenet169'},
  {'1cdbc116bc3a1b65832b18cf53e1cb8e7da017eb', 'densenet201'},
  {'ed47ec45a937b656fcc94dabde85495bbef5ba1f', 'inceptionv3'},
  {'9f83e440996887baf91a6aff1cccc1c903a64274', 'mobilenet0.25'},
  {'8e9d539cc66aa5efa71c4b6af983b936ab8701c3', 'mobilenet0.5'},
  {'529b2c7f4934e6cb851155b22c96c9ab0a7c4dc2', 'mobilenet0.75'},
  {'6b8c5106c730e8750bcd82ceb75220a3351157cd', 'mobilenet1.0'},
  {'36da4ff1867abccd32b29592d79fc753bca5a215', 'mobilenetv2_1.0'},
  {'e2be7b72a79fe4a750d1dd415afedf01c3ea818d', 'mobilenetv2_0.75'},
  {'aabd26cd335379fcb72ae6c8fac45a70eab11785', 'mobilenetv2_0.5'},
  {'ae8f9392789b04822cbb1d98c27283fc5f8aa0a7', 'mobilenetv2_0.25'},
  {'a0666292f0a30ff61f857b0b66efc0228eb6a54b', 'resnet18_v1'},
  {'48216ba99a8b1005d75c0f3a0c422301a0473233', 'resnet34_v1'},
  {'0aee57f96768c0a2d5b23a6ec91eb08dfb0a45ce', 'resnet50_v1'},
  {'d988c13d6159779e907140a638c56f229634cb02', 'resnet101_v1'},
  {'671c637a14387ab9e2654eafd0d493d86b1c8579', 'resnet152_v1'},
  {'a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657', 'resnet18_v2'},
  {'9d6b80bbc35169de6b6edecffdd6047c56fdd322', 'resnet34_v2'},
  {'ecdde35339c1aadbec4f547857078e734a76fb49', 'resnet50_v2'},
  {'18e93e4f48947e002547f50eabbcc9c83e516aa6', 'resnet101_v2'},
  {'f2695542de38cf7e71ed58f02893d82bb409415e', 'resnet152_v2'},
  {'264ba4970a0cc87a4f15c96e25246a1307caf523', 'squeezenet1.0'},
  {'33ba0f93753c83d86e1eb397f38a667eaf2e9376', 'squeezenet1.1'},
  {'dd221b160977f36a53f464cb54648d227c707a05', 'vgg11'},
  {'ee79a8098a91fbe05b7a973fed2017a6117723a8', 'vgg11_bn'},
  {'6bc5de58a05a5e2e7f493e2d75a580d83efde38c', 'vgg13'},
  {'7d97a06c3c7a1aecc88b6e7385c2b373a249e95e', 'vgg13_bn'},
  {'e660d4569ccb679ec68f1fd3cce07a387252a90a', 'vgg16'},
  {'7f01cf050d357127a73826045c245041b0df7363', 'vgg16_bn'},
  {'ad2f660d101905472b83590b59708b71ea22b2e5', 'vgg19'},
  {'f360b758e856f1074a85abd5fd873ed1d98297c3', 'vgg19_bn'},
} do sha1[e[2]] = e[1] end
M._model_sha1 = sha1

-- register(name, sha1): add or replace an entry (tests, private model repos).
function M.register(name, hash)
  if type(name) ~= 'string' or type(hash) ~= 'string' or not hash:match('^%x+$') or #hash ~= 40 then
    error(string.format("model_store.register: expected (name, 40 hex digits), got (%s, %s)",
                        tostring(name), tostring(hash)), 2)
  end
  sha1[name] = hash:lower()
end

function M.short_hash(name)
  local h = sha1[name]
  if h == nil then
    error(string.format("Pretrained model for %s is not available (model_store knows: %s)",
                        tostring(name), table.concat(M.list(), ', ')), 2)
  end
  return h:sub(1, 8)
end

function M.list()
  local r = {}
  for k in pairs(sha1) do r[#r + 1] = k end
  table.sort(r)
  return r
end

-- The cache directory: opts.root, else $TRL_HOME/models, else ~/.trl/models.
function M.default_root()
  local home = os.getenv('TRL_HOME')
  if home == nil or home == '' then
    home = (os.getenv('HOME') or '.') .. '/.trl'
  end
  return home .. '/models'
end

local function expand(path)
  if path:sub(1, 2) == '~/' then return (os.getenv('HOME') or '.') .. path:sub(2) end
  return path
end

-- The repository URL with a trailing '/': 'url', else $TRL_REPO, else Gluon's public repo.
function M.repo_url(url)
  url = url or os.getenv('TRL_REPO')
  if url == nil or url == '' then url = M.apache_repo_url end
  if url:sub(-1) ~= '/' then url = url .. '/' end
  return url
end

local function file_sha1(path)
  local h = cio.sha1_file(path)
  return h
end

-- A unique suffix for temporaries inside the cache (several processes may download at once).
local function unique()
  return string.format('%d-%06d', os.time(), math.random(0, 999999))
end

-- Remove a directory tree made by extract (lfs when present; else the known entry only).
local function remove_tree(dir, known)
  local ok, lfs = pcall(require, 'lfs')
  if ok then
    local function rm(d)
      for e in lfs.dir(d) do
        if e ~= '.' and e ~= '..' then
          local p = d .. '/' .. e
          if lfs.symlinkattributes(p, 'mode') == 'directory' then rm(p) else os.remove(p) end
        end
      end
      os.remove(d)
    end
    pcall(rm, dir)
  else
    if known then os.remove(dir .. '/' .. known) end
    os.remove(dir)
  end
end

--[[
get_model_file(name, {root=, repo=, quiet=}) -> the path of '<name>-<hash8>.params' in the cache,
downloading it when absent or when its sha1 is wrong. Raises with what to do by hand.
]]
function M.get_model_file(name, opts)
  opts = opts or {}
  local hash = sha1[name]
  local short = M.short_hash(name)
  local root = expand(opts.root or M.default_root())
  local file_name = name .. '-' .. short
  local file_path = root .. '/' .. file_name .. '.params'
  local url = M.repo_url(opts.repo) .. 'gluon/models/' .. file_name .. '.zip'
  local function fail(why)
    error(string.format("model_store: cannot get the pretrained weights of '%s': %s.\n"
      .. "Get %s by hand, unzip it and place %s.params (sha1 %s) at %s "
      .. "(or pass pretrained='path/to/file.params'; $TRL_REPO sets the repository, "
      .. "$TRL_HOME the cache)", name, why, url, file_name, hash, file_path), 3)
  end
  if cio.filetype(file_path) == 'file' then
    if file_sha1(file_path) == hash then return file_path end
    io.stderr:write(string.format("model_store: %s does not have sha1 %s; downloading it again\n",
                                  file_path, hash))
  elseif not opts.quiet then
    io.stderr:write(string.format("model_store: %s not found; downloading %s\n", file_path, url))
  end
  local ok, err = cio.makedirs(root)
  if not ok then fail(err) end
  local tmp = root .. '/.' .. file_name .. '.' .. unique()
  local zip, dir = tmp .. '.zip', tmp .. '.d'
  local function cleanup()
    os.remove(zip)
    remove_tree(dir, file_name .. '.params')
  end
  ok, err = cio.download(url, zip, nil, opts.quiet)
  if not ok then     -- drop the downloader's advice, which names our temporary file
    cleanup()
    fail('download failed: ' .. tostring(err):gsub('; place the file by hand at .*$', ''))
  end
  ok, err = cio.makedirs(dir)
  if ok then ok, err = cio.extract(zip, dir) end
  if not ok then cleanup() fail('cannot unzip ' .. url .. ': ' .. tostring(err)) end
  local got = dir .. '/' .. file_name .. '.params'
  if cio.filetype(got) ~= 'file' then
    cleanup()
    fail(string.format('the zip from %s holds no %s.params', url, file_name))
  end
  local h = file_sha1(got)
  if h ~= hash then
    cleanup()
    fail(string.format('the downloaded %s.params has sha1 %s, expected %s', file_name,
                       tostring(h), hash))
  end
  ok, err = os.rename(got, file_path)
  if not ok then cleanup() fail('cannot move it into the cache: ' .. tostring(err)) end
  cleanup()
  return file_path
end

-- purge({root=}): remove every .params file from the cache; returns how many.
function M.purge(opts)
  opts = opts or {}
  local root = expand(opts.root or M.default_root())
  local ok, lfs = pcall(require, 'lfs')
  if not ok then error('model_store.purge: needs LuaFileSystem (lfs) to list ' .. root, 2) end
  local n = 0
  if cio.filetype(root) ~= 'directory' then return 0 end
  for e in lfs.dir(root) do
    if e:match('%.params$') and os.remove(root .. '/' .. e) then n = n + 1 end
  end
  return n
end

--[[
load_pretrained(net, name, opts): what the zoo constructors do for opts.pretrained: true ->
get_model_file(name, opts); a string -> that file. Loads strictly.
]]
function M.load_pretrained(net, name, opts)
  local pre = opts.pretrained
  local path
  if type(pre) == 'string' then
    path = expand(pre)
  elseif pre == true then
    path = M.get_model_file(name, opts)
  else
    error(string.format("%s: pretrained must be true/false or a file path, got %s", name,
                        tostring(pre)), 3)
  end
  params_io.load_parameters(net, path)
  return net
end

return M
