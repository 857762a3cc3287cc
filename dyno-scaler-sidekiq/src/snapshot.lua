-- dyno-scaler: one Sidekiq snapshot in one round trip.
-- ARGV: prefix, due_cap, future_cap, then the watched queue names (none: every queue in `queues`).
local p = ARGV[1]
local due_cap = tonumber(ARGV[2])
local future_cap = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_s = string.format('%.6f', now)

local queues = {}
if #ARGV > 3 then
  for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
else
  queues = redis.call('SMEMBERS', p .. 'queues')
end
local qout = {}
for _, q in ipairs(queues) do
  local key = p .. 'queue:' .. q
  local len = redis.call('LLEN', key)
  local oldest = false
  if len > 0 then oldest = redis.call('LINDEX', key, -1) end
  qout[#qout + 1] = { q, len, oldest }
end

-- Sorted sets: totals by ZCOUNT, per-queue split from a bounded sample decoded here.
local bad = 0
local per = {}
local function sample(key, min, max, cap, slot)
  if cap <= 0 then return end
  local m = redis.call('ZRANGE', key, min, max, 'BYSCORE', 'LIMIT', 0, cap, 'WITHSCORES')
  for i = 1, #m, 2 do
    local ok, job = pcall(cjson.decode, m[i])
    local q = nil
    if ok and type(job) == 'table' then
      q = job['retry_queue']
      if type(q) ~= 'string' then q = job['queue'] end
    end
    if type(q) ~= 'string' then
      bad = bad + 1
    else
      local e = per[q]
      if not e then e = { 0, 0, false } per[q] = e end
      e[slot] = e[slot] + 1
      if slot == 1 and (e[3] == false or tonumber(m[i + 1]) < tonumber(e[3])) then e[3] = m[i + 1] end
    end
  end
end
local sets = { p .. 'schedule', p .. 'retry' }
local counts = {}
for _, key in ipairs(sets) do
  counts[#counts + 1] = redis.call('ZCOUNT', key, '-inf', now_s)
  counts[#counts + 1] = redis.call('ZCOUNT', key, '(' .. now_s, '+inf')
  sample(key, '-inf', now_s, due_cap, 1)
  sample(key, '(' .. now_s, '+inf', future_cap, 2)
end
local sout = {}
for q, e in pairs(per) do sout[#sout + 1] = { q, e[1], e[2], e[3] } end

-- Processes: the hash fields and the running-work hash (`:work` in 7+, `:workers` in 6.x).
local pout = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'processes')) do
  local f = redis.call('HMGET', p .. id, 'info', 'concurrency', 'busy', 'beat', 'quiet')
  local work = redis.call('HGETALL', p .. id .. ':work')
  if #work == 0 then work = redis.call('HGETALL', p .. id .. ':workers') end
  pout[#pout + 1] = { id, f[1], f[2], f[3], f[4], f[5], work }
end

return { now_s, qout, counts, sout, bad, pout }
