package pagestyle_test

import (
	"html/template"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/pagestyle"
)

// A page's <style> must get the rules as they are: html/template replaces CSS it does not
// trust with ZgotmplZ, which would leave every report unstyled without an error.
func TestStyleReachesThePageAsItIs(t *testing.T) {
	page := template.Must(template.New("p").Funcs(pagestyle.Funcs()).Parse(
		"<html><head><style>\n{{pagestyle}}.own{color:red}\n</style></head></html>"))
	var b strings.Builder
	if err := page.Execute(&b, nil); err != nil {
		t.Fatal(err)
	}
	want := "<style>\n" + string(pagestyle.CSS) + ".own{color:red}\n</style>"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("the page's style is not the shared rules followed by its own:\n%s", b.String())
	}
}
