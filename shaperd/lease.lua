-- iprelay global limits: lease this host's share of one global limit.
-- Run by shaperd with EVALSHA (EVAL after NOSCRIPT) every renewal, one call
-- per global limit; atomic, so every host sees the others' last records.
--
-- KEYS[1]  iprelay:{NAME}:cfg    hash: rate_up rate_down burst lease_ms version
--                                 hosts (set --hosts; absent = none)
-- KEYS[2]  iprelay:{NAME}:hosts  hash: host id -> "w wup wdown sup sdown exp nonce"
-- ARGV     1 host id, 2 nonce (this state dir's), 3 weight (>= 1),
--          4/5 want up/down (bytes/s; -1 = backlogged, wants all it can get),
--          6/7 have up/down (bytes/s this host enforces now, 0 = none),
--          8 cached version, 9/10 cached rate up/down, 11 cached burst
--          (restores the configuration after Redis lost it; version 0 =
--          nothing cached), 12 "leave" = drop this host's record and return
--          ("lease" or absent: lease), 13 the hosts this host counted at its
--          last lease (0 = none; ends learning mode early, see below),
--          14 the host count set for the limit (set --hosts) as this host
--          keeps it, put back with the configuration (0 or absent = none).
-- Reply    { share_up, share_down, lease_ms, hosts, rate_up, rate_down,
--            version, burst, learning (0/1), target_up, target_down,
--            hosts set (0 = none) }
--
-- Only Redis's clock (TIME) is used: hosts compare no clocks.  A record
-- whose expiry has passed is a dead host's and is dropped, freeing its
-- share.  Grants never exceed the global rate minus the shares the other
-- live records hold, so the shares sum to at most the global rate.
local HOSTS_MAX = 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local me, nonce = ARGV[1], ARGV[2]
if not me or #me == 0 or #me > 255 or not nonce or not nonce:match('^%w+$') then
  return redis.error_reply('BADARG host id or nonce')
end
local function num(s, lo, hi)
  if s == nil then return nil end
  local v = tonumber(s)
  if not v or v ~= v or v < lo or v > hi or v ~= math.floor(v) then return nil end
  return v
end
local RATE_MAX = 1099511627776
local weight = num(ARGV[3], 1, 1000000)
local want = { num(ARGV[4], -1, RATE_MAX), num(ARGV[5], -1, RATE_MAX) }
local have = { num(ARGV[6], 0, RATE_MAX), num(ARGV[7], 0, RATE_MAX) }
local cached = { num(ARGV[8], 0, 2^53), num(ARGV[9], 0, RATE_MAX),
  num(ARGV[10], 0, RATE_MAX), num(ARGV[11], 0, RATE_MAX) }
if not (weight and want[1] and want[2] and have[1] and have[2] and
    cached[1] and cached[2] and cached[3] and cached[4]) then
  return redis.error_reply('BADARG weight, want, have or cached configuration')
end

if ARGV[12] == 'leave' then
  redis.call('HDEL', KEYS[2], me)
  return { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
end

local known = num(ARGV[13] or '0', 0, HOSTS_MAX)
local cached_hosts = num(ARGV[14] or '0', 0, HOSTS_MAX)
if not known or not cached_hosts then
  return redis.error_reply('BADARG hosts known or set')
end

local c = redis.call('HMGET', KEYS[1], 'rate_up', 'rate_down', 'burst',
  'lease_ms', 'version', 'learn_until', 'learn_hosts', 'hosts')
local restored = false
if not c[1] then
  if cached[1] == 0 then
    return redis.error_reply('NOLIMIT no such global limit')
  end
  -- Redis lost the configuration (restart without persistence, failover
  -- to an empty replica): put back this host's copy.  The first host to
  -- come restores it; a newer version set since wins over later copies.
  redis.call('HSET', KEYS[1], 'rate_up', cached[2], 'rate_down', cached[3],
    'burst', cached[4], 'version', cached[1])
  if cached_hosts > 0 then
    -- For the hosts that join later (iprelay-limit set --global).
    redis.call('HSET', KEYS[1], 'hosts', cached_hosts)
    c[8] = cached_hosts
  end
  c = { cached[2], cached[3], cached[4], nil, cached[1], nil, nil, nil }
  restored = true
end
local rate = { tonumber(c[1]) or 0, tonumber(c[2]) or 0 }
local burst = tonumber(c[3]) or 0
local lease = tonumber(c[4]) or 1000
local version = tonumber(c[5]) or 0

-- Live records; expired ones are dead hosts' and go.
local hosts, n = {}, 0
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do
  local w, wu, wd, su, sd, exp, rn = raw[i + 1]:match(
    '^(%d+) (%-?%d+) (%-?%d+) (%d+) (%d+) (%d+) (%w+)$')
  exp = tonumber(exp)
  if exp and exp > now then
    hosts[raw[i]] = { w = tonumber(w), d = { tonumber(wu), tonumber(wd) },
      s = { tonumber(su), tonumber(sd) }, exp = exp, nonce = rn }
    n = n + 1
  else
    redis.call('HDEL', KEYS[2], raw[i])
  end
end

local rec = hosts[me]
if rec and rec.nonce ~= nonce then
  return redis.error_reply('HOSTID host id ' .. me ..
    ' is leased by another state dir; give each host its own id')
end

-- Learning mode: the allocator lost its state but hosts still enforce
-- shares (the configuration had to be restored, or no record is live while
-- the caller holds a share).  For one lease, nobody is granted more than it
-- already has, so no host can take what another still enforces.  It ends
-- early once as many hosts have a live record as any caller counted at its
-- last lease: then every host that can still enforce a share (bar one that
-- joined within a lease of the loss) has told what it enforces, and the
-- grants below never pass the global rate less what the others hold.
local learn_until = tonumber(c[6]) or 0
local learn_hosts = tonumber(c[7]) or 0
if restored or (n == 0 and (have[1] > 0 or have[2] > 0)) then
  learn_until = now + lease
  learn_hosts = 0
  redis.call('HSET', KEYS[1], 'learn_until', learn_until, 'learn_hosts', 0)
end
local learning = now < learn_until

if not rec then
  if n >= HOSTS_MAX then
    return redis.error_reply('TOOMANY more than 1000 hosts on one global limit')
  end
  rec = { s = { have[1], have[2] }, nonce = nonce }
  hosts[me] = rec
  n = n + 1
end
rec.w = weight
rec.d = want
rec.exp = now + lease
if learning then
  if known > learn_hosts then
    learn_hosts = known
    redis.call('HSET', KEYS[1], 'learn_hosts', learn_hosts)
  end
  if learn_hosts > 0 and n >= learn_hosts then
    learning = false
    redis.call('HSET', KEYS[1], 'learn_until', 0)
  end
end

local target = { 0, 0 }
for dir = 1, 2 do
  local cap = rate[dir]
  if cap <= 0 then
    rec.s[dir] = 0                      -- unlimited this way: nothing to share
  else
    -- Weighted max-min water-filling: hosts wanting less than their fair
    -- part get what they want; the rest divide what is left by weight.
    local open, wsum, left, tg = {}, 0, cap, {}
    for id, h in pairs(hosts) do open[id] = h; wsum = wsum + h.w; tg[id] = 0 end
    local settled = true
    while settled and wsum > 0 do
      settled = false
      local fair = left / wsum
      for id, h in pairs(open) do
        local wd = h.d[dir]
        if wd >= 0 and wd <= fair * h.w then
          tg[id] = wd; left = left - wd; wsum = wsum - h.w
          open[id] = nil; settled = true
        end
      end
    end
    if wsum > 0 then
      for id, h in pairs(open) do tg[id] = left * h.w / wsum end
    else
      -- Every want met: the rest is headroom by weight, so an idle host
      -- can grow at once and the shares add up to the global rate.
      local tw = 0
      for _, h in pairs(hosts) do tw = tw + h.w end
      for id, h in pairs(hosts) do tg[id] = tg[id] + left * h.w / tw end
    end
    local others = 0
    for id, h in pairs(hosts) do
      if id ~= me then others = others + h.s[dir] end
    end
    local grant = math.min(tg[me], cap - others)
    if learning then grant = math.min(grant, have[dir]) end
    rec.s[dir] = math.max(0, math.floor(grant))
    target[dir] = math.floor(tg[me])
  end
end

redis.call('HSET', KEYS[2], me, string.format('%d %d %d %d %d %d %s',
  rec.w, rec.d[1], rec.d[2], rec.s[1], rec.s[2], rec.exp, nonce))
-- An abandoned limit's records go away by themselves.
redis.call('PEXPIRE', KEYS[2], lease * 10)
return { rec.s[1], rec.s[2], lease, n, rate[1], rate[2], version, burst,
  learning and 1 or 0, target[1], target[2], tonumber(c[8]) or 0 }
