package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mitosis-dev/mitosis/loadtest"
)

// render rewrites report.md and report.html beside each report.json given.
func render(args []string) error {
	if len(args) == 0 {
		return errors.New("render: which report.json?")
	}
	for _, path := range args {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r loadtest.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if r.Schema != loadtest.Schema {
			return fmt.Errorf("%s: schema %q, want %q", path, r.Schema, loadtest.Schema)
		}
		dir := filepath.Dir(path)
		for _, f := range []struct {
			name  string
			write func(io.Writer) error
		}{{"report.md", r.WriteMarkdown}, {"report.html", r.WriteHTML}} {
			out, err := os.Create(filepath.Join(dir, f.name))
			if err != nil {
				return err
			}
			if err := f.write(out); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
		fmt.Println(filepath.Join(dir, "report.html"))
	}
	return nil
}
