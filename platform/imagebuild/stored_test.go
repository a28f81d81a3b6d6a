package imagebuild

import (
	"bytes"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A stored build holds the same files as a compressed one (the same diff IDs, the same
// binary), in layers no smaller than their contents, and is a build of its own inputs.
func TestStoredLayersHoldTheSameFiles(t *testing.T) {
	compressedOpts := testOptions(t, t.TempDir())
	compressedOpts.Platforms = []v1.Platform{HostPlatform()}
	storedOpts := compressedOpts
	storedOpts.Dir = t.TempDir()
	storedOpts.Stored = true
	compressed, stored := buildOne(t, compressedOpts, hello), buildOne(t, storedOpts, hello)
	if compressed.InputsHash == stored.InputsHash {
		t.Errorf("a stored and a compressed build share the inputs hash %s", stored.InputsHash)
	}

	layers := func(img Image) []v1.Layer {
		t.Helper()
		oci, err := img.OCIImage(HostPlatform())
		if err != nil {
			t.Fatal(err)
		}
		ls, err := oci.Layers()
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	cl, sl := layers(compressed), layers(stored)
	if len(cl) != len(sl) || len(sl) == 0 {
		t.Fatalf("%d compressed layers, %d stored", len(cl), len(sl))
	}
	for i := range sl {
		cDiff, err := cl[i].DiffID()
		if err != nil {
			t.Fatal(err)
		}
		sDiff, err := sl[i].DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if cDiff != sDiff {
			t.Errorf("layer %d holds other files stored (%s) than compressed (%s)", i, sDiff, cDiff)
		}
		cSize, err := cl[i].Size()
		if err != nil {
			t.Fatal(err)
		}
		sSize, err := sl[i].Size()
		if err != nil {
			t.Fatal(err)
		}
		if sSize <= cSize {
			t.Errorf("layer %d: %d bytes stored, %d compressed: the stored one is compressed", i, sSize, cSize)
		}
	}

	cBin, err := compressed.ExtractBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sBin, err := stored.ExtractBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(cBin)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := os.ReadFile(sBin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cb, sb) || len(sb) == 0 {
		t.Errorf("the stored image's binary (%d bytes) is not the compressed one's (%d bytes)", len(sb), len(cb))
	}
}
