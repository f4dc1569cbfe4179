-- wrk script: unique 1 KiB envelopes (version byte, 32-byte key, 1,040-byte ciphertext),
-- POSTed round-robin over the slots listed in a file, one "slot owner_token" per line.
--
--   wrk -t2 -c64 -d20s --latency -s wire-relay/bench/append.lua URL -- SLOTS_FILE [HELLO]
--
-- With a second argument `hello` the same bodies go to `/` (the hello server's ceiling).
-- wire-relay/bench/wrk-append.sh allocates the slots and runs it.

local slots = {}
local ciphertext = string.rep("c", 1040)
local counter = 0
local next_id = 0
local hello = false

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  hello = args[2] == "hello"
  for line in io.lines(args[1]) do
    local slot, token = line:match("^(%S+)%s+(%S+)$")
    if slot then
      slots[#slots + 1] = { path = "/v1/slots/" .. slot .. "/events", token = "Bearer " .. token }
    end
  end
  -- Threads start at different slots.
  counter = id * 7919
end

function request()
  counter = counter + 1
  -- The key part carries the thread and a counter, so every envelope is new to the relay.
  local key = string.format("%016x%016x", id, counter)
  local body = "\1" .. key .. ciphertext
  if hello then
    return wrk.format("POST", "/", { ["Content-Type"] = "application/octet-stream" }, body)
  end
  local target = slots[(counter % #slots) + 1]
  return wrk.format("POST", target.path, {
    ["Authorization"] = target.token,
    ["Content-Type"] = "application/octet-stream",
  }, body)
end
