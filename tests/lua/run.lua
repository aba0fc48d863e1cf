-- run.lua: the Lua test driver, as ctest runs it: trl tests/lua/run.lua path/to/test_x.lua
-- Runs that one file (which uses require 'helpers'; test, checkerror and approx are also
-- globals), then helpers.finish(); exits non-zero when a test or the file itself failed.

local file = arg[1]
if file == nil then
  io.stderr:write("usage: trl tests/lua/run.lua path/to/test_x.lua\n")
  os.exit(false)
end

local dir = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path

local h = require("helpers")
test, checkerror, approx = h.test, h.checkerror, h.approx
h.tmpdir()

print("== " .. file)
local ok, err = xpcall(dofile, function(e) return debug.traceback(tostring(e), 2) end, file)
if not ok then
  h.failed = h.failed + 1
  print("FAIL " .. file .. " (outside a test): " .. err)
end
if not h.finish() then
  os.exit(false)
end
