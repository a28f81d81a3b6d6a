package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stepfunctions"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/services/host"
)

// Every Task of the rendered state machine invokes a rendered checkout function, by the
// very ARN of the account and region given; each function's environment is one the host
// accepts as that context's checkout step function; and the drift check holds the files.
func TestCheckoutFunctionsMatchTheMachine(t *testing.T) {
	opts := Options{Account: "111122223333", Region: "eu-west-1"}
	topo := shipped(t)
	files, err := Files(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := identity.OpenCA(t.TempDir(), "ecs")
	if err != nil {
		t.Fatal(err)
	}
	var sm stepfunctions.StateMachine
	if err := json.Unmarshal(files[stepfunctions.Path], &sm); err != nil {
		t.Fatal(err)
	}
	invoked := map[string]bool{}
	for _, st := range sm.States {
		if st.Parameters != nil {
			invoked[st.Parameters.FunctionName] = true
		}
	}
	rendered := map[string]bool{}
	for _, c := range checkoutstep.Contexts() {
		raw, ok := files[CheckoutFunctionPath(c)]
		if !ok {
			t.Errorf("%s is not rendered", CheckoutFunctionPath(c))
			continue
		}
		var in lambda.CreateFunctionInput
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatalf("%s: %v", CheckoutFunctionPath(c), err)
		}
		arn := "arn:aws:lambda:" + opts.Region + ":" + opts.Account + ":function:" + *in.FunctionName
		rendered[arn] = true
		_, s, ok := alone(topo, c)
		if !ok {
			t.Fatalf("no architecture runs %s alone", c)
		}
		env := filledLambdaEnv(t, ca, s, &in).Variables
		env[host.LambdaRuntimeEnv] = "127.0.0.1:9001" // Lambda sets it
		cfg, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Group{})
		if err != nil {
			t.Errorf("%s: the host refuses its environment: %v", c, err)
			continue
		}
		if !cfg.CheckoutSteps || !slices.Equal(cfg.Group.Contexts, []string{c}) || cfg.GRPCAddr != "" || len(cfg.Peers) != 0 {
			t.Errorf("%s: the host reads %+v, want %s's checkout steps, no gRPC", c, cfg, c)
		}
		// As its context's NATS user, whose permissions are its context's buckets and
		// events: the password put in by envsubst at deploy time (filledLambdaEnv's).
		if !strings.HasPrefix(in.Environment.Variables["SHOP_NATS_URL"], "tls://"+c+":${"+natsauth.PasswordEnv(c)+"}@") {
			t.Errorf("%s: not its context's NATS user: %q", c, in.Environment.Variables["SHOP_NATS_URL"])
		}
		// The monolith's image: a group's links the saga's step code only when it holds orders.
		if img, whole := *in.Code.ImageUri, bounded.Everything().Name(); !strings.Contains(img, "/"+whole+":") {
			t.Errorf("%s: runs image %s, want the monolith's (%s)", c, img, whole)
		}
		if _, ok := env[checkoutstep.CardKeyEnv]; ok != (c == "payments") {
			t.Errorf("%s: %s set %v, want it for payments only", c, checkoutstep.CardKeyEnv, ok)
		}
	}
	if got, want := slices.Sorted(maps.Keys(invoked)), slices.Sorted(maps.Keys(rendered)); !slices.Equal(got, want) {
		t.Errorf("the machine invokes %v, the rendered functions are %v", got, want)
	}

	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	path := CheckoutFunctionPath("payments")
	full := filepath.Join(dir, filepath.FromSlash(path))
	edited := bytes.Replace(files[path], []byte(`"checkout-steps"`), []byte(`"http"`), 1)
	if bytes.Equal(edited, files[path]) {
		t.Fatal("no role to edit")
	}
	if err := os.WriteFile(full, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	drift, err := Check(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(drift); len(drift) != 1 || !strings.Contains(got, path+": differs") {
		t.Errorf("drift after editing %s: %s", path, got)
	}
}
