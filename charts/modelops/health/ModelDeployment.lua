-- ModelDeployment: a model the spec asks for that was rolled back is Stalled, so Degraded
-- (the message says which revision serves instead): the commit that asked for it is not healthy.
local reconciling, g = holds("Reconciling")
if reconciling then
  hs.message = g.message
  return hs
end
local degraded, d = holds("Degraded")
if degraded then
  hs.status, hs.message = "Degraded", d.message
  return hs
end
return by_ready()
