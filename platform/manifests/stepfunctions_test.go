package manifests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stepfunctions"
)

// The checkout state machine is rendered with the user's account and region in its functions'
// ARNs, and the drift check holds it: an edit of it is reported, as is its absence.
func TestStepFunctionsRenderedAndChecked(t *testing.T) {
	files, err := Files(shipped(t), Options{Account: "111122223333", Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	sm, ok := files[stepfunctions.Path]
	if !ok {
		t.Fatalf("%s is not rendered", stepfunctions.Path)
	}
	if want := stepfunctions.FunctionARN("eu-west-1", "111122223333", "payments"); !bytes.Contains(sm, []byte(`"`+want+`"`)) {
		t.Errorf("%s does not call %s", stepfunctions.Path, want)
	}
	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, filepath.FromSlash(stepfunctions.Path))
	// A compensation dropped by hand: UndoCharge going straight to the end.
	edited := bytes.Replace(sm, []byte(`"Next": "UndoReserve"`), []byte(`"Next": "`+stepfunctions.Failed+`"`), 1)
	if bytes.Equal(edited, sm) {
		t.Fatal("no Next to UndoReserve to edit")
	}
	if err := os.WriteFile(full, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	drift, err := Check(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(drift); len(drift) != 1 || !strings.Contains(got, stepfunctions.Path+": differs") {
		t.Errorf("drift after editing the state machine: %s", got)
	}
	if err := os.Remove(full); err != nil {
		t.Fatal(err)
	}
	if drift, err := Check(dir, files); err != nil || fmt.Sprint(drift) != "["+stepfunctions.Path+": missing]" {
		t.Errorf("drift without the state machine: %v %v", drift, err)
	}
}
