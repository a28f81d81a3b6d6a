package xraytest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// segmentSchema is AWS's segment document schema, as testdata/xray-segment-schema.json
// writes it down.
//
//go:embed testdata/xray-segment-schema.json
var segmentSchema []byte

// Validate checks one segment document (without the daemon's header line) against the
// schema and returns every violation, each naming its JSON path.
func Validate(doc []byte) []error {
	s, err := loadSchema()
	if err != nil {
		return []error{err}
	}
	v, err := decode(doc)
	if err != nil {
		return []error{fmt.Errorf("not JSON: %w", err)}
	}
	c := &checker{root: s}
	c.check("$", s, v)
	return c.errs
}

var (
	schemaOnce sync.Once
	schemaVal  map[string]any
	schemaErr  error
)

func loadSchema() (map[string]any, error) {
	schemaOnce.Do(func() {
		v, err := decode(segmentSchema)
		if err != nil {
			schemaErr = fmt.Errorf("schema: %w", err)
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			schemaErr = fmt.Errorf("schema is not an object")
			return
		}
		schemaVal = m
	})
	return schemaVal, schemaErr
}

func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// checker is a JSON Schema (draft-04) validator for the keywords the segment schema uses. A
// keyword it does not know is reported as a violation rather than skipped, so that the
// schema can never be silently weaker than it reads.
type checker struct {
	root map[string]any
	errs []error
}

// annotationKeywords carry no constraint.
var annotationKeywords = map[string]bool{"$schema": true, "description": true, "definitions": true, "title": true}

func (c *checker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (c *checker) check(path string, s map[string]any, v any) {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys) // violations in a stable order
	objectDone := false
	for _, k := range keys {
		kw := s[k]
		switch k {
		case "$ref":
			c.check(path, c.resolve(path, kw), v)
		case "type":
			if !typeMatches(kw, v) {
				c.fail(path, "type %s, want %v", typeName(v), kw)
			}
		case "enum":
			if !slicesContainJSON(kw.([]any), v) {
				c.fail(path, "%v is not one of %v", v, kw)
			}
		case "required":
			if m, ok := v.(map[string]any); ok {
				for _, r := range kw.([]any) {
					if _, ok := m[r.(string)]; !ok {
						c.fail(path, "missing required %q", r)
					}
				}
			}
		case "dependencies":
			if m, ok := v.(map[string]any); ok {
				for prop, deps := range kw.(map[string]any) {
					if _, ok := m[prop]; !ok {
						continue
					}
					for _, d := range deps.([]any) {
						if _, ok := m[d.(string)]; !ok {
							c.fail(path, "%q requires %q", prop, d)
						}
					}
				}
			}
		case "properties", "patternProperties", "additionalProperties":
			if !objectDone { // the three work together: apply them once
				objectDone = true
				c.checkObject(path, s, v)
			}
		case "items":
			if a, ok := v.([]any); ok {
				for i, e := range a {
					c.check(fmt.Sprintf("%s[%d]", path, i), kw.(map[string]any), e)
				}
			}
		case "minLength", "maxLength":
			if str, ok := v.(string); ok {
				n := len([]rune(str))
				lim := intOf(kw)
				if k == "minLength" && n < lim || k == "maxLength" && n > lim {
					c.fail(path, "length %d, %s %d", n, k, lim)
				}
			}
		case "pattern":
			if str, ok := v.(string); ok {
				re, err := compile(kw.(string))
				if err != nil {
					c.fail(path, "schema pattern %q: %v", kw, err)
				} else if !re.MatchString(str) {
					c.fail(path, "%q does not match %s", str, kw)
				}
			}
		case "minimum", "maximum":
			if n, ok := v.(json.Number); ok {
				x, _ := new(big.Float).SetString(n.String())
				lim, _ := new(big.Float).SetString(kw.(json.Number).String())
				if k == "minimum" && x.Cmp(lim) < 0 || k == "maximum" && x.Cmp(lim) > 0 {
					c.fail(path, "%s is beyond %s %s", n, k, lim.String())
				}
			}
		case "oneOf":
			matched := 0
			for _, alt := range kw.([]any) {
				sub := &checker{root: c.root}
				sub.check(path, alt.(map[string]any), v)
				if len(sub.errs) == 0 {
					matched++
				}
			}
			if matched != 1 {
				c.fail(path, "matches %d of the oneOf alternatives, want exactly 1", matched)
			}
		default:
			if !annotationKeywords[k] {
				c.fail(path, "the schema uses keyword %q, which this validator does not implement", k)
			}
		}
	}
}

// checkObject applies properties, patternProperties and additionalProperties together, as
// additionalProperties depends on the other two.
func (c *checker) checkObject(path string, s map[string]any, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	props, _ := s["properties"].(map[string]any)
	patterns, _ := s["patternProperties"].(map[string]any)
	for name, val := range m {
		p := path + "." + name
		matched := false
		if ps, ok := props[name]; ok {
			matched = true
			c.check(p, ps.(map[string]any), val)
		}
		for pat, ps := range patterns {
			re, err := compile(pat)
			if err != nil {
				c.fail(path, "schema pattern %q: %v", pat, err)
				continue
			}
			if re.MatchString(name) {
				matched = true
				c.check(p, ps.(map[string]any), val)
			}
		}
		if matched {
			continue
		}
		switch ap := s["additionalProperties"].(type) {
		case bool:
			if !ap {
				c.fail(p, "property not allowed")
			}
		case map[string]any:
			c.check(p, ap, val)
		}
	}
}

func (c *checker) resolve(path string, ref any) map[string]any {
	r, _ := ref.(string)
	name, ok := strings.CutPrefix(r, "#/definitions/")
	if defs, _ := c.root["definitions"].(map[string]any); ok {
		if d, ok := defs[name].(map[string]any); ok {
			return d
		}
	}
	c.fail(path, "unresolvable $ref %q", r)
	return map[string]any{}
}

var (
	reMu    sync.Mutex
	reCache = map[string]*regexp.Regexp{}
)

// compile compiles an ECMA 262 pattern as RE2, after turning \uXXXX escapes into \x{XXXX}.
func compile(p string) (*regexp.Regexp, error) {
	reMu.Lock()
	defer reMu.Unlock()
	if re, ok := reCache[p]; ok {
		return re, nil
	}
	re, err := regexp.Compile(regexp.MustCompile(`\\u([0-9a-fA-F]{4})`).ReplaceAllString(p, `\x{$1}`))
	if err != nil {
		return nil, err
	}
	reCache[p] = re
	return re, nil
}

func typeMatches(kw, v any) bool {
	switch t := kw.(type) {
	case string:
		return isType(t, v)
	case []any:
		for _, e := range t {
			if isType(e.(string), v) {
				return true
			}
		}
	}
	return false
}

func isType(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, _, err := big.ParseFloat(n.String(), 10, 200, big.ToNearestEven)
		return err == nil && f.IsInt()
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func slicesContainJSON(list []any, v any) bool {
	vb, _ := json.Marshal(v)
	for _, e := range list {
		eb, _ := json.Marshal(e)
		if bytes.Equal(vb, eb) {
			return true
		}
	}
	return false
}

func intOf(v any) int {
	n, _ := v.(json.Number).Int64()
	return int(n)
}
