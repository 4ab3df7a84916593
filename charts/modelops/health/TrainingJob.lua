-- TrainingJob: held by spec.runPolicy.suspend (or a queue) is Suspended.
local suspended, h = holds("Suspended")
if suspended then
  hs.status, hs.message = "Suspended", h.message
  return hs
end
return by_ready()
