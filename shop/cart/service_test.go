package cart_test

import (
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/cart/carttest"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

func TestMemory(t *testing.T) {
	carttest.Run(t, func(t *testing.T) cart.Service { return cart.New(kv.NewMemory()) })
}

func TestJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	carttest.Run(t, func(t *testing.T) cart.Service { return cart.New(srv.Bucket(t, "carts")) })
}
