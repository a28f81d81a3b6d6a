package topology

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A replica is a process of its group's size: a group of N weighs N times its weight, the
// others shrink so that the architecture's total stays its budget, each replica at least the
// floors.
func TestReplicasEachWeighAsTheirGroup(t *testing.T) {
	for _, b := range []Budget{{CPUs: DefaultCPUs, MemoryMB: DefaultMemoryMB}, {CPUs: 1, MemoryMB: 500}, {CPUs: 0.9, MemoryMB: 500}} {
		one, err := Get("", Options{Split: "catalog,cart,inventory,payments,orders,shipping,notify", Collector: NoCollector, Budget: b})
		if err != nil {
			t.Fatal(err)
		}
		two, err := Get("", Options{Split: "catalog*2,cart,inventory,payments,orders*3,shipping,notify", Collector: NoCollector, Budget: b})
		if err != nil {
			t.Fatalf("%+v: %v", b, err)
		}
		a1, a2 := one.Archs[0], two.Archs[0]
		if a2.Split != "catalog*2,cart,inventory,payments,orders*3,shipping,notify,edge" {
			t.Errorf("split written %q", a2.Split)
		}
		milli, mem, procs := 0, 0, 0
		for _, s := range a2.Services {
			milli += s.Count() * int(s.CPUs*1000+0.5)
			mem += s.Count() * s.MemoryMB
			procs += s.Count()
			if s.CPUs*1000 < minMilliCPU-0.5 || s.MemoryMB < minMemoryMB {
				t.Errorf("%+v: %s gets %g CPUs and %d MiB per process, under the floors", b, s.Name, s.CPUs, s.MemoryMB)
			}
		}
		if milli != int(b.CPUs*1000+0.5) || mem != b.MemoryMB {
			t.Errorf("%+v: %d processes add up to %d millicores and %d MiB", b, procs, milli, mem)
		}
		if procs != 12 {
			t.Errorf("%d processes, want 12 (nats, gateway, 2 catalog, 3 orders, 5 others)", procs)
		}
		milli1 := func(a Arch, name string) int {
			s, _ := a.Service(name)
			return int(s.CPUs*1000 + 0.5)
		}
		for _, name := range []string{"catalog", "orders"} {
			s1, _ := a1.Service(name)
			s2, _ := a2.Service(name)
			n := s2.Count()
			alone, each := milli1(a1, name), milli1(a2, name)
			// More than an even split of its part alone (a second process of the same
			// size, not half of one), no more than that part (the budget is the same).
			if each <= alone/n || each > alone {
				t.Errorf("%+v: %s: %d millicores per replica of %d, %d alone: want more than %d, at most %d", b, name, each, n, alone, alone/n, alone)
			}
			if s2.Env["SHOP_SOLE_REPLICA"] != "false" || s1.Env["SHOP_SOLE_REPLICA"] != "true" {
				t.Errorf("%s: SHOP_SOLE_REPLICA %q with replicas, %q alone", name, s2.Env["SHOP_SOLE_REPLICA"], s1.Env["SHOP_SOLE_REPLICA"])
			}
		}
		// What the replicas take comes from the others.
		for _, s := range a1.Services {
			if s.Name != "catalog" && s.Name != "orders" && milli1(a2, s.Name) > milli1(a1, s.Name) {
				t.Errorf("%+v: %s grew from %d to %d millicores", b, s.Name, milli1(a1, s.Name), milli1(a2, s.Name))
			}
		}
		// At the default budget no floor binds: a replica stands to a group of one process as
		// their weights do, as the group alone did.
		if b.CPUs == DefaultCPUs {
			r1 := float64(milli1(a1, "catalog")) / float64(milli1(a1, "cart"))
			r2 := float64(milli1(a2, "catalog")) / float64(milli1(a2, "cart"))
			if math.Abs(r2-r1) > 0.1*r1 {
				t.Errorf("catalog/cart: %.2f with replicas, %.2f alone", r2, r1)
			}
		}
	}
	if _, err := Get("", Options{Split: "catalog*16,cart,inventory,payments,orders,shipping,notify", Budget: Budget{CPUs: 1, MemoryMB: 640}}); err == nil ||
		!strings.Contains(err.Error(), "too small for 23 processes besides NATS") {
		t.Errorf("16 replicas in 1 CPU: %v, want too small for 23 processes besides NATS", err)
	}
}

