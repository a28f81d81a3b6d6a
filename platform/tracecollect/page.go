package tracecollect

import (
	_ "embed"
	"net/http"
)

// tracePage is the collector's trace page: a search (service, operation, duration, time
// window) and a waterfall of any one trace, in one self-contained file (no script, style
// or font from elsewhere) that reads the Jaeger UI API of this server (jaegerui.go), as a
// Jaeger UI would.
//
//go:embed page/traces.html
var tracePage []byte

// routePage serves the page at /search (its query is the search's) and at /trace/{id}.
func routePage(mux *http.ServeMux) {
	serve := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write(tracePage)
	}
	mux.HandleFunc("GET /search", serve)
	mux.HandleFunc("GET /trace/{id}", serve)
}
