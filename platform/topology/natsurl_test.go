package topology

import (
	"net/url"
	"testing"
)

// NATSURL writes the URL nats.go reads back: the scheme for the server's TLS, the address,
// and a password holding URL syntax (@ / : ?) escaped so that it comes back whole.
func TestNATSURL(t *testing.T) {
	for _, c := range []struct {
		secure     bool
		user       *url.Userinfo
		addr, want string
	}{
		{false, nil, "127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{true, url.UserPassword("cart", "0a1b"), "nats:4222", "tls://cart:0a1b@nats:4222"},
		{true, url.UserPassword("cart", "p@ss/w:rd?"), "nats:4222", "tls://cart:p%40ss%2Fw%3Ard%3F@nats:4222"},
	} {
		got := NATSURL(c.secure, c.user, c.addr)
		if got != c.want {
			t.Errorf("NATSURL(%v, %v, %s) = %s, want %s", c.secure, c.user, c.addr, got, c.want)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if u.Host != c.addr || u.User.String() != c.user.String() {
			t.Errorf("%s reads back as host %s, user %v", got, u.Host, u.User)
		}
		if c.user != nil {
			want, _ := c.user.Password()
			if pw, _ := u.User.Password(); pw != want {
				t.Errorf("%s: password %q, want %q", got, pw, want)
			}
		}
	}
}

// A service's SHOP_NATS_URL is NATSURL of its resolver: the user and TLS a runtime gives,
// the NATS service's address as the runtime reaches it.
func TestExpandNATSURL(t *testing.T) {
	s := Service{Name: "cart", Ports: []int{9102}, Env: map[string]string{NATSURLEnv: "{{nats_url:nats}}"}}
	r := Resolver{
		Addr: func(svc string, port int) (string, error) {
			if svc != "nats" || port != 0 {
				t.Errorf("addr of %s:%d, want nats's first port", svc, port)
			}
			return "10.0.0.7:4222", nil
		},
		Listen:   func(int) string { return "" },
		NATSUser: url.UserPassword("cart", "pw"),
		NATSTLS:  true,
	}
	_, env, err := Expand(s, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := env[NATSURLEnv], "tls://cart:pw@10.0.0.7:4222"; got != want {
		t.Errorf("%s = %s, want %s", NATSURLEnv, got, want)
	}
	r.NATSUser, r.NATSTLS = nil, false // an insecure up
	if _, env, _ = Expand(s, r); env[NATSURLEnv] != "nats://10.0.0.7:4222" {
		t.Errorf("insecure: %s", env[NATSURLEnv])
	}
}
