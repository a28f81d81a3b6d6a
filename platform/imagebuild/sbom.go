package imagebuild

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// SPDX 2.3 JSON, the subset an SBOM of a Go binary needs.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	DocumentDescribes []string           `json:"documentDescribes"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Supplier         string            `json:"supplier,omitempty"`
	Comment          string            `json:"comment,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(kind, path string) string {
	return "SPDXRef-" + kind + "-" + spdxIDUnsafe.ReplaceAllString(path, "-")
}

func purl(path, version string) string {
	if version == "" || version == "(devel)" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + version
}

// SBOM reads the Go build info of the binary at path (its main module, every dependency
// module with version and sum, the Go version and the build settings) and returns it as an
// SPDX 2.3 JSON document describing the image with the given name and digest. Every
// timestamp is created, so the document is as reproducible as the image.
func SBOM(path, name, digest string, created time.Time) ([]byte, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SBOM: read build info of %s: %w", path, err)
	}
	main := spdxPackage{
		Name:             info.Main.Path,
		SPDXID:           spdxID("Package", info.Main.Path),
		VersionInfo:      info.Main.Version,
		DownloadLocation: "NOASSERTION",
		ExternalRefs: []spdxExternalRef{{
			ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
			ReferenceLocator: purl(info.Main.Path, info.Main.Version),
		}},
	}
	var settings []string
	for _, s := range info.Settings {
		settings = append(settings, s.Key+"="+s.Value)
	}
	main.Comment = "main package " + info.Path + "; build settings: " + strings.Join(settings, " ")
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://mitosis.dev/spdx/" + name + "/" + strings.TrimPrefix(digest, "sha256:"),
		CreationInfo: spdxCreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: mitosis-imagebuild", "Tool: " + info.GoVersion},
		},
		DocumentDescribes: []string{main.SPDXID},
	}
	stdlib := spdxPackage{
		Name:             "stdlib",
		SPDXID:           "SPDXRef-Package-stdlib",
		VersionInfo:      strings.TrimPrefix(info.GoVersion, "go"),
		DownloadLocation: "NOASSERTION",
		ExternalRefs: []spdxExternalRef{{
			ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
			ReferenceLocator: "pkg:golang/stdlib@" + strings.TrimPrefix(info.GoVersion, "go"),
		}},
	}
	doc.Packages = append(doc.Packages, main, stdlib)
	doc.Relationships = append(doc.Relationships,
		spdxRelationship{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: main.SPDXID},
		spdxRelationship{Element: main.SPDXID, Type: "DEPENDS_ON", Related: stdlib.SPDXID},
	)
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		p := spdxPackage{
			Name:             d.Path,
			SPDXID:           spdxID("Package", d.Path),
			VersionInfo:      m.Version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs: []spdxExternalRef{{
				ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: purl(m.Path, m.Version),
			}},
		}
		if m.Sum != "" {
			p.Comment = "go.sum " + m.Sum
		}
		if d.Replace != nil {
			p.Comment = strings.TrimSpace(p.Comment + " (replaced by " + m.Path + ")")
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships,
			spdxRelationship{Element: main.SPDXID, Type: "DEPENDS_ON", Related: p.SPDXID})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("SBOM: %w", err)
	}
	return append(out, '\n'), nil
}
