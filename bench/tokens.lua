-- wrk script: rotate Authorization over the tokens in $BENCH_TOKENS (one per line).
local tokens = {}
local path = os.getenv("BENCH_TOKENS")
if path then
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end
local i = 0
function setup(thread)
  thread:set("offset", math.random(1, math.max(#tokens, 1)))
end
request = function()
  if #tokens == 0 then
    return wrk.format("GET", "/bench")
  end
  i = i + 1
  local t = tokens[((i + (offset or 0)) % #tokens) + 1]
  return wrk.format("GET", "/bench", { ["Authorization"] = "Bearer " .. t })
end