// Replicas are named <service>-<n>, and callers are told every one's address.
func TestReplicasAreNamedAndReachedAll(t *testing.T) {
	topo, err := Get("", Options{Split: "edge,catalog+inventory*2,cart+orders+payments,shipping+notify", Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	ci, ok := a.Service("catalog-inventory")
	if !ok {
		t.Fatal("no catalog-inventory service")
	}
	var names []string
	for _, p := range ci.Processes() {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "catalog-inventory-1,catalog-inventory-2" {
		t.Errorf("processes %v", names)
	}
	if gw, _ := a.Service("gateway"); len(gw.Processes()) != 1 || gw.Processes()[0] != (Replica{Name: "gateway"}) {
		t.Errorf("the gateway's processes: %v", gw.Processes())
	}
	addr, err := a.Addr("catalog-inventory", 0, func(p string, port int) string { return p + ":" + strconv.Itoa(port) })
	if err != nil || addr != "catalog-inventory-1:9101,catalog-inventory-2:9101" {
		t.Errorf("addr %q %v", addr, err)
	}
	if _, err := a.Addr("nobody", 0, nil); err == nil {
		t.Error("the address of an unknown service")
	}
}

// Replicas of the edge's group are refused, with the reason; so are counts out of bounds,
// in --split and in files alike.
func TestReplicasRefused(t *testing.T) {
	for split, want := range map[string]string{
		"edge*2,catalog,cart,inventory,payments,orders,shipping,notify":    "holds the edge",
		"edge+catalog*3,cart,inventory,payments,orders,shipping,notify":    "holds the edge",
		"catalog*0,cart,inventory,payments,orders,shipping,notify":         "want a number from 1 to 16",
		"catalog*17,cart,inventory,payments,orders,shipping,notify":        "want a number from 1 to 16",
		"catalog*two,cart,inventory,payments,orders,shipping,notify":       "want a number",
		"catalog*2*2,cart,inventory,payments,orders,shipping,notify":       "want a number",
		"catalog+cart*2+inventory,payments,orders,shipping,notify":         "want a number",
		"catalog*2,catalog,cart,inventory,payments,orders,shipping,notify": "two groups",
	} {
		if _, err := Get("", Options{Split: split}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("split %q: %v, want an error saying %q", split, err, want)
		}
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"edge-twice": "name: edge-twice\ngroups: [{contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify], replicas: 2}]\n",
		"too-many":   "name: too-many\ngroups: [{contexts: [edge]}, {contexts: [catalog, cart, inventory, payments, orders, shipping, notify], replicas: 40}]\n",
	} {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); err == nil {
			t.Errorf("%s was read", name)
		}
	}
	ok := filepath.Join(dir, "scaled.yaml")
	if err := os.WriteFile(ok, []byte("name: scaled\ngroups: [{contexts: [edge]}, {name: shop, contexts: [catalog, cart, inventory, payments, orders, shipping, notify], replicas: 3}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := Get("scaled", Options{Dir: dir, Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := topo.Archs[0].Service("shop"); s.Count() != 3 || topo.Archs[0].Split != "edge,catalog+cart+inventory+payments+orders+shipping+notify*3" {
		t.Errorf("file with replicas: %d processes, split %q", s.Count(), topo.Archs[0].Split)
	}
}

// --env sets a variable on the services that run a target, and nowhere else; it cannot
// change the topology's wiring, nor name nothing.
func TestEnvSettings(t *testing.T) {
	parse := func(specs ...string) []EnvSetting {
		var out []EnvSetting
		for _, s := range specs {
			e, err := ParseEnv(s)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			out = append(out, e)
		}
		return out
	}
	topo, err := Get(Both, Options{Collector: NoCollector, Env: parse("orders:ROLLOUT=2", "services/gateway:SHOP_LOG_LEVEL=debug")})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range topo.Archs {
		for _, s := range a.Services {
			wantRollout := s.Name == "orders" || s.Name == "monolith"
			if got := s.Env["ROLLOUT"]; (got == "2") != wantRollout || (!wantRollout && got != "") {
				t.Errorf("%s/%s: ROLLOUT=%q", a.Name, s.Name, got)
			}
			wantDebug := a.Name == Services && s.Name == "gateway"
			if got := s.Env["SHOP_LOG_LEVEL"]; (got == "debug") != wantDebug {
				t.Errorf("%s/%s: SHOP_LOG_LEVEL=%q", a.Name, s.Name, got)
			}
		}
	}
	for spec, want := range map[string]string{
		"orders:SHOP_GROUP=cart":  "set by the topology",
		"catalog:GOMEMLIMIT=1GiB": "set by the topology",
		"basket:X=1":              "no service of monolith, services runs basket",
		"hybrid/orders:X=1":       "no service of hybrid runs orders",
	} {
		if _, err := Get(Both, Options{Env: parse(spec)}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--env %s: %v, want an error saying %q", spec, err, want)
		}
	}
	for _, bad := range []string{"orders", "orders:X", ":X=1", "orders:1X=1", "orders:X-Y=1", "orders:X=a\x00b"} {
		if _, err := ParseEnv(bad); err == nil {
			t.Errorf("ParseEnv(%q) accepted", bad)
		}
	}
	if e, err := ParseEnv("services/catalog:A=b=c"); err != nil || e != (EnvSetting{Arch: "services", Target: "catalog", Key: "A", Value: "b=c"}) || e.String() != "services/catalog:A=b=c" {
		t.Errorf("ParseEnv: %+v %v", e, err)
	}
}

// The scaling gain's variant: the same placement, one group with replicas.
func TestScaledSplit(t *testing.T) {
	topo, err := Get(Services, Options{Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	split, err := a.ScaledSplit("catalog", 2)
	if err != nil || split != "edge,catalog*2,cart,inventory,payments,orders,shipping,notify" {
		t.Errorf("ScaledSplit: %q %v", split, err)
	}
	v, err := Get("", Options{Split: split, SplitName: "services-x2", Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	// The catalog's replicas are each of about its size alone; the others make room.
	for _, s := range a.Services {
		w, ok := v.Archs[0].Service(s.Name)
		switch {
		case !ok:
			t.Errorf("%s missing from the variant", s.Name)
		case s.Name == "catalog" && (w.CPUs <= s.CPUs/2 || w.CPUs > s.CPUs):
			t.Errorf("catalog: %g CPUs per replica, %g alone", w.CPUs, s.CPUs)
		case s.Name != "catalog" && s.Name != "nats" && (w.CPUs >= s.CPUs || w.MemoryMB > s.MemoryMB):
			t.Errorf("%s in the variant: %g CPUs %d MiB, in the services %g CPUs %d MiB: want less", s.Name, w.CPUs, w.MemoryMB, s.CPUs, s.MemoryMB)
		case s.Name == "nats" && (w.CPUs != s.CPUs || w.MemoryMB != s.MemoryMB):
			t.Errorf("nats in the variant: %g CPUs %d MiB, its fixed part %g CPUs %d MiB", w.CPUs, w.MemoryMB, s.CPUs, s.MemoryMB)
		}
	}
	if _, err := a.ScaledSplit("gateway", 2); err == nil || !strings.Contains(err.Error(), "holds the edge") {
		t.Errorf("the edge's group with replicas: %v", err)
	}
	if _, err := a.ScaledSplit("nats", 2); err == nil {
		t.Error("NATS with replicas")
	}
}
