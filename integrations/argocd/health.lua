-- Argo CD health check for relman.io/Release.
--
-- Install it under the argocd-cm key resource.customizations.health.relman.io_Release (see
-- argocd-cm.yaml and docs/gitops.md). It reads only what relman writes to the Release's status:
-- status.observedGeneration, status.phase and the Ready, Reconciling and Stalled conditions.
--
--   Progressing  relman has not yet seen this generation of the spec ("Waiting for relman"),
--                or the release is on its way (requirements, rollouts, smoke tests, a revert)
--   Suspended    it waits for a person or for time: a sign-off (AwaitingApproval) or the
--                calendar's deployment window (AwaitingWindow)
--   Healthy      it succeeded: Ready=True
--   Degraded     it cannot go on without a person: Stalled=True, or it ended RolledBack or Failed
--
-- Argo CD runs custom health checks without the Lua standard libraries (only base, table and a
-- safe os), so this script uses none of them: no string.*, no ("..."):method().

local hs = {}

local function find_condition(conditions, condition_type)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == condition_type then
      return condition
    end
  end
  return nil
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

local function message_of(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for relman"
  return hs
end

local phase = status.phase
local ready = find_condition(status.conditions, "Ready")
local reconciling = find_condition(status.conditions, "Reconciling")
local stalled = find_condition(status.conditions, "Stalled")

if phase == "AwaitingApproval" or phase == "AwaitingWindow" then
  hs.status = "Suspended"
  hs.message = message_of(reconciling, message_of(ready, phase))
  return hs
end

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Released")
  return hs
end

if is_true(stalled) or phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  if is_true(stalled) then
    hs.message = message_of(stalled, message_of(ready, phase))
  else
    hs.message = message_of(ready, phase)
  end
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, phase or "Progressing")
return hs
