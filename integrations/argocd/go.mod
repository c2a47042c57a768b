// Runs relman's Argo CD health check (health.lua) with gopher-lua, the Lua interpreter Argo CD
// embeds, pinned at the version Argo CD ships.
module relman.io/integrations/argocd

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	sigs.k8s.io/yaml v1.4.0
)
