package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
)

// Probes answers an orchestrator's probes on a port of their own, for a process that serves
// no edge: GET /healthz says whether the process is alive and GET /readyz whether it can
// serve, each with the body of an edge's own /healthz and /readyz (200 {"status":"ok"}, or a
// 503 unavailable problem naming the error); any other request is a 404 not-found problem,
// as on the edge (with Allow for another method on these paths).
// It makes no spans, writes no log and reads no body: probes come every few seconds, from a
// caller that is not a client of the shop, and say nothing of a request (the process logs
// each change of its readiness itself).
func Probes(alive, ready func(context.Context) error) http.Handler {
	answer := func(check func(context.Context) error, what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", http.MethodGet)
				writeProbeProblem(w, newProblem(CodeNotFound, "no route for "+r.Method+" "+r.URL.Path+"; this path serves GET"))
				return
			}
			if err := check(r.Context()); err != nil {
				writeProbeProblem(w, newProblem(CodeUnavailable, what+": "+err.Error()))
				return
			}
			writeStatusOK(w)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", answer(alive, "not alive"))
	mux.Handle("/readyz", answer(ready, "not ready"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProbeProblem(w, newProblem(CodeNotFound, "this port answers GET /healthz and GET /readyz only"))
	})
	return mux
}

func writeProbeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(&p) // a write error means the prober is gone
}
