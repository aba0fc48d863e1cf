--[[
trl.plot: training curves as PNG files, drawn by gnuplot through a pipe (as Torch7's
optim.Logger does). plot.curves draws one run (loss on the right axis, accuracies on the
left); plot.compare draws one quantity for several runs. The PNG is written to a temporary
name and renamed, so a failed plot never leaves a broken file. Needs /usr/bin/gnuplot
(Debian/Ubuntu package gnuplot-nox).
]]
local M = {}

M.gnuplot = 'gnuplot'     -- the command; tests point it elsewhere

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- gnuplot string literal (single quotes: no escapes except '' for ').
local function gp_str(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

local function find_gnuplot(cmd)
  local ok = os.execute('command -v ' .. shell_quote(cmd) .. ' >/dev/null 2>&1')
  if not ok then
    error(string.format("plot: gnuplot not found (looked for '%s'); install the package "
      .. "gnuplot-nox (apt-get install gnuplot-nox)", cmd), 3)
  end
end

-- Run the gnuplot 'script' (which writes to the terminal file 'tmp') and move tmp to path.
local function run(script, path, cmd)
  cmd = cmd or M.gnuplot
  find_gnuplot(cmd)
  local tmp = path .. '.tmp.png'
  local errf = os.tmpname()
  local p = io.popen(shell_quote(cmd) .. ' 2>' .. shell_quote(errf), 'w')
  if not p then error('plot: cannot start ' .. cmd, 3) end
  p:write('set output ', gp_str(tmp), '\n', script, '\nunset output\n')
  local ok, how, code = p:close()
  local ef = io.open(errf, 'rb')
  local msg = ef and ef:read('a') or ''
  if ef then ef:close() end
  os.remove(errf)
  local f = io.open(tmp, 'rb')
  local size = f and f:seek('end') or 0
  if f then f:close() end
  if not ok or size == 0 then
    os.remove(tmp)
    error(string.format('plot: gnuplot failed (%s %s) writing %s: %s', tostring(how),
                        tostring(code), path, msg:gsub('%s+$', '')), 3)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error('plot: cannot rename ' .. tmp .. ' to ' .. path .. ': ' .. tostring(rerr), 3)
  end
  return path
end

local function header(opts)
  local w, h = opts.width or 800, opts.height or 500
  return table.concat({
    string.format('set terminal pngcairo size %d,%d noenhanced font "sans,10"', w, h),
    'set grid', 'set key outside bottom center horizontal', 'set xlabel "epoch"',
    opts.title and 'set title ' .. gp_str(opts.title) or 'unset title',
  }, '\n')
end

local function check_history(where, h)
  if type(h) ~= 'table' or #h == 0 then
    error(where .. ': expected a non-empty list of epoch records {epoch=, loss=, train_acc=, '
      .. 'test_acc=}', 3)
  end
end

-- Inline data for one column: "epoch value" lines ending with 'e'.
local function data_block(h, key)
  local lines = {}
  for i, r in ipairs(h) do
    local v = r[key]
    if type(v) == 'number' then
      lines[#lines + 1] = string.format('%d %.9g', r.epoch or i, v)
    end
  end
  lines[#lines + 1] = 'e'
  return table.concat(lines, '\n')
end

--[[
curves(history, path, {title=, width=800, height=500, gnuplot=}) -> path
history: what utils.train returns (a list of {epoch=, loss=, train_acc=, test_acc=}).
]]
function M.curves(history, path, opts)
  opts = opts or {}
  check_history('plot.curves', history)
  if type(path) ~= 'string' then error('plot.curves: path must be a string', 2) end
  local script = table.concat({
    header(opts),
    'set ylabel "accuracy"', 'set yrange [0:1]', 'set y2label "loss"', 'set y2tics',
    'set ytics nomirror', 'set xtics 1',
    "plot '-' using 1:2 axes x1y2 with linespoints lw 2 title 'loss', "
      .. "'-' using 1:2 with linespoints lw 2 title 'train acc', "
      .. "'-' using 1:2 with linespoints lw 2 title 'test acc'",
    data_block(history, 'loss'), data_block(history, 'train_acc'),
    data_block(history, 'test_acc'),
  }, '\n')
  return run(script, path, opts.gnuplot)
end

--[[
compare(runs, path, {key='test_acc', title=, ylabel=, ...}) -> path
runs: a list of {name, history} (or {name=, history=}) pairs, drawn in that order.
]]
function M.compare(runs, path, opts)
  opts = opts or {}
  local key = opts.key or 'test_acc'
  if type(runs) ~= 'table' or #runs == 0 then
    error('plot.compare: expected a list of {name, history} pairs', 2)
  end
  local plots, blocks = {}, {}
  for i, r in ipairs(runs) do
    local name, h = r.name or r[1], r.history or r[2]
    check_history('plot.compare: run ' .. i, h)
    plots[i] = string.format("'-' using 1:2 with linespoints lw 2 title %s", gp_str(name))
    blocks[i] = data_block(h, key)
  end
  local script = table.concat({
    header(opts), 'set ylabel ' .. gp_str(opts.ylabel or key:gsub('_', ' ')), 'set xtics 1',
    'plot ' .. table.concat(plots, ', '), table.concat(blocks, '\n'),
  }, '\n')
  return run(script, path, opts.gnuplot)
end

return M
