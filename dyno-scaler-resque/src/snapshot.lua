-- dyno-scaler: one Resque snapshot in one round trip.
-- ARGV: prefix (e.g. "resque:"), delayed_cap (timestamps and decoded jobs), then the watched queues.
local p = ARGV[1]
local cap = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1])
local now_s = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))

local queues = {}
if #ARGV > 2 then
  for i = 3, #ARGV do queues[#queues + 1] = ARGV[i] end
else
  queues = redis.call('SMEMBERS', p .. 'queues')
end
local qout = {}
for _, q in ipairs(queues) do
  local key = p .. 'queue:' .. q
  local len = redis.call('LLEN', key)
  local oldest = false
  if len > 0 then oldest = redis.call('LINDEX', key, 0) end
  qout[#qout + 1] = { q, len, oldest }
end

local wout = {}
for _, id in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  local job = redis.call('GET', p .. 'worker:' .. id)
  wout[#wout + 1] = { id, job or false }
end
local hb = redis.call('HGETALL', p .. 'workers:heartbeat')

-- resque-scheduler: due timestamps are ready work not moved yet; later ones are scheduled.
local bad = 0
local per = {}
local budget = cap
local totals = { 0, 0 }
local function walk(min, max, slot)
  local stamps = redis.call('ZRANGEBYSCORE', p .. 'delayed_queue_schedule', min, max, 'LIMIT', 0, cap)
  for _, ts in ipairs(stamps) do
    local key = p .. 'delayed:' .. ts
    totals[slot] = totals[slot] + redis.call('LLEN', key)
    if budget > 0 then
      local jobs = redis.call('LRANGE', key, 0, budget - 1)
      budget = budget - #jobs
      for _, raw in ipairs(jobs) do
        local ok, job = pcall(cjson.decode, raw)
        local q = nil
        if ok and type(job) == 'table' then q = job['queue'] end
        if type(q) ~= 'string' then
          bad = bad + 1
        else
          local e = per[q]
          if not e then e = { 0, 0, false } per[q] = e end
          e[slot] = e[slot] + 1
          if slot == 1 and (e[3] == false or tonumber(ts) < tonumber(e[3])) then e[3] = ts end
        end
      end
    end
  end
end
walk('-inf', now, 1)
walk('(' .. now, '+inf', 2)
local sout = {}
for q, e in pairs(per) do sout[#sout + 1] = { q, e[1], e[2], e[3] } end

return { now_s, qout, wout, hb, sout, totals, bad }
