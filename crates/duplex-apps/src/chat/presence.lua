-- The members of one chat room in Redis, changed and read in one step (Redis runs a script
-- atomically). Called by crates/duplex-apps/src/chat/redis_presence.rs, which documents the keys.
--
-- KEYS[1]  the room's members: a hash, nickname folded to lowercase -> {"nick","node","conn","key","order"}
-- KEYS[2]  the version of the room's member list (milliseconds since the epoch, growing)
-- ARGV[1]  the prefix of the nodes' liveness keys;  ARGV[2] this node's id
-- ARGV[3]  how long this node's liveness key lives (ms);  ARGV[4] how long the room's keys live (s)
-- ARGV[5]  "join"  ARGV[6..9]: fold, nick, conn, key
--          "leave" ARGV[6..7]: fold, conn
--          "sync"  ARGV[6]: "1" to give the list a new version anyway; then fold, nick, conn, key
--                  for each member this node has in the room
-- Returns {status ("taken": the nickname is someone else's, for a join or a leave; else "ok"), version, nicknames in joining order, nicknames of members
-- whose node is gone (removed now), 1 if the list changed}.
local members, vkey = KEYS[1], KEYS[2]
local prefix, node, ttl, expiry, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SET', prefix .. node, '1', 'PX', ttl)

local function entries()
  local all, list = redis.call('HGETALL', members), {}
  for i = 1, #all, 2 do
    local e = cjson.decode(all[i + 1])
    e.fold = all[i]
    list[#list + 1] = e
  end
  return list
end

local function entry(nick, conn, key, order)
  return cjson.encode({ nick = nick, node = node, conn = conn, key = key, order = order })
end

-- Members of nodes that stopped renewing their liveness key are gone.
local changed, gone, alive = false, {}, {}
for _, e in ipairs(entries()) do
  if alive[e.node] == nil then alive[e.node] = redis.call('EXISTS', prefix .. e.node) == 1 end
  if not alive[e.node] then
    redis.call('HDEL', members, e.fold)
    gone[#gone + 1] = e.nick
    changed = true
  end
end

local version = tonumber(redis.call('GET', vkey) or '0')
local t = redis.call('TIME')
local next_version = math.max(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), version + 1)

local status = 'ok'
if op == 'join' then
  local fold, nick, conn, key = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local old = redis.call('HGET', members, fold)
  local o = old and cjson.decode(old)
  local same = o and o.node == node and o.conn == conn
  if o and not same and (key == '' or o.key ~= key) then
    status = 'taken'
  elseif not (same and o.nick == nick) then
    redis.call('HSET', members, fold, entry(nick, conn, key, same and o.order or next_version))
    changed = true
  end
elseif op == 'leave' then
  local fold, conn = ARGV[6], ARGV[7]
  local old = redis.call('HGET', members, fold)
  if old then
    local o = cjson.decode(old)
    if o.node == node and o.conn == conn then
      redis.call('HDEL', members, fold)
      changed = true
    else
      status = 'taken'
    end
  end
elseif op == 'sync' then
  if ARGV[6] == '1' then changed = true end
  local mine = {}
  for i = 7, #ARGV, 4 do
    local fold, nick, conn, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    mine[fold .. '\n' .. conn] = true
    if not redis.call('HGET', members, fold) then
      redis.call('HSET', members, fold, entry(nick, conn, key, next_version))
      changed = true
    end
  end
  for _, e in ipairs(entries()) do
    if e.node == node and not mine[e.fold .. '\n' .. e.conn] then
      redis.call('HDEL', members, e.fold)
      changed = true
    end
  end
end

if changed then
  version = next_version
  redis.call('SET', vkey, string.format('%d', version))
end
redis.call('EXPIRE', members, expiry)
redis.call('EXPIRE', vkey, expiry)
local list = entries()
table.sort(list, function(a, b)
  if a.order ~= b.order then return a.order < b.order end
  return a.fold < b.fold
end)
local nicks = {}
for i, e in ipairs(list) do nicks[i] = e.nick end
return { status, version, nicks, gone, changed and 1 or 0 }
