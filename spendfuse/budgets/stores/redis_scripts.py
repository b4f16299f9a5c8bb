"""The Lua scripts behind ``redis://``: each store operation is one script, so one round trip, atomic.

Key layout, per scope (``T`` = a hex digest of the scope key, so any user id is safe and fixed-length,
and the braces make it the Cluster hash tag: the three keys of a scope share one slot)::

    <prefix>{T}:s   hash   s:<metric> spent, f:<metric> in flight, x window end (unix s), k the key
    <prefix>{T}:l   zset   lease id -> lease expiry (unix s): the leases this scope holds
    <prefix>{T}:r   hash   lease id -> JSON {"a": {metric: "amount"}, "o": [other scopes' T]}

A lease is not a key of its own: its reserved amounts live in each scope it holds (``:r``), so charging
an expired lease never depends on a second key that could have expired first, and every key a script
touches for a one-scope reservation is in one slot. Amounts travel as decimal strings and are added
with HINCRBY (exact 64-bit); comparisons use Lua numbers, exact below 2**53 (9e15 micro-dollars).

Scripts take ARGV[1] = key prefix and ARGV[2] = the caller's ``now``; KEYS are the s, l, r triples of
the scopes named. When an expired lease held several scopes, its other scopes (``o``) are charged too
by name: those keys are outside KEYS, which a single node allows and Redis Cluster does not (see
``RedisStore``: several scopes per reservation need one node).
"""

from __future__ import annotations

_PRELUDE = r"""
local prefix = ARGV[1]
local now_arg = ARGV[2]
local now = tonumber(now_arg)

local function keys_of(tag)
  local base = prefix .. '{' .. tag .. '}:'
  return base .. 's', base .. 'l', base .. 'r'
end

-- Remove lease `lid` from one scope, taking its amounts out of the in-flight sums. Returns the lease
-- record, or nil when the scope does not hold the lease (settled, charged, or the scope was reset).
local function take(tag, lid)
  local s, l, r = keys_of(tag)
  if redis.call('ZREM', l, lid) == 0 then
    return nil
  end
  local raw = redis.call('HGET', r, lid)
  redis.call('HDEL', r, lid)
  if not raw then
    return nil
  end
  local record = cjson.decode(raw)
  for metric, amount in pairs(record.a) do
    redis.call('HINCRBY', s, 'f:' .. metric, '-' .. amount)
  end
  return record
end

-- Charge an expired lease at its reserved amount on one scope.
local function charge(tag, lid)
  local record = take(tag, lid)
  if record == nil then
    return nil
  end
  local s = keys_of(tag)
  for metric, amount in pairs(record.a) do
    redis.call('HINCRBY', s, 's:' .. metric, amount)
  end
  return record
end

-- Charge every lease of the scope whose expiry is <= now, on all the scopes it holds; then forget the
-- scope when its window ended and no lease is left on it. Returns how many leases were charged.
local function touch(tag)
  local s, l, r = keys_of(tag)
  local charged = 0
  for _, lid in ipairs(redis.call('ZRANGEBYSCORE', l, '-inf', now_arg)) do
    local record = charge(tag, lid)
    if record then
      charged = charged + 1
      for _, other in ipairs(record.o) do
        charge(other, lid)
      end
    end
  end
  local window_end = redis.call('HGET', s, 'x')
  if window_end and tonumber(window_end) <= now and redis.call('EXISTS', l) == 0 then
    redis.call('DEL', s, r)
  end
  return charged
end
"""

# KEYS: s, l, r per scope. ARGV: prefix, now, lease expiry, lease id, TTL margin (ms), then per scope:
# tag, scope key, window end ('' for none), limits JSON [[metric, "limit"], ...], lease record JSON.
# Returns {1} when admitted, {0, scope index, metric, limit, spent, in flight, requested} when refused.
RESERVE = (
    _PRELUDE
    + r"""
local lease_expiry = tonumber(ARGV[3])
local lid = ARGV[4]
local margin = tonumber(ARGV[5])
local count = #KEYS / 3

-- A resent reservation (its first answer was lost) is already admitted.
if redis.call('ZSCORE', KEYS[2], lid) then
  return {1}
end

local records = {}
for i = 1, count do
  touch(ARGV[5 + 5 * (i - 1) + 1])
end
for i = 1, count do
  local at = 5 + 5 * (i - 1)
  local s = KEYS[3 * i - 2]
  local record = cjson.decode(ARGV[at + 5])
  records[i] = record
  for _, pair in ipairs(cjson.decode(ARGV[at + 4])) do
    local metric, limit = pair[1], pair[2]
    local held = redis.call('HMGET', s, 's:' .. metric, 'f:' .. metric)
    local spent = held[1] or '0'
    local flying = held[2] or '0'
    local requested = record.a[metric] or '0'
    if tonumber(spent) + tonumber(flying) + tonumber(requested) > tonumber(limit) then
      return {0, i, metric, limit, spent, flying, requested}
    end
  end
end

for i = 1, count do
  local at = 5 + 5 * (i - 1)
  local s, l, r = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('HSETNX', s, 'k', ARGV[at + 2])
  if ARGV[at + 3] ~= '' then
    redis.call('HSETNX', s, 'x', ARGV[at + 3])
  end
  for metric, amount in pairs(records[i].a) do
    redis.call('HINCRBY', s, 'f:' .. metric, amount)
  end
  redis.call('ZADD', l, ARGV[3], lid)
  redis.call('HSET', r, lid, ARGV[at + 5])
  -- Window keys die on their own (no reset job), but never before the leases they hold expire. The
  -- TTL is relative to the caller's clock, so skew with the server's clock does not matter.
  local window_end = redis.call('HGET', s, 'x')
  if window_end then
    local last = math.max(tonumber(window_end), lease_expiry)
    local ttl = math.max(math.ceil((last - now) * 1000), 0) + margin
    for _, key in ipairs({s, l, r}) do
      local current = redis.call('PTTL', key)
      if current == -1 or (current >= 0 and current < ttl) then
        redis.call('PEXPIRE', key, ttl)
      end
    end
  end
end
return {1}
"""
)

# KEYS: s, l, r per scope the lease was reserved on. ARGV: prefix, now, lease id, actual amounts JSON
# {metric: "amount"}, then the scopes' tags. Returns how many scopes still held the lease (0: unknown).
SETTLE = (
    _PRELUDE
    + r"""
local lid = ARGV[3]
local actual = cjson.decode(ARGV[4])
local found = 0
for i = 1, #KEYS / 3 do
  if take(ARGV[4 + i], lid) then
    found = found + 1
    local s = KEYS[3 * i - 2]
    for metric, amount in pairs(actual) do
      redis.call('HINCRBY', s, 's:' .. metric, amount)
    end
  end
end
return found
"""
)

# KEYS: s, l, r of one scope. ARGV: prefix, now, tag. Returns {HGETALL of s, lease count}.
USAGE = (
    _PRELUDE
    + r"""
touch(ARGV[3])
return {redis.call('HGETALL', KEYS[1]), redis.call('ZCARD', KEYS[2])}
"""
)

# KEYS: s, l, r of one scope. ARGV: prefix, now, tag. Returns how many leases were charged.
EXPIRE = (
    _PRELUDE
    + r"""
return touch(ARGV[3])
"""
)
