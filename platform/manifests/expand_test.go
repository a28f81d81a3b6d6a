package manifests

import "testing"

// Expand replaces $(NAME) of the variables given, as the kubelet does, and leaves any other
// $(...) as it is.
func TestExpand(t *testing.T) {
	before := []EnvVar{{Name: "SHOP_NATS_PASSWORD", Value: "pw"}, {Name: "POD_IP", Value: "10.0.0.1"}}
	for _, tc := range []struct{ in, want string }{
		{"nats://cart:$(SHOP_NATS_PASSWORD)@nats:4222", "nats://cart:pw@nats:4222"},
		{"$(POD_IP):9101", "10.0.0.1:9101"},
		{"$(LATER) and $(POD_IP)", "$(LATER) and 10.0.0.1"},
		{"$POD_IP ${POD_IP}", "$POD_IP ${POD_IP}"},
	} {
		if got := Expand(tc.in, before); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Expand("$(POD_IP)", nil); got != "$(POD_IP)" {
		t.Errorf("Expand with nothing defined before: %q", got)
	}
}
