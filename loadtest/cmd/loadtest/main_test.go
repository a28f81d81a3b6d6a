package main

import (
	"strings"
	"testing"
)

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:8081", "http://127.0.0.2:9000", "http://[::1]:8080"} {
		if err := loopbackOnly(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com", "https://127.0.0.1:8080", "http://192.168.1.5", "http://0.0.0.0:8080"} {
		if err := loopbackOnly(bad); err == nil {
			t.Errorf("%s: want a refusal", bad)
		}
	}
}

func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "load"}, {[]string{"-preset", "compare"}, "compare"}, {[]string{"--preset=compare", "-rates", "1,2"}, "compare"},
	} {
		name, _, err := presetOf(tc.args)
		if err != nil || name != tc.want {
			t.Errorf("presetOf(%q) = %q, %v; want %q", tc.args, name, err, tc.want)
		}
	}
	if _, _, err := presetOf([]string{"-preset", "huge"}); err == nil || !strings.Contains(err.Error(), "load or compare") {
		t.Errorf("unknown preset: %v", err)
	}
}
