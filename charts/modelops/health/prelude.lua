-- The start of every modelops.dev health check for Argo CD (docs/gitops.md; Lua 5.1, as Argo CD
-- runs it): scripts/argocd-health puts it before each <Kind>.lua, which Argo CD needs whole.
local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then return c end
  end
  return nil
end
local function holds(type)
  local c = condition(type)
  return c ~= nil and c.status == "True", c
end
local hs = {status = "Progressing", message = "waiting for the operator"}
-- Healthy once Ready, else Progressing with Ready's message: what is left after the kind's own
-- checks.
local function by_ready()
  local ready, r = holds("Ready")
  if ready then
    hs.status, hs.message = "Healthy", r.message
  elseif r ~= nil then
    hs.message = r.message
  end
  return hs
end
if obj.status == nil or obj.status.observedGeneration == nil
    or obj.status.observedGeneration < (obj.metadata.generation or 0) then
  return hs
end
local stalled, s = holds("Stalled")
if stalled then
  hs.status, hs.message = "Degraded", s.message
  return hs
end
