package worker

import (
	"reflect"
	"runtime"
	"strings"
)

// runtimeName is the name the SDK registers a function under: its name
// without the package path.
func runtimeName(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	if i := strings.LastIndex(full, "."); i >= 0 {
		full = full[i+1:]
	}
	return strings.TrimSuffix(full, "-fm")
}
