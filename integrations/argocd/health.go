package main

import (
	"context"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health is what a health script returns: an Argo CD health status and a message.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// validStatuses are the health statuses Argo CD accepts from a script; it turns anything else
// into Unknown.
var validStatuses = map[string]bool{
	"Unknown":     true,
	"Progressing": true,
	"Suspended":   true,
	"Healthy":     true,
	"Degraded":    true,
	"Missing":     true,
}

// Evaluate runs a health script on obj the way Argo CD runs a script configured in argocd-cm
// (resource.customizations.health.<group>_<kind>): a fresh state without the standard libraries
// (resource.customizations.useOpenLibs is off by default), then only the package, base and table
// libraries, a one-second deadline, and the object as the global `obj`. Argo CD also opens a
// reduced os library, which relman's script does not use and this harness leaves out, so a
// script that needs it fails here rather than in Argo CD.
func Evaluate(script string, obj map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Health{}, fmt.Errorf("opening the Lua library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Health{}, err
	}

	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	status, ok := ret.RawGetString("status").(lua.LString)
	if !ok {
		return Health{}, fmt.Errorf("the script returned no string status: %s", ret.RawGetString("status").Type())
	}
	if !validStatuses[string(status)] {
		return Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	h := Health{Status: string(status)}
	switch message := ret.RawGetString("message").(type) {
	case lua.LString:
		h.Message = string(message)
	case *lua.LNilType:
	default:
		return Health{}, fmt.Errorf("the script returned a %s message, not a string", message.Type())
	}
	return h, nil
}

// toLua converts a decoded JSON value to Lua the way Argo CD does (util/lua decodeValue): objects
// and arrays become tables, numbers become Lua numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}
