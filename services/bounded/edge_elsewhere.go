//go:build mitosis_group && !mitosis_edge

package bounded

import (
	"context"
	"errors"
	"net/http"
)

// Handler is not linked into a group's binary without the edge (build tag mitosis_edge):
// the HTTP API's code is not in it, so a change to it does not change this binary.
func (Edge) Handler(Deps, string, func(context.Context) error) (http.Handler, error) {
	return nil, errors.New("this binary was built for a group without the edge (build tag mitosis_edge)")
}
