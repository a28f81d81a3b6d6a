package host_test

import (
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/services/host"
)

// A checkout step function is one context the checkout calls, under Lambda, on NATS
// elsewhere; any other combination is refused with a reason.
func TestConfigOfACheckoutStepFunction(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	base := map[string]string{host.LambdaRuntimeEnv: "127.0.0.1:9001", checkoutstep.RoleEnv: checkoutstep.Role,
		"SHOP_GROUP": "orders", "SHOP_NATS_URL": "nats://nats:4222"}
	cfg, err := host.ConfigFrom(env(base), bounded.Group{})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Lambda || !cfg.CheckoutSteps || cfg.GRPCAddr != "" || len(cfg.Peers) != 0 || cfg.SoleReplica {
		t.Errorf("config %+v: want checkout steps under Lambda, no gRPC, not the sole replica", cfg)
	}
	for name, change := range map[string]map[string]string{
		"not under Lambda":         {host.LambdaRuntimeEnv: ""},
		"a context checkout skips": {"SHOP_GROUP": "shipping"},
		"two contexts":             {"SHOP_GROUP": "cart+orders"},
		"the edge":                 {"SHOP_GROUP": "edge+orders"},
		"an unknown role":          {checkoutstep.RoleEnv: "sweeper"},
		"an embedded store":        {"SHOP_NATS_URL": "", "SHOP_GROUP": "catalog+cart+inventory+payments+orders+shipping+notify"},
		"the edge's role, no edge": {checkoutstep.RoleEnv: "http"},
	} {
		kv := map[string]string{}
		for k, v := range base {
			kv[k] = v
		}
		for k, v := range change {
			kv[k] = v
		}
		if _, err := host.ConfigFrom(env(kv), bounded.Group{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
