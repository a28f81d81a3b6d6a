package podmanrt

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/network"
	"github.com/containers/podman/v4/pkg/bindings/pods"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// NetworkName is the network of one architecture of the stack.
func (r *Runtime) NetworkName(arch string) string { return r.stack + "-" + arch }

// serviceIP is the i-th process's address in the network (every replica of every service
// in turn): the subnet's .10 and up. A remade pod gets its old address back, so that its
// peers' connections (gRPC resolves DNS again only every 30s) find it at once.
func serviceIP(subnet *net.IPNet, i int) net.IP {
	if subnet == nil {
		return nil
	}
	ip := subnet.IP.To4()
	if ip == nil {
		return nil
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3] += byte(10 + i)
	if !subnet.Contains(out) {
		return nil
	}
	return out
}

// collectorIP is the collector's fixed address in an architecture's network: below the
// processes' (serviceIP), above the gateway.
func collectorIP(subnet *net.IPNet) net.IP { return serviceIP(subnet, -1) }

// collectorLink is the collector's pod as one up joins it to the architectures' networks:
// its infra container (whose network namespace the collector's process shares) and where
// that one is attached, read once per up, so that an up that finds the collector in a
// network at its address asks Podman nothing more about it.
type collectorLink struct {
	pod, infra string
	mu         sync.Mutex        // the architectures come up side by side: one join at a time
	at         map[string]string // network name -> the collector's address there
}

// linkCollector reads where the collector's pod is attached: one inspect of the pod, one of
// its infra container.
func (r *Runtime) linkCollector(c context.Context, pod string) (*collectorLink, error) {
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return nil, fmt.Errorf("collector: inspect pod %s: %w", pod, err)
	}
	infra, err := containers.Inspect(c, data.InfraContainerID, nil)
	if err != nil {
		return nil, fmt.Errorf("collector: inspect the infra container of %s: %w", pod, err)
	}
	l := &collectorLink{pod: pod, infra: data.InfraContainerID, at: map[string]string{}}
	if infra.NetworkSettings != nil {
		for name, n := range infra.NetworkSettings.Networks {
			if n != nil {
				l.at[name] = n.IPAddress
			}
		}
	}
	return l, nil
}

// joinCollector connects the collector's pod to an architecture's network at collectorIP,
// unless it is there already; a pod that runs is connected as it runs.
func (r *Runtime) joinCollector(c context.Context, l *collectorLink, arch string, subnet *net.IPNet) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip := collectorIP(subnet)
	if ip == nil {
		return fmt.Errorf("network %s has no IPv4 subnet for the collector's fixed address", r.NetworkName(arch))
	}
	name := r.NetworkName(arch)
	if at, ok := l.at[name]; ok {
		if at == ip.String() {
			return nil
		}
		// Joined at another address (by hand): leave and join at the one the pods use.
		if err := network.Disconnect(c, name, l.infra, new(network.DisconnectOptions).WithForce(true)); err != nil {
			return fmt.Errorf("collector: leave network %s: %w", name, err)
		}
		delete(l.at, name)
	}
	start := time.Now()
	err := network.Connect(c, name, l.infra, &nettypes.PerNetworkOptions{StaticIPs: []net.IP{ip}, StaticMAC: serviceMAC(ip)})
	if err != nil {
		return fmt.Errorf("collector: join network %s at %s: %w", name, ip, err)
	}
	l.at[name] = ip.String()
	r.logger.Debug("collector joined", "network", name, "ip", ip, "took", time.Since(start))
	return nil
}

// serviceMAC is the fixed hardware address that goes with a fixed IP: a remade pod that
// kept its address but took a new MAC would not be answered by its peers until their ARP
// caches let the old one go (seconds to tens of seconds).
func serviceMAC(ip net.IP) nettypes.HardwareAddr {
	v4 := ip.To4()
	return nettypes.HardwareAddr{0x02, 0x6d, v4[0], v4[1], v4[2], v4[3]} // locally administered
}

// rejoinCollector joins the collector to the networks of the stack's architectures that t
// does not name, where it is not attached already.
func (r *Runtime) rejoinCollector(ctx context.Context, t topology.Topology, collector *collectorLink) error {
	c, cancel := r.with(ctx)
	defer cancel()
	nets, err := network.List(c, new(network.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets {
		arch := n.Labels[stack.LabelArch]
		if topology.StackArch(arch) || slices.ContainsFunc(t.Archs, func(a topology.Arch) bool { return a.Name == arch }) {
			continue
		}
		for _, sn := range n.Subnets {
			if sn.Subnet.IP.To4() != nil {
				if err := r.joinCollector(c, collector, arch, &net.IPNet{IP: sn.Subnet.IP, Mask: sn.Subnet.Mask}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// ensureNetwork makes the architecture's network unless it exists, and returns its subnet.
func (r *Runtime) ensureNetwork(c context.Context, arch string, dns bool) (*net.IPNet, error) {
	name := r.NetworkName(arch)
	n, err := network.Inspect(c, name, nil)
	if err == nil && n.Labels[stack.LabelStack] != r.stack {
		return nil, fmt.Errorf("network %s exists but is not this stack's (labels %v)", name, n.Labels)
	}
	if err != nil {
		n, err = network.Create(c, &nettypes.Network{
			Name:       name,
			Driver:     "bridge",
			DNSEnabled: dns,
			Labels:     r.labels(arch, ""),
		})
		if err != nil && strings.Contains(err.Error(), "already exists") {
			n, err = network.Inspect(c, name, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("create network %s: %w", name, err)
		}
	}
	for _, sn := range n.Subnets {
		if sn.Subnet.IP.To4() != nil {
			return &net.IPNet{IP: sn.Subnet.IP, Mask: sn.Subnet.Mask}, nil
		}
	}
	return nil, nil
}
