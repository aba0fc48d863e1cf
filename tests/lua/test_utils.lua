-- test_utils.lua: the Lua side of images and downloads: trl._image (read/decode/encode/write,
-- nil+msg for damaged files, raises for bad arguments), trl._io, and trl.gluon.utils's
-- download (file:// URLs: skip when present, sha1 checks, retries), check_sha1 and extract.

local h = require("helpers")
local test, checkerror = h.test, h.checkerror
local image = require 'trl._image'
local cio = require 'trl._io'
local utils = require 'trl.gluon.utils'

local DATA = 'tests/data'
local TMP = h.tmpdir() .. '/utils'
assert(os.execute("rm -rf '" .. TMP .. "' && mkdir -p '" .. TMP .. "'"))
local PHOTO_SHA1 = cio.sha1_file(DATA .. '/photo.jpg')

local function readfile(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function writefile(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- Largest absolute difference between two uint8 tensors of one shape.
local function maxdiff(a, b)
  return (a:astype('float32') - b:astype('float32')):abs():max():item()
end

test("image.read and decode give uint8 (H,W,C)", function()
  local img = assert(image.read(DATA .. '/photo.jpg'))
  assert(img:dtype() == 'uint8', img:dtype())
  h.approx(img:shape(), {48, 64, 3})
  local g = assert(image.read(DATA .. '/photo.jpg', 0))
  h.approx(g:shape(), {48, 64, 1})
  local d = assert(image.decode(readfile(DATA .. '/gray.png'), 1, 'gray.png'))
  h.approx(d:shape(), {4, 6, 3})
  local s = assert(image.read_scaled(DATA .. '/photo.jpg', 1, 16, 12))
  h.approx(s:shape(), {12, 16, 3})
  local s2 = assert(image.decode_scaled(readfile(DATA .. '/orient6.jpg'), 1, 0, 4))
  h.approx(s2:shape(), {4, 2, 3})
end)

test("image: missing and damaged files give nil, msg", function()
  local img, msg = image.read('/nonexistent/x.jpg')
  assert(img == nil and msg == 'imread: /nonexistent/x.jpg: No such file or directory', msg)
  img, msg = image.decode('GIF89a', 1, 'a.gif')
  local want = 'imdecode: a.gif: not a JPEG or PNG image (starts with 47 49 46 38)'
  assert(img == nil and msg:find(want, 1, true), msg)
  local jpg = readfile(DATA .. '/photo.jpg')
  img, msg = image.decode(jpg:sub(1, #jpg // 2), 1, 'half.jpg')
  assert(img == nil and msg:find('half.jpg: corrupt or truncated JPEG', 1, true), msg)
  img, msg = image.decode('')
  assert(img == nil and msg:find('<buffer>: empty', 1, true), msg)
end)

test("image: bad arguments raise", function()
  checkerror("flag must be 0 (grayscale) or 1 (color)", image.read, DATA .. '/photo.jpg', 2)
  checkerror("string expected, got no value", image.decode)
  checkerror("invalid option 'gif'", image.encode, assert(image.read(DATA .. '/rgb.png')), 'gif')
  checkerror("quality must be 1..100", image.encode, assert(image.read(DATA .. '/rgb.png')),
             'jpeg', 0)
  local f = require('trl._tensor').zeros({2, 2, 3})
  checkerror("imencode png: expected a uint8 image, got float32 [2,2,3]", image.encode, f, 'png')
  checkerror("unknown image extension", image.write, assert(image.read(DATA .. '/rgb.png')),
             TMP .. '/x.gif')
end)

test("image: encode and write round trips", function()
  local img = assert(image.read(DATA .. '/photo.jpg'))
  local png = image.encode(img, 'png')
  assert(png:sub(2, 4) == 'PNG')
  assert(assert(image.decode(png)) == img, "PNG round trip is exact")
  local jpg = image.encode(img, 'jpeg', 95)
  assert(jpg:byte(1) == 0xff and jpg:byte(2) == 0xd8)
  assert(maxdiff(assert(image.decode(jpg)), img) <= 40)
  assert(image.write(img, TMP .. '/w.png') == true)
  assert(assert(image.read(TMP .. '/w.png')) == img)
  local ok, msg = image.write(img, '/nonexistent/dir/w.png')
  assert(ok == nil and msg:find('imwrite: /nonexistent/dir/w.png', 1, true), msg)
end)

test("io.sha1 and sha1_file", function()
  assert(cio.sha1('abc') == 'a9993e364706816aba3e25717850c26c9cd0d89d')
  assert(cio.sha1('') == 'da39a3ee5e6b4b0d3255bfef95601890afd80709')
  assert(cio.sha1(readfile(DATA .. '/photo.jpg')) == PHOTO_SHA1)
  local hex, msg = cio.sha1_file('/nonexistent')
  assert(hex == nil and msg:find('sha1: /nonexistent: No such file', 1, true), msg)
  assert(utils.check_sha1(DATA .. '/photo.jpg', PHOTO_SHA1:upper()))
  assert(not utils.check_sha1(DATA .. '/photo.jpg', string.rep('0', 40)))
  checkerror("sha1: /nonexistent: No such file", utils.check_sha1, '/nonexistent', PHOTO_SHA1)
end)

local pwd = io.popen('pwd')                -- not $PWD: ctest sets the directory, not the var
local cwd = pwd:read('l')
pwd:close()
local SRC = 'file://' .. cwd .. '/' .. DATA .. '/photo.jpg'

test("utils.download: file:// into a directory, then skipped when present", function()
  local dir = TMP .. '/dl/sub'                          -- created by download
  local path = utils.download(SRC, {path = dir .. '/', sha1_hash = PHOTO_SHA1, quiet = true})
  assert(path == dir .. '/photo.jpg', path)
  assert(cio.sha1_file(path) == PHOTO_SHA1)
  -- Present with the right hash: not fetched again (the URL below does not exist).
  local bogus = 'file:///nonexistent/photo.jpg'
  assert(utils.download(bogus, {path = dir, sha1_hash = PHOTO_SHA1}) == path)
  assert(utils.download(bogus, {path = path}) == path)   -- no hash: present is enough
  -- overwrite forces a download, which fails and leaves the file alone.
  checkerror("place the file by hand at " .. path, utils.download, bogus,
             {path = path, overwrite = true, retries = 1, quiet = true})
  assert(cio.sha1_file(path) == PHOTO_SHA1)
  -- A present file with the wrong hash is fetched again.
  writefile(path, 'stale')
  assert(utils.download(SRC, {path = path, sha1_hash = PHOTO_SHA1, quiet = true}) == path)
  assert(cio.sha1_file(path) == PHOTO_SHA1)
end)

test("utils.download: failures raise and leave nothing", function()
  local path = TMP .. '/dl2/out.jpg'
  local want = "sha1 mismatch: expected " .. string.rep('a', 40) .. ", got " .. PHOTO_SHA1
  local msg = checkerror(want, utils.download, SRC,
                         {path = path, sha1_hash = string.rep('a', 40), retries = 2, quiet = true})
  assert(msg:find("place the file by hand at " .. path, 1, true), msg)
  assert(cio.filetype(path) == nil)
  local ls = io.popen("ls -a '" .. TMP .. "/dl2'")
  for name in ls:lines() do
    assert(not name:find('.part-', 1, true), 'leftover ' .. name)
  end
  ls:close()
  checkerror("retries must be an integer >= 0", utils.download, SRC, {retries = -1})
  checkerror("sha1_hash must be 40 hex digits", utils.download, SRC, {sha1_hash = 'abc'})
  checkerror("the URL names no file", utils.download, 'http://example.com/', {path = TMP .. '/'})
  -- The C binding: nil, msg.
  local ok, err = cio.download('file:///nonexistent/x', TMP .. '/x', nil, true)
  assert(ok == nil and err:find('download: file:///nonexistent/x:', 1, true), err)
  checkerror("sha1 must be 40 hex digits", cio.download, SRC, TMP .. '/x', 'zz')
end)

test("utils.extract: a good zip, then damaged ones leave dest unchanged", function()
  local src = TMP .. '/zsrc'
  assert(os.execute("mkdir -p '" .. src .. "/pics/sub' && cp " .. DATA .. "/photo.jpg '" ..
                    src .. "/pics/' && cp " .. DATA .. "/rgb.png '" .. src .. "/pics/sub/'"))
  local zip = TMP .. '/pics.zip'
  if not os.execute("cd '" .. src .. "' && zip -qr '" .. zip .. "' pics") then
    print("skip extract of a zip made by 'zip': the zip tool is missing")
    return
  end
  local dest = TMP .. '/zdest'
  assert(utils.extract(zip, dest) == dest)
  assert(cio.sha1_file(dest .. '/pics/photo.jpg') == PHOTO_SHA1)
  assert(assert(image.read(dest .. '/pics/sub/rgb.png')):shape()[1] == 5)
  -- Truncated copy: refused, nothing new in dest.
  local bytes = readfile(zip)
  writefile(TMP .. '/cut.zip', bytes:sub(1, #bytes - 30))
  local fresh = TMP .. '/zdest2'
  checkerror("extract: " .. TMP .. "/cut.zip: not a valid zip archive", utils.extract,
             TMP .. '/cut.zip', fresh)
  assert(cio.filetype(fresh) == nil)
  local cut = require('helpers').shared('data/d2l-genuine/hotdog-truncated.zip',
                                          'the genuine truncated hotdog.zip')
  if cut then
    checkerror("hotdog-truncated.zip: not a valid zip archive", utils.extract, cut, fresh)
    assert(cio.filetype(fresh) == nil)
  end
  local ok, err = cio.extract('/nonexistent.zip', fresh)
  assert(ok == nil and err:find('extract: /nonexistent.zip: cannot read', 1, true), err)
end)

os.execute("rm -rf '" .. TMP .. "'")
