-- Monitor: a latest verdict of Fail is Degraded: the model it watches is not good enough.
local last = obj.status.lastEvaluation
if last ~= nil and last.verdict == "Fail" then
  hs.status = "Degraded"
  hs.message = "revision " .. tostring(last.revision) .. " fails: " .. tostring(last.message or last.reason)
  return hs
end
return by_ready()
