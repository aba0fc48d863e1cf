--[[
trl.gluon.utils: Gluon's download helpers (mx.gluon.utils): download(url, opts) with sha1
check and retries, check_sha1(path, hash), and extract(zip, dest) for the datasets' zips.
All failures raise errors whose message says the URL or file, the cause and, for downloads,
where to place the file by hand. The work is done in C (trl._io: core/fetch.c, archive.c).
]]
local cio = require 'trl._io'

local M = {}

local function checkstring(v, n, fname)
  if type(v) ~= 'string' then
    error(string.format("bad argument #%d to '%s' (string expected, got %s)", n, fname,
                        type(v)), 3)
  end
end

-- The last path segment of a URL, without query or fragment: Gluon's url.split('/')[-1].
local function url_basename(url)
  local clean = url:gsub('[?#].*$', '')
  return clean:match('([^/]+)$')
end

local function dirname(path)
  return path:match('^(.*)/[^/]*$') or ''
end

-- check_sha1(path, sha1_hash) -> true when the file's SHA-1 is 'sha1_hash' (any case).
-- Raises when the file cannot be read.
function M.check_sha1(path, sha1_hash)
  checkstring(path, 1, 'check_sha1')
  checkstring(sha1_hash, 2, 'check_sha1')
  local h, err = cio.sha1_file(path)
  if not h then error(err, 2) end
  return h == sha1_hash:lower()
end

--[[
download(url [, opts]) -> the file's path. opts (or a path string):
  path       file or directory to save to (default: the URL's last segment, in the current
             directory); a directory, or a path ending in '/', gets the URL's file name
  overwrite  download even if the file exists (default false)
  sha1_hash  expected SHA-1 (40 hex digits): an existing file with that hash is kept, and a
             download with another hash fails
  retries    attempts before giving up, as Gluon counts them (default 5)
  quiet      no progress bar (it is only drawn when stderr is a terminal anyway)
]]
function M.download(url, opts)
  checkstring(url, 1, 'download')
  if type(opts) == 'string' then opts = {path = opts} end
  opts = opts or {}
  if type(opts) ~= 'table' then
    error("bad argument #2 to 'download' (table or string expected, got " .. type(opts) .. ")", 2)
  end
  local retries = opts.retries == nil and 5 or opts.retries
  if math.type(retries) ~= 'integer' or retries < 0 then
    error("download: retries must be an integer >= 0, got " .. tostring(retries), 2)
  end
  local sha1 = opts.sha1_hash
  if sha1 ~= nil and not (type(sha1) == 'string' and #sha1 == 40 and sha1:match('^%x+$')) then
    error("download: sha1_hash must be 40 hex digits, got " .. tostring(sha1), 2)
  end
  local path, fname = opts.path, nil
  if path ~= nil then checkstring(path, 2, 'download') end
  if path == nil or path:sub(-1) == '/' or cio.filetype(path) == 'directory' then
    local base = url_basename(url)
    if base == nil then
      error(string.format("download: %s: the URL names no file; pass opts.path", url), 2)
    end
    fname = path and (path:gsub('/+$', '') .. '/' .. base) or base
  else
    fname = path
  end
  if not opts.overwrite and cio.filetype(fname) == 'file' and
     (sha1 == nil or M.check_sha1(fname, sha1)) then
    return fname
  end
  local dir = dirname(fname)
  if dir ~= '' then
    local ok, err = cio.makedirs(dir)
    if not ok then
      error(string.format("download: %s: %s; place the file by hand at %s", url, err, fname), 2)
    end
  end
  local attempts = math.max(retries, 1)   -- Gluon: 'while retries+1 > 0', raising at 0
  for left = attempts - 1, 0, -1 do
    local ok, err = cio.download(url, fname, sha1, opts.quiet)
    if ok then return fname end
    if left == 0 then error(err, 2) end
    io.stderr:write(string.format("download failed due to %s, retrying, %d attempt%s left\n",
                                  err, left, left == 1 and '' or 's'))
  end
end

-- extract(zip [, dest = '.']) -> dest. Checks the whole archive first (no absolute paths,
-- '..' or links) and writes nothing unless every entry reads back with a good CRC.
function M.extract(zip, dest)
  checkstring(zip, 1, 'extract')
  dest = dest or '.'
  checkstring(dest, 2, 'extract')
  local ok, err = cio.extract(zip, dest)
  if not ok then error(err, 2) end
  return dest
end

return M
